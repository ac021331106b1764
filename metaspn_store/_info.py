"""What a workspace holds, for ``metaspn-store info``: per kind, hot and cold days, records,
bytes, quarantined lines and the last compaction; the saved checkpoints and how far behind they are.

Read-only. Record counts come from the public ``store.sql()`` views (so they are the records every
read returns: first write per id, both tiers); days and bytes come from the files on disk. The
cold tier is described by the tier itself (:func:`cold_tier_files`).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

from metaspn_store import BadLineWarning

KINDS = ("signals", "emissions")


@dataclass
class TierInfo:
    """One tier of one kind: its days (oldest first), records and bytes on disk."""

    days: list[str] = field(default_factory=list)
    records: int = 0
    bytes: int = 0


@dataclass
class KindInfo:
    hot: TierInfo
    cold: TierInfo
    quarantined_lines: int = 0
    unreadable_hot_lines: int = 0
    last_compaction: str | None = None  # UTC ISO time of the last compaction commit, if any

    @property
    def records(self) -> int:
        return self.hot.records + self.cold.records


@dataclass
class CheckpointInfo:
    name: str
    last_timestamp: str
    signals_behind: int  # signals stored after the checkpoint (what a replay from it would yield)


@dataclass
class WorkspaceInfo:
    workspace: str
    kinds: dict[str, KindInfo]
    checkpoints: list[CheckpointInfo]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for name, kind in self.kinds.items():
            out["kinds"][name]["records"] = kind.records
        return out


def cold_tier_files(store: Any, kind: str) -> tuple[dict[date, int], datetime | None]:
    """Bytes of the cold tier's live data files per day, and when it last committed (UTC)."""
    return store._cold[kind].summary()  # noqa: SLF001 - the cold tier's format is its own business


def hot_days(store_root: Path, kind: str) -> list[date]:
    """The days that have a hot (JSONL) file, oldest first."""
    return list(_hot_files(store_root, kind))


def _hot_files(store_root: Path, kind: str) -> dict[date, Path]:
    out: dict[date, Path] = {}
    for path in (store_root / kind).glob("*.jsonl"):
        try:
            out[date.fromisoformat(path.stem)] = path
        except ValueError:
            continue  # not a day file
    return dict(sorted(out.items()))


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:  # compacted away while we looked
        return 0


def _quarantined_lines(store_root: Path, kind: str) -> int:
    total = 0
    for path in (store_root / "quarantine" / kind).glob("*.jsonl"):
        try:
            total += path.read_bytes().count(b"\n")
        except FileNotFoundError:
            continue
    return total


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


STEPS = len(KINDS) + 2  # how many times workspace_info calls ``step``


def workspace_info(store: Any, *, step: Callable[[str], None] | None = None) -> WorkspaceInfo:
    """Describe the workspace of ``store`` (a ``FileSystemStore``) without changing anything.

    ``step(description)`` is called before each of the :data:`STEPS` slow parts (a first open
    parses every hot file), for a progress bar.
    """
    tick = step or (lambda _description: None)
    root = Path(store.store_root)
    with warnings.catch_warnings():
        # Unreadable lines are counted below (verify); a read must not also print them.
        warnings.simplefilter("ignore", BadLineWarning)
        counts: dict[tuple[str, str], int] = {}
        for kind in KINDS:
            tick(f"counting {kind}")
            rows = store.sql(f"SELECT tier, count(*) FROM {kind} GROUP BY tier").fetchall()  # noqa: S608
            counts.update({(kind, tier): int(n) for tier, n in rows})
        tick("checking hot lines")
        problems = store.verify()
        tick("checkpoints")
        checkpoints = _checkpoints(store, root)
    kinds: dict[str, KindInfo] = {}
    for kind in KINDS:
        hot_files = _hot_files(root, kind)
        cold_files, committed = cold_tier_files(store, kind)
        kind_dir = (root / kind).resolve()
        kinds[kind] = KindInfo(
            hot=TierInfo(
                days=[d.isoformat() for d in hot_files],
                records=counts.get((kind, "hot"), 0),
                bytes=sum(_size(p) for p in hot_files.values()),
            ),
            cold=TierInfo(
                days=[d.isoformat() for d in cold_files],
                records=counts.get((kind, "cold"), 0),
                bytes=sum(cold_files.values()),
            ),
            quarantined_lines=_quarantined_lines(root, kind),
            unreadable_hot_lines=sum(1 for p in problems if Path(p.path).resolve().parent == kind_dir),
            last_compaction=None if committed is None else _iso(committed),
        )
    return WorkspaceInfo(workspace=str(store.workspace), kinds=kinds, checkpoints=checkpoints)


def _checkpoints(store: Any, root: Path) -> list[CheckpointInfo]:
    out = []
    for path in sorted((root / "checkpoints").glob("*.json")):
        checkpoint = store.read_checkpoint(path.stem)
        if checkpoint is None:
            continue
        behind = store.sql(
            "SELECT count(*) FROM signals WHERE timestamp > $ts"
            " OR (timestamp = $ts AND NOT list_contains($seen, signal_id))",
            params={"ts": checkpoint.last_timestamp, "seen": list(checkpoint.seen_ids_at_timestamp)},
        ).fetchall()[0][0]
        out.append(CheckpointInfo(path.stem, _iso(checkpoint.last_timestamp), int(behind)))
    return out
