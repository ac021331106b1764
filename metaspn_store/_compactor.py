"""Compaction: a closed day's hot lines and the table's rows of that day become the day's new
rows, committed as one Delta transaction (the commit protocol; the table layout is in ``_cold``).

For one day (under the kind's write lock, so no writer of this host appends meanwhile):

1. read the day's hot file (complete lines only), take the table's latest version (with the id
   index up to date with it), skip the hot lines that version already claims, read the day's rows,
2. merge them in (tier, seq) order and keep the first copy of each id *within the day*
   (``_rules`` rule 2: a copy on another day can still be the answer of a window that covers
   only this day, so it is kept; the rows whose id may occur on other days get ``shared`` so
   that reads spanning both days drop the later copy),
3. replace the day in one commit on top of that version, with the claim of the hot lines and the
   kind's serial application transaction; if another compaction (another host) committed first,
   the commit fails and the day is merged again on the new version,
4. delete the hot file and its saved parse (the claim keeps a crash before this harmless).

Crash points (``_faults``) sit between the steps; tests kill the real process at each.

Malformed lines are kept, with file, line and reason, in ``store/quarantine/<kind>/``.
The compactor uses the tiers only through their public methods; neither tier imports it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from metaspn_store._codec import bool_array, int64_range, no_rows, repeated_date, schema_for
from metaspn_store._cold import LEGACY_IMPORT, ColdTier
from metaspn_store._faults import crash_point
from metaspn_store._hot import HotTier, head_digest
from metaspn_store._index import IdIndex, digest
from metaspn_store._parse import BadLineReport, parse_chunk
from metaspn_store._rules import is_blank
from metaspn_store.errors import CompactionError


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
    base_version: int = -1  # the table version the day was merged with
    version: int = -1  # the table version that committed it


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
    rows, lines = no_rows(schema_for(hot.kind)), 0
    bad: list[BadLineReport] = []
    if cut:
        lines = data.count(b"\n")
        shared = _hot_parse(hot, day, st.st_ino, data, lines)
        if shared is not None:
            rows, bad = shared
        else:
            rows, bad, lines = parse_chunk(hot.kind, con, data, 0, str(path), whole_file=path)
    return _HotDay(path, st.st_ino, data, tail, rows, bad, lines)


def _hot_parse(
    hot: HotTier, day: date, inode: int, data: bytes, lines: int
) -> tuple[pa.Table, list[BadLineReport]] | None:
    """The rows and bad lines of ``data`` (the first ``lines`` lines of the day's hot file) from
    the hot tier's parse of the file, which reads and the id index share (usually made already,
    often saved), instead of parsing the day a second time. None unless that parse is of this
    file (inode and first line) and reaches our last line (the file only grows under our lock;
    a tool without the lock may have appended more lines, which are cut off here). Only a parse
    the hot tier holds already is taken: making one here would warn about its bad lines, which
    compaction keeps aside silently."""
    if hot.identity(day) != (inode, head_digest(data)):
        return None
    table = hot.table(day)
    if table is None or hot.identity(day) != (inode, head_digest(data)):
        return None
    bad = hot.bad_lines(day)
    seq = table.column("seq")
    if table.num_rows and pc.max(seq).as_py() >= lines:
        table = table.filter(pc.less(seq, lines))
        seq = table.column("seq")
    bad = [b for b in bad if b.line <= lines]
    last = data[data.rfind(b"\n", 0, len(data) - 1) + 1 : -1]
    reached = (
        is_blank(last)
        or (table.num_rows > 0 and seq[-1].as_py() == lines - 1)
        or any(b.line == lines for b in bad)
    )
    return (table, bad) if reached else None


MAX_ATTEMPTS = 50


def compact_day(
    *,
    cold: ColdTier,
    hot: HotTier,
    day: date,
    index: Callable[[], IdIndex],
    connection: duckdb.DuckDBPyConnection,
    quarantine_dir: Path,
    dry_run: bool,
) -> DayReport | None:
    """Merge one day's table rows and hot lines and commit them as one Delta version.

    Call with the kind's write lock held. ``index`` returns the id index up to date with the
    cold tier. Returns None when the day has nothing new. A commit lost to another compaction
    (another host) is recomputed on the new version and retried.
    """
    from deltalake.exceptions import CommitFailedError

    started = time.perf_counter()
    kind = cold.kind
    # The index first: building it parses every hot file through the hot tier, and the day's
    # lines are then taken from that parse instead of being parsed again (_read_hot_day).
    index()
    hot_day = _read_hot_day(hot, day, connection)
    if hot_day is None:
        return None
    identity = (hot_day.inode, head_digest(hot_day.data))
    for _attempt in range(MAX_ATTEMPTS):
        seen = cold.version()
        idx = index()
        version, dt = cold.state()
        if dt is None:
            if not dry_run:
                cold.create()
                continue
        elif not dry_run and seen != ("delta", version):
            continue  # a commit landed while the index caught up: take both again
        claimed = int(dt.transaction_version(cold.claim_id(day, identity)) or 0) if dt is not None else 0
        rows = hot_day.rows.filter(pc.greater_equal(hot_day.rows.column("seq"), claimed)) if claimed else hot_day.rows
        bad = [b for b in hot_day.bad if b.line > claimed]
        if hot_day.tail:
            # We hold the write lock, so no writer of ours is in the middle of this line: it is the
            # leftover of one that died mid-write. It is kept aside like a malformed line.
            bad.append(BadLineReport(str(hot_day.path), hot_day.lines + 1, "torn last line (no newline at the end)"))
        if rows.num_rows == 0 and not bad:
            # Nothing new: a file without records (empty, blank lines) or the leftover of an
            # interrupted run whose lines are all in the table already.
            if not dry_run:
                _remove_hot_file(hot, day, hot_day.path)
            return None
        report = DayReport(kind=kind.name, day=day.isoformat(), bytes_in=len(hot_day.data), base_version=version)
        cold_rows = cold.read_day(version, dt, day)
        report.records_in = cold_rows.num_rows + rows.num_rows
        report.malformed = len(bad)
        merged = pa.concat_tables([cold_rows, rows.cast(schema_for(kind))])
        out = _first_copy_per_id(merged, kind.id_field)
        out = out.set_column(out.schema.get_field_index("seq"), "seq", int64_range(out.num_rows))
        report.records_out = out.num_rows
        report.duplicates_dropped = report.records_in - report.records_out
        if dry_run:
            report.seconds = round(time.perf_counter() - started, 4)
            return report
        shared = _shared_flags(out.column(kind.id_field), idx)
        if bad:
            _quarantine(quarantine_dir / kind.name, day, hot_day.inode, hot_day.data + hot_day.tail, bad)
        crash_point("compaction.merged")
        # Rows this host has added to the day, counted in the commit: a consumer tells its own
        # host's compactions (its hot records moving into the table) from other hosts' by it.
        added = int(dt.transaction_version(cold.rows_id(day)) or 0) if dt is not None else 0
        added += out.num_rows - cold_rows.num_rows
        try:
            report.version = cold.replace_day(dt, day, out, shared, (identity, hot_day.lines),
                                              extra_claims={cold.rows_id(day): added})
        except CommitFailedError:
            continue
        crash_point("compaction.committed")
        # The table now claims the hot lines (and a torn tail is in quarantine): the file can go.
        # A crash before this leaves the claim, so readers never see a record twice.
        _remove_hot_file(hot, day, hot_day.path)
        crash_point("compaction.hot_removed")
        report.bytes_out = cold.day_bytes(report.version, day)
        report.seconds = round(time.perf_counter() - started, 4)
        return report
    raise CompactionError(f"compaction of {kind.name} {day.isoformat()} lost {MAX_ATTEMPTS} commit races in a row; run it again")


def convert_legacy(cold: ColdTier) -> int | None:
    """Commit the previous layout's days into the Delta table as one version, then remove its
    files. Returns the table version, or None if there was nothing to convert.

    Days the table already holds (other hosts) are merged, the table's rows first (the first
    committed copy wins). Claims of an interrupted previous-layout compaction become claims.
    """
    from deltalake.exceptions import CommitFailedError

    if not cold.legacy_pending():
        if cold.legacy.root.exists() and cold.legacy_imported():
            cold.legacy.remove()  # an earlier conversion died before removing the old files
        return None
    manifest = cold.legacy.manifest()
    kind = cold.kind
    schema = schema_for(kind)
    claims = {
        cold.claim_id(date.fromisoformat(token), (int(entry["hot_file"][0]), str(entry["hot_file"][1]))): int(entry["hot_lines"])
        for token, entry in manifest["days"].items()
        if entry.get("hot_file")
    }
    new_version: int | None = None
    for _attempt in range(MAX_ATTEMPTS):
        version, dt = cold.state()
        if dt is None:
            cold.create()
            continue
        if dt.transaction_version(LEGACY_IMPORT) is not None:
            new_version = version  # converted by an earlier run that died before removing the files
            break
        days: dict[date, pa.Table] = {}
        for token, entry in manifest["days"].items():
            if not entry["files"]:
                continue
            day = date.fromisoformat(token)
            legacy_rows = pq.read_table([cold.legacy.root / n for n in entry["files"]]).select(schema.names).cast(schema).sort_by("seq")
            merged = _first_copy_per_id(pa.concat_tables([cold.read_day(version, dt, day), legacy_rows]), kind.id_field)
            days[day] = merged.set_column(merged.schema.get_field_index("seq"), "seq", pa.array(range(merged.num_rows), pa.int64()))
        flags = _cross_day_flags(cold, version, dt, days)
        try:
            new_version = cold.import_legacy(dt, {d: (rows, flags[d]) for d, rows in days.items()}, claims)
        except CommitFailedError:
            continue
        break
    else:
        raise CompactionError(f"conversion of {kind.name} lost {MAX_ATTEMPTS} commit races in a row; run it again")
    crash_point("conversion.committed")
    cold.legacy.remove()
    crash_point("conversion.removed")
    return new_version


def _cross_day_flags(cold: ColdTier, version: int, dt: Any, days: dict[date, pa.Table]) -> dict[date, pa.Array]:
    """``shared`` for the converted days: ids that occur on more than one day of the table."""
    idc = cold.kind.id_field
    pairs = [pa.table({"id": t.column(idc), "day": repeated_date(d, t.num_rows)}) for d, t in days.items()]
    other = [d for d in cold.files(date.min, date.max) if d not in days] if dt is not None else []
    for d in other:
        ids = cold.read_day(version, dt, d).column(idc)
        pairs.append(pa.table({"id": ids, "day": repeated_date(d, len(ids))}))
    if not pairs:
        return {}
    every = pa.concat_tables(pairs)
    counts = every.group_by("id").aggregate([("day", "count_distinct")])
    repeated = counts.filter(pc.greater(counts.column("day_count_distinct"), 1)).column("id")
    return {d: pc.is_in(t.column(idc), value_set=repeated.combine_chunks() if len(repeated) else pa.array([], pa.string()))
            for d, t in days.items()}


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
    return merged.filter(bool_array(keep))


def _shared_flags(ids: pa.ChunkedArray, index: IdIndex) -> pa.Array:
    """Per row, whether the id may occur on another day: the index saw it more than once (a
    superset is harmless: a flag only makes reads check the id across days). Usually all false."""
    if not index.repeated:
        return bool_array([False] * len(ids))
    repeated = index.repeated
    return bool_array([digest(record_id) in repeated for record_id in ids.to_pylist()])


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
