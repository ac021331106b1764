"""Query layer: DuckDB over both tiers, parameterised SQL only.

Every read names a window ``[start, end]`` (inclusive, UTC microseconds). Only the day
partitions from ``start.date()`` to ``end.date()`` are opened (``_rules`` rule 3). Rows of those
partitions form one relation with ``day``, ``tier`` (0 cold, 1 hot) and ``seq`` (append order in
the day); an id that appears more than once keeps only its first row in ``(day, tier, seq)``
order (``_rules`` rule 2).

User values (sources, types, payload keys and values, entity refs) are always bind parameters;
payload keys become RFC 6901 JSON pointers, which DuckDB takes as data.
"""

from __future__ import annotations

import os
import threading
from array import array
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from metaspn_store._codec import EnvelopeBuilder, ensure_utc, no_rows, schema_for
from metaspn_store._layout import Kind
from metaspn_store._rules import POSITION_SQL, TIER_COLD, TIER_HOT, window_days
from metaspn_store.errors import QueryError

_ENTITY_KEY = (
    "CASE WHEN len(entity_refs) > 0 THEN coalesce(entity_refs[1].ref_type, 'None') || ':' || "
    "coalesce(entity_refs[1].platform, 'None') || ':' || coalesce(entity_refs[1].value, 'None') "
    "ELSE {fallback} END"
)
# 0.1.8's unique_by_entity key: f"{ref_type}:{platform}:{value}" of the first ref (None prints as
# "None"), or "signal:<id>" for a signal without refs.
SIGNAL_ENTITY_KEY = _ENTITY_KEY.format(fallback="'signal:' || signal_id")
# Columns of the analysis views and of read_signals / read_emissions. ``entity_key`` is the key
# get_top_recommendation_candidates uses for unique_by_entity.
ANALYSIS_COLUMNS = {
    "signals": "signal_id, timestamp, day, source, payload_type, payload::JSON AS payload, schema_version, "
    "entity_refs, " + SIGNAL_ENTITY_KEY + " AS entity_key, trace::JSON AS trace, "
    "raw::JSON AS raw, CASE WHEN tier = 0 THEN 'cold' ELSE 'hot' END AS tier, seq",
    "emissions": "emission_id, timestamp, day, emission_type, caused_by, payload::JSON AS payload, schema_version, "
    "entity_refs, " + _ENTITY_KEY.format(fallback="NULL") + " AS entity_key, trace::JSON AS trace, "
    "CASE WHEN tier = 0 THEN 'cold' ELSE 'hot' END AS tier, seq",
}


def json_pointer(key: str) -> str:
    """RFC 6901 pointer to a top-level key (``~`` and ``/`` escaped; everything else literal)."""
    return "/" + key.replace("~", "~0").replace("/", "~1")


@dataclass
class Filter:
    """A WHERE clause built from fragments and named parameters (never from user text)."""

    clauses: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    _n: int = 0
    # The columns the clauses read; None once a clause was added without saying (any column).
    columns: set[str] | None = field(default_factory=set)

    def param(self, value: Any) -> str:
        self._n += 1
        name = f"p{self._n}"
        self.params[name] = value
        return f"${name}"

    def add(self, clause: str, *, columns: Sequence[str] | None = None) -> None:
        """Add ``clause``; ``columns`` names the columns it reads (None: unknown)."""
        self.clauses.append(clause)
        if columns is None or self.columns is None:
            self.columns = None
        else:
            self.columns.update(columns)

    def in_list(self, column: str, values: Sequence[str] | None) -> None:
        """``values`` empty or None means no filter (0.1.8 semantics)."""
        if values:
            # 0.1.8 tests ``value in set(values)``: a non-string never equals a string column.
            strings = [v for v in values if isinstance(v, str)]
            self.add(f"list_contains({self.param(strings)}::VARCHAR[], {column})", columns=[column])

    def not_in_list(self, column: str, values: Sequence[str]) -> None:
        # A subquery over the unnested list lets DuckDB hash it once (list_contains scans per row).
        self.add(f"{column} NOT IN (SELECT unnest({self.param(list(values))}::VARCHAR[]))", columns=[column])

    def entity(self, ref: Any) -> None:
        if ref is None:
            return
        parts = [
            f"r.{name} IS NOT DISTINCT FROM {self.param(getattr(ref, name))}::VARCHAR"
            for name in ("ref_type", "value", "platform", "label", "schema_version")
        ]
        self.add(f"len(list_filter(entity_refs, lambda r: {' AND '.join(parts)})) > 0", columns=["entity_refs"])

    def payload_equals(self, key: str, expected: Any) -> bool:
        """Add ``payload.get(key) == expected`` when SQL can say it exactly; else return False."""
        if not isinstance(expected, str) and expected is not None:
            self.add("json_type(payload) = 'OBJECT'", columns=["payload"])
            return False
        ptr = self.param(json_pointer(key))
        if isinstance(expected, str):
            self.add(
                f"json_type(payload) = 'OBJECT' AND json_type(payload, {ptr}) = 'VARCHAR' "
                f"AND json_extract_string(payload, {ptr}) = {self.param(expected)}",
                columns=["payload"],
            )
            return True
        self.add(f"json_type(payload) = 'OBJECT' AND coalesce(json_type(payload, {ptr}), 'NULL') = 'NULL'",
                 columns=["payload"])
        return True

    def sql(self) -> str:
        return " AND ".join(f"({c})" for c in self.clauses) if self.clauses else "TRUE"

    def with_clause(self, clause: str, *, columns: Sequence[str] | None = None) -> Filter:
        """A copy with one more fixed clause (``columns``: those it reads, None: unknown)."""
        copy = Filter(list(self.clauses), dict(self.params), self._n, None if self.columns is None else set(self.columns))
        copy.add(clause, columns=columns)
        return copy


