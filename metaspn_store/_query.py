"""Query layer: DuckDB over both tiers, parameterised SQL only.

Every read names a window ``[start, end]`` (inclusive, UTC microseconds). Only the day
partitions from ``start.date()`` to ``end.date()`` are opened. Rows of those partitions form one
relation with ``day``, ``tier`` (0 cold, 1 hot) and ``seq`` (append order in the day); an id that
appears more than once keeps only its first row in ``(day, tier, seq)`` order (first write wins).

User values (sources, types, payload keys and values, entity refs) are always bind parameters;
payload keys become RFC 6901 JSON pointers, which DuckDB takes as data.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import duckdb
import pyarrow as pa

from metaspn_store._codec import TS_TYPE, EnvelopeBuilder, ensure_utc, schema_for
from metaspn_store._layout import Kind
from metaspn_store.errors import QueryError

_NUMERIC_JSON = ("BIGINT", "UBIGINT", "DOUBLE", "BOOLEAN")


def json_pointer(key: str) -> str:
    """RFC 6901 pointer to a top-level key (``~`` and ``/`` escaped; everything else literal)."""
    return "/" + key.replace("~", "~0").replace("/", "~1")


@dataclass
class Filter:
    """A WHERE clause built from fragments and named parameters (never from user text)."""

    clauses: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    _n: int = 0

    def param(self, value: Any) -> str:
        self._n += 1
        name = f"p{self._n}"
        self.params[name] = value
        return f"${name}"

    def add(self, clause: str) -> None:
        self.clauses.append(clause)

    def in_list(self, column: str, values: Sequence[str] | None) -> None:
        """``values`` empty or None means no filter (0.1.8 semantics)."""
        if values:
            self.add(f"list_contains({self.param([str(v) for v in values])}::VARCHAR[], {column})")

    def not_in_list(self, column: str, values: Sequence[str]) -> None:
        self.add(f"NOT list_contains({self.param(list(values))}::VARCHAR[], {column})")

    def entity(self, ref: Any) -> None:
        if ref is None:
            return
        parts = [
            f"r.{name} IS NOT DISTINCT FROM {self.param(getattr(ref, name))}::VARCHAR"
            for name in ("ref_type", "value", "platform", "label", "schema_version")
        ]
        self.add(f"len(list_filter(entity_refs, lambda r: {' AND '.join(parts)})) > 0")

    def payload_equals(self, key: str, expected: Any) -> bool:
        """Add ``payload.get(key) == expected`` when SQL can say it exactly; else return False."""
        if not isinstance(expected, str) and expected is not None:
            self.add("json_type(payload) = 'OBJECT'")
            return False
        ptr = self.param(json_pointer(key))
        if isinstance(expected, str):
            self.add(
                f"json_type(payload) = 'OBJECT' AND json_type(payload, {ptr}) = 'VARCHAR' "
                f"AND json_extract_string(payload, {ptr}) = {self.param(expected)}"
            )
            return True
        self.add(f"json_type(payload) = 'OBJECT' AND coalesce(json_type(payload, {ptr}), 'NULL') = 'NULL'")
        return True

    def sql(self) -> str:
        return " AND ".join(f"({c})" for c in self.clauses) if self.clauses else "TRUE"


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
    ) -> None:
        self.kind = kind
        self._version = version
        self._hot_table = hot_table
        self._hot_days = hot_days
        self._cold_files = cold_files
        self._connection = connection
        self._schema = schema_for(kind)
        self._local = threading.local()

    # ------------------------------------------------------------------ relations

    def _days(self, first: date, last: date) -> tuple[list[date], dict[date, list[str]]]:
        cold = self._cold_files(first, last)
        days = {d for d in self._hot_days() if first <= d <= last} | set(cold)
        return sorted(days), cold

    def _day_table(self, day: date, cold: dict[date, list[str]] | None = None) -> pa.Table | None:
        """Rows of one day from both tiers, with day and tier columns, cold rows first.

        Hot rows are read before the manifest, and the read is retried if a compaction committed
        in between, so a day is never seen in both tiers or in neither.
        """
        for _attempt in range(20):
            before = self._version()
            hot = self._hot_table(day)
            files = self._cold_files(day, day).get(day)
            parts = []
            try:
                if files:
                    con = self._connection()
                    cold_table = con.sql(
                        "SELECT * FROM read_parquet($files, hive_partitioning = false)",
                        params={"files": files},
                    ).to_arrow_table()
                    cold_table = cold_table.select(self._schema.names).cast(self._schema).sort_by("seq")
                    parts.append(_with_position(cold_table, day, 0))
            except (duckdb.IOException, duckdb.InvalidInputException, FileNotFoundError):
                continue  # a compaction replaced the files we listed: read again
            if self._version() != before:
                continue
            if hot is not None and hot.num_rows:
                parts.append(_with_position(hot, day, 1))
            if not parts:
                return None
            return parts[0] if len(parts) == 1 else pa.concat_tables(parts)
        raise QueryError(f"{self.kind.name} of {day} kept changing under concurrent compactions; try again")

    def _window(self, start: datetime, end: datetime) -> tuple[datetime, datetime]:
        start_utc, end_utc = ensure_utc(start), ensure_utc(end)
        if end_utc < start_utc:
            raise ValueError("end must be greater than or equal to start")
        return start_utc, end_utc

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
    ) -> pa.Table:
        """Rows in the window passing ``flt``, deduplicated, ordered by ``order``."""
        start_utc, end_utc = self._window(start, end)
        days, cold = self._days(start_utc.date(), end_utc.date())
        tables = [t for t in (self._day_table(d, cold) for d in days) if t is not None]
        if not tables:
            return self._schema.empty_table()
        rows = pa.concat_tables(tables)
        params = dict(flt.params)
        params["__start"] = start_utc
        params["__end"] = end_utc
        idc = self.kind.id_field
        inner = f"""
            WITH base AS (SELECT * FROM rows),
            dups AS (
                SELECT {idc} AS dup_id, min(struct_pack(d := day, t := tier, s := seq)) AS first_pos
                FROM base GROUP BY {idc} HAVING count(*) > 1
            ),
            firsts AS (
                SELECT base.* FROM base LEFT JOIN dups ON base.{idc} = dups.dup_id
                WHERE dups.dup_id IS NULL
                   OR dups.first_pos = struct_pack(d := base.day, t := base.tier, s := base.seq)
            )
            SELECT *{extra_columns} FROM firsts
            WHERE timestamp BETWEEN $__start AND $__end AND {flt.sql()}
        """
        if post_sql is not None:
            query = post_sql.replace("{inner}", inner)
        else:
            query = f"SELECT * FROM ({inner}) ORDER BY {order}"
        if limit is not None:
            query += f" LIMIT {int(limit)}"
        con = self._connection()
        try:
            con.register("rows", rows)
            try:
                return con.sql(query, params=params).to_arrow_table()
            finally:
                con.unregister("rows")
        except duckdb.Error as exc:
            raise QueryError(f"query over {self.kind.name} failed: {exc}") from exc

    def envelopes(self, table: pa.Table) -> list[Any]:
        return EnvelopeBuilder(self.kind).build(table)

    def stream(self, start: datetime, end: datetime, flt: Filter, *, batch_rows: int = 50_000) -> Iterator[Any]:
        """Envelopes in (timestamp, append order), one day partition at a time (bounded memory)."""
        start_utc, end_utc = self._window(start, end)
        days, cold = self._days(start_utc.date(), end_utc.date())
        builder = EnvelopeBuilder(self.kind)
        for day in days:
            # A record lives in its timestamp's day file, so day order is timestamp order.
            table = self._select_day(day, days, cold, start_utc, end_utc, flt)
            for offset in range(0, table.num_rows, batch_rows):
                yield from builder.build(table.slice(offset, batch_rows))

    def _select_day(
        self,
        day: date,
        days: list[date],
        cold: dict[date, list[str]],
        start_utc: datetime,
        end_utc: datetime,
        flt: Filter,
    ) -> pa.Table:
        table = self._day_table(day, cold)
        if table is None:
            return self._schema.empty_table()
        dups = self._cross_day_duplicates(days, cold)
        params = dict(flt.params)
        params["__start"] = start_utc
        params["__end"] = end_utc
        idc = self.kind.id_field
        con = self._connection()
        query = f"""
            WITH local_dups AS (
                SELECT {idc} AS dup_id, min(struct_pack(d := day, t := tier, s := seq)) AS first_pos
                FROM day_rows GROUP BY {idc} HAVING count(*) > 1
            ),
            all_dups AS (
                SELECT dup_id, min(first_pos) AS first_pos FROM (
                    SELECT * FROM local_dups UNION ALL SELECT dup_id, first_pos FROM cross_dups
                ) GROUP BY dup_id
            )
            SELECT day_rows.* FROM day_rows LEFT JOIN all_dups ON day_rows.{idc} = all_dups.dup_id
            WHERE (all_dups.dup_id IS NULL
                   OR all_dups.first_pos = struct_pack(d := day_rows.day, t := day_rows.tier, s := day_rows.seq))
              AND timestamp BETWEEN $__start AND $__end AND {flt.sql()}
            ORDER BY timestamp, day, tier, seq
        """
        try:
            con.register("day_rows", table)
            con.register("cross_dups", dups)
            try:
                return con.sql(query, params=params).to_arrow_table()
            finally:
                con.unregister("day_rows")
                con.unregister("cross_dups")
        except duckdb.Error as exc:
            raise QueryError(f"query over {self.kind.name} failed: {exc}") from exc

    def _cross_day_duplicates(self, days: list[date], cold: dict[date, list[str]]) -> pa.Table:
        """Ids present on more than one of ``days``, with the position of their first row."""
        key = (tuple(days), tuple(sorted((d, tuple(f)) for d, f in cold.items())))
        cached = getattr(self._local, "dups", None)
        if cached is not None and cached[0] == key and cached[2] == self._hot_version(days):
            return cached[1]
        idc = self.kind.id_field
        parts = []
        for day in days:
            t = self._day_table(day, cold)
            if t is not None:
                parts.append(t.select([idc, "day", "tier", "seq"]))
        con = self._connection()
        if parts:
            ids = pa.concat_tables(parts)
            con.register("id_rows", ids)
            try:
                dups = con.sql(
                    f"SELECT {idc} AS dup_id, min(struct_pack(d := day, t := tier, s := seq)) AS first_pos "
                    f"FROM id_rows GROUP BY {idc} HAVING count(DISTINCT day) > 1"
                ).to_arrow_table()
            finally:
                con.unregister("id_rows")
        else:
            dups = con.sql(
                "SELECT NULL::VARCHAR AS dup_id, struct_pack(d := NULL::DATE, t := NULL::INTEGER, s := NULL::BIGINT) "
                "AS first_pos WHERE false"
            ).to_arrow_table()
        self._local.dups = (key, dups, self._hot_version(days))
        return dups

    def _hot_version(self, days: list[date]) -> tuple[int, ...]:
        out = []
        for d in days:
            t = self._hot_table(d)
            out.append(-1 if t is None else t.num_rows)
        return tuple(out)


def _with_position(table: pa.Table, day: date, tier: int) -> pa.Table:
    n = table.num_rows
    table = table.append_column("day", pa.repeat(pa.scalar(day, pa.date32()), n))
    return table.append_column("tier", pa.repeat(pa.scalar(tier, pa.int8()), n))


__all__ = ["Filter", "QueryEngine", "json_pointer", "TS_TYPE"]
