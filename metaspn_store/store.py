"""``FileSystemStore``: the metaspn-store 0.1.8 API over both tiers, read through DuckDB.

Semantics every read shares (the 0.1.8 contract):

* windows are inclusive ``[start, end]`` at microsecond precision; naive datetimes are UTC;
  ``end < start`` raises ``ValueError``;
* list filters that are empty or None mean "no filter"; ``entity_ref`` matches by full equality
  (ref_type, value, platform, label and schema_version);
* the first record written for an id wins; later lines with the same id are never returned;
* replays (``iter_*``) yield in ``(timestamp, append order)``; read models sort as documented on
  each method. Returned envelopes compare equal (``==``) to the envelopes that were written.
"""

from __future__ import annotations

import os
import threading
import time
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from functools import partial
from io import BytesIO
from pathlib import Path
from typing import Any, Literal

import duckdb
import orjson
import pyarrow as pa
import pyarrow.compute as pc
from metaspn_schemas import EmissionEnvelope, EntityRef, SignalEnvelope

from metaspn_store import _codec
from metaspn_store._codec import ensure_utc
from metaspn_store._cold import AsOf, ColdTier, open_location
from metaspn_store._compactor import CompactionReport, compact_day, convert_legacy
from metaspn_store._consumer import Consumer, ConsumerFilter, list_consumers
from metaspn_store._hot import BadLineWarning, HotTier
from metaspn_store._index import IdIndex, digest, digest_many
from metaspn_store._ipc import replace_atomically
from metaspn_store._layout import (
    EMISSIONS,
    SIGNALS,
    Kind,
    Layout,
    named_file,
    validate_day_token,
    validate_name,
)
from metaspn_store._locks import ProcessLock
from metaspn_store._parse import BadLineReport, new_connection
from metaspn_store._query import ANALYSIS_COLUMNS, SIGNAL_ENTITY_KEY, Filter, QueryEngine, json_pointer
from metaspn_store._rules import MAX_LINE_BYTES, TIER_COLD, code_for, decode_code
from metaspn_store._sandbox import lock_down, query_error
from metaspn_store.errors import (
    CompactionError,
    DuplicateEventError,
    InvalidRecordError,
    QueryError,
    ReadOnlyStoreError,
    StoreIOError,
    StoreLockedError,
)

DuplicatePolicy = Literal["ignore", "return_existing", "raise"]
Durability = Literal["flush", "fsync"]
RESOLVED_ENTITY_PAYLOAD_TYPES = frozenset({"EntityResolved", "EntityMerged", "EntityAliasAdded"})
DEFAULT_PENDING_OUTCOME_PAYLOAD_TYPES = frozenset({"OutcomePending", "EvaluationRequested", "RecommendationAttempted"})
DEFAULT_SUCCESS_EMISSION_TYPES = frozenset({"OutcomeSuccess", "DraftApproved"})
DEFAULT_FAILURE_EMISSION_TYPES = frozenset({"OutcomeFailure", "DraftRejected"})
_POLICIES = ("ignore", "return_existing", "raise")
_LINE_LIMIT = MAX_LINE_BYTES + 1  # a record's line with its newline


def _too_long(kind: Kind, record_id: str, line: bytes) -> InvalidRecordError:
    return InvalidRecordError(
        f"{kind.label} {record_id!r}: its line would take {len(line) - 1} bytes, more than the "
        f"{MAX_LINE_BYTES} bytes (64 MiB) a record may take; nothing was written",
        record_id=record_id,
        field="payload",
    )
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

__all__ = [
    "DuplicateEventError",
    "FileSystemStore",
    "ReplayCheckpoint",
    "RESOLVED_ENTITY_PAYLOAD_TYPES",
]