class QueryEngine:
    """Answers reads for one kind from the hot tier and (when present) the cold tier."""

    def __init__(
        self,
        kind: Kind,
        *,
        hot_table: Callable[[date], pa.Table | None],
        hot_days: Callable[[], Any],
        cold_files: Callable[[date, date], dict[date, list[str]]],
        connection: Callable[[], duckdb.DuckDBPyConnection],
        version: Callable[[], Any] = lambda: 0,
        shared_ids: Callable[[date, date], list[str]] = lambda first, last: [],
        cold_dataset: Callable[[list[str]], Any] | None = None,
        local_files: Callable[[], bool] = lambda: True,
        day_bytes: Callable[[date], int] = lambda day: STEP_BYTES,
    ) -> None:
        self._day_bytes = day_bytes
        self.kind = kind
        self._cold_dataset = cold_dataset
        self._local_files = local_files
        self._version = version
        self._shared_ids = shared_ids
        self._hot_table = hot_table
        self._hot_days = hot_days
        self._cold_files = cold_files
        self._connection = connection
        self._schema = schema_for(kind)
        self.kind_schema = self._schema
        self.payload_fields = PayloadFields(kind)

    # ------------------------------------------------------------------ relations

    def _window(self, start: datetime, end: datetime) -> tuple[datetime, datetime]:
        start_utc, end_utc = ensure_utc(start), ensure_utc(end)
        if end_utc < start_utc:
            raise ValueError("end must be greater than or equal to start")
        return start_utc, end_utc

    def _snapshot(self, first: date, last: date, columns: list[str] | None = None) -> _Snapshot:
        """Hot rows and cold files of the days ``first..last`` as one consistent view.

        Hot files are read after the cold version is taken; a compaction committing in between
        changes the version, and the caller retries, so no day is seen in both tiers or in neither.
        """
        before = self._version()
        hot_parts = []
        hot_days = []
        for day in self._hot_days():
            if first <= day <= last:
                table = self._hot_table(day)
                if table is not None and table.num_rows:
                    # Keeping only the needed columns lets the cache evict the rest (bounded memory).
                    hot_parts.append(_with_position(table.select(columns) if columns else table, day, TIER_HOT))
                    hot_days.append((day, table))
        cold = self._cold_files(first, last)
        files = [f for day in sorted(cold) for f in cold[day]]
        shared = self._shared_ids(first, last) if files else []
        hot = pa.concat_tables(hot_parts) if hot_parts else None
        # Local files are read by DuckDB's own Parquet reader (by path); object storage through a
        # pyarrow dataset on the table's filesystem, which DuckDB scans with filter and projection
        # pushdown (one day's files only: the request counts are in benchmarks/).
        dataset = None
        if files and (self._cold_dataset is not None and not self._local_files()):
            dataset = self._cold_dataset(files)
        return _Snapshot(hot, files, shared, before, dataset, hot_days, {d: list(cold[d]) for d in sorted(cold)})

    def _cold_sql(self, snap: _Snapshot, params: dict[str, Any]) -> str:
        """The relation of the snapshot's cold rows (with a ``day`` DATE column)."""
        if snap.dataset is not None:
            return "cold_rows"
        params["__files"] = snap.files
        return "read_parquet($__files, hive_partitioning = true, hive_types = {'day': DATE})"

    def _cold_file(self, path: str) -> tuple[str, dict[str, Any], dict[str, Any]]:
        """One cold file as a relation with a ``day`` column: (SQL, parameters, tables to register)."""
        if self._cold_dataset is not None and not self._local_files():
            return "__field_cold", {}, {"__field_cold": self._cold_dataset([path])}
        return (
            "read_parquet([$__field_file], hive_partitioning = true, hive_types = {'day': DATE})",
            {"__field_file": path},
            {},
        )

    def _run(
        self,
        build: Callable[[_Snapshot], tuple[str, dict[str, Any]]],
        first: date,
        last: date,
        extra_tables: dict[str, pa.Table] | None = None,
        columns: list[str] | None = None,
    ) -> pa.Table | None:
        """Run ``build(snapshot)``'s SQL on a consistent snapshot, retrying on compaction."""
        with out_of_memory_as_query_error(self.kind.name):
            return self._run_once_consistent(build, first, last, extra_tables, columns)

    def _run_once_consistent(
        self,
        build: Callable[[_Snapshot], tuple[str, dict[str, Any]]],
        first: date,
        last: date,
        extra_tables: dict[str, pa.Table] | None,
        columns: list[str] | None,
    ) -> pa.Table | None:
        con = self._connection()
        last_error: Exception | None = None
        for _attempt in range(20):
            snap = self._snapshot(first, last, columns)
            if snap.hot is None and not snap.files:
                return None
            try:
                query, params = build(snap)  # may read files (payload fields): retried like the query
                tables = dict(extra_tables or {})
                tables.update(snap.extra)
                if snap.hot is not None:
                    tables["hot_rows"] = snap.hot
                if snap.dataset is not None:
                    tables["cold_rows"] = snap.dataset
                result = _sql_over(con, tables, query, params)
            except (duckdb.IOException, duckdb.InvalidInputException, OSError) as exc:
                last_error = exc  # a compaction (and a vacuum) replaced files we listed: read again
                continue
            except duckdb.OutOfMemoryException:
                raise
            except duckdb.Error as exc:
                raise QueryError(f"query over {self.kind.name} failed: {exc}") from exc
            if self._version() != snap.version:
                continue
            return result
        raise QueryError(f"{self.kind.name} kept changing under concurrent compactions; try again") from last_error

    def _candidates_sql(self, snap: _Snapshot, params: dict[str, Any], hot: str, cold: str) -> str | None:
        """SQL listing every id that may have more than one copy in the snapshot, or None.

        A day's Parquet holds each id once (the compactor keeps the first copy of the day), so a
        repeated id has a copy in the hot rows or is flagged ``shared`` in the cold tier."""
        idc = self.kind.id_field
        parts = []
        if snap.hot is not None:
            parts.append(f"SELECT {idc} FROM {hot} GROUP BY {idc} HAVING count(*) > 1")
            if snap.files:
                parts.append(f"SELECT {idc} FROM {cold} WHERE {idc} IN (SELECT {idc} FROM {hot})")
        if snap.shared:
            params["__shared"] = snap.shared
            parts.append("SELECT unnest($__shared::VARCHAR[])")
        return " UNION ".join(parts) if parts else None

    def _base_sql(
        self, snap: _Snapshot, params: dict[str, Any], *, exclude: bool = False, narrow: list[str] | None = None
    ) -> str:
        """CTEs ``base`` (rows of both tiers with day/tier/seq) and ``firsts`` (first copy per id).

        With ``exclude``, also drops the rows whose id has an earlier copy on another day of a
        longer window (``window_dups``: dup_id, first_day), found once by the caller.
        With ``narrow`` (columns), the rows are the registered ``__cold_narrow`` / ``__hot_narrow``.
        """
        cols = ", ".join(narrow if narrow is not None else self._schema.names)
        hot = "hot_rows" if narrow is None else "__hot_narrow"
        idc = self.kind.id_field
        parts = []
        cold = ""
        if snap.files:
            cold = self._cold_sql(snap, params) if narrow is None else "__cold_narrow"
            parts.append(f"SELECT {cols}, day, {TIER_COLD}::TINYINT AS tier FROM {cold}")
        if snap.hot is not None:
            parts.append(f"SELECT {cols}, day, tier FROM {hot}")
        sql = f"base AS ({' UNION ALL '.join(parts)})"
        candidates = self._candidates_sql(snap, params, hot, cold)
        if candidates is None:
            sql += ", firsts_day AS (SELECT * FROM base)"
        else:
            # ``dups`` reads its four columns from the sources, not from ``base``: a CTE read twice
            # is materialised whole, every column of every row of the window (1.3 GB for a
            # 1.5M-signal replay's first query, whose filter keeps no row).
            positions = []
            if snap.files:
                positions.append(f"SELECT {idc}, day, {TIER_COLD}::TINYINT AS tier, seq FROM {cold}")
            if snap.hot is not None:
                positions.append(f"SELECT {idc}, day, tier, seq FROM {hot}")
            sql += f""",
            dups AS (
                SELECT {idc} AS dup_id, min({POSITION_SQL}) AS first_pos
                FROM ({" UNION ALL ".join(positions)}) WHERE {idc} IN ({candidates}) GROUP BY {idc}
            ),
            firsts_day AS (
                SELECT base.* FROM base LEFT JOIN dups ON base.{idc} = dups.dup_id
                WHERE dups.dup_id IS NULL OR dups.first_pos = {POSITION_SQL}
            )"""
        if exclude:
            return sql + f""",
            firsts AS (
                SELECT f.* FROM firsts_day f LEFT JOIN window_dups w ON f.{idc} = w.dup_id
                WHERE w.dup_id IS NULL OR w.first_day = f.day
            )"""
        return sql + ", firsts AS (SELECT * FROM firsts_day)"

    # ------------------------------------------------------------------ analysis views

    def register_view(self, con: duckdb.DuckDBPyConnection, view: str) -> None:
        """(Re)create temp view ``view`` over both tiers, first copy per id, analysis columns.

        The hot rows are a snapshot (an Arrow table registered on ``con``); the cold tier is a
        pyarrow dataset DuckDB scans lazily with filter and projection pushdown.
        """
        import pyarrow.dataset as ds

        snap = self._snapshot(date.min, date.max)
        cols = ", ".join(self._schema.names)
        idc = self.kind.id_field
        hot_name, cold_name = f"__hot_{view}", f"__cold_{view}"
        empty = pa.Table.from_batches([], schema=self._schema.append(pa.field("day", pa.date32())).append(
            pa.field("tier", pa.int8())))
        con.register(hot_name, snap.hot if snap.hot is not None else empty)
        parts = [f"SELECT {cols}, day, tier FROM {hot_name}"]
        if snap.files:
            if snap.dataset is not None:
                dataset = snap.dataset
            else:
                base_dir = str(Path(snap.files[0]).parent.parent)
                dataset = ds.dataset(
                    snap.files,
                    format="parquet",
                    partitioning=ds.partitioning(pa.schema([("day", pa.date32())]), flavor="hive"),
                    partition_base_dir=base_dir,
                )
            con.register(cold_name, dataset)
            parts.append(f"SELECT {cols}, day, {TIER_COLD}::TINYINT AS tier FROM {cold_name}")
        params: dict[str, Any] = {}
        candidates = self._candidates_sql(snap, params, hot_name, cold_name)
        if candidates is not None and "__shared" in params:
            # DDL takes no bind parameters: the ids become a registered table, never SQL text.
            shared_name = f"__shared_{view}"
            con.register(shared_name, pa.table({"id": pa.array(params["__shared"], pa.string())}))
            candidates = candidates.replace("SELECT unnest($__shared::VARCHAR[])", f"SELECT id FROM {shared_name}")
        dedup = (
            f"""dups AS (
                SELECT {idc} AS dup_id, min({POSITION_SQL}) AS first_pos
                FROM base WHERE {idc} IN ({candidates}) GROUP BY {idc}
            )"""
            if candidates is not None
            else "dups AS (SELECT NULL::VARCHAR AS dup_id, NULL AS first_pos WHERE false)"
        )
        con.execute(
            f"""CREATE OR REPLACE TEMP VIEW {view} AS
            WITH base AS ({" UNION ALL ".join(parts)}), {dedup}
            SELECT {ANALYSIS_COLUMNS[self.kind.name]}
            FROM base LEFT JOIN dups ON base.{idc} = dups.dup_id
            WHERE dups.dup_id IS NULL OR dups.first_pos = {POSITION_SQL}
            """
        )

    # ------------------------------------------------------------------ queries

    def select(
        self,
        start: datetime,
        end: datetime,
        flt: Filter,
        *,
        order: str,
        limit: int | None = None,
        extra_columns: str = "",
        post_sql: str | None = None,
        columns: str = "*",
        exclude: pa.Table | None = None,
        with_refs_key: bool = False,
        payload_fields: Sequence[FieldRequest] = (),
        prefetch_fields: Sequence[FieldRequest] = (),
        narrow: bool = False,
    ) -> pa.Table:
        """Rows in the window passing ``flt``, first copy per id only, ordered by ``order``.

        ``payload_fields``: requests ``(variant, key)`` whose values become columns ``__f0``,
        ``__f1``, ... of the rows (see :class:`PayloadFields`); ``prefetch_fields`` are extracted
        (and kept) in the same pass, for the calls that will want them. ``narrow``: ``columns``,
        ``post_sql`` and ``flt`` read only the id, ``timestamp``, ``seq``, ``__pos``, the fields and
        the type columns (``source``, ``payload_type`` / ``emission_type``): the rows then come
        from the kept fields, without reading cold files (a filter on other columns still reads
        them)."""
        start_utc, end_utc = self._window(start, end)
        requests = list(dict.fromkeys(payload_fields))
        # Replays carry each row's entity refs as JSON text too: one dict lookup per row then finds
        # the shared tuple of EntityRef objects (see EnvelopeBuilder). Read models return few rows
        # and skip it, so DuckDB does not render refs for rows a LIMIT drops.
        refs_key = ", to_json(entity_refs)::VARCHAR AS __refs_key" if with_refs_key else ""

        def build(snap: _Snapshot) -> tuple[str, dict[str, Any]]:
            params = dict(flt.params)
            params["__start"] = start_utc
            params["__end"] = end_utc
            source = "firsts"
            base: list[str] | None = None
            if requests:
                use_narrow = narrow and flt.columns is not None and flt.columns <= set(self.payload_fields.base_columns)
                fields = self.payload_fields.relation(
                    self._connection(), snap, requests, self._cold_file, prefetch=prefetch_fields, narrow=use_narrow
                )
                if fields is not None and fields.fields is None:  # the rows themselves, no file read
                    base = [c for c in self.payload_fields.base_columns if c != "day"] + ["__pos"]
                    base += [f"__f{j}" for j in range(len(requests))]
                    for name, table in (("__cold_narrow", fields.cold), ("__hot_narrow", fields.hot)):
                        if table is not None:
                            snap.extra[name] = table
                elif fields is not None:
                    snap.extra["__fields"] = fields.fields
                    source = f"(SELECT *, {POSITION_KEY_SQL} AS __pos FROM firsts) AS firsts JOIN __fields USING (__pos)"
                else:  # the same extraction, per row of this query; __pos orders like the key
                    parsed = parsed_payload("firsts", requests, params)
                    source = (
                        f"(SELECT * EXCLUDE (__t, __v) FROM (SELECT *, {POSITION_SQL} AS __pos, "
                        f"{field_columns(requests)} FROM ({parsed}))) AS firsts"
                    )
            inner = f"""
                WITH {self._base_sql(snap, params, exclude=exclude is not None, narrow=base)}
                SELECT {columns}{refs_key}{extra_columns} FROM {source}
                WHERE timestamp BETWEEN $__start AND $__end AND {flt.sql()}
            """
            if post_sql is not None:
                query = post_sql.replace("{inner}", inner)
            else:
                query = f"SELECT * FROM ({inner}) ORDER BY {order}"
            if limit is not None:
                query += f" LIMIT {int(limit)}"
            return query, params

        extra = {"window_dups": exclude} if exclude is not None else None
        first, last = window_days(start_utc, end_utc)
        table = self._run(build, first, last, extra)
        return no_rows(self._schema) if table is None else table

    def _cross_day_duplicates(self, first: date, last: date) -> pa.Table | None:
        """Ids with copies on more than one of the days ``first..last``, with the first such day
        (``dup_id``, ``first_day``); None when there are none. Reads only ids."""
        idc = self.kind.id_field

        def build(snap: _Snapshot) -> tuple[str, dict[str, Any]]:
            params: dict[str, Any] = {}
            cold = ""
            if snap.files:
                cold = self._cold_sql(snap, params)
            candidates = self._candidates_sql(snap, params, "hot_rows", cold)
            parts = []
            if snap.hot is not None:
                parts.append(f"SELECT {idc}, day FROM hot_rows")
            if snap.files:
                parts.append(f"SELECT {idc}, day FROM {cold}")
            query = f"""
                WITH candidates AS ({candidates or "SELECT NULL::VARCHAR WHERE false"}),
                ids AS (SELECT * FROM ({" UNION ALL ".join(parts)}) WHERE {idc} IN (SELECT * FROM candidates))
                SELECT {idc} AS dup_id, min(day) AS first_day FROM ids
                GROUP BY {idc} HAVING count(DISTINCT day) > 1
            """
            return query, params

        if not any(first <= d <= last for d in self._hot_days()) and not self._shared_ids(first, last):
            return None  # each day's Parquet holds an id once, and no id is listed as shared
        if self._hot_ids_unique(first, last):
            return None
        table = self._run(build, first, last, columns=[idc, "seq"])
        return table if table is not None and table.num_rows else None

    def _hot_ids_unique(self, first: date, last: date) -> bool:
        """True when the window has no cold files and no two hot rows share an id's 64-bit hash.

        A cheap proof that there is nothing to deduplicate (the usual case): one day's ids at a
        time become hashes, so a long window costs 8 bytes per row instead of every id string
        and a hash table. False means "maybe": the caller runs the exact query.
        """
        before = self._version()
        if self._cold_files(first, last):
            return False
        con = self._connection()
        idc = self.kind.id_field
        hashes: list[pa.Array] = []
        pending: list[pa.Table] = []
        pending_rows = 0

        def hash_pending() -> None:
            # Many days per query (a thousand small files cost a few queries), at most about a
            # million ids at once (bounded memory for long windows).
            con.register("day_ids", pa.concat_tables(pending))
            try:
                hashes.extend(con.sql(f"SELECT hash({idc}) AS h FROM day_ids").to_arrow_table().column(0).chunks)
            finally:
                con.unregister("day_ids")
            pending.clear()

        for day in self._hot_days():
            if not first <= day <= last:
                continue
            table = self._hot_table(day)
            if table is None or not table.num_rows:
                continue
            pending.append(table.select([idc]))
            pending_rows += table.num_rows
            if pending_rows >= 1_000_000:
                hash_pending()
                pending_rows = 0
        if pending:
            hash_pending()
        if self._version() != before:
            return False
        if len(hashes) < 1:
            return True
        combined = pa.chunked_array(hashes, pa.uint64()).combine_chunks()
        ordered = combined.take(pc.sort_indices(combined))
        n = len(ordered)
        return n < 2 or not pc.any(pc.equal(ordered.slice(1), ordered.slice(0, n - 1))).as_py()

    def envelopes(self, table: pa.Table) -> list[Any]:
        return EnvelopeBuilder(self.kind).build(table)

    def stream(self, start: datetime, end: datetime, flt: Filter, *, batch_rows: int = 10_000) -> Iterator[Any]:
        """See :meth:`_stream`; running out of memory becomes a :class:`QueryError` with a hint."""
        with out_of_memory_as_query_error(self.kind.name):
            yield from self._stream(start, end, flt, batch_rows=batch_rows)

    def _stream(self, start: datetime, end: datetime, flt: Filter, *, batch_rows: int = 10_000) -> Iterator[Any]:
        """Envelopes in (timestamp, day, tier, seq) order, a few days at a time (bounded memory).

        Each step reads a run of consecutive day files (as many as fit :data:`STEP_BYTES` of
        data, so a thousand small files cost a few queries, not a thousand) and keeps their
        records whose timestamp falls on their own file's day; the few records of the window
        whose timestamp lies on another day (``_rules`` rule 3) are found by one query up front
        and merged into the step of their timestamp's day. Each step's rows are fetched whole
        before anything is yielded, so no DuckDB result stays open while the caller runs.
        Duplicates across days are resolved by (id, first day), which a concurrent compaction
        does not change.
        """
        start_utc, end_utc = self._window(start, end)
        first, last = window_days(start_utc, end_utc)
        days = sorted({d for d in self._hot_days() if first <= d <= last} | set(self._cold_files(first, last)))
        if not days:
            return
        builder = EnvelopeBuilder(self.kind)
        dups = self._cross_day_duplicates(first, last) if len(days) > 1 else None
        order = "timestamp, day, tier, seq"
        stray = self.select(start_utc, end_utc, flt.with_clause("CAST(timestamp AS DATE) <> day", columns=["timestamp", "day"]), order=order,
                            exclude=dups, with_refs_key=True)
        stray_days = pc.cast(stray.column("timestamp"), pa.date32()) if stray.num_rows else None
        steps = set(days) | (set(stray_days.to_pylist()) if stray_days is not None else set())
        placed = flt.with_clause("CAST(timestamp AS DATE) = day", columns=["timestamp", "day"])
        for run_first, run_last in _runs(sorted(steps), self._day_bytes):
            table = self.select(
                max(start_utc, _day_start(run_first)),
                min(end_utc, _day_start(run_last) + _ONE_DAY - _ONE_US),
                placed,
                order=order,
                exclude=dups,
                with_refs_key=True,
            )
            if stray_days is not None:
                in_run = pc.and_(
                    pc.greater_equal(stray_days, pa.scalar(run_first, pa.date32())),
                    pc.less_equal(stray_days, pa.scalar(run_last, pa.date32())),
                )
                here = stray.filter(in_run)
                if here.num_rows and not table.num_rows:
                    table = here
                elif here.num_rows:
                    table = pa.concat_tables([table, here.cast(table.schema)]).sort_by(
                        [("timestamp", "ascending"), ("day", "ascending"), ("tier", "ascending"), ("seq", "ascending")]
                    )
            for offset in range(0, table.num_rows, batch_rows):
                yield from builder.build(table.slice(offset, batch_rows))


