"""Parsing JSONL bytes into Arrow rows of the kind's schema.

Two paths produce the same rows:

* the bulk path lets DuckDB parse a whole file (about 1 GB/s here) and keeps only rows that are
  plain, well-typed records; everything else is handed to
* the exact path, which decodes one line with orjson and applies metaspn-schemas' ``from_dict``
  just as 0.1.8 does. Lines it cannot read become :class:`BadLineReport` entries, never errors.

Row ``seq`` is the 0-based line number inside the file, so ``(day, seq)`` is append order.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from metaspn_store._codec import (
    KNOWN_KEYS,
    BadLine,
    row_from_line,
    rows_to_table,
    schema_for,
)
from metaspn_store._layout import SIGNALS, Kind

# Below this many bytes a chunk is parsed line by line in Python (no DuckDB round trip).
BULK_THRESHOLD = 256 * 1024
_TS_CANONICAL = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})$"
_REF_JSON_SCHEMA = (
    '[{"ref_type":"VARCHAR","value":"VARCHAR","platform":"VARCHAR","label":"VARCHAR","schema_version":"VARCHAR"}]'
)


# True only for a trace with exactly the shape TraceContext.to_dict writes (the condition of
# _codec.trace_from_json(strict=True)); any other trace sends its line to the exact path.
_TRACE_OK = """(trace IS NULL OR (
    json_type(trace) = 'OBJECT'
    -- a repeated key: DuckDB reads the first, orjson the last; let the exact path decide
    AND len(json_keys(trace)) = len(list_distinct(json_keys(trace)))
    AND coalesce(len(json_keys(trace, '$.metadata')) = len(list_distinct(json_keys(trace, '$.metadata'))), true)
    AND list_has_all(
        ['trace_id', 'caused_by', 'provenance', 'redactions', 'metadata', 'privacy_mode', 'schema_version'],
        json_keys(trace))
    AND json_type(trace, '$.trace_id') = 'VARCHAR'
    AND coalesce(json_type(trace, '$.caused_by'), 'ARRAY') = 'ARRAY'
    AND coalesce(list_bool_and(list_transform(json_extract(trace, '$.caused_by[*]'),
        lambda x: json_type(x) = 'VARCHAR')), true)
    AND coalesce(json_type(trace, '$.redactions'), 'ARRAY') = 'ARRAY'
    AND coalesce(list_bool_and(list_transform(json_extract(trace, '$.redactions[*]'),
        lambda x: json_type(x) = 'VARCHAR')), true)
    AND coalesce(json_type(trace, '$.metadata'), 'OBJECT') = 'OBJECT'
    AND coalesce(list_bool_and(list_transform(json_extract(trace, '$.metadata.*'),
        lambda x: json_type(x) = 'VARCHAR')), true)
    AND coalesce(json_type(trace, '$.privacy_mode'), 'BOOLEAN') = 'BOOLEAN'
    AND coalesce(json_type(trace, '$.provenance'), 'NULL') IN ('NULL', 'VARCHAR')
    AND coalesce(json_type(trace, '$.schema_version'), 'VARCHAR') = 'VARCHAR'
))"""


@dataclass(frozen=True)
class BadLineReport:
    path: str
    line: int  # 1-based, as editors count
    reason: str


def _bulk_sql(kind: Kind) -> str:
    """SQL turning read_json's JSON columns into canonical columns plus validity flags.

    ``ok_rest`` is true only for rows whose every field (the payload aside) has the exact JSON
    type an envelope written by metaspn-schemas has; other rows are re-read through the exact path.
    The inner query computes each conversion once; the outer one only combines them.
    """
    if kind is SIGNALS:
        first, second = "source", "payload_type"
        raw_inner = "raw::VARCHAR AS raw, (raw IS NULL OR json_type(raw) = 'OBJECT') AS raw_ok,"
    else:
        first, second = "emission_type", "caused_by"
        raw_inner = "NULL::VARCHAR AS raw, true AS raw_ok,"
    idc = kind.id_field
    return f"""  -- noqa: S608 (fixed fragments only; the path is a bind parameter)
        SELECT
            {idc}, TRY_CAST(ts_text AS TIMESTAMPTZ) AS timestamp, {first}, {second}, payload,
            schema_version, entity_refs, trace, raw, NULL::VARCHAR AS extra,
            (
                id_t = 'VARCHAR' AND length({idc}) > 0
                AND ts_t = 'VARCHAR' AND regexp_full_match(ts_text, '{_TS_CANONICAL}')
                AND first_t = 'VARCHAR' AND second_t = 'VARCHAR' AND sv_t = 'VARCHAR'
                AND refs_t = 'ARRAY'
                AND coalesce(list_bool_and(list_transform(entity_refs,
                        lambda r: r IS NOT NULL AND r.ref_type IS NOT NULL AND r.value IS NOT NULL
                             AND r.schema_version IS NOT NULL)), true)
                AND trace_ok AND raw_ok
            ) IS TRUE AS ok_rest,
            payload IS NOT NULL AS has_payload
        FROM (
            SELECT
                {idc}->>'$' AS {idc}, json_type({idc}) AS id_t,
                timestamp->>'$' AS ts_text, json_type(timestamp) AS ts_t,
                {first}->>'$' AS {first}, json_type({first}) AS first_t,
                {second}->>'$' AS {second}, json_type({second}) AS second_t,
                payload::VARCHAR AS payload,
                schema_version->>'$' AS schema_version, json_type(schema_version) AS sv_t,
                from_json(entity_refs, '{_REF_JSON_SCHEMA}') AS entity_refs, json_type(entity_refs) AS refs_t,
                trace::VARCHAR AS trace, {_TRACE_OK} AS trace_ok,
                {raw_inner}
            FROM read_json(
                $path, format = 'newline_delimited', records = true, columns = $columns,
                ignore_errors = true, maximum_object_size = 16777216
            )
        )
    """


_COLUMNS = {
    "signals": {
        name: "JSON"
        for name in (
            "signal_id",
            "timestamp",
            "source",
            "payload_type",
            "payload",
            "schema_version",
            "entity_refs",
            "trace",
            "raw",
        )
    },
    "emissions": {
        name: "JSON"
        for name in (
            "emission_id",
            "timestamp",
            "emission_type",
            "caused_by",
            "payload",
            "schema_version",
            "entity_refs",
            "trace",
        )
    },
}


def new_connection(threads: int = 2, memory_limit: str = "2GB") -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with the settings every read uses."""
    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"SET threads = {int(threads)}")
    # SET takes no bind parameters; the value is validated to a plain size literal first.
    con.execute(f"SET memory_limit = '{_safe_memory(memory_limit)}'")
    con.execute("SET preserve_insertion_order = true")
    return con


