"""Compaction: a closed day's hot lines and Parquet become one new Parquet file, committed
through the cold tier's manifest.

For one day (under the kind's write lock, so no writer appends meanwhile):

1. read the day's hot file (complete lines only) and its current Parquet files,
2. merge them in (tier, seq) order and keep the first copy of each id *within the day*
   (``_rules`` rule 2: a copy on another day can still be the answer of a window that covers
   only this day, so it is kept; the ids that also occur on other days are listed in the
   manifest so that reads spanning both days drop the later copy),
3. write the new file and commit the manifest (the commit point, see ``_cold``),
4. delete the hot file, its saved parse and the superseded Parquet, then clear the claim.

Malformed lines are kept, with file, line and reason, in ``store/quarantine/<kind>/``.
The compactor uses the tiers only through their public methods; neither tier imports it.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from metaspn_store._codec import schema_for
from metaspn_store._cold import ColdTier
from metaspn_store._hot import HotTier, head_digest
from metaspn_store._index import IdIndex, digest
from metaspn_store._parse import BadLineReport, parse_chunk


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


@dataclass
class _HotDay:
    """The complete lines of one day's hot file, as the compactor read them."""

    path: Path
    inode: int
    data: bytes  # complete lines only
    tail: bytes  # a torn last line (no newline) after them, usually empty
    rows: pa.Table
    bad: list[BadLineReport]
    lines: int


def _read_hot_day(hot: HotTier, day: date, con: duckdb.DuckDBPyConnection) -> _HotDay | None:
    path = hot.layout.hot_file(hot.kind, day)
    try:
        with open(path, "rb") as handle:
            st = os.fstat(handle.fileno())
            data = handle.read(st.st_size)
    except FileNotFoundError:
        return None
    cut = data.rfind(b"\n") + 1
    data, tail = data[:cut], data[cut:]
    rows, lines = schema_for(hot.kind).empty_table(), 0
    bad: list[BadLineReport] = []
    if cut:
        rows, bad, lines = parse_chunk(hot.kind, con, data, 0, str(path), whole_file=path)
    return _HotDay(path, st.st_ino, data, tail, rows, bad, lines)


def compact_day(
    *,
    cold: ColdTier,
    hot: HotTier,
    day: date,
    index: IdIndex,
    connection: duckdb.DuckDBPyConnection,
    quarantine_dir: Path,
    dry_run: bool,
) -> DayReport | None:
    """Merge one day's Parquet and hot lines into one new Parquet file and commit it.

    Call with the kind's write lock held. Returns None when the day has nothing new.
    """
    started = time.perf_counter()
    kind = cold.kind
    hot_day = _read_hot_day(hot, day, connection)
    if hot_day is None:
        return None
    manifest = orjson.loads(orjson.dumps(cold.manifest()))
    entry = manifest["days"].get(day.isoformat(), {"files": [], "hot_file": None, "hot_lines": 0})
    identity = [hot_day.inode, head_digest(hot_day.data)]
    claimed = entry.get("hot_lines", 0) if entry.get("hot_file") == identity else 0
    rows = hot_day.rows.filter(pc.greater_equal(hot_day.rows.column("seq"), claimed)) if claimed else hot_day.rows
    bad = [b for b in hot_day.bad if b.line > claimed]
    if hot_day.tail:
        # We hold the write lock, so no writer of ours is in the middle of this line: it is the
        # leftover of one that died mid-write. It is kept aside like a malformed line.
        bad.append(BadLineReport(str(hot_day.path), hot_day.lines + 1, "torn last line (no newline at the end)"))
    if rows.num_rows == 0 and not bad:
        # Nothing new: a file without records (empty, blank lines) or the leftover of an
        # interrupted run whose lines are all in Parquet already.
        if not dry_run:
            _remove_hot_file(hot, day, hot_day.path)
        return None
    report = DayReport(kind=kind.name, day=day.isoformat(), bytes_in=len(hot_day.data))
    cold_files = [cold.root / name for name in entry["files"]]
    cold_rows = (
        pq.read_table(cold_files).select(schema_for(kind).names).cast(schema_for(kind)).sort_by("seq")
        if cold_files
        else schema_for(kind).empty_table()
    )
    report.bytes_in += sum(p.stat().st_size for p in cold_files)
    report.records_in = cold_rows.num_rows + rows.num_rows
    report.malformed = len(bad)
    merged = pa.concat_tables([cold_rows, rows.cast(schema_for(kind))])
    out = _first_copy_per_id(merged, kind.id_field)
    out = out.set_column(out.schema.get_field_index("seq"), "seq", pa.array(range(out.num_rows), pa.int64()))
    report.records_out = out.num_rows
    report.duplicates_dropped = report.records_in - report.records_out
    if dry_run:
        report.seconds = round(time.perf_counter() - started, 4)
        return report
    generation = int(manifest.get("generation", 0)) + 1
    name, size = cold.write_day(day, out, generation)
    report.bytes_out = size
    if bad:
        _quarantine(quarantine_dir / kind.name, day, hot_day.inode, hot_day.data + hot_day.tail, bad)
    old_files = list(entry["files"])
    manifest["days"][day.isoformat()] = {
        "files": [name],
        "hot_file": identity,
        "hot_lines": hot_day.lines,
        "shared_ids": _ids_on_other_days(out.column(kind.id_field), index),
    }
    manifest["generation"] = generation
    cold.commit(manifest)
    # After the commit the hot lines are claimed by Parquet (and a torn tail is in quarantine);
    # the file can go, then the claim.
    _remove_hot_file(hot, day, hot_day.path)
    manifest["days"][day.isoformat()]["hot_file"] = None
    manifest["days"][day.isoformat()]["hot_lines"] = 0
    cold.commit(manifest)
    for old in old_files:
        (cold.root / old).unlink(missing_ok=True)
    report.seconds = round(time.perf_counter() - started, 4)
    return report


def _remove_hot_file(hot: HotTier, day: date, path: Path) -> None:
    path.unlink(missing_ok=True)
    hot.forget(day)


def _first_copy_per_id(merged: pa.Table, id_field: str) -> pa.Table:
    """Rows in (tier, seq) order keeping the first row of each id (later copies in the same day
    are never the answer of any read, ``_rules`` rule 2)."""
    ids = merged.column(id_field)
    if pc.count_distinct(ids).as_py() == merged.num_rows:
        return merged
    seen: set[str] = set()
    keep = []
    for record_id in ids.to_pylist():
        keep.append(record_id not in seen)
        seen.add(record_id)
    return merged.filter(pa.array(keep, pa.bool_()))


def _ids_on_other_days(ids: pa.ChunkedArray, index: IdIndex) -> list[str]:
    """Ids of the day that the index saw more than once: candidates for copies on other days,
    which reads spanning both days must resolve (the list is small: usually empty)."""
    if not index.repeated:
        return []
    return sorted(record_id for record_id in ids.to_pylist() if digest(record_id) in index.repeated)


def _quarantine(folder: Path, day: date, inode: int, data: bytes, bad_lines: list[BadLineReport]) -> None:
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