# --------------------------------------------------------------------------- typed payload fields

# ``(variant, key)``: "text" is the value when it is a JSON string (else NULL), "number" the value
# as DOUBLE when it is a JSON int or float (bools are not; else NULL), "present" whether the key is
# in the payload (NULL-free boolean, False for a non-object payload). Only for an object payload.
FieldRequest = tuple[str, str]
# A row's position ``(day, tier, seq)`` as one BIGINT, in the same order (days of years 1-9999
# offset to be positive, 22 bits; tier 1 bit; seq 39 bits): a join and an ORDER BY on one integer
# cost about half of three columns. :class:`PayloadFields` checks every seq it keys is in range.
POSITION_KEY_SQL = "((((day - DATE '1970-01-01') + 1048576)::BIGINT << 40) | (tier::BIGINT << 39) | seq)"
_SEQ_LIMIT = 1 << 39
_NUMBER_TYPES = "('BIGINT', 'UBIGINT', 'DOUBLE')"


def parsed_payload(relation: str, requests: Sequence[FieldRequest], params: dict[str, Any]) -> str:
    """``SELECT *, __t, __v FROM relation``: ``__t`` the JSON type of the payload, then of each
    requested key (NULL: missing); ``__v`` each key's value as text. Two parses of the payload,
    whatever the number of keys; keys become JSON pointers, bound as parameters."""
    pointers = [json_pointer(key) for key in dict.fromkeys(key for _, key in requests)]
    params["__field_types"] = [""] + pointers
    params["__field_values"] = pointers or [""]
    return (
        f"SELECT *, json_type(payload, $__field_types::VARCHAR[]) AS __t, "
        f"json_extract_string(payload, $__field_values::VARCHAR[]) AS __v FROM {relation}"
    )


