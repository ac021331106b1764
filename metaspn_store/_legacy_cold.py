"""The previous cold-tier layout (up to 0.2.0): zstd Parquet with our own manifest as the commit
point. Kept as a reader so that workspaces compacted by it open unchanged; their next compaction
converts them into the Delta table (``_cold``) and removes these files. Nothing writes this
layout any more.

Layout (Hive-style, readable by any engine)::

    store/cold/signals/day=2026-02-05/part-<generation>.parquet
    store/cold/signals/_manifest.json      {"days": {"2026-02-05": {"files": [...],
                                             "hot_file": [inode, head], "hot_lines": m,
                                             "shared_ids": [...]}}, "generation": g}

A day's entry lists its live Parquet files; between a compaction's commit and the deletion of
the hot file it also names that hot file (inode plus a digest of its first line, since a deleted
file's inode is soon reused) and how many of its lines the Parquet already holds, so readers
skip them. ``shared_ids`` lists the day's ids that also occur on other days (see ``_rules``
rule 2; reads spanning both days keep the first). The protocol that writes it is in
``_compactor``. Readers see the manifest's files plus the hot lines the manifest does not claim,
so at every instant (and after a crash at any step) each record is visible exactly once. Files
not in the manifest are ignored and removed by the next run.
"""

from __future__ import annotations

import os
import re
from datetime import date
from typing import Any

import orjson

from metaspn_store._layout import Kind, Layout

MANIFEST = "_manifest.json"


class LegacyColdTier:
    """The manifest of one kind and the Parquet files it lists (read-only)."""

    def __init__(self, layout: Layout, kind: Kind) -> None:
        self.layout = layout
        self.kind = kind
        self.root = layout.cold_dir(kind)
        self.manifest_path = self.root / MANIFEST
        self._cache: tuple[tuple[int, int, int], dict[str, Any]] | None = None

    # ------------------------------------------------------------------ reading the manifest

    def version(self) -> tuple[int, int, int]:
        try:
            st = os.stat(self.manifest_path)
        except FileNotFoundError:
            return (0, 0, 0)
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def manifest(self) -> dict[str, Any]:
        version = self.version()
        if self._cache is not None and self._cache[0] == version:
            return self._cache[1]
        if version == (0, 0, 0):
            data: dict[str, Any] = {"days": {}, "generation": 0}
        else:
            data = orjson.loads(self.manifest_path.read_bytes())
        self._cache = (version, data)
        return data

    def files(self, first: date, last: date) -> dict[date, list[str]]:
        out: dict[date, list[str]] = {}
        for token, entry in self.manifest()["days"].items():
            day = date.fromisoformat(token)
            if first <= day <= last and entry["files"]:
                out[day] = [str(self.root / name) for name in entry["files"]]
        return dict(sorted(out.items()))

    def claimed_hot_lines(self, day: date) -> tuple[tuple[int, str], int] | None:
        """((inode, first-line digest), lines) of the hot file whose first ``lines`` lines the
        Parquet already holds (only between a commit and the hot file's deletion)."""
        entry = self.manifest()["days"].get(day.isoformat())
        if not entry or not entry.get("hot_file"):
            return None
        inode, head = entry["hot_file"]
        return (int(inode), str(head)), int(entry["hot_lines"])

    def shared_ids(self, first: date, last: date) -> list[str]:
        """Ids stored on the days ``first..last`` that also occur on other days."""
        out: set[str] = set()
        for token, entry in self.manifest()["days"].items():
            if first <= date.fromisoformat(token) <= last:
                out.update(entry.get("shared_ids", ()))
        return sorted(out)

    def all_files(self) -> list[tuple[date, str]]:
        return [
            (date.fromisoformat(token), str(self.root / name))
            for token, entry in sorted(self.manifest()["days"].items())
            for name in entry["files"]
        ]

    def remove(self) -> int:
        """Delete the manifest, then every Parquet file of this layout (after the conversion
        committed them into the Delta table). Files of the Delta table in the same folder have
        other names (``part-00000-<uuid>-c000.zstd.parquet``) and are left alone."""
        if not self.root.exists():
            return 0
        self.manifest_path.unlink(missing_ok=True)
        for path in self.root.glob(f".{MANIFEST}.*.tmp"):
            path.unlink(missing_ok=True)
        removed = 0
        for path in self.root.glob("day=*/part-*"):
            if _LEGACY_NAME.fullmatch(path.name):
                path.unlink(missing_ok=True)
                removed += 1
        self._cache = None
        return removed


_LEGACY_NAME = re.compile(r"part-\d{8}\.parquet(\.tmp)?")
