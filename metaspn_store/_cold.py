"""Cold tier: closed days as zstd Parquet, a manifest as the commit point.

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
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from metaspn_store._codec import schema_for
from metaspn_store._layout import Kind, Layout

MANIFEST = "_manifest.json"


class ColdTier:
    """The manifest of one kind and the Parquet files it lists."""

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

    # ------------------------------------------------------------------ writing

    def write_day(self, day: date, table: pa.Table, generation: int) -> tuple[str, int]:
        """Write one day's rows as a new Parquet file (not yet visible); return (name, bytes)."""
        folder = self.root / f"day={day.isoformat()}"
        folder.mkdir(parents=True, exist_ok=True)
        name = f"day={day.isoformat()}/part-{generation:08d}.parquet"
        final = self.root / name
        tmp = final.with_name(final.name + ".tmp")
        # Cluster by the common filters so row-group statistics prune; ``seq`` keeps append order.
        type_col = "source" if "source" in table.column_names else "emission_type"
        ordered = table.sort_by([(type_col, "ascending"), ("timestamp", "ascending"), ("seq", "ascending")])
        pq.write_table(
            ordered.cast(schema_for(self.kind)),
            tmp,
            compression="zstd",
            compression_level=3,
            row_group_size=64 * 1024,
            write_statistics=True,
        )
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, final)
        _fsync_dir(folder)
        return name, final.stat().st_size

    def commit(self, manifest: dict[str, Any]) -> None:
        """Atomically replace the manifest (the commit point of a compaction)."""
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".{MANIFEST}.{os.getpid()}.tmp"
        with open(tmp, "wb") as handle:
            handle.write(orjson.dumps(manifest, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.manifest_path)
        _fsync_dir(self.root)
        self._cache = None

    def remove_unlisted(self) -> int:
        """Delete Parquet/temp files the manifest does not list (left by an interrupted run)."""
        listed = {self.root / name for entry in self.manifest()["days"].values() for name in entry["files"]}
        removed = 0
        if not self.root.exists():
            return 0
        for path in self.root.glob("day=*/*"):
            if path not in listed and (path.suffix in (".parquet", ".tmp") or path.name.endswith(".parquet.tmp")):
                path.unlink(missing_ok=True)
                removed += 1
        for path in self.root.glob(f".{MANIFEST}.*.tmp"):
            path.unlink(missing_ok=True)
        return removed


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