def _safe_memory(text: str) -> str:
    if not re.fullmatch(r"\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)", text.strip()):
        raise ValueError(f"memory limit {text!r} must look like '2GB' or '512MiB'")
    return text.strip()


def parse_lines_exact(
    kind: Kind, lines: Sequence[bytes], first_line: int, path: str
) -> tuple[list[dict], list[BadLineReport]]:
    """Exact path: decode each line on its own; blank lines are skipped like 0.1.8 does."""
    rows: list[dict] = []
    bad: list[BadLineReport] = []
    for offset, line in enumerate(lines):
        if not line.strip():
            continue
        seq = first_line + offset
        try:
            rows.append(row_from_line(kind, line, seq))
        except BadLine as exc:
            bad.append(BadLineReport(path, seq + 1, str(exc)))
    return rows, bad


def parse_chunk(
    kind: Kind,
    con: duckdb.DuckDBPyConnection,
    data: bytes,
    first_line: int,
    path: str,
    *,
    whole_file: Path | None = None,
    keep_extra: bool = False,
) -> tuple[pa.Table, list[BadLineReport], int]:
    """Parse ``data`` (complete lines, ending with a newline) that starts at line ``first_line``.

    ``whole_file`` may name a file whose first ``len(data)`` bytes are ``data`` (the bulk path then
    reads it in place instead of copying). ``keep_extra`` (the compactor) also fills the ``extra``
    column with top-level keys the envelope does not know, which plain reads have no use for.
    Returns (rows, bad lines, number of lines consumed).
    """
    n_lines = data.count(b"\n")
    if len(data) < BULK_THRESHOLD:
        return _exact(kind, data, first_line, path, n_lines)
    table = None
    extra: pa.Table | None = None
    if whole_file is not None:
        table = _bulk(kind, con, whole_file)
        # DuckDB read the live file: rows past our last newline belong to later appends. Blank
        # lines give no row, so check that row n-1 really is our last line before trusting seq.
        if table.num_rows < n_lines or not _last_row_matches(kind, table, n_lines, data):
            table = None
        elif keep_extra:
            extra = _extra_keys_mask(kind, con, whole_file)
    if table is None:
        with tempfile.NamedTemporaryFile("wb", suffix=".jsonl", delete=False) as handle:
            handle.write(data)
            tmp = handle.name
        try:
            table = _bulk(kind, con, Path(tmp))
            if keep_extra:
                extra = _extra_keys_mask(kind, con, Path(tmp))
        finally:
            os.unlink(tmp)
        if table.num_rows != n_lines:
            # Blank lines (no DuckDB row) make positions ambiguous: read every line exactly.
            return _exact(kind, data, first_line, path, n_lines)
    table = table.slice(0, n_lines)
    seq = pa.array(range(first_line, first_line + n_lines), pa.int64())
    ok_rest = table.column("ok_rest")
    if extra is not None:
        # Lines with unknown top-level keys go through the exact path, which keeps them in ``extra``.
        has_extra = extra.column("has_extra").slice(0, n_lines)
        ok_rest = pc.and_(ok_rest, pc.invert(pc.fill_null(has_extra, False)))
    has_payload = table.column("has_payload")
    table = table.drop_columns(["ok_rest", "has_payload"]).append_column("seq", seq)
    if pc.all(ok_rest).as_py() and pc.all(has_payload).as_py():
        return table.cast(schema_for(kind)), [], n_lines
    table, bad = _repair(kind, table, ok_rest, has_payload, data, first_line, path)
    return table, bad, n_lines