def field_columns(requests: Sequence[FieldRequest]) -> str:
    """The requested columns ``__f0, __f1, ...`` over ``__t`` / ``__v`` of :func:`parsed_payload`."""
    keys = list(dict.fromkeys(key for _, key in requests))
    out = []
    for j, (variant, key) in enumerate(requests):
        i = keys.index(key) + 1
        found = f"__t[1] = 'OBJECT' AND __t[{i + 1}]"
        if variant == "text":
            expr = f"CASE WHEN {found} = 'VARCHAR' THEN __v[{i}] END"
        elif variant == "number":
            expr = f"CASE WHEN {found} IN {_NUMBER_TYPES} THEN __v[{i}]::DOUBLE END"
        elif variant == "present":
            expr = f"coalesce({found} IS NOT NULL, false)"
        else:
            raise ValueError(f"unknown payload field variant {variant!r}")
        out.append(f"{expr} AS __f{j}")
    return ", ".join(out)


@dataclass
class _FieldEntry:
    requests: list[FieldRequest]
    table: pa.Table  # kept columns, __pos (POSITION_KEY_SQL), then one column per request (in order)
    unique: bool  # __pos identifies each row (seq in range, no seq twice)
    check: pa.Table | None = None  # hot rows: the (seq, id) the table was built from

    @property
    def nbytes(self) -> int:
        return self.table.nbytes + (self.check.nbytes if self.check is not None else 0)