@dataclass(frozen=True)
class ReplayCheckpoint:
    """Resume point of a replay: the last timestamp processed and the ids seen at that timestamp."""

    last_timestamp: datetime
    seen_ids_at_timestamp: tuple[str, ...] = field(default_factory=tuple)
    schema_version: str = "0.1"

    def __post_init__(self) -> None:
        object.__setattr__(self, "last_timestamp", ensure_utc(self.last_timestamp))
        object.__setattr__(self, "seen_ids_at_timestamp", tuple(dict.fromkeys(self.seen_ids_at_timestamp)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "last_timestamp": self.last_timestamp.isoformat().replace("+00:00", "Z"),
            "seen_ids_at_timestamp": list(self.seen_ids_at_timestamp),
            "schema_version": self.schema_version,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReplayCheckpoint:
        text = data["last_timestamp"]
        if isinstance(text, str) and text.endswith("Z"):
            text = text[:-1] + "+00:00"
        return cls(
            last_timestamp=datetime.fromisoformat(text),
            seen_ids_at_timestamp=tuple(data.get("seen_ids_at_timestamp", [])),
            schema_version=str(data.get("schema_version", "0.1")),
        )


def _parse_datetime(value: Any) -> datetime | None:
    """``expires_at`` semantics: datetime.fromisoformat (with ``Z``), naive = UTC, else None."""
    if isinstance(value, datetime):
        return ensure_utc(value)
    if isinstance(value, str):
        text = value[:-1] + "+00:00" if value.endswith("Z") else value
        try:
            return ensure_utc(datetime.fromisoformat(text))
        except ValueError:
            return None
    return None


class FileSystemStore:
    """Append-only event store for ``SignalEnvelope`` / ``EmissionEnvelope`` records.

    ``FileSystemStore(workspace)`` opens (and creates) ``workspace/store/``; a 0.1.8 workspace
    opens unchanged. Keyword-only options (new in this package):

    * ``durability``: ``"flush"`` (default) hands every acknowledged write to the OS before
      returning, so it survives a crash of the process; ``"fsync"`` also forces it to disk once
      per partition file and call, so it survives a power loss.
    * ``cache_bytes``: memory for parsed hot partitions (LRU); only appended bytes are parsed again.
    * ``threads`` / ``memory_limit``: DuckDB settings of the store's in-memory connections.
    * ``cold``: where the cold tier's Delta tables live: ``store/cold`` (default) or a URI such as
      ``s3://bucket/prefix`` shared by several hosts. Remembered in ``store/cold.json``, so later
      opens need only the workspace path. ``storage_options`` (deltalake / object_store keys such
      as ``AWS_ENDPOINT_URL``, ``AWS_REGION``) are passed through; only non-secret ones are
      remembered, credentials come from the environment or the caller each time.
    * ``read_only``: ``True`` never writes anything (no lock files, no saved parses; writes and
      compaction raise :class:`ReadOnlyStoreError`); ``None`` (default) opens read-only exactly
      when the workspace cannot be written, and otherwise creates the folders as 0.1.8 does.
    """

    def __init__(
        self,
        workspace: str | Path,
        *,
        durability: Durability = "flush",
        cache_bytes: int = 256 * 1024 * 1024,
        threads: int = 2,
        memory_limit: str = "2GB",
        read_only: bool | None = None,
        cold: str | Path | None = None,
        storage_options: dict[str, str] | None = None,
    ) -> None:
        if durability not in ("flush", "fsync"):
            raise ValueError(f"durability must be 'flush' or 'fsync', got {durability!r}")
        self._layout = Layout(workspace)
        self.read_only = self._open_mode(read_only)
        self.workspace = self._layout.workspace
        self.store_root = self._layout.store_root
        self.signals_dir = self._layout.signals_dir
        self.emissions_dir = self._layout.emissions_dir
        self.snapshots_dir = self._layout.snapshots_dir
        self.checkpoints_dir = self._layout.checkpoints_dir
        self.durability = durability
        self._threads = threads
        self._memory_limit = memory_limit
        self._local = threading.local()
        self._hot = {
            kind.name: HotTier(
                self._layout,
                kind,
                cache_bytes=cache_bytes,
                connection=self._connection,
                durability=durability,
                read_only=self.read_only,
            )
            for kind in (SIGNALS, EMISSIONS)
        }
        self._cold_location = open_location(self._layout, cold, storage_options, remember=not self.read_only)
        self.cold_uri = self._cold_location.uri
        self._cold = {kind.name: ColdTier(self._layout, kind, self._cold_location) for kind in (SIGNALS, EMISSIONS)}
        self._compact_lock = ProcessLock(self._layout.lock_file("compact"))
        self._index_sources: dict[str, tuple[Any, Any, Any]] = {}  # kind -> what its id index reads
        self._engines = {kind.name: self._engine(kind, self._cold[kind.name]) for kind in (SIGNALS, EMISSIONS)}

    # ------------------------------------------------------------------ plumbing

    def _open_mode(self, read_only: bool | None) -> bool:
        """Create the folders (as 0.1.8 does) unless read-only; ``None`` means "read-only exactly
        when the workspace cannot be written" (a read-only mount, another user's workspace)."""
        if read_only:
            if not self._layout.store_root.is_dir():
                raise FileNotFoundError(f"no store at {self._layout.store_root} to open read-only")
            return True
        try:
            self._layout.ensure_dirs()
        except OSError as exc:
            if read_only is None and self._layout.store_root.is_dir():
                return True
            raise StoreIOError(exc.errno, f"cannot create the store folders in {self._layout.workspace}: "
                               f"{exc.strerror}") from exc
        if read_only is None and not os.access(self._layout.store_root, os.W_OK):
            return True
        return False

    def _writable(self, what: str) -> None:
        if self.read_only:
            raise ReadOnlyStoreError(
                f"{what}: the store at {self.store_root} is open read-only "
                "(FileSystemStore(..., read_only=True), or the workspace is not writable); nothing was written"
            )

    def close(self) -> None:
        """Save the id index if it grew, and release open append descriptors (the store stays
        usable; they reopen on demand)."""
        if self.read_only:
            return
        for hot in self._hot.values():
            with hot.write_lock.hold():
                hot.persist_index()
                hot.close()

    def __enter__(self) -> FileSystemStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _connection(self) -> duckdb.DuckDBPyConnection:
        con = getattr(self._local, "con", None)
        # A connection inherited through fork() is not usable in the child: open a new one.
        if con is None or getattr(self._local, "pid", None) != os.getpid():
            con = new_connection(self._threads, self._memory_limit)
            self._local.con = con
            self._local.pid = os.getpid()
        return con

    def _engine(self, kind: Kind, cold: ColdTier, *, with_hot: bool = True) -> QueryEngine:
        """The query engine of a kind over ``cold`` and (unless pinned to a table version) the
        hot tier."""
        return QueryEngine(
            kind,
            hot_table=partial(self._hot_table, kind) if with_hot else (lambda day: None),
            hot_days=self._hot[kind.name].days if with_hot else (lambda: []),
            cold_files=cold.files,
            connection=self._connection,
            version=cold.version,
            shared_ids=cold.shared_ids,
            cold_dataset=cold.dataset,
            local_files=cold.local_files,
            day_bytes=partial(self._day_bytes, kind, cold),
        )

    def _engine_as_of(self, kind: Kind, as_of: AsOf) -> QueryEngine:
        """``as_of`` given: the cold table as it was at that version or timestamp, without the
        hot tier (hot files are not versioned; a rerun must see the same rows)."""
        if as_of is None:
            return self._engines[kind.name]
        if not isinstance(as_of, (int, datetime)) or isinstance(as_of, bool):
            raise TypeError(f"as_of must be a table version (int) or a datetime, got {type(as_of).__name__}")
        if isinstance(as_of, datetime):
            as_of = ensure_utc(as_of)
        return self._engine(kind, ColdTier(self._layout, kind, self._cold_location, as_of=as_of), with_hot=False)

    def _cold_files(self, kind: Kind, first: date, last: date) -> dict[date, list[str]]:
        """Data files per day of the cold tier (the Delta table's current version)."""
        return self._cold[kind.name].files(first, last)

    def _day_bytes(self, kind: Kind, cold: ColdTier, day: date) -> int:
        """About how much data a day holds, in JSONL bytes (Parquet counts ten times its size):
        how replays decide how many days to read at once."""
        total = 10 * cold.day_bytes(-1, day)
        try:
            total += os.stat(self._layout.hot_file(kind, day)).st_size
        except OSError:
            pass
        return total

    def _hot_table(self, kind: Kind, day: date) -> pa.Table | None:
        """Hot rows of a day that the cold tier does not already hold (read before the table)."""
        hot = self._hot[kind.name]
        table = hot.table(day)
        if table is None or table.num_rows == 0:
            return table
        claimed = self._cold[kind.name].claimed_hot_lines(day, hot.identity(day))
        if claimed:
            table = table.filter(pc.greater_equal(table.column("seq"), claimed))
        return table

    def _cold_scan(self, kind: Kind, files: list[str], select: str, params: dict[str, Any], *, where: str = "true") -> pa.Table:
        """``SELECT {select} FROM <these cold files> WHERE {where}`` (the table's columns plus ``day``)."""
        cold = self._cold[kind.name]
        con = self._connection()
        if cold.local_files():
            source = "read_parquet($__files, hive_partitioning = true, hive_types = {'day': DATE})"
            return con.sql(f"SELECT {select} FROM {source} WHERE {where}", params={**params, "__files": files}).to_arrow_table()  # noqa: S608
        con.register("__cold_scan", cold.dataset(files))
        try:
            return con.sql(f"SELECT {select} FROM __cold_scan WHERE {where}", params=params or None).to_arrow_table()  # noqa: S608
        finally:
            con.unregister("__cold_scan")

    def _id_index(self, kind: Kind, *, ask_table: bool = False) -> IdIndex:
        """The kind's id index, up to date with the files (call under its hot tier's write_lock;
        another host's commit to a shared table is seen within a second, at once with
        ``ask_table``)."""
        sources = self._index_sources.get(kind.name)
        if sources is None:
            sources = self._index_sources[kind.name] = (
                partial(self._cold_ids, kind),
                partial(self._cold_paths, kind),
                partial(self._cold_version, kind),
            )
        return self._hot[kind.name].index(*sources, ask_table=ask_table)

    def _cold_private(self) -> bool:
        """Is the cold tier this workspace's own folder (changed only by its own compactions)?"""
        private = self.__dict__.get("_private_cold")
        if private is None:
            private = self._private_cold = self._cold_location.uri == str(self._layout.cold_root)
        return private

    def _cold_absent(self, kind: Kind) -> bool:
        """The workspace's own cold folder of ``kind`` does not exist: no table and no previous
        layout, which is what the cold tier would find after importing deltalake (70 ms)."""
        return self._cold_private() and not os.path.isdir(self._layout.cold_dir(kind))

    def _cold_version(self, kind: Kind) -> object:
        return ("delta", -1) if self._cold_absent(kind) else self._cold[kind.name].version()

    def _cold_paths(self, kind: Kind) -> list[str]:
        if self._cold_absent(kind):
            return []
        return [path for _, path in self._cold[kind.name].all_files()]

    def _cold_ids(self, kind: Kind, only: list[str] | None = None) -> pa.Table | None:
        """(hi, lo, code) of every id in the table's files, or in the files ``only`` names
        (paths as the id index keeps them)."""
        if self._cold_absent(kind):
            return None
        files = self._cold[kind.name].all_files()
        if only is not None:
            wanted = set(only)
            hot = self._hot[kind.name]
            files = [(day, path) for day, path in files if hot.relative_path(path) in wanted]
        if not files:
            return None
        by_day: dict[date, list[str]] = {}
        for day, path in files:
            by_day.setdefault(day, []).append(path)
        parts = []
        for day, paths in by_day.items():
            parts.append(
                self._cold_scan(
                    kind, paths,
                    f"md5_number_upper({kind.id_field}) AS hi, md5_number_lower({kind.id_field}) AS lo, "
                    f"{code_for(day, TIER_COLD)}::UINTEGER AS code",
                    {},
                )
            )
        return pa.concat_tables(parts)

    # ------------------------------------------------------------------ analysis

    def sql(
        self, query: str, params: dict[str, Any] | list[Any] | None = None, *, as_of: AsOf = None
    ) -> duckdb.DuckDBPyRelation:
        """Run SQL over the views ``signals`` and ``emissions`` (both tiers, first write per id).

        Views are refreshed on every call (a snapshot of the hot files plus the Parquet the
        manifest lists). Columns: the id, ``timestamp`` (UTC), ``day``, source/payload_type
        (signals) or emission_type/caused_by (emissions), ``payload`` / ``trace`` / ``raw`` as
        DuckDB JSON, ``schema_version``, ``entity_refs`` (list of structs), ``entity_key``
        (first ref as ``ref_type:platform:value``; ``signal:<id>`` for signals without refs),
        ``tier`` ('hot' / 'cold') and ``seq`` (append order within the day). Pass values as
        ``params`` (``$name`` or ``?`` placeholders), never inside ``query``.

        Read-only and confined to the views (``_sandbox``): SQL that reads or writes files,
        attaches database files, installs or loads extensions or changes settings raises
        :class:`QueryError`; tables it creates live in memory only.

        ``as_of`` (a cold table version, or a datetime: the version current then) reads the cold
        tier as it was then and leaves the hot tier out, so a rerun gives the same answer
        (``cold_versions()`` lists the versions; ``vacuum`` may remove old ones).
        """
        engines = {kind.name: self._engine_as_of(kind, as_of) for kind in (SIGNALS, EMISSIONS)}
        # One locked connection per thread and process; if the views cannot be re-created on it
        # (user SQL made a table of that name), a fresh one replaces it.
        for attempt in range(2):
            con = getattr(self._local, "analysis", None)
            if attempt or con is None or getattr(self._local, "analysis_pid", None) != os.getpid():
                con = lock_down(new_connection(self._threads, self._memory_limit))
                self._local.analysis = con
                self._local.analysis_pid = os.getpid()
            try:
                for kind in (SIGNALS, EMISSIONS):
                    engines[kind.name].register_view(con, kind.name)
            except duckdb.Error as exc:
                if attempt:
                    raise QueryError(f"could not create the analysis views: {exc}") from exc
                continue
            try:
                return con.sql(query, params=params)
            except duckdb.Error as exc:
                raise query_error(exc, memory_limit=self._memory_limit) from exc
        raise AssertionError("unreachable")

    def read_signals(
        self,
        start: datetime,
        end: datetime,
        *,
        sources: list[str] | None = None,
        payload_types: list[str] | None = None,
        entity_ref: EntityRef | None = None,
        as_of: AsOf = None,
    ) -> pa.Table:
        """Signals in ``[start, end]`` as a ``pyarrow.Table`` in (timestamp, append order), with
        the columns of the ``signals`` SQL view. ``as_of``: as in :meth:`sql`."""
        flt = self._signal_filter(entity_ref=entity_ref, sources=sources, payload_types=payload_types)
        return self._engine_as_of(SIGNALS, as_of).select(start, end, flt, order="timestamp, day, tier, seq", columns=ANALYSIS_COLUMNS["signals"])

    def read_emissions(
        self,
        start: datetime,
        end: datetime,
        *,
        emission_types: list[str] | None = None,
        entity_ref: EntityRef | None = None,
        as_of: AsOf = None,
    ) -> pa.Table:
        """Emissions in ``[start, end]`` as a ``pyarrow.Table`` in (timestamp, append order).
        ``as_of``: as in :meth:`sql`."""
        flt = self._emission_filter(entity_ref=entity_ref, emission_types=emission_types)
        return self._engine_as_of(EMISSIONS, as_of).select(
            start, end, flt, order="timestamp, day, tier, seq", columns=ANALYSIS_COLUMNS["emissions"]
        )

    def to_pandas(self, table: pa.Table) -> Any:
        """``table.to_pandas()``, with an install hint when pandas is missing."""
        try:
            import pandas  # noqa: F401
        except ImportError as exc:
            raise ImportError("pandas is optional: pip install 'metaspn-store[pandas]'") from exc
        return table.to_pandas()

    def to_polars(self, table: pa.Table) -> Any:
        """``polars.from_arrow(table)``, with an install hint when polars is missing."""
        try:
            import polars
        except ImportError as exc:
            raise ImportError("polars is optional: pip install 'metaspn-store[polars]'") from exc
        return polars.from_arrow(table)

    # ------------------------------------------------------------------ maintenance

    def verify(self) -> list[BadLineReport]:
        """Every hot line that is not a readable record (file, 1-based line, reason), and every
        entry named like a day file that is not a readable regular file (line 0).

        Such lines are skipped by every read (with a ``BadLineWarning``) and kept aside in
        ``store/quarantine/`` by the compactor; such entries are skipped by reads, writes to
        their day fail with :class:`StoreIOError`, and compaction leaves them alone.
        """
        problems: list[BadLineReport] = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", BadLineWarning)
            for kind in (SIGNALS, EMISSIONS):
                hot = self._hot[kind.name]
                problems.extend(BadLineReport(str(path), 0, problem) for path, problem in hot.unusable())
                for day in hot.days():
                    problems.extend(hot.bad_lines(day))
        return problems

    def compact(
        self,
        *,
        before: date | None = None,
        dry_run: bool = False,
        wait: bool = True,
        grace_days: int = 1,
    ) -> CompactionReport:
        """Turn every hot day strictly before ``before`` into Parquet (cold tier).

        ``before`` defaults to today (UTC) minus ``grace_days``, so today and the day that just
        closed stay hot. Late lines for already-compacted days are merged into that day's file.
        Idempotent: a second run on an unchanged store does nothing and reports no days.
        ``wait=False`` returns a report with ``skipped`` set if another compaction is running.
        Readers and writers keep working throughout; each day is committed atomically.
        """
        self._writable("compact")
        cutoff = before or (datetime.now(timezone.utc).date() - timedelta(days=grace_days))
        report = CompactionReport(before=cutoff.isoformat(), dry_run=dry_run)
        started = time.perf_counter()
        try:
            with self._compact_lock.hold(blocking=wait):
                for kind in (SIGNALS, EMISSIONS):
                    hot = self._hot[kind.name]
                    cold = self._cold[kind.name]
                    if not dry_run and convert_legacy(cold) is not None:
                        with hot.write_lock.hold():
                            hot.cold_changing()  # writers ask the table again at their next write
                    days = [d for d in hot.days() if d < cutoff]
                    with hot.compacting(() if dry_run else days):
                        self._compact_days(report, kind, days, dry_run)
        except StoreLockedError:
            report.skipped = "another compaction is running on this workspace"
        except OSError as exc:
            # Nothing is committed before the new files are complete: the store reads as before.
            raise CompactionError(
                f"compaction stopped: {exc.strerror or exc} ({getattr(exc, 'filename', None) or 'cold tier'}); "
                f"{len(report.days)} day(s) were committed before it, the rest reads exactly as before"
            ) from exc
        report.seconds = round(time.perf_counter() - started, 4)
        return report

    def _compact_days(self, report: CompactionReport, kind: Kind, days: list[date], dry_run: bool) -> None:
        """Compact ``days`` of ``kind`` one by one (each under the kind's write lock)."""
        hot = self._hot[kind.name]
        cold = self._cold[kind.name]
        for day in days:
            with hot.write_lock.hold():
                if not dry_run:
                    # Announced before anything is committed: a compactor killed after
                    # its commit has told every writer to ask the table again.
                    hot.cold_changing()
                day_report = None
                try:
                    day_report = compact_day(
                        cold=cold,
                        hot=hot,
                        day=day,
                        index=partial(self._id_index, kind, ask_table=True),
                        connection=self._connection(),
                        quarantine_dir=self._layout.store_root / "quarantine",
                        dry_run=dry_run,
                    )
                finally:
                    if day_report is not None and day_report.version == day_report.base_version + 1:
                        # Only our commit changed the table: the index stays valid.
                        hot.cold_changed_here(self._cold_paths(kind), self._cold_version(kind))
                    elif not dry_run:
                        hot.recheck_cold()  # ask the table again at the next write
            if day_report is not None:
                report.days.append(day_report)

    def vacuum(self, *, retain_hours: int = 168, dry_run: bool = False) -> dict[str, list[str]]:
        """Delete the cold tables' data files that no version of the last ``retain_hours`` uses
        (files replaced by compactions, and files of commits that never landed).

        Reads ``as_of`` a version older than ``retain_hours`` may fail afterwards; readers of
        newer versions are unaffected. A workspace still in the previous layout is converted
        first. Returns the removed (or, with ``dry_run``, removable) files per kind.
        """
        if retain_hours < 0:
            raise ValueError(f"retain_hours must be >= 0, got {retain_hours}")
        if not dry_run:
            self._writable("vacuum")
        out: dict[str, list[str]] = {}
        with self._compact_lock.hold():
            for kind in (SIGNALS, EMISSIONS):
                cold = self._cold[kind.name]
                if not dry_run and convert_legacy(cold) is not None:
                    hot = self._hot[kind.name]
                    with hot.write_lock.hold():
                        hot.cold_changing()  # writers ask the table again at their next write
                out[kind.name] = cold.vacuum(retain_hours, dry_run=dry_run)
        return out

    def cold_versions(self, kind: Literal["signals", "emissions"] = "signals") -> list[dict[str, Any]]:
        """The cold table's commits, newest first (``version``, ``timestamp`` in ms, operation
        and the store's metadata): the values ``as_of`` accepts."""
        if kind not in ("signals", "emissions"):
            raise ValueError(f"kind must be 'signals' or 'emissions', got {kind!r}")
        return self._cold[kind].history()

    # ------------------------------------------------------------------ consumers

    def consumer(
        self,
        name: str,
        kind: Literal["signals", "emissions"] = "signals",
        *,
        sources: Iterable[str] | None = None,
        payload_types: Iterable[str] | None = None,
        emission_types: Iterable[str] | None = None,
        start: Literal["beginning", "now"] | ReplayCheckpoint = "beginning",
    ) -> Consumer:
        """A named consumer: every stored record of ``kind`` (matching the filters) once, in each
        day's append order, late records included; positions under ``store/consumers/``.

        ``start`` applies when the name is new: ``"beginning"`` (everything stored),
        ``"now"`` (only records stored from now on, late ones for old days included) or a 0.1.8
        :class:`ReplayCheckpoint` (what that checkpoint had not reached, then everything new).
        A name is open in one place at a time (:class:`ConsumerBusyError` otherwise). Filters
        can change between runs; positions advance over records that do not match."""
        self._writable(f"consumer {name!r}")
        if kind not in ("signals", "emissions"):
            raise ValueError(f"kind must be 'signals' or 'emissions', got {kind!r}")
        if kind == "signals" and emission_types is not None:
            raise ValueError("emission_types filters emission consumers; signals have sources and payload_types")
        if kind == "emissions" and (sources is not None or payload_types is not None):
            raise ValueError("sources and payload_types filter signal consumers; emissions have emission_types")

        def values(arg: Iterable[str] | None, what: str) -> tuple[str, ...] | None:
            if arg is None:
                return None
            if isinstance(arg, str):
                raise TypeError(f"{what} must be a list of strings, not a string")
            out = tuple(arg)
            if not all(isinstance(v, str) for v in out):
                raise TypeError(f"{what} must be a list of strings")
            return out

        flt = ConsumerFilter(values(sources, "sources"), values(payload_types, "payload_types"),
                             values(emission_types, "emission_types"))
        the_kind = SIGNALS if kind == "signals" else EMISSIONS
        return Consumer(name=name, kind=the_kind, layout=self._layout, hot=self._hot[kind], cold=self._cold[kind],
                        flt=flt, start=start)

    def consumers(self) -> list[dict[str, Any]]:
        """Every named consumer of the store: name, kind, filter, created / last committed (UTC),
        commits, records delivered as of the last commit, and lag (matching records stored and
        not yet delivered, counted from the last commit)."""
        out = []
        for kind in (SIGNALS, EMISSIONS):
            for name in list_consumers(self._layout, kind):
                reader = Consumer(name=name, kind=kind, layout=self._layout, hot=self._hot[kind.name],
                                  cold=self._cold[kind.name], flt=ConsumerFilter(), read_only=True)
                out.append(reader.info())
        return out

    def _location(self, kind: Kind, code: int, record_id: str) -> Path:
        """Where the first record of an id lives now (only asked for duplicates)."""
        return self._locations(kind, [(code, record_id)])[0]

    def _locations(self, kind: Kind, asks: list[tuple[int, str]]) -> list[Path]:
        """Where the first record of each id lives now, for ``(index code, id)`` pairs.

        The index remembers the tier an id was first seen in; a compaction (maybe in another
        process) may have moved that day to Parquet since, so a hot answer is checked: the
        table's files are asked once, and each day that has both a hot file and table files is
        scanned once for all its ids (a batch repeating 20,000 ids asked the table 20,000 times).
        """
        decoded = [(*decode_code(code), record_id) for code, record_id in asks]
        hot_days = sorted({day for day, tier, _ in decoded if tier != TIER_COLD})
        files = self._cold[kind.name].files(hot_days[0], hot_days[-1]) if hot_days else {}
        in_table: dict[date, set[str] | None] = {}  # None: the hot file is gone, the day is in the table
        for day in hot_days:
            if not files.get(day):
                continue
            if not self._layout.hot_file(kind, day).exists():
                in_table[day] = None
                continue
            ids = sorted({record_id for d, tier, record_id in decoded if d == day and tier != TIER_COLD})
            found = self._cold_scan(kind, files[day], kind.id_field, {"ids": ids},
                                    where=f"{kind.id_field} IN (SELECT unnest($ids::VARCHAR[]))")
            in_table[day] = set(found.column(0).to_pylist())
        paths: dict[date, tuple[Path, Path]] = {}  # day -> (its table folder, its hot file)
        out = []
        for day, tier, record_id in decoded:
            both = paths.get(day)
            if both is None:
                both = paths[day] = (self._layout.cold_dir(kind) / f"day={day.isoformat()}", self._layout.hot_file(kind, day))
            if tier == TIER_COLD:
                out.append(both[0])
                continue
            found_ids = in_table.get(day, set())
            out.append(both[0] if found_ids is None or record_id in found_ids else both[1])
        return out

    # ------------------------------------------------------------------ writes

    def _write(self, kind: Kind, envelopes: list[Any], on_duplicate: str) -> list[Path]:
        if on_duplicate not in _POLICIES:
            raise ValueError(f"Unsupported duplicate policy: {on_duplicate!r}")
        self._writable(f"write_{kind.name}")
        if len(envelopes) == 1:
            return [self._write_one(kind, envelopes[0], on_duplicate)]
        # A big batch keeps a key per record alive until it is appended (0.1 s of collector runs
        # with a few hundred thousand objects alive).
        with _codec.collector_paused(len(envelopes)):
            return self._write_batch(kind, envelopes, on_duplicate)

    def _write_batch(self, kind: Kind, envelopes: list[Any], on_duplicate: str) -> list[Path]:
        # Validate and render the whole batch before touching any file, in one pass: each line
        # goes straight into its day's buffer (holding a big batch as one bytes object per line
        # costs about 2 µs a record in fresh memory, page faults, before they are even joined).
        fast = _codec.fast_encoder(kind)
        encode_line = _codec.encode_line
        ids: list[str] = []
        add_id = ids.append
        days_of: list[date] = []  # the day of each record
        add_day = days_of.append
        days: dict[date, tuple[BytesIO, list[int]]] = {}  # day -> its lines, their lengths
        current: date | None = None
        write = add_length = None
        for envelope in envelopes:
            try:
                found = fast(envelope)
            except Exception:  # noqa: BLE001 - whatever failed, the general path reports it exactly
                found = None
            record_id, day, line = found if found is not None else encode_line(kind, envelope)
            if len(line) > _LINE_LIMIT:
                raise _too_long(kind, record_id, line)
            if day != current:
                group = days.get(day)
                if group is None:
                    group = days[day] = (BytesIO(), [])
                write, add_length = group[0].write, group[1].append
                current = day
            assert write is not None and add_length is not None
            add_length(write(line))
            add_id(record_id)
            add_day(day)
        keys = digest_many(ids)  # each id hashed once, for the check and the index
        hot = self._hot[kind.name]
        with hot.write_lock.hold():
            index = self._id_index(kind)
            if not index.known(keys) and len(set(keys)) == len(keys):
                # Every record is new (the usual case): each day's buffer is appended as it is.
                if len(days) == 1:
                    new_lines = {day: (buffer.getvalue(), keys) for day, (buffer, _) in days.items()}
                else:
                    keys_by_day: dict[date, list[tuple[int, int]]] = {day: [] for day in days}
                    for day, key in zip(days_of, keys, strict=True):
                        keys_by_day[day].append(key)
                    new_lines = {day: (buffer.getvalue(), keys_by_day[day]) for day, (buffer, _) in days.items()}
                written = hot.append_all(new_lines)
                return [written[day] for day in days_of]
            return self._write_with_duplicates(kind, index, ids, days_of, keys, days, on_duplicate)

    def _write_with_duplicates(
        self,
        kind: Kind,
        index: IdIndex,
        ids: list[str],
        days_of: list[date],
        keys: list[tuple[int, int]],
        days: dict[date, tuple[BytesIO, list[int]]],
        on_duplicate: str,
    ) -> list[Path]:
        """The rest of a batch write that repeats an id (call under the kind's write lock)."""
        hot = self._hot[kind.name]
        index_get = index.get
        # Per position: the Path of an earlier record (duplicates) or the day the line goes to.
        results: list[Path | date] = []
        add_result = results.append
        duplicates: set[int] = set()
        pending: dict[tuple[int, int], date] = {}
        stored: list[tuple[int, int, str]] = []  # (position, index code, id) of ids stored before
        for record_id, day, key in zip(ids, days_of, keys, strict=True):
            code = index_get(key)
            if code is None and key not in pending:
                pending[key] = day
                add_result(day)
                continue
            if on_duplicate == "raise":
                existing = self._layout.hot_file(kind, pending[key]) if code is None else self._location(kind, code, record_id)
                raise DuplicateEventError(f"Duplicate {kind.id_field}={record_id!r} already exists in {existing}")
            duplicates.add(len(results))
            if code is None:  # repeated within this batch
                add_result(self._layout.hot_file(kind, pending[key]))
            else:
                stored.append((len(results), code, record_id))
                add_result(day)  # replaced by the id's location below
        if stored:
            for (position, _, _), existing in zip(stored, self._locations(kind, [(c, r) for _, c, r in stored]), strict=True):
                results[position] = existing
        # Each day with new records: its lines and their keys, days in order of first new record.
        data = {day: memoryview(buffer.getvalue()) for day, (buffer, _) in days.items()}
        counts = dict.fromkeys(days, 0)
        offsets = dict.fromkeys(days, 0)
        kept: dict[date, tuple[BytesIO, list[tuple[int, int]]]] = {}
        for position, (day, key) in enumerate(zip(days_of, keys, strict=True)):
            i = counts[day]
            counts[day] = i + 1
            start = offsets[day]
            end = offsets[day] = start + days[day][1][i]
            if position not in duplicates:
                group_kept = kept.get(day)
                if group_kept is None:
                    group_kept = kept[day] = (BytesIO(), [])
                group_kept[0].write(data[day][start:end])
                group_kept[1].append(key)
        written = hot.append_all({day: (buffer.getvalue(), day_keys) for day, (buffer, day_keys) in kept.items()})
        return [written[r] if isinstance(r, date) else r for r in results]

    def _write_one(self, kind: Kind, envelope: Any, on_duplicate: str) -> Path:
        """One record: the batch path without its per-batch bookkeeping (same checks, same order)."""
        try:
            found = _codec.fast_encoder(kind)(envelope)
        except Exception:  # noqa: BLE001 - whatever failed, the general path reports it exactly
            found = None
        record_id, day, line = found if found is not None else _codec.encode_line(kind, envelope)
        if len(line) > _LINE_LIMIT:
            raise _too_long(kind, record_id, line)
        key = digest(record_id)
        hot = self._hot[kind.name]
        with hot.write_lock.hold():
            code = self._id_index(kind).get(key)
            if code is None:
                return hot.append_one(day, line, key)
            existing = self._location(kind, code, record_id)
            if on_duplicate == "raise":
                raise DuplicateEventError(f"Duplicate {kind.id_field}={record_id!r} already exists in {existing}")
            return existing

    def write_signal(self, signal: SignalEnvelope, *, on_duplicate: DuplicatePolicy = "return_existing") -> Path:
        """Append a signal to its UTC day's file and return that path.

        For an id already stored (by any process, on any day) nothing is written and the path of
        the first record is returned (``return_existing``/``ignore``) or ``DuplicateEventError``
        is raised (``raise``).
        """
        if on_duplicate not in _POLICIES:
            raise ValueError(f"Unsupported duplicate policy: {on_duplicate!r}")
        self._writable("write_signals")
        return self._write_one(SIGNALS, signal, on_duplicate)

    def write_signals(
        self, signals: Iterable[SignalEnvelope], *, on_duplicate: DuplicatePolicy = "return_existing"
    ) -> list[Path]:
        """Write a batch with one policy: validated whole first, then one append per day file."""
        return self._write(SIGNALS, list(signals), on_duplicate)

    def write_emission(self, emission: EmissionEnvelope, *, on_duplicate: DuplicatePolicy = "return_existing") -> Path:
        """Append an emission; duplicates behave as in :meth:`write_signal`."""
        if on_duplicate not in _POLICIES:
            raise ValueError(f"Unsupported duplicate policy: {on_duplicate!r}")
        self._writable("write_emissions")
        return self._write_one(EMISSIONS, emission, on_duplicate)

    def write_emissions(
        self, emissions: Iterable[EmissionEnvelope], *, on_duplicate: DuplicatePolicy = "return_existing"
    ) -> list[Path]:
        """Write a batch of emissions using the same duplicate policy (all or nothing)."""
        return self._write(EMISSIONS, list(emissions), on_duplicate)

    # ------------------------------------------------------------------ small JSON documents

    def _write_json_atomic(self, destination: Path, document: Any) -> Path:
        """Replace ``destination`` atomically: temp file in the same folder, fsync, rename."""
        self._writable(f"writing {destination.name}")
        text = orjson.dumps(document, option=orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE)
        replace_atomically(destination, lambda handle: handle.write(text))
        return destination

    @staticmethod
    def _read_json(source: Path) -> Any:
        if not source.exists():
            return None
        return orjson.loads(source.read_bytes())

    @staticmethod
    def _json_document(document: Any, what: str) -> Any:
        try:
            return orjson.loads(orjson.dumps(_codec._primitive(document, what, "document"), option=orjson.OPT_SORT_KEYS))
        except orjson.JSONEncodeError as exc:
            raise ValueError(f"{what}: {exc}") from exc

    def write_snapshot(self, name: str, snapshot_state: dict[str, Any], snapshot_time: datetime | None = None) -> Path:
        """Write ``snapshots/NAME__YYYY-MM-DDTHHMMSSZ.json`` (replaced atomically)."""
        validate_name(name, "snapshot")
        ts = ensure_utc(snapshot_time or datetime.now(timezone.utc))
        destination = named_file(self.snapshots_dir, name, "snapshot", suffix=f"__{ts.strftime('%Y-%m-%dT%H%M%SZ')}.json")
        state = self._json_document(snapshot_state, f"snapshot {name!r}")
        return self._write_json_atomic(destination, state)

    def _normalize_day(self, day: date | datetime | str) -> str:
        if isinstance(day, str):
            return validate_day_token(day)
        if isinstance(day, datetime):
            return ensure_utc(day).date().isoformat()
        return day.isoformat()

    def _write_day_document(self, prefix: str, day: date | datetime | str, key: str, body: dict[str, Any]) -> Path:
        token = self._normalize_day(day)
        document = {"day": token, key: self._json_document(body, f"{prefix} {token}"), "schema_version": "0.1"}
        return self._write_json_atomic(named_file(self.snapshots_dir, token, "day", prefix=f"{prefix}__", suffix=".json"), document)

    def _read_day_document(self, prefix: str, day: date | datetime | str) -> dict[str, Any] | None:
        return self._read_json(named_file(self.snapshots_dir, self._normalize_day(day), "day", prefix=f"{prefix}__", suffix=".json"))

    def write_daily_digest_snapshot(self, *, day: date | datetime | str, digest: dict[str, Any]) -> Path:
        """Persist ``snapshots/digest__DAY.json`` ({"day", "digest", "schema_version"}); rerun = same path."""
        return self._write_day_document("digest", day, "digest", digest)

    def read_daily_digest_snapshot(self, day: date | datetime | str) -> dict[str, Any] | None:
        """The digest document written for ``day``, or None."""
        return self._read_day_document("digest", day)

    def write_calibration_snapshot(self, *, day: date | datetime | str, report: dict[str, Any]) -> Path:
        """Persist ``snapshots/calibration__DAY.json`` ({"day", "report", "schema_version"})."""
        return self._write_day_document("calibration", day, "report", report)

    def read_calibration_snapshot(self, day: date | datetime | str) -> dict[str, Any] | None:
        """The calibration document written for ``day``, or None."""
        return self._read_day_document("calibration", day)

    def write_credibility_snapshot(self, *, day: date | datetime | str, report: dict[str, Any]) -> Path:
        """Persist ``snapshots/credibility__DAY.json`` ({"day", "report", "schema_version"})."""
        return self._write_day_document("credibility", day, "report", report)

    def read_credibility_snapshot(self, day: date | datetime | str) -> dict[str, Any] | None:
        """The credibility document written for ``day``, or None."""
        return self._read_day_document("credibility", day)

    # ------------------------------------------------------------------ checkpoints

    def build_signal_checkpoint(self, processed_signals: Iterable[SignalEnvelope]) -> ReplayCheckpoint | None:
        """Checkpoint after an ordered (non-decreasing timestamp) stream; None for an empty stream."""
        last_ts: datetime | None = None
        ids: list[str] = []
        for signal in processed_signals:
            ts = ensure_utc(signal.timestamp)
            if last_ts is None or ts > last_ts:
                last_ts, ids = ts, [signal.signal_id]
            elif ts < last_ts:
                raise ValueError("processed_signals must be in non-decreasing timestamp order")
            elif signal.signal_id not in ids:
                ids.append(signal.signal_id)
        if last_ts is None:
            return None
        return ReplayCheckpoint(last_timestamp=last_ts, seen_ids_at_timestamp=tuple(ids))

    def write_checkpoint(self, name: str, checkpoint: ReplayCheckpoint) -> Path:
        """Write ``checkpoints/NAME.json`` atomically (a crash leaves the previous version)."""
        validate_name(name, "checkpoint")
        return self._write_json_atomic(named_file(self.checkpoints_dir, name, "checkpoint", suffix=".json"), checkpoint.to_dict())

    def read_checkpoint(self, name: str) -> ReplayCheckpoint | None:
        """The checkpoint stored under ``name``, or None."""
        validate_name(name, "checkpoint")
        data = self._read_json(named_file(self.checkpoints_dir, name, "checkpoint", suffix=".json"))
        return None if data is None else ReplayCheckpoint.from_dict(data)

    # ------------------------------------------------------------------ replays

    def _signal_filter(
        self,
        *,
        entity_ref: EntityRef | None = None,
        sources: list[str] | None = None,
        payload_types: list[str] | None = None,
    ) -> Filter:
        flt = Filter()
        flt.in_list("source", sources)
        flt.in_list("payload_type", payload_types)
        flt.entity(entity_ref)
        return flt

    def _emission_filter(self, *, entity_ref: EntityRef | None = None, emission_types: list[str] | None = None) -> Filter:
        flt = Filter()
        flt.in_list("emission_type", emission_types)
        flt.entity(entity_ref)
        return flt

    def iter_signals(
        self,
        start: datetime,
        end: datetime,
        entity_ref: EntityRef | None = None,
        sources: list[str] | None = None,
    ) -> Iterator[SignalEnvelope]:
        """Stream signals with ``start <= timestamp <= end`` in (timestamp, append order)."""
        engine = self._engines["signals"]
        engine._window(start, end)  # raise for end < start before the first next()
        return engine.stream(start, end, self._signal_filter(entity_ref=entity_ref, sources=sources))

    def iter_emissions(
        self,
        start: datetime,
        end: datetime,
        entity_ref: EntityRef | None = None,
        emission_types: list[str] | None = None,
    ) -> Iterator[EmissionEnvelope]:
        """Stream emissions in ``[start, end]`` in (timestamp, append order)."""
        engine = self._engines["emissions"]
        engine._window(start, end)
        return engine.stream(start, end, self._emission_filter(entity_ref=entity_ref, emission_types=emission_types))

    def _checkpoint_replay(
        self,
        *,
        start: datetime | None,
        end: datetime,
        checkpoint: ReplayCheckpoint | None,
        flt: Filter,
    ) -> Iterator[SignalEnvelope]:
        effective_start = ensure_utc(start) if start is not None else _EPOCH
        seen: set[str] = set()
        checkpoint_ts: datetime | None = None
        if checkpoint is not None:
            checkpoint_ts = ensure_utc(checkpoint.last_timestamp)
            effective_start = max(effective_start, checkpoint_ts)
            seen = set(checkpoint.seen_ids_at_timestamp)
        engine = self._engines["signals"]
        engine._window(effective_start, end)
        for signal in engine.stream(effective_start, end, flt):
            if checkpoint_ts is not None and signal.timestamp == checkpoint_ts and signal.signal_id in seen:
                continue
            yield signal

    def iter_signals_from_checkpoint(
        self,
        *,
        end: datetime,
        checkpoint: ReplayCheckpoint | None = None,
        start: datetime | None = None,
        entity_ref: EntityRef | None = None,
        sources: list[str] | None = None,
    ) -> Iterator[SignalEnvelope]:
        """Replay from ``max(start, checkpoint.last_timestamp)``, skipping ids the checkpoint saw."""
        return self._checkpoint_replay(
            start=start, end=end, checkpoint=checkpoint, flt=self._signal_filter(entity_ref=entity_ref, sources=sources)
        )

    def iter_entity_candidate_signals(
        self,
        *,
        start: datetime,
        end: datetime,
        resolved: bool | None = None,
        sources: list[str] | None = None,
    ) -> Iterator[SignalEnvelope]:
        """Resolver streams: ``resolved=True`` has entity refs or a resolver payload type,
        ``False`` has neither, ``None`` everything in the window."""
        flt = self._signal_filter(sources=sources)
        if resolved is not None:
            condition = (
                f"(len(entity_refs) > 0 OR list_contains({flt.param(sorted(RESOLVED_ENTITY_PAYLOAD_TYPES))}"
                "::VARCHAR[], payload_type))"
            )
            flt.add(condition if resolved else f"NOT {condition}")
        engine = self._engines["signals"]
        engine._window(start, end)
        return engine.stream(start, end, flt)

    def iter_stage_window_signals(
        self,
        *,
        stage: str,
        start: datetime,
        end: datetime,
        checkpoint: ReplayCheckpoint | None = None,
        entity_ref: EntityRef | None = None,
        sources: list[str] | None = None,
        payload_types: list[str] | None = None,
    ) -> Iterator[SignalEnvelope]:
        """Checkpoint-aware replay of a stage: ``sources`` if given, else sources equal to
        ``stage`` or starting with ``stage + "."``; optional payload type allow-list."""
        flt = self._signal_filter(entity_ref=entity_ref, sources=sources, payload_types=payload_types)
        if not sources:
            flt.add(
                f"(source = {flt.param(stage)} OR starts_with(source, {flt.param(stage + '.')}))"
            )
        return self._checkpoint_replay(start=start, end=end, checkpoint=checkpoint, flt=flt)

    def iter_recommendation_signals(
        self,
        *,
        start: datetime,
        end: datetime,
        checkpoint: ReplayCheckpoint | None = None,
        entity_ref: EntityRef | None = None,
        sources: list[str] | None = None,
        payload_types: list[str] | None = None,
    ) -> Iterator[SignalEnvelope]:
        """Checkpoint-aware replay filtered by sources and payload types."""
        flt = self._signal_filter(entity_ref=entity_ref, sources=sources, payload_types=payload_types)
        return self._checkpoint_replay(start=start, end=end, checkpoint=checkpoint, flt=flt)

    def iter_learning_signals(
        self,
        *,
        start: datetime,
        end: datetime,
        checkpoint: ReplayCheckpoint | None = None,
        entity_ref: EntityRef | None = None,
        sources: list[str] | None = None,
        payload_types: list[str] | None = None,
    ) -> Iterator[SignalEnvelope]:
        """Checkpoint-aware replay of learning-loop signals (same filters as recommendations)."""
        flt = self._signal_filter(entity_ref=entity_ref, sources=sources, payload_types=payload_types)
        return self._checkpoint_replay(start=start, end=end, checkpoint=checkpoint, flt=flt)

    def iter_learning_emissions(
        self,
        *,
        start: datetime,
        end: datetime,
        entity_ref: EntityRef | None = None,
        emission_types: list[str] | None = None,
    ) -> Iterator[EmissionEnvelope]:
        """Same as :meth:`iter_emissions`, keyword-only."""
        return self.iter_emissions(start=start, end=end, entity_ref=entity_ref, emission_types=emission_types)

    # ------------------------------------------------------------------ read models

    def _signals(
        self,
        start: datetime,
        end: datetime,
        flt: Filter,
        *,
        order: str,
        limit: int | None = None,
    ) -> list[SignalEnvelope]:
        engine = self._engines["signals"]
        return engine.envelopes(engine.select(start, end, flt, order=order, limit=limit))

    def _emissions(
        self, start: datetime, end: datetime, flt: Filter, *, order: str, limit: int | None = None
    ) -> list[EmissionEnvelope]:
        engine = self._engines["emissions"]
        return engine.envelopes(engine.select(start, end, flt, order=order, limit=limit))

    def get_recent_signals_by_entity(
        self,
        *,
        entity_ref: EntityRef,
        limit: int,
        start: datetime | None = None,
        end: datetime | None = None,
        sources: list[str] | None = None,
    ) -> list[SignalEnvelope]:
        """Last ``limit`` signals of an entity, newest first by (timestamp, signal_id)."""
        if limit <= 0:
            return []
        flt = self._signal_filter(entity_ref=entity_ref, sources=sources)
        return self._signals(
            start or _EPOCH, end or datetime.now(timezone.utc), flt, order="timestamp DESC, signal_id DESC", limit=limit
        )

    def get_last_posts_by_entity(
        self,
        *,
        entity_ref: EntityRef,
        limit: int,
        start: datetime | None = None,
        end: datetime | None = None,
        sources: list[str] | None = None,
        payload_types: list[str] | None = None,
    ) -> list[SignalEnvelope]:
        """Last ``limit`` post signals (payload types, default ``SocialPostSeen``) of an entity,
        newest first. Unlike 0.1.8 it always returns ``limit`` posts when that many exist."""
        if limit <= 0:
            return []
        flt = self._signal_filter(
            entity_ref=entity_ref, sources=sources, payload_types=payload_types or ["SocialPostSeen"]
        )
        return self._signals(
            start or _EPOCH, end or datetime.now(timezone.utc), flt, order="timestamp DESC, signal_id DESC", limit=limit
        )

    def get_recent_signals_by_source(
        self,
        *,
        source: str,
        limit: int,
        start: datetime | None = None,
        end: datetime | None = None,
        entity_ref: EntityRef | None = None,
    ) -> list[SignalEnvelope]:
        """Last ``limit`` signals of one source, newest first by (timestamp, signal_id)."""
        if limit <= 0:
            return []
        flt = self._signal_filter(entity_ref=entity_ref, sources=[source])
        return self._signals(
            start or _EPOCH, end or datetime.now(timezone.utc), flt, order="timestamp DESC, signal_id DESC", limit=limit
        )

    def get_top_recommendation_candidates(
        self,
        *,
        start: datetime,
        end: datetime,
        limit: int,
        entity_ref: EntityRef | None = None,
        sources: list[str] | None = None,
        payload_types: list[str] | None = None,
        score_field: str = "score",
        unique_by_entity: bool = True,
    ) -> list[SignalEnvelope]:
        """Top ``limit`` signals by ``payload[score_field]`` (int/float/bool; missing = 0.0;
        other values and non-dict payloads excluded), ties by newer timestamp then larger id.
        ``unique_by_entity`` keeps the best signal per first entity ref (or per id without refs)."""
        if limit <= 0:
            return []
        flt = self._signal_filter(entity_ref=entity_ref, sources=sources, payload_types=payload_types)
        ptr = flt.param(json_pointer(score_field))
        flt.add(
            f"json_type(payload) = 'OBJECT' AND (json_type(payload, {ptr}) IS NULL "
            f"OR json_type(payload, {ptr}) IN ('BIGINT', 'UBIGINT', 'DOUBLE', 'BOOLEAN'))"
        )
        score = (
            f"CASE WHEN json_type(payload, {ptr}) IS NULL THEN 0.0 "
            f"WHEN json_type(payload, {ptr}) = 'BOOLEAN' THEN "
            f"CASE WHEN json_extract_string(payload, {ptr}) = 'true' THEN 1.0 ELSE 0.0 END "
            f"ELSE json_extract(payload, {ptr})::DOUBLE END"
        )
        entity_key = SIGNAL_ENTITY_KEY
        order = "__score DESC, timestamp DESC, signal_id DESC"
        if unique_by_entity:
            qualify = f"QUALIFY row_number() OVER (PARTITION BY __entity ORDER BY {order}) = 1"
            post = f"SELECT * EXCLUDE (__score, __entity) FROM ({{inner}}) {qualify} ORDER BY {order}"  # noqa: S608
        else:
            post = f"SELECT * EXCLUDE (__score, __entity) FROM ({{inner}}) ORDER BY {order}"  # noqa: S608
        engine = self._engines["signals"]
        table = engine.select(
            start,
            end,
            flt,
            order=order,
            limit=limit,
            extra_columns=f", {score} AS __score, {entity_key} AS __entity",  # key as in 0.1.8
            post_sql=post,
        )
        return engine.envelopes(table)

    def _payload_rows(
        self,
        kind: Kind,
        start: datetime,
        end: datetime,
        flt: Filter,
        matches: list[tuple[str, Any]],
        *,
        order: str,
        limit: int | None,
    ) -> list[Any]:
        """Rows where ``payload.get(key) == value`` for every (key, value) with value not None
        (0.1.8's ``_payload_match``); exotic values are compared in Python after SQL."""
        python_checks: list[tuple[str, Any]] = []
        for key, expected in matches:
            if expected is None:
                continue
            if not flt.payload_equals(key, expected):
                python_checks.append((key, expected))
        engine = self._engines[kind.name]
        sql_limit = limit if not python_checks else None
        rows = engine.envelopes(engine.select(start, end, flt, order=order, limit=sql_limit))
        if python_checks:
            rows = [
                r
                for r in rows
                if isinstance(r.payload, dict) and all(r.payload.get(k) == v for k, v in python_checks)
            ]
            if limit is not None:
                rows = rows[:limit]
        return rows

    def get_ready_candidates(
        self,
        *,
        start: datetime,
        end: datetime,
        limit: int | None = None,
        entity_ref: EntityRef | None = None,
        sources: list[str] | None = None,
        ready_field: str = "status",
        ready_value: str = "READY",
        payload_types: list[str] | None = None,
    ) -> list[SignalEnvelope]:
        """Signals whose dict payload has ``payload.get(ready_field) == ready_value``, newest first
        by (timestamp, signal_id); ``limit`` None or negative means all."""
        flt = self._signal_filter(entity_ref=entity_ref, sources=sources, payload_types=payload_types)
        python_checks: list[tuple[str, Any]] = []
        if not flt.payload_equals(ready_field, ready_value):
            python_checks.append((ready_field, ready_value))
        engine = self._engines["signals"]
        use_limit = limit if (limit is not None and limit >= 0) else None
        rows = engine.envelopes(
            engine.select(
                start, end, flt, order="timestamp DESC, signal_id DESC", limit=None if python_checks else use_limit
            )
        )
        if python_checks:
            rows = [r for r in rows if isinstance(r.payload, dict) and r.payload.get(ready_field) == ready_value]
            if use_limit is not None:
                rows = rows[:use_limit]
        return rows

    def get_outcomes_for_window(
        self,
        *,
        start: datetime,
        end: datetime,
        entity_ref: EntityRef | None = None,
        emission_types: list[str] | None = None,
    ) -> list[EmissionEnvelope]:
        """Emissions in the window, oldest first by (timestamp, emission_id)."""
        flt = self._emission_filter(entity_ref=entity_ref, emission_types=emission_types)
        return self._emissions(start, end, flt, order="timestamp, emission_id")

    def get_token_signals(
        self,
        *,
        start: datetime,
        end: datetime,
        token_id: str | None = None,
        project_entity_id: str | None = None,
        entity_ref: EntityRef | None = None,
        sources: list[str] | None = None,
        payload_types: list[str] | None = None,
        limit: int | None = None,
    ) -> list[SignalEnvelope]:
        """Signals matching ``payload.token_id`` / ``payload.project_entity_id`` (None = any),
        oldest first by (timestamp, signal_id); ``limit`` None or negative means all."""
        flt = self._signal_filter(entity_ref=entity_ref, sources=sources, payload_types=payload_types)
        use_limit = limit if (limit is not None and limit >= 0) else None
        return self._payload_rows(
            SIGNALS,
            start,
            end,
            flt,
            [("token_id", token_id), ("project_entity_id", project_entity_id)],
            order="timestamp, signal_id",
            limit=use_limit,
        )

    def get_promise_signals(
        self,
        *,
        start: datetime,
        end: datetime,
        promise_id: str | None = None,
        status: str | None = None,
        entity_ref: EntityRef | None = None,
        sources: list[str] | None = None,
        payload_types: list[str] | None = None,
        limit: int | None = None,
    ) -> list[SignalEnvelope]:
        """Signals matching ``payload.promise_id`` / ``payload.status`` (None = any), oldest first."""
        flt = self._signal_filter(entity_ref=entity_ref, sources=sources, payload_types=payload_types)
        use_limit = limit if (limit is not None and limit >= 0) else None
        return self._payload_rows(
            SIGNALS,
            start,
            end,
            flt,
            [("promise_id", promise_id), ("status", status)],
            order="timestamp, signal_id",
            limit=use_limit,
        )

    def get_promise_outcomes_for_window(
        self,
        *,
        start: datetime,
        end: datetime,
        promise_id: str | None = None,
        status: str | None = None,
        entity_ref: EntityRef | None = None,
        emission_types: list[str] | None = None,
    ) -> list[EmissionEnvelope]:
        """Emissions matching ``payload.promise_id`` / ``payload.status``, oldest first."""
        flt = self._emission_filter(entity_ref=entity_ref, emission_types=emission_types)
        return self._payload_rows(
            EMISSIONS,
            start,
            end,
            flt,
            [("promise_id", promise_id), ("status", status)],
            order="timestamp, emission_id",
            limit=None,
        )

    def get_latest_draft_signals(
        self,
        *,
        limit: int,
        start: datetime,
        end: datetime,
        entity_ref: EntityRef | None = None,
        sources: list[str] | None = None,
        payload_types: list[str] | None = None,
    ) -> list[SignalEnvelope]:
        """Newest ``limit`` signals (by timestamp, signal_id) matching the filters."""
        if limit <= 0:
            return []
        flt = self._signal_filter(entity_ref=entity_ref, sources=sources, payload_types=payload_types)
        return self._signals(start, end, flt, order="timestamp DESC, signal_id DESC", limit=limit)

    def get_latest_approval_outcomes(
        self,
        *,
        limit: int,
        start: datetime,
        end: datetime,
        entity_ref: EntityRef | None = None,
        emission_types: list[str] | None = None,
    ) -> list[EmissionEnvelope]:
        """Newest ``limit`` emissions (by timestamp, emission_id) matching the filters."""
        if limit <= 0:
            return []
        flt = self._emission_filter(entity_ref=entity_ref, emission_types=emission_types)
        return self._emissions(start, end, flt, order="timestamp DESC, emission_id DESC", limit=limit)

    # ------------------------------------------------------------------ outcomes

    def _unresolved(
        self,
        *,
        start: datetime,
        end: datetime,
        entity_ref: EntityRef | None,
        sources: list[str] | None,
        pending_payload_types: list[str] | None,
        success_emission_types: list[str] | None,
        failure_emission_types: list[str] | None,
    ) -> list[SignalEnvelope]:
        pending = sorted(set(pending_payload_types) if pending_payload_types else DEFAULT_PENDING_OUTCOME_PAYLOAD_TYPES)
        success = set(success_emission_types) if success_emission_types else set(DEFAULT_SUCCESS_EMISSION_TYPES)
        failure = set(failure_emission_types) if failure_emission_types else set(DEFAULT_FAILURE_EMISSION_TYPES)
        eflt = self._emission_filter(entity_ref=entity_ref, emission_types=sorted(success | failure))
        resolved = self._engines["emissions"].select(start, end, eflt, order="timestamp").column("caused_by")
        flt = self._signal_filter(entity_ref=entity_ref, sources=sources, payload_types=pending)
        resolved_ids = [v for v in resolved.to_pylist() if v is not None]
        if resolved_ids:
            flt.not_in_list("signal_id", resolved_ids)
        return self._signals(start, end, flt, order="timestamp, signal_id")

    def get_unresolved_outcome_signals(
        self,
        *,
        start: datetime,
        end: datetime,
        entity_ref: EntityRef | None = None,
        sources: list[str] | None = None,
        pending_payload_types: list[str] | None = None,
        success_emission_types: list[str] | None = None,
        failure_emission_types: list[str] | None = None,
    ) -> list[SignalEnvelope]:
        """Pending outcome signals with no success/failure emission (same window and
        entity filter) whose ``caused_by`` is their id; oldest first by (timestamp, signal_id)."""
        return self._unresolved(
            start=start,
            end=end,
            entity_ref=entity_ref,
            sources=sources,
            pending_payload_types=pending_payload_types,
            success_emission_types=success_emission_types,
            failure_emission_types=failure_emission_types,
        )

    @staticmethod
    def _split_expired(
        unresolved: list[SignalEnvelope], now: datetime, expires_at_field: str
    ) -> tuple[list[SignalEnvelope], list[SignalEnvelope]]:
        now_utc = ensure_utc(now)
        pending: list[SignalEnvelope] = []
        expired: list[SignalEnvelope] = []
        for signal in unresolved:
            expires_at = (
                _parse_datetime(signal.payload.get(expires_at_field)) if isinstance(signal.payload, dict) else None
            )
            (expired if expires_at is not None and expires_at < now_utc else pending).append(signal)
        return pending, expired

    def get_expired_outcome_signals(
        self,
        *,
        now: datetime,
        start: datetime,
        end: datetime,
        entity_ref: EntityRef | None = None,
        sources: list[str] | None = None,
        pending_payload_types: list[str] | None = None,
        success_emission_types: list[str] | None = None,
        failure_emission_types: list[str] | None = None,
        expires_at_field: str = "expires_at",
    ) -> list[SignalEnvelope]:
        """Unresolved outcome signals whose ``payload[expires_at_field]`` is before ``now``
        (ISO text with optional Z, naive = UTC; unparseable never expires)."""
        unresolved = self._unresolved(
            start=start,
            end=end,
            entity_ref=entity_ref,
            sources=sources,
            pending_payload_types=pending_payload_types,
            success_emission_types=success_emission_types,
            failure_emission_types=failure_emission_types,
        )
        return self._split_expired(unresolved, now, expires_at_field)[1]

    def get_outcome_window_buckets(
        self,
        *,
        now: datetime,
        start: datetime,
        end: datetime,
        entity_ref: EntityRef | None = None,
        sources: list[str] | None = None,
        pending_payload_types: list[str] | None = None,
        success_emission_types: list[str] | None = None,
        failure_emission_types: list[str] | None = None,
        expires_at_field: str = "expires_at",
    ) -> dict[str, list[SignalEnvelope] | list[EmissionEnvelope]]:
        """Learning-window buckets: ``pending`` (unresolved, not expired), ``expired``,
        ``success`` and ``failure`` emissions; each oldest first by (timestamp, id)."""
        success = sorted(set(success_emission_types) if success_emission_types else DEFAULT_SUCCESS_EMISSION_TYPES)
        failure = sorted(set(failure_emission_types) if failure_emission_types else DEFAULT_FAILURE_EMISSION_TYPES)
        unresolved = self._unresolved(
            start=start,
            end=end,
            entity_ref=entity_ref,
            sources=sources,
            pending_payload_types=pending_payload_types,
            success_emission_types=success,
            failure_emission_types=failure,
        )
        pending, expired = self._split_expired(unresolved, now, expires_at_field)
        order = "timestamp, emission_id"
        return {
            "pending": pending,
            "expired": expired,
            "success": self._emissions(
                start, end, self._emission_filter(entity_ref=entity_ref, emission_types=success), order=order
            ),
            "failure": self._emissions(
                start, end, self._emission_filter(entity_ref=entity_ref, emission_types=failure), order=order
            ),
        }

    # ------------------------------------------------------------------ Season 1 (upstream 0.1.9)
    # DuckDB aggregations over both tiers (metaspn_store/_season1.py). Shared semantics: the
    # window, entity_ref / sources / payload_types / emission_types filters and "first copy of an
    # id wins" are those of iter_signals / iter_emissions. A record is in the season when its
    # payload is a dict with payload.get(season_id_field) == season_id (season_id None: every
    # record). A field's *number* is an int or float value as float, else 0.0 (bools, numeric
    # strings, None, a missing key or a non-dict payload count 0.0); its *text* is a non-empty
    # string value, else none. Totals are float sums in the reference's order (replay order, or
    # rank order for projection totals), bit-identical to its ``total += value`` loop.

    def _season1_kinds(
        self,
        *,
        entity_ref: EntityRef | None,
        sources: list[str] | None,
        payload_types: list[str] | None,
        emission_types: list[str] | None,
        reward_projection_field: str,
        reward_amount_field: str,
    ) -> tuple[Any, Any]:
        from metaspn_store import _season1

        return (
            _season1.KindScope(
                self._engines["signals"],
                self._signal_filter(entity_ref=entity_ref, sources=sources, payload_types=payload_types),
                reward_projection_field,
            ),
            _season1.KindScope(
                self._engines["emissions"],
                self._emission_filter(entity_ref=entity_ref, emission_types=emission_types),
                reward_amount_field,
            ),
        )

    def get_s1_season_summary_metrics(
        self,
        *,
        start: datetime,
        end: datetime,
        season_id: str,
        entity_ref: EntityRef | None = None,
        sources: list[str] | None = None,
        payload_types: list[str] | None = None,
        emission_types: list[str] | None = None,
        season_id_field: str = "season_id",
        game_id_field: str = "game_id",
        player_id_field: str = "player_id",
        reward_projection_field: str = "reward_projection",
        reward_amount_field: str = "reward_amount",
    ) -> dict[str, Any]:
        """Season dashboard card: ``signal_count`` / ``emission_count`` (records of the season),
        ``game_count`` / ``player_count`` (distinct texts of ``game_id_field`` / ``player_id_field``
        across signals and emissions), ``reward_projection_total`` (signals' numbers of
        ``reward_projection_field``) and ``reward_emitted_total`` (emissions' numbers of
        ``reward_amount_field``), plus ``season_id`` and ``start`` / ``end`` as UTC ISO text with Z."""
        from metaspn_store import _season1

        kinds = self._season1_kinds(
            entity_ref=entity_ref, sources=sources, payload_types=payload_types, emission_types=emission_types,
            reward_projection_field=reward_projection_field, reward_amount_field=reward_amount_field,
        )
        return _season1.season_summary(
            kinds, start=start, end=end, season_id=season_id, season_id_field=season_id_field,
            game_id_field=game_id_field, player_id_field=player_id_field,
        )

    def get_s1_per_game_aggregates(
        self,
        *,
        start: datetime,
        end: datetime,
        season_id: str,
        entity_ref: EntityRef | None = None,
        sources: list[str] | None = None,
        payload_types: list[str] | None = None,
        emission_types: list[str] | None = None,
        season_id_field: str = "season_id",
        game_id_field: str = "game_id",
        player_id_field: str = "player_id",
        reward_projection_field: str = "reward_projection",
        reward_amount_field: str = "reward_amount",
    ) -> list[dict[str, Any]]:
        """One row per game (records of the season with a ``game_id_field`` text), sorted by game
        id: ``signal_count``, ``emission_count``, ``player_count`` (distinct player texts across
        both kinds), ``reward_projection_total`` (signals) and ``reward_emitted_total`` (emissions)."""
        from metaspn_store import _season1

        kinds = self._season1_kinds(
            entity_ref=entity_ref, sources=sources, payload_types=payload_types, emission_types=emission_types,
            reward_projection_field=reward_projection_field, reward_amount_field=reward_amount_field,
        )
        return _season1.per_game_aggregates(
            kinds, start=start, end=end, season_id=season_id, season_id_field=season_id_field,
            game_id_field=game_id_field, player_id_field=player_id_field,
        )

    def get_s1_per_player_dashboard_aggregates(
        self,
        *,
        start: datetime,
        end: datetime,
        season_id: str,
        entity_ref: EntityRef | None = None,
        sources: list[str] | None = None,
        payload_types: list[str] | None = None,
        season_id_field: str = "season_id",
        player_id_field: str = "player_id",
        game_id_field: str = "game_id",
        metric_fields: list[str] | None = None,
    ) -> list[dict[str, Any]]:
        """One row per player (signals of the season with a ``player_id_field`` text), sorted by
        player id: ``signal_count``, ``games_played`` (distinct game texts) and ``metrics``, the
        total of each of ``metric_fields`` (None or empty: score, points, reward_projection,
        reward_amount; a field listed twice is added twice per signal, as the reference does)."""
        from metaspn_store import _season1

        signals = self._season1_kinds(
            entity_ref=entity_ref, sources=sources, payload_types=payload_types, emission_types=None,
            reward_projection_field="", reward_amount_field="",
        )[0]
        return _season1.per_player_dashboard(
            signals, start=start, end=end, season_id=season_id, season_id_field=season_id_field,
            player_id_field=player_id_field, game_id_field=game_id_field, metric_fields=metric_fields,
        )

    def get_s1_founder_stake_heartbeat(
        self,
        *,
        start: datetime,
        end: datetime,
        season_id: str,
        founder_id: str | None = None,
        entity_ref: EntityRef | None = None,
        sources: list[str] | None = None,
        payload_types: list[str] | None = None,
        season_id_field: str = "season_id",
        founder_id_field: str = "founder_id",
        stake_delta_field: str = "founder_stake_delta",
        stake_value_field: str = "founder_stake_value",
    ) -> list[dict[str, Any]]:
        """One row per signal of the season with a ``founder_id_field`` text (equal to
        ``founder_id`` when given), oldest first by (timestamp, signal_id): ``stake_delta`` (the
        number of ``stake_delta_field``) and ``stake_value``, the founder's running stake: the
        number of ``stake_value_field`` when the payload has that key (any value; a non-number
        resets to 0.0), else the previous value (0.0 at first) plus the delta."""
        from metaspn_store import _season1

        signals = self._season1_kinds(
            entity_ref=entity_ref, sources=sources, payload_types=payload_types, emission_types=None,
            reward_projection_field="", reward_amount_field="",
        )[0]
        return _season1.founder_stake_heartbeat(
            signals, start=start, end=end, season_id=season_id, founder_id=founder_id,
            season_id_field=season_id_field, founder_id_field=founder_id_field,
            stake_delta_field=stake_delta_field, stake_value_field=stake_value_field,
        )

    def get_s1_active_reward_projections(
        self,
        *,
        start: datetime,
        end: datetime,
        season_id: str,
        entity_ref: EntityRef | None = None,
        sources: list[str] | None = None,
        payload_types: list[str] | None = None,
        season_id_field: str = "season_id",
        window_status_field: str = "window_status",
        active_status: str = "ACTIVE",
        projection_field: str = "reward_projection",
        limit: int | None = None,
    ) -> list[SignalEnvelope]:
        """Signals of the season whose ``payload.get(window_status_field) == active_status``,
        ranked by (number of ``projection_field``, timestamp, signal_id) descending; ``limit``
        None or negative means all."""
        from metaspn_store import _season1

        signals = self._season1_kinds(
            entity_ref=entity_ref, sources=sources, payload_types=payload_types, emission_types=None,
            reward_projection_field="", reward_amount_field="",
        )[0]
        table = _season1.active_reward_projections(
            signals, start=start, end=end, season_id=season_id, season_id_field=season_id_field,
            window_status_field=window_status_field, active_status=active_status,
            projection_field=projection_field, limit=limit,
        )
        return self._engines["signals"].envelopes(table)

    def get_s1_active_reward_projection_totals(
        self,
        *,
        start: datetime,
        end: datetime,
        season_id: str,
        group_by_field: str = "player_id",
        entity_ref: EntityRef | None = None,
        sources: list[str] | None = None,
        payload_types: list[str] | None = None,
        projection_field: str = "reward_projection",
    ) -> list[dict[str, Any]]:
        """The active projections (default season, status field and status, as the reference)
        grouped by the text of ``group_by_field``: ``signal_count`` and
        ``reward_projection_total`` (added in rank order), sorted by (total, group) descending."""
        from metaspn_store import _season1

        signals = self._season1_kinds(
            entity_ref=entity_ref, sources=sources, payload_types=payload_types, emission_types=None,
            reward_projection_field="", reward_amount_field="",
        )[0]
        return _season1.active_reward_projection_totals(
            signals, start=start, end=end, season_id=season_id, group_by_field=group_by_field,
            projection_field=projection_field,
        )

    def iter_s1_stage_window_signals(
        self,
        *,
        stage: str,
        start: datetime,
        end: datetime,
        checkpoint: ReplayCheckpoint | None = None,
        entity_ref: EntityRef | None = None,
        sources: list[str] | None = None,
        payload_types: list[str] | None = None,
        season_id: str | None = None,
        season_id_field: str = "season_id",
    ) -> Iterator[SignalEnvelope]:
        """Checkpoint-aware replay of a Season 1 stage, as :meth:`iter_stage_window_signals`:
        ``sources`` if given, else sources ``s1.<stage>`` / ``season1.<stage>`` or below them;
        optional payload types; ``season_id`` None means any season."""
        from metaspn_store import _season1

        flt, check = _season1.stage_filter(
            self._signal_filter(entity_ref=entity_ref, sources=sources, payload_types=payload_types),
            stage=stage, sources=sources, season_id=season_id, season_id_field=season_id_field,
        )
        replay = self._checkpoint_replay(start=start, end=end, checkpoint=checkpoint, flt=flt)
        return replay if check is None else _season1.keep_matching(replay, *check)

    def export_s1_postseason_research_dataset(
        self,
        *,
        start: datetime,
        end: datetime,
        season_id: str,
        destination: str | Path,
        entity_ref: EntityRef | None = None,
        sources: list[str] | None = None,
        payload_types: list[str] | None = None,
        emission_types: list[str] | None = None,
        season_id_field: str = "season_id",
        include_signals: bool = True,
        include_emissions: bool = True,
    ) -> Path:
        """Write the season's signals and emissions, ordered by (timestamp, record_id,
        record_kind), to ``destination``: NDJSON byte-identical to the reference's (one
        ``json.dumps(row, sort_keys=True, separators=(",", ":"))`` per line), or Parquet when
        the name ends in ``.parquet`` (same rows; ``payload`` as that JSON text). The file is
        replaced atomically; parent folders are created. Returns ``Path(destination)``."""
        from metaspn_store import _season1

        signals, emissions = self._season1_kinds(
            entity_ref=entity_ref, sources=sources, payload_types=payload_types, emission_types=emission_types,
            reward_projection_field="", reward_amount_field="",
        )
        kinds = [("signal", signals)] if include_signals else []
        if include_emissions:
            kinds.append(("emission", emissions))
        rows = _season1.research_rows(
            kinds, start=start, end=end, season_id=season_id, season_id_field=season_id_field
        )
        return _season1.write_export(rows, destination)
