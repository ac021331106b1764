"""Parsing JSONL bytes into Arrow rows of the kind's schema.

Two paths produce the same rows, warnings and reports (what a valid line is, and when the bulk
path may vouch for one, is written in :mod:`metaspn_store._rules`):

* the bulk path (chunks from ``BULK_THRESHOLD`` bytes) lets DuckDB split and parse the lines and
  vouches only for lines that pass every condition of ``_rules.BULK_SCREEN``; every other line
  is handed to
* the exact path, the definition itself (``_rules.row_from_line``), one line at a time. Lines it
  cannot read become :class:`BadLineReport` entries, never errors.

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
import pyarrow as pa
import pyarrow.compute as pc

from metaspn_store import _rules
from metaspn_store._codec import KNOWN_KEYS, rows_to_table, schema_for
from metaspn_store._layout import SIGNALS, Kind
from metaspn_store._rules import BULK_THRESHOLD, BadLine, is_blank, row_from_line

_REF_JSON_SCHEMA = (
    '[{"ref_type":"VARCHAR","value":"VARCHAR","platform":"VARCHAR","label":"VARCHAR","schema_version":"VARCHAR"}]'
)


def _trace_ok(trace: str) -> str:
    """True only for a trace with exactly the shape TraceContext.to_dict writes (then the
    line-by-line reader would store the same text); JSON null is a valid trace too."""
    return f"""(json_type({trace}) = 'NULL' OR (
    json_type({trace}) = 'OBJECT'
    AND len(json_keys({trace})) = 7
    AND list_has_all(
        ['trace_id', 'caused_by', 'provenance', 'redactions', 'metadata', 'privacy_mode', 'schema_version'],
        json_keys({trace}))
    AND json_type({trace}, '$.trace_id') = 'VARCHAR'
    AND json_type({trace}, '$.caused_by') = 'ARRAY'
    AND coalesce(list_bool_and(list_transform(json_extract({trace}, '$.caused_by[*]'),
        lambda x: json_type(x) = 'VARCHAR')), true)
    AND json_type({trace}, '$.redactions') = 'ARRAY'
    AND coalesce(list_bool_and(list_transform(json_extract({trace}, '$.redactions[*]'),
        lambda x: json_type(x) = 'VARCHAR')), true)
    AND json_type({trace}, '$.metadata') = 'OBJECT'
    AND list_unique(json_keys({trace}, '$.metadata')) = len(json_keys({trace}, '$.metadata'))
    AND coalesce(list_bool_and(list_transform(json_extract({trace}, '$.metadata.*'),
        lambda x: json_type(x) = 'VARCHAR')), true)
    AND json_type({trace}, '$.privacy_mode') = 'BOOLEAN'
    AND json_type({trace}, '$.provenance') IN ('NULL', 'VARCHAR')
    AND json_type({trace}, '$.schema_version') = 'VARCHAR'
))"""


def _unique_keys(value: str) -> str:
    """True unless ``value`` (a JSON object) repeats a key (DuckDB keeps the first of a repeated
    key, the line-by-line reader the last)."""
    return f"list_unique(json_keys({value})) = len(json_keys({value}))"


def _all(types: str, allowed: str) -> str:
    """Every JSON type in the list ``types`` is one of ``allowed`` (an SQL list literal)."""
    return f"coalesce(list_bool_and(list_transform({types}, lambda t: list_contains({allowed}, t))), true)"


# Each ref an object with string fields (platform and label may be null or absent) and no
# repeated key. One parse per wildcard path; an element that is not an object, or lacks a
# required field, makes that field's type list shorter than the array.
_REFS_OK = f"""((
    {_all("json_type(refs_j, '$[*]')", "['OBJECT']")}
    AND len(json_type(refs_j, '$[*].ref_type')) = json_array_length(refs_j)
    AND len(json_type(refs_j, '$[*].value')) = json_array_length(refs_j)
    AND len(json_type(refs_j, '$[*].schema_version')) = json_array_length(refs_j)
    AND {_all("json_type(refs_j, '$[*].ref_type')", "['VARCHAR']")}
    AND {_all("json_type(refs_j, '$[*].value')", "['VARCHAR']")}
    AND {_all("json_type(refs_j, '$[*].schema_version')", "['VARCHAR']")}
    AND {_all("json_type(refs_j, '$[*].platform')", "['NULL', 'VARCHAR']")}
    AND {_all("json_type(refs_j, '$[*].label')", "['NULL', 'VARCHAR']")}
    AND coalesce(list_bool_and(list_transform(json_keys(refs_j, '$[*]'),
        lambda k: list_unique(k) = len(k))), true)
))"""


@dataclass(frozen=True)
class BadLineReport:
    path: str
    line: int  # 1-based, as editors count
    reason: str


def _bulk_sql(kind: Kind) -> str:
    """SQL turning the lines of a file into rows of the kind's schema plus an ``ok`` flag.

    One row per line (``i`` from 0, blank lines included), so line numbers never depend on
    what DuckDB skips. ``ok`` is true only for lines every condition of ``_rules.BULK_SCREEN``
    vouches for; the other rows are placeholders the caller replaces with the line-by-line
    reader's verdict. Each JSON function parses its argument again, so the types of all
    top-level fields come from one multi-path ``json_type`` call, and checks of optional parts
    (trace, raw, object payloads) run only where those parts are objects.
    """
    if kind is SIGNALS:
        first, second = "source", "payload_type"
        keys = ["signal_id", "timestamp", "source", "payload_type", "payload", "schema_version",
                "entity_refs", "trace", "raw"]
    else:
        first, second = "emission_type", "caused_by"
        keys = ["emission_id", "timestamp", "emission_type", "caused_by", "payload", "schema_version",
                "entity_refs", "trace"]
    assert set(keys) == KNOWN_KEYS[kind.name]
    at = {name: i + 1 for i, name in enumerate(keys)}
    paths = ", ".join(f"'$.{name}'" for name in keys)
    idc = kind.id_field
    known = "[" + ", ".join(f"'{k}'" for k in keys) + "]"
    # The JSON type each top-level field must have (None: any).
    expected = {idc: "VARCHAR", "timestamp": "VARCHAR", first: "VARCHAR", second: "VARCHAR",
                "schema_version": "VARCHAR", "entity_refs": "ARRAY"}
    type_checks = " AND ".join(f"types[{at[name]}] = '{t}'" for name, t in expected.items())
    optional_objects = ["trace", "raw"] if kind is SIGNALS else ["trace"]
    type_checks += "".join(f" AND types[{at[name]}] IN ('NULL', 'OBJECT')" for name in optional_objects)
    raw_col = (
        f"CASE WHEN types[{at['raw']}] = 'OBJECT' THEN v[{at['raw']}]::VARCHAR END" if kind is SIGNALS
        else "NULL::VARCHAR"
    )
    raw_value = f"v[{at['raw']}]" if kind is SIGNALS else ""
    raw_ok = (
        f"CASE WHEN types[{at['raw']}] = 'OBJECT' THEN {_unique_keys(raw_value)} ELSE true END"
        if kind is SIGNALS else "true"
    )
    return f"""
        WITH src AS (SELECT string_split(content, chr(10)) AS lines FROM read_text($path)),
        numbered AS (SELECT unnest(range(len(lines))) AS i, unnest(lines) AS line FROM src),
        parsed AS (
            SELECT i, line, TRY_CAST(line AS JSON) AS j FROM numbered WHERE i < $n
        ),
        fields AS (
            SELECT i, line, j, json_keys(j) AS top_keys, json_extract(j, [{paths}]) AS v,
                json_type(j, [{paths}]) AS types,
                v[{at['timestamp']}]->>'$' AS ts_text, v[{at['entity_refs']}] AS refs_j
            FROM (SELECT i, line, CASE WHEN json_type(j) = 'OBJECT' THEN j END AS j FROM parsed)
        )
        SELECT
            fields.i,
            CASE WHEN fields.i = $n - 1 THEN fields.line END AS tail,
            v[{at[idc]}]->>'$' AS {idc},
            TRY_CAST(ts_text AS TIMESTAMPTZ) AS timestamp,
            v[{at[first]}]->>'$' AS {first},
            v[{at[second]}]->>'$' AS {second},
            v[{at['payload']}]::VARCHAR AS payload,
            v[{at['schema_version']}]->>'$' AS schema_version,
            from_json(refs_j, '{_REF_JSON_SCHEMA}') AS entity_refs,
            CASE WHEN types[{at['trace']}] = 'OBJECT' THEN v[{at['trace']}]::VARCHAR END AS trace,
            {raw_col} AS raw,
            (
                j IS NOT NULL
                AND len(top_keys) = {len(keys)} AND list_has_all(top_keys, {known})
                AND {type_checks}
                AND length(v[{at[idc]}]->>'$') > 0
                AND NOT regexp_matches(fields.line, $suspicious)
                AND length(fields.line) - length(replace(replace(fields.line, '{{', ''), '[', '')) < $max_open
                AND strlen(fields.line) <= $max_line
                AND regexp_full_match(ts_text, $ts_pattern)
                AND TRY_CAST(left(ts_text, 10) AS DATE) IS NOT NULL
                AND TRY_CAST(ts_text AS TIMESTAMPTZ) IS NOT NULL
                AND CASE WHEN types[{at['payload']}] = 'OBJECT' THEN {_unique_keys(f"v[{at['payload']}]")} ELSE true END
                AND {raw_ok}
                AND CASE WHEN json_array_length(refs_j) > 0 THEN {_REFS_OK} ELSE true END
                AND CASE WHEN types[{at['trace']}] = 'OBJECT' THEN {_trace_ok(f"v[{at['trace']}]")} ELSE true END
            ) IS TRUE AS ok
        FROM fields
        ORDER BY fields.i
    """


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
    """Line by line, by the definition (``_rules.row_from_line``); blank lines are skipped."""
    rows: list[dict] = []
    bad: list[BadLineReport] = []
    for offset, line in enumerate(lines):
        if is_blank(line):
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
) -> tuple[pa.Table, list[BadLineReport], int]:
    """Parse ``data`` (complete lines, ending with a newline) that starts at line ``first_line``.

    Returns (rows, bad lines, number of lines consumed); the rows are exactly what
    :func:`parse_lines_exact` gives, whichever path runs. ``whole_file`` may name a file whose
    first ``len(data)`` bytes are ``data`` (the bulk path then reads it in place).
    """
    if len(data) < BULK_THRESHOLD:
        return parse_exact(kind, data, first_line, path)
    return parse_bulk(kind, con, data, first_line, path, whole_file=whole_file)


def parse_exact(kind: Kind, data: bytes, first_line: int, path: str) -> tuple[pa.Table, list[BadLineReport], int]:
    """The line-by-line path over a chunk of complete lines (see :func:`parse_chunk`)."""
    rows, bad = parse_lines_exact(kind, data.split(b"\n")[:-1], first_line, path)
    return rows_to_table(kind, rows), bad, data.count(b"\n")


def parse_bulk(
    kind: Kind,
    con: duckdb.DuckDBPyConnection,
    data: bytes,
    first_line: int,
    path: str,
    *,
    whole_file: Path | None = None,
) -> tuple[pa.Table, list[BadLineReport], int]:
    """The bulk path over a chunk of complete lines, whatever its size (see :func:`parse_chunk`):
    DuckDB's rows for the lines it vouches for, the line-by-line verdict for the others."""
    n_lines = data.count(b"\n")
    try:
        table = _bulk_or_none(kind, con, data, n_lines, whole_file)
    except duckdb.Error:
        table = None  # e.g. too little memory for the bulk parse: the exact path needs none
    if table is None:
        return parse_exact(kind, data, first_line, path)
    ok = table.column("ok")
    rows: list[dict] = []
    bad: list[BadLineReport] = []
    if not pc.all(ok).as_py():
        lines = data.split(b"\n")
        redo = pc.indices_nonzero(pc.invert(ok)).to_pylist()
        rows, bad = parse_lines_exact(kind, [lines[i] for i in redo], 0, path)
        # parse_lines_exact numbered them 0..; give them their line numbers back
        for row in rows:
            row["seq"] = first_line + redo[row["seq"]]
        bad = [BadLineReport(r.path, first_line + redo[r.line - 1] + 1, r.reason) for r in bad]
    vouched = table.filter(ok).drop_columns(["i", "tail", "ok"])
    seq = pc.add(table.column("i").filter(ok), pa.scalar(first_line, pa.int64())).cast(pa.int64())
    vouched = vouched.append_column("extra", pa.nulls(vouched.num_rows, pa.string()))
    vouched = vouched.append_column("seq", seq).select(schema_for(kind).names).cast(schema_for(kind))
    if rows:
        vouched = pa.concat_tables([vouched, rows_to_table(kind, rows)]).sort_by("seq")
    return vouched, bad, n_lines