class PayloadFields:
    """Typed payload fields of each partition, extracted once and kept (LRU, ``max_bytes``).

    Read models that total or group by payload keys would otherwise parse every payload's JSON on
    every call (about 1.5 µs a row and parse, most of a Season 1 aggregate's time). The values of
    a partition's keys are the same until its rows change: a cold file never changes (the Delta
    table writes new files), and a hot day's line ``seq`` always holds the same record (the file
    is append-only), which is checked by comparing the day's ``(seq, id)`` with those the entry
    was built from; a grown day extracts only its new rows. Rows are matched to their fields by
    ``(day, tier, seq)`` (as :data:`POSITION_KEY_SQL`); when that does not identify a row (a cold
    day written by another tool with repeated or huge ``seq``), :meth:`relation` returns None and
    the caller parses per query.
    """

    def __init__(self, kind: Kind, max_bytes: int = 256 << 20) -> None:
        self.kind = kind
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple[Any, ...], _FieldEntry] = OrderedDict()
        self._lock = threading.Lock()
        self.rows_parsed = 0  # payloads parsed for fields (diagnostics and tests)
        # The columns a cold entry keeps besides its fields (a narrow query reads only these).
        kind_columns = ["source", "payload_type"] if kind.id_field == "signal_id" else ["emission_type"]
        self.base_columns = [kind.id_field, "timestamp", "seq", "day", *kind_columns]

    def relation(
        self,
        con: duckdb.DuckDBPyConnection,
        snap: _Snapshot,
        requests: list[FieldRequest],
        cold_file: Callable[[str], tuple[str, dict[str, Any], dict[str, Any]]],
        *,
        prefetch: Sequence[FieldRequest] = (),
        narrow: bool = False,
    ) -> _FieldsRelation | None:
        """The requested fields of every row of the snapshot, or None.

        Without ``narrow``: one table ``(__pos, __f0, __f1, ...)`` to join on ``__pos``. With it:
        the rows themselves, as a cold and a hot table of :attr:`base_columns` (``day`` and, hot,
        ``tier`` included), ``__pos`` and the fields, so that no cold file is read at all.
        ``cold_file(path)`` gives the SQL relation of one cold file, its parameters and the
        tables it needs registered."""
        cold: list[pa.Table] = []
        hot: list[pa.Table] = []
        wanted = list(dict.fromkeys([*requests, *prefetch]))  # one parse extracts them all
        for files in snap.cold_days.values():
            day_parts = [self._cold(con, path, requests, wanted, cold_file) for path in files]
            if not all(e.unique for e in day_parts) or (len(day_parts) > 1 and not _unique_key(
                    [e.table.column("__pos") for e in day_parts])):
                return None
            cold.extend(_columns(e, requests, self.base_columns if narrow else []) for e in day_parts)
        for day, table in snap.hot_days:
            entry = self._hot(con, day, table, requests, wanted)
            if not entry.unique:
                return None
            fields = _columns(entry, requests, [])
            if narrow:
                if not entry.table.column("seq").equals(table.column("seq")):
                    return None  # not row for row (never seen): join instead
                rows = _with_position(table.select([c for c in self.base_columns if c != "day"]), day, TIER_HOT)
                for name in fields.schema.names:
                    rows = rows.append_column(name, fields.column(name))
                fields = rows
            hot.append(fields)
        with self._lock:
            total = sum(e.nbytes for e in self._entries.values())
            while total > self.max_bytes and len(self._entries) > 1:
                _, old = self._entries.popitem(last=False)
                total -= old.nbytes
        if not narrow:
            return _FieldsRelation(fields=pa.concat_tables(cold + hot))
        return _FieldsRelation(
            cold=pa.concat_tables(cold) if cold else None, hot=pa.concat_tables(hot) if hot else None
        )

    def _get(self, key: tuple[Any, ...]) -> _FieldEntry | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
            return entry

    def _put(self, key: tuple[Any, ...], entry: _FieldEntry) -> _FieldEntry:
        with self._lock:
            self._entries[key] = entry
            self._entries.move_to_end(key)
        return entry

    def _cold(
        self,
        con: duckdb.DuckDBPyConnection,
        path: str,
        requests: list[FieldRequest],
        prefetch: list[FieldRequest],
        cold_file: Callable[[str], tuple[str, dict[str, Any], dict[str, Any]]],
    ) -> _FieldEntry:
        # A Delta data file is never rewritten (new versions write new names), and the legacy
        # layout's names carry a generation; a local file's identity is checked all the same.
        key = ("cold", path, _file_identity(path))
        entry = self._get(key)
        if entry is not None and set(requests) <= set(entry.requests):
            return entry
        wanted = _merged(entry, prefetch)
        relation, params, tables = cold_file(path)
        columns = ", ".join(c for c in self.base_columns if c not in ("day", "seq"))
        table = self._extract(
            con,
            f"(SELECT day, {TIER_COLD}::TINYINT AS tier, seq, payload, {columns} FROM {relation})",
            wanted,
            params,
            tables,
            keep=self.base_columns,
        )
        return self._put(key, _FieldEntry(wanted, table, _unique_key([table.column("__pos")])))

    def _hot(
        self,
        con: duckdb.DuckDBPyConnection,
        day: date,
        rows: pa.Table,
        requests: list[FieldRequest],
        prefetch: list[FieldRequest],
    ) -> _FieldEntry:
        key = ("hot", day)
        check = rows.select(["seq", self.kind.id_field])
        entry = self._get(key)
        m = entry.check.num_rows if entry is not None and entry.check is not None else -1
        if entry is not None and 0 <= m <= check.num_rows and check.slice(0, m).equals(entry.check):
            wanted = entry.requests if set(requests) <= set(entry.requests) else _merged(entry, prefetch)
            if wanted == entry.requests:
                if m == check.num_rows:
                    return entry
                added = self._extract_hot(con, day, rows.slice(m), wanted)  # the appended lines only
                table = pa.concat_tables([entry.table, added])
                return self._put(key, _FieldEntry(wanted, table, _unique_key([table.column("__pos")]), check))
        else:
            wanted = list(prefetch)  # a new day, or another file for it: start again
        table = self._extract_hot(con, day, rows, wanted)
        return self._put(key, _FieldEntry(wanted, table, _unique_key([table.column("__pos")]), check))

    def _extract_hot(self, con: duckdb.DuckDBPyConnection, day: date, rows: pa.Table, wanted: list[FieldRequest]) -> pa.Table:
        source = _with_position(rows.select(["seq", "payload"]), day, TIER_HOT)
        return self._extract(con, "(SELECT day, tier, seq, payload FROM __field_rows)", wanted, {},
                             {"__field_rows": source}, keep=["seq"])

    def _extract(
        self,
        con: duckdb.DuckDBPyConnection,
        relation: str,
        wanted: list[FieldRequest],
        params: dict[str, Any],
        tables: dict[str, Any],
        *,
        keep: list[str],
    ) -> pa.Table:
        """``keep`` columns, then ``__pos``, then the ``wanted`` fields, of ``relation``'s rows."""
        # A seq outside the key's range gets a NULL key (then the entry is not ``unique``).
        key = f"CASE WHEN seq >= 0 AND seq < {_SEQ_LIMIT} THEN {POSITION_KEY_SQL} END"
        kept = "".join(f"{c}, " for c in keep)
        sql = f"SELECT {kept}{key} AS __pos, {field_columns(wanted)} FROM ({parsed_payload(relation, wanted, params)})"  # noqa: S608
        out = _sql_over(con, tables, sql, params)
        self.rows_parsed += out.num_rows
        # Texts of a field repeat (games, players, statuses, sources): a dictionary keeps them small.
        first = len(keep) + 1
        for j, (variant, _key) in enumerate(wanted):
            if variant == "text":
                out = out.set_column(first + j, f"__f{j}", pc.dictionary_encode(out.column(first + j)))
        for name in ("source", "payload_type", "emission_type"):
            if name in keep:
                i = keep.index(name)
                out = out.set_column(i, name, pc.dictionary_encode(out.column(i)))
        return out