def _extra_keys_mask(kind: Kind, con: duckdb.DuckDBPyConnection, file: Path) -> pa.Table:
    """One row per line (same alignment as the bulk read): does it carry unknown top-level keys?"""
    known = sorted(KNOWN_KEYS[kind.name])
    return con.sql(
        "SELECT len(list_filter(json_keys(j), lambda k: NOT list_contains($known, k))) > 0 AS has_extra "
        "FROM read_json($path, format = 'newline_delimited', records = false, columns = {'j': 'JSON'}, "
        "ignore_errors = true, maximum_object_size = 16777216)",
        params={"path": str(file), "known": known},
    ).to_arrow_table()


def _exact(
    kind: Kind, data: bytes, first_line: int, path: str, n_lines: int
) -> tuple[pa.Table, list[BadLineReport], int]:
    rows, bad = parse_lines_exact(kind, data.split(b"\n")[:-1], first_line, path)
    return rows_to_table(kind, rows), bad, n_lines


def _last_row_matches(kind: Kind, table: pa.Table, n_lines: int, data: bytes) -> bool:
    last_line = data[data.rfind(b"\n", 0, len(data) - 1) + 1 : -1]
    try:
        record = orjson.loads(last_line)
    except orjson.JSONDecodeError:
        return bool(table.column("ok_rest")[n_lines - 1].as_py() is False)
    if not isinstance(record, dict):
        return bool(table.column("ok_rest")[n_lines - 1].as_py() is False)
    return bool(table.column(kind.id_field)[n_lines - 1].as_py() == record.get(kind.id_field))


def _bulk(kind: Kind, con: duckdb.DuckDBPyConnection, file: Path) -> pa.Table:
    rel = con.sql(_bulk_sql(kind), params={"path": str(file), "columns": _COLUMNS[kind.name]})
    return rel.to_arrow_table()


def _repair(
    kind: Kind,
    table: pa.Table,
    ok_rest: pa.ChunkedArray,
    has_payload: pa.ChunkedArray,
    data: bytes,
    first_line: int,
    path: str,
) -> tuple[pa.Table, list[BadLineReport]]:
    """Vouch for or re-read the rows the bulk path could not vouch for.

    A JSON ``null`` payload and a missing one both arrive as SQL NULL; the line tells them apart
    (null is a valid payload, missing is not). Everything else unusual takes the exact path.
    """
    ok_list = ok_rest.to_pylist()
    payload_list = has_payload.to_pylist()
    lines: list[bytes] | None = None
    redo: list[int] = []
    null_payload: list[int] = []
    for i in range(table.num_rows):
        if not ok_list[i]:
            redo.append(i)
        elif not payload_list[i]:
            if lines is None:
                lines = data.split(b"\n")
            record = orjson.loads(lines[i])
            if isinstance(record, dict) and "payload" in record and record["payload"] is None:
                null_payload.append(i)
            else:
                redo.append(i)
    schema = schema_for(kind)
    if null_payload:
        is_null = pc.is_null(table.column("payload"))
        table = table.set_column(
            table.schema.get_field_index("payload"),
            "payload",
            pc.if_else(is_null, pa.scalar("null", pa.string()), table.column("payload")),
        )
    if not redo:
        return table.cast(schema), []
    if lines is None:
        lines = data.split(b"\n")
    keep_mask = [True] * table.num_rows
    for i in redo:
        keep_mask[i] = False
    fixed_rows: list[dict] = []
    bad: list[BadLineReport] = []
    for i in redo:
        try:
            fixed_rows.append(row_from_line(kind, lines[i], first_line + i))
        except BadLine as exc:
            bad.append(BadLineReport(path, first_line + i + 1, str(exc)))
    kept = table.filter(pa.array(keep_mask)).cast(schema)
    merged = pa.concat_tables([kept, rows_to_table(kind, fixed_rows)]).sort_by("seq")
    return merged, bad
