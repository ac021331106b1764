"""Cold tier: closed days as zstd Parquet, a manifest as the commit point, late-data merges.

Layout (Hive-style, readable by any engine)::

    store/cold/signals/day=2026-02-05/part-<generation>.parquet
    store/cold/signals/_manifest.json      {"days": {"2026-02-05": {"files": [...],
                                             "hot_file": [inode, head], "hot_lines": m}},
                                             "generation": g}

Commit protocol for one day (under the kind's write lock, so no writer appends meanwhile):

1. merge the day's current Parquet files and its hot JSONL lines (first write wins by id),
2. write ``part-<g>.parquet`` under a temporary name, fsync, rename,
3. replace the manifest atomically: the day now lists only the new file and records which hot
   file (inode plus a digest of its first line, since a deleted file's inode is soon reused) and
   how many of its lines the new file holds,
4. delete the hot file and the Parquet files the manifest no longer lists, then clear the claim.

Readers see the manifest's files plus the hot lines the manifest does not claim, so at every
instant (and after a crash at any step) each record is visible exactly once. Files not in the
manifest are ignored and removed by the next run.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from metaspn_store._codec import schema_for
from metaspn_store._layout import Kind, Layout

MANIFEST = "_manifest.json"


@dataclass
class DayReport:
    kind: str
    day: str
    records_in: int = 0
    records_out: int = 0
    duplicates_dropped: int = 0
    malformed: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    seconds: float = 0.0


@dataclass
class CompactionReport:
    """What a compaction did (or, with ``dry_run``, would do), per kind and day."""

    before: str
    dry_run: bool = False
    skipped: str | None = None
    days: list[DayReport] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def records_out(self) -> int:
        return sum(d.records_out for d in self.days)

    @property
    def changed(self) -> bool:
        return bool(self.days) and not self.dry_run

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["records_in"] = sum(d.records_in for d in self.days)
        out["records_out"] = self.records_out
        out["bytes_in"] = sum(d.bytes_in for d in self.days)
        out["bytes_out"] = sum(d.bytes_out for d in self.days)
        return out

    def summary(self) -> str:
        if self.skipped:
            return f"compaction skipped: {self.skipped}"
        verb = "would compact" if self.dry_run else "compacted"
        if not self.days:
            return f"nothing to compact before {self.before}: every closed day is already in Parquet"
        d = self.to_dict()
        ratio = f", {d['bytes_in'] / d['bytes_out']:.1f}:1" if d["bytes_out"] else ""
        return (
            f"{verb} {len(self.days)} day partition(s) before {self.before}: {d['records_in']} records in, "
            f"{d['records_out']} out, {sum(x.duplicates_dropped for x in self.days)} duplicates dropped, "
            f"{sum(x.malformed for x in self.days)} malformed kept aside; "
            f"{d['bytes_in']} -> {d['bytes_out']} bytes{ratio} in {self.seconds:.2f}s"
        )


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


def head_digest(data: bytes) -> str:
    """Digest of a hot file's first line: with the inode, tells a file from a later one that
    reuses the inode number of a deleted file."""
    import hashlib

    return hashlib.md5(data[: data.find(b"\n") + 1], usedforsecurity=False).hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def now() -> float:
    return time.perf_counter()


def compact_day(
    *,
    cold: ColdTier,
    hot: Any,
    day: date,
    index: Any,
    connection: Any,
    quarantine_dir: Path,
    dry_run: bool,
) -> DayReport | None:
    """Merge one day's Parquet and hot lines into one new Parquet file and commit it.

    Call with the kind's write lock held. Returns None when the day has nothing new.
    """
    from metaspn_store._hot import COLD, decode_code
    from metaspn_store._index import digest
    from metaspn_store._parse import parse_chunk

    started = now()
    kind = cold.kind
    report = DayReport(kind=kind.name, day=day.isoformat())
    manifest = orjson.loads(orjson.dumps(cold.manifest()))
    entry = manifest["days"].get(day.isoformat(), {"files": [], "hot_file": None, "hot_lines": 0})
    hot_path = cold.layout.hot_file(kind, day)
    hot_rows = schema_for(kind).empty_table()
    consumed_lines = 0
    inode = None
    hot_complete = True
    bad_lines: list[Any] = []
    data = b""
    if hot_path.exists():
        st = os.stat(hot_path)
        inode = st.st_ino
        with open(hot_path, "rb") as handle:
            data = handle.read(st.st_size)
        cut = data.rfind(b"\n") + 1
        hot_complete = cut == len(data)
        data = data[:cut]
        report.bytes_in += cut
        if cut:
            hot_rows, bad_lines, consumed_lines = parse_chunk(
                kind, connection, data, 0, str(hot_path), whole_file=hot_path, keep_extra=True
            )
        identity = [inode, head_digest(data)]
        claimed = entry.get("hot_lines", 0) if entry.get("hot_file") == identity else 0
        if claimed:
            hot_rows = hot_rows.filter(pc.greater_equal(hot_rows.column("seq"), claimed))
            bad_lines = [b for b in bad_lines if b.line > claimed]
        if hot_rows.num_rows == 0 and not bad_lines:
            # Nothing new: only a leftover of an interrupted run (its lines are all in Parquet).
            if claimed and not dry_run and hot_complete and consumed_lines == claimed:
                hot_path.unlink(missing_ok=True)
                hot.forget(day)
            return None
    else:
        return None
    cold_files = [cold.root / name for name in entry["files"]]
    cold_rows = (
        pq.read_table(cold_files).select(schema_for(kind).names).cast(schema_for(kind)).sort_by("seq")
        if cold_files
        else schema_for(kind).empty_table()
    )
    report.bytes_in += sum(p.stat().st_size for p in cold_files)
    report.records_in = cold_rows.num_rows + hot_rows.num_rows
    report.malformed = len(bad_lines)
    merged = pa.concat_tables([cold_rows, hot_rows.cast(schema_for(kind))])
    # First write wins: earliest (tier, seq) inside the day, and an id first stored on an
    # earlier day is a duplicate here.
    id_column = merged.column(kind.id_field)
    if index.repeated or pc.count_distinct(id_column).as_py() != merged.num_rows:
        keep: list[bool] = []
        seen: set[str] = set()
        this_day_codes = {day.toordinal() * 2 + COLD, day.toordinal() * 2 + 1}
        for record_id in id_column.to_pylist():
            if record_id in seen:
                keep.append(False)
                continue
            seen.add(record_id)
            key = digest(record_id)
            code = index.get(key) if key in index.repeated else None
            keep.append(code is None or code in this_day_codes or decode_code(code)[0] >= day)
        out = merged.filter(pa.array(keep, pa.bool_()))
    else:
        out = merged  # no id occurs twice anywhere in the store: nothing to drop
    out = out.set_column(out.schema.get_field_index("seq"), "seq", pa.array(range(out.num_rows), pa.int64()))
    report.records_out = out.num_rows
    report.duplicates_dropped = report.records_in - report.records_out
    if dry_run:
        report.seconds = round(now() - started, 4)
        return report
    generation = int(manifest.get("generation", 0)) + 1
    name, size = cold.write_day(day, out, generation)
    report.bytes_out = size
    if bad_lines:
        _quarantine(quarantine_dir / kind.name, day, inode, data, bad_lines)
    old_files = list(entry["files"])
    manifest["days"][day.isoformat()] = {
        "files": [name],
        "hot_file": [inode, head_digest(data)],
        "hot_lines": consumed_lines,
    }
    manifest["generation"] = generation
    cold.commit(manifest)
    # After the commit the hot lines are claimed by Parquet; the file can go, then the claim.
    if hot_complete:
        hot_path.unlink(missing_ok=True)
        manifest["days"][day.isoformat()]["hot_file"] = None
        manifest["days"][day.isoformat()]["hot_lines"] = 0
        cold.commit(manifest)
    hot.forget(day)
    for old in old_files:
        (cold.root / old).unlink(missing_ok=True)
    report.seconds = round(now() - started, 4)
    return report


def _quarantine(folder: Path, day: date, inode: int | None, data: bytes, bad_lines: list[Any]) -> None:
    """Keep malformed lines (with file, line and reason) instead of dropping them."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = data.split(b"\n")
    out = b"".join(
        orjson.dumps(
            {
                "file": b.path,
                "line": b.line,
                "reason": b.reason,
                "text": lines[b.line - 1].decode("utf-8", errors="replace") if b.line - 1 < len(lines) else "",
            },
            option=orjson.OPT_APPEND_NEWLINE,
        )
        for b in bad_lines
    )
    target = folder / f"{day.isoformat()}.{inode}.jsonl"
    tmp = target.with_name(target.name + ".tmp")
    with open(tmp, "wb") as handle:
        handle.write(out)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, target)