def _file_identity(path: str) -> tuple[int, int, int] | None:
    """(inode, size, mtime) of a local file; None for object storage (names are never reused)."""
    if "://" in path:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _merged(entry: _FieldEntry | None, requests: Sequence[FieldRequest]) -> list[FieldRequest]:
    have = list(entry.requests) if entry is not None else []
    return have + [r for r in requests if r not in have]


def _columns(entry: _FieldEntry, requests: list[FieldRequest], base: list[str]) -> pa.Table:
    """The entry's ``base`` columns, ``__pos`` and its fields for ``requests``, named ``__f0,
    __f1, ...`` in request order."""
    table = entry.table
    first = table.schema.get_field_index("__pos") + 1
    arrays = [table.column(name) for name in base] + [table.column("__pos")]
    arrays += [table.column(first + entry.requests.index(r)) for r in requests]
    return pa.table(arrays, names=[*base, "__pos"] + [f"__f{j}" for j in range(len(requests))])


@dataclass
class _FieldsRelation:
    fields: pa.Table | None = None  # (__pos, __f...) of every row, to join
    cold: pa.Table | None = None  # narrow: the cold rows with their fields
    hot: pa.Table | None = None  # narrow: the hot rows (with day and tier) with their fields


def _unique_key(columns: list[pa.ChunkedArray]) -> bool:
    """No NULL (seq out of range) and no key twice."""
    chunks = [c for col in columns for c in col.chunks]
    n = sum(len(c) for c in chunks)
    if any(c.null_count for c in chunks):
        return False
    if n < 2:
        return True
    return int(pc.count_distinct(pa.chunked_array(chunks, pa.int64())).as_py()) == n