def _bulk_or_none(
    kind: Kind, con: duckdb.DuckDBPyConnection, data: bytes, n_lines: int, whole_file: Path | None
) -> pa.Table | None:
    """The bulk SQL's rows for ``data``, or None when it cannot vouch for the chunk as a whole."""
    params = {
        "n": n_lines,
        "suspicious": _rules.SUSPICIOUS_BYTES,
        "max_open": _rules.MAX_VOUCHED_OPENINGS,
        "ts_pattern": _rules.TS_VOUCHED,
        "max_line": _rules.MAX_LINE_BYTES,
    }
    last_line = data[data.rfind(b"\n", 0, len(data) - 1) + 1 : -1]
    if whole_file is not None:
        try:
            table = con.sql(_bulk_sql(kind), params={"path": str(whole_file), **params}).to_arrow_table()
        except duckdb.InvalidInputException:
            table = None  # not UTF-8 somewhere (perhaps past our chunk): go through a copy
        # DuckDB read the live file: check it still starts with our lines.
        if table is not None and table.num_rows == n_lines and _tail_is(table, last_line):
            return table
    text = _utf8_lines(data)
    if text is None:
        return None
    with tempfile.NamedTemporaryFile("wb", suffix=".jsonl", delete=False) as handle:
        handle.write(text)
        tmp = handle.name
    try:
        table = con.sql(_bulk_sql(kind), params={"path": tmp, **params}).to_arrow_table()
    finally:
        os.unlink(tmp)
    return table if table.num_rows == n_lines else None


def _tail_is(table: pa.Table, last_line: bytes) -> bool:
    tail = table.column("tail")[table.num_rows - 1].as_py() if table.num_rows else None
    return tail is not None and tail.encode("utf-8") == last_line


def _utf8_lines(data: bytes) -> bytes | None:
    """``data`` with every line that is not valid UTF-8 replaced by ``{}`` (which the bulk SQL
    never vouches for, so the line-by-line reader judges the original); None when there are
    too many to be worth it."""
    try:
        data.decode("utf-8")
        return data
    except UnicodeDecodeError:
        pass
    out = bytearray()
    position = 0
    for _ in range(1000):
        try:
            data[position:].decode("utf-8")
            out += data[position:]
            return bytes(out)
        except UnicodeDecodeError as exc:
            bad_at = position + exc.start
            line_start = data.rfind(b"\n", 0, bad_at) + 1
            line_end = data.find(b"\n", bad_at)
            out += data[position:line_start] + b"{}"
            position = line_end  # keep the newline
    return None

