"""Workspace tree, partition naming and name validation.

Layout (identical to metaspn-store 0.1.8 for the hot tier)::

    WORKSPACE/store/signals/YYYY-MM-DD.jsonl          hot tier, one JSON object per line
    WORKSPACE/store/emissions/YYYY-MM-DD.jsonl
    WORKSPACE/store/checkpoints/NAME.json
    WORKSPACE/store/snapshots/NAME__YYYY-MM-DDTHHMMSSZ.json

Added by this package (0.1.8 never looks there)::

    WORKSPACE/store/cold.json                         cold location and host id (``_cold``)
    WORKSPACE/store/cold/<kind>/_delta_log/           cold tier: a Delta table per kind (default location)
    WORKSPACE/store/cold/<kind>/day=YYYY-MM-DD/part-*.parquet
    WORKSPACE/store/quarantine/<kind>/                bad lines set aside by the compactor
    WORKSPACE/store/.index/<kind>.arrow               persisted id index (a cache)
    WORKSPACE/store/.cache/<kind>/YYYY-MM-DD.arrow    saved parse of a hot file (a cache)
    WORKSPACE/store/.locks/<kind>.lock                writer locks
    WORKSPACE/store/consumers/<kind>/NAME.json        a named consumer's committed positions (``_consumer``)
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from metaspn_store.errors import InvalidNameError

_DAY_FILE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})\.jsonl$")


@dataclass(frozen=True)
class Kind:
    """What differs between the two record kinds; everything else is shared."""

    name: str  # folder name: "signals" | "emissions"
    id_field: str  # "signal_id" | "emission_id"
    label: str  # singular, for messages: "signal" | "emission"


SIGNALS = Kind("signals", "signal_id", "signal")
EMISSIONS = Kind("emissions", "emission_id", "emission")


class Layout:
    """Paths of one workspace. Creating it creates the folders (as 0.1.8 does)."""

    def __init__(self, workspace: str | Path) -> None:
        self.workspace = Path(workspace)
        self.store_root = self.workspace / "store"
        self.signals_dir = self.store_root / "signals"
        self.emissions_dir = self.store_root / "emissions"
        self.snapshots_dir = self.store_root / "snapshots"
        self.checkpoints_dir = self.store_root / "checkpoints"
        self.cold_root = self.store_root / "cold"
        self.locks_dir = self.store_root / ".locks"
        self.index_dir = self.store_root / ".index"
        self.parse_cache_dir = self.store_root / ".cache"
        self.consumers_dir = self.store_root / "consumers"
        self._hot_paths: dict[tuple[str, date], Path] = {}

    def ensure_dirs(self) -> None:
        for folder in (self.signals_dir, self.emissions_dir, self.snapshots_dir, self.checkpoints_dir):
            folder.mkdir(parents=True, exist_ok=True)

    def kind_dir(self, kind: Kind) -> Path:
        return self.signals_dir if kind is SIGNALS else self.emissions_dir

    def hot_file(self, kind: Kind, day: date) -> Path:
        key = (kind.name, day)
        path = self._hot_paths.get(key)
        if path is None:
            path = self.kind_dir(kind) / f"{day.isoformat()}.jsonl"
            if len(self._hot_paths) < 10_000:
                self._hot_paths[key] = path
        return path

    def cold_dir(self, kind: Kind) -> Path:
        return self.cold_root / kind.name

    def saved_index(self, kind: Kind) -> Path:
        """The persisted id index of one kind (a cache: deleting it only costs one rebuild)."""
        return self.index_dir / f"{kind.name}.arrow"

    def saved_parse(self, kind: Kind, day: date) -> Path:
        """The saved parse of one hot file (a cache: deleting it only costs one parse)."""
        return self.parse_cache_dir / kind.name / f"{day.isoformat()}.arrow"

    def consumer_dir(self, kind: Kind) -> Path:
        """``store/consumers/<kind>/``: one position file (and lock file) per named consumer."""
        return self.consumers_dir / kind.name

    def lock_file(self, name: str) -> Path:
        """Where the lock ``name`` lives (its folder is created when the lock is first taken)."""
        return self.locks_dir / f"{name}.lock"


def day_of_hot_file(path: Path) -> date | None:
    """The UTC day a hot partition file holds, or None if the name is not a day file."""
    match = _DAY_FILE.match(path.name)
    if match is None:
        return None
    try:
        return date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
    except ValueError:
        return None


def validate_name(name: str, what: str) -> str:
    """A checkpoint/snapshot name must stay one plain file name inside its folder.

    Its length is checked against the filesystem by :func:`named_file`, where the whole file name
    is known.
    """
    if not isinstance(name, str) or not name:
        raise InvalidNameError(f"{what} name must be a non-empty string, got {name!r}")
    if name in (".", "..") or "/" in name or "\\" in name or "\x00" in name or name.startswith("."):
        raise InvalidNameError(
            f"{what} name {name!r} is not allowed: use a plain file name without path separators, "
            "NUL or a leading dot"
        )
    return name


def validate_day_token(token: str) -> str:
    """Day strings become part of a snapshot file name; like names, they must not escape the folder.

    Any other string is accepted, as in 0.1.8 (dates are normalised to YYYY-MM-DD by the caller).
    """
    return validate_name(token, "day")


_DEFAULT_NAME_MAX = 255  # bytes; Linux, macOS and Windows filesystems alike


def name_max(folder: Path) -> int:
    """The longest file name, in bytes, the filesystem of ``folder`` holds (``PC_NAME_MAX``).

    255 when the folder does not exist yet or the system does not say.
    """
    try:
        limit = os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        return _DEFAULT_NAME_MAX
    return limit if isinstance(limit, int) and limit > 0 else _DEFAULT_NAME_MAX


def named_file(folder: Path, name: str, what: str, *, prefix: str = "", suffix: str = "") -> Path:
    """``folder / (prefix + name + suffix)``, or :class:`InvalidNameError` naming the limit when the
    filesystem cannot hold that file name (longer than NAME_MAX bytes in the filesystem encoding,
    or not encodable). Checked before anything is written, so a refused name leaves no file.

    ``name`` must already have passed :func:`validate_name`. The limit covers only the file
    name; temporary files are shorter (see ``_ipc.replace_atomically``).
    """
    file_name = f"{prefix}{name}{suffix}"
    try:
        size = len(os.fsencode(file_name))
    except UnicodeEncodeError as exc:
        raise InvalidNameError(f"{what} name {_short(name)} cannot be a file name on this system: {exc}") from exc
    limit = name_max(folder)
    if size > limit:
        overhead = size - len(os.fsencode(name))
        raise InvalidNameError(
            f"{what} name {_short(name)} is too long: its file name {_short(file_name)} would be {size} bytes "
            f"and the filesystem of {folder} holds at most {limit} bytes per file name (NAME_MAX); "
            f"use a {what} name of at most {limit - overhead} bytes (UTF-8)"
        )
    return folder / file_name


def _short(text: str, keep: int = 40) -> str:
    return repr(text) if len(text) <= keep else repr(text[:keep]) + f"... ({len(text)} characters)"