def _sql_over(con: duckdb.DuckDBPyConnection, tables: dict[str, Any], sql: str, params: Any) -> pa.Table:
    """``sql`` as Arrow, with ``tables`` (Arrow tables or datasets) registered under their names
    for the statement only."""
    for name, table in tables.items():
        con.register(name, table)
    try:
        return con.sql(sql, params=params).to_arrow_table()
    finally:
        for name in tables:
            con.unregister(name)


@contextmanager
def out_of_memory_as_query_error(what: str) -> Iterator[None]:
    """Running out of memory (DuckDB's memory_limit, or the process's) becomes a QueryError that
    names the settings to change."""
    try:
        yield
    except (MemoryError, duckdb.OutOfMemoryException) as exc:
        raise QueryError(
            f"reading {what} ran out of memory ({type(exc).__name__}: {str(exc)[:200]}). Lower "
            "FileSystemStore(cache_bytes=...) or threads=, raise memory_limit= (DuckDB's share), or raise the "
            "process's limits: DuckDB and pyarrow reserve about 2 GB of address space (ulimit -v) even when "
            "they use far less memory; README 'Memory' gives what each read needs"
        ) from exc


# A replay step reads consecutive days until their files hold about this much data (JSONL
# bytes, or Parquet bytes times 10): about 60,000 records of the sample workspace.
STEP_BYTES = 32 << 20


def _runs(days: list[date], size: Callable[[date], int]) -> Iterator[tuple[date, date]]:
    """Consecutive runs of ``days`` (sorted) whose summed ``size`` stays under STEP_BYTES (a
    day bigger than that is a run of its own)."""
    if not days:
        return
    run_first = run_last = days[0]
    total = size(days[0])
    for day in days[1:]:
        weight = size(day)
        if total + weight > STEP_BYTES:
            yield run_first, run_last
            run_first, total = day, 0
        run_last = day
        total += weight
    yield run_first, run_last


@dataclass
class _Snapshot:
    """What a read sees: hot rows (with day/tier columns), the cold files and the shared ids of
    its days, and the cold tier's version when the hot files were read."""

    hot: pa.Table | None
    files: list[str]
    shared: list[str]
    version: Any
    dataset: Any = None  # the cold files as a pyarrow dataset (object storage), else None
    hot_days: list[tuple[date, pa.Table]] = field(default_factory=list)  # each day's hot rows (no positions)
    cold_days: dict[date, list[str]] = field(default_factory=dict)  # each day's cold files
    extra: dict[str, pa.Table] = field(default_factory=dict)  # tables a query's build registers


_ONE_DAY = timedelta(days=1)
_ONE_US = timedelta(microseconds=1)


def _day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=timezone.utc)


_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


def _with_position(table: pa.Table, day: date, tier: int) -> pa.Table:
    n = table.num_rows
    # Built from raw buffers: converting a Python value (pa.scalar, pa.array) makes pyarrow import
    # pandas when it is installed, 0.2 s of a fresh process's first query.
    days = array("i", [day.toordinal() - _EPOCH_ORDINAL]) * n
    table = table.append_column("day", pa.Array.from_buffers(pa.date32(), n, [None, pa.py_buffer(days)]))
    return table.append_column("tier", pa.Array.from_buffers(pa.int8(), n, [None, pa.py_buffer(bytes([tier]) * n)]))


__all__ = ["ANALYSIS_COLUMNS", "SIGNAL_ENTITY_KEY", "Filter", "QueryEngine", "json_pointer"]
