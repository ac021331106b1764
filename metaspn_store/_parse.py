"""Parsing JSONL bytes into Arrow rows of the kind's schema.

Two paths produce the same rows, warnings and reports (what a valid line is, and when the bulk
path may vouch for one, is written in :mod:`metaspn_store._rules`):

* the bulk path (chunks from ``BULK_THRESHOLD`` bytes): Arrow splits the chunk into lines (no
  copy of the file, no temporary file), DuckDB parses each line once and checks what needs the
  parsed values, Arrow checks and unquotes the string fields, and only lines that pass every
  condition of ``_rules.BULK_SCREEN`` are vouched for; every other line is handed to
* the exact path, the definition itself (``_rules.row_from_line``), one line at a time. Lines it
  cannot read become :class:`BadLineReport` entries, never errors.

Row ``seq`` is the 0-based line number inside the file, so ``(day, seq)`` is append order.
"""

from __future__ import annotations

import functools
import itertools
import re
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from metaspn_store import _rules
from metaspn_store._codec import KNOWN_KEYS, REF_FIELDS, int64_range, int64_scalar, rows_to_table, schema_for
from metaspn_store._layout import SIGNALS, Kind
from metaspn_store._rules import BULK_THRESHOLD, BadLine, is_blank, row_from_line


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


def _no_repeats(keys: str) -> str:
    """No key of the list ``keys`` occurs twice: strictly ascending (sorted keys, as our writer
    and 0.1.8 render objects), else counted."""
    ascending = f"list_bool_and(list_transform(list_zip({keys}[:-2], {keys}[2:]), lambda p: p[1] < p[2]))"
    return f"(CASE WHEN coalesce({ascending}, true) THEN true ELSE list_unique({keys}) = len({keys}) END)"


def _openings(text: str) -> str:
    """How many '[' / '{' bytes ``text`` holds (at least its nesting depth)."""
    return f"(strlen({text}) - strlen(replace(replace({text}, '{{', ''), '[', '')))"


@dataclass(frozen=True)
class BadLineReport:
    path: str
    line: int  # 1-based, as editors count
    reason: str


# The structure the bulk parse reads each line into, in one parse: every top-level field as its
# JSON text (its JSON type is the text's first byte), entity refs as objects of JSON texts.
# ``json_transform_strict`` refuses a line that is not JSON, not an object, lacks one of these
# keys or repeats one of them, also inside a ref (with TRY: NULL); other keys are counted apart.
_REF_STRUCT = '{"ref_type":"JSON","value":"JSON","platform":"JSON","label":"JSON","schema_version":"JSON"}'


def _strings(kind: Kind) -> list[str]:
    """The top-level fields that must be JSON strings (they become the kind's string columns)."""
    if kind is SIGNALS:
        return [kind.id_field, "source", "payload_type", "schema_version"]
    return [kind.id_field, "emission_type", "caused_by", "schema_version"]


@functools.lru_cache(maxsize=16)
def _bulk_sql(kind: Kind, tolerant: bool) -> str:
    """SQL reading the lines of a chunk (table ``lines``: ``i``, ``line`` without its newline),
    one row per line in order.

    DuckDB parses each line once (``json_transform_strict``) and checks what needs the parsed
    values (``_rules.BULK_SCREEN``); ``ok`` is false where a check fails. The string fields come
    back as JSON text: :func:`_finish` checks their type and unquotes them (Arrow, vectorised).
    SUSPICIOUS_BYTES is the caller's (:func:`_suspicious`). Without ``tolerant`` a line
    that is not an object with the envelope's keys makes the query fail (it is then run again
    with ``tolerant``, where such a line's ``ok`` is false): one bad line in a chunk is rare, and
    TRY costs every line.
    """
    keys = sorted(KNOWN_KEYS[kind.name])
    structure = "{" + ",".join(
        f'"{k}":' + (f"[{_REF_STRUCT}]" if k == "entity_refs" else '"JSON"') for k in keys
    ) + "}"
    parse = f"json_transform_strict(line, '{structure}')"
    if tolerant:
        parse = f"TRY({parse})"
    objects = ["trace", "raw"] if kind is SIGNALS else ["trace"]
    object_checks = "".join(f"\n                    AND (r.{k} IS NULL OR starts_with(r.{k}, '{{'))" for k in objects)
    raw_col = "r.raw" if kind is SIGNALS else "NULL::VARCHAR"
    raw_checks = (
        f"AND (r.raw IS NULL OR ({_openings('r.raw')} < $max_open AND {_unique_keys('r.raw')}))"
        if kind is SIGNALS else ""
    )
    strings = ", ".join(f"r.{k} AS {k}" for k in _strings(kind))
    return f"""
        WITH parsed AS (SELECT *, {parse} AS r FROM lines),
        fields AS (
            SELECT *, r.timestamp[2:-2] AS ts_text,
                CASE WHEN starts_with(r.payload, '{{') THEN json_keys(r.payload) END AS payload_keys
            FROM parsed
        )
        SELECT
            i,
            {strings},
            r.timestamp AS timestamp_text,
            TRY_CAST(ts_text AS TIMESTAMPTZ) AS timestamp,
            coalesce(r.payload, 'null') AS payload,
            r.entity_refs AS entity_refs,
            r.trace AS trace,
            {raw_col} AS raw,
            CASE
                WHEN r IS NULL OR r.entity_refs IS NULL THEN false
                WHEN NOT coalesce(
                    strlen(line) <= $max_line{object_checks}
                    AND {_openings("coalesce(r.payload, 'null')")} < $max_open
                    {raw_checks}
                    AND TRY_CAST(left(ts_text, 10) AS DATE) IS NOT NULL
                    AND TRY_CAST(ts_text AS TIMESTAMPTZ) IS NOT NULL
                    AND (payload_keys IS NULL OR {_no_repeats('payload_keys')}), false) THEN false
                WHEN r.trace IS NOT NULL AND NOT coalesce({_trace_ok('r.trace')}, false) THEN false
                ELSE coalesce(len(json_keys(line)) = {len(keys)}, false)
            END AS ok
        FROM fields
    """


def _json_strings(column: pa.ChunkedArray | pa.Array, escapes: bool) -> tuple[pa.Array, pa.Array]:
    """(is a JSON string, the string) of a column of JSON texts as DuckDB renders them. Without
    ``escapes`` the chunk holds no backslash at all: each string is its text's inner bytes. A
    text with an escape (0.1.8 wrote every non-ASCII character as one) is decoded by orjson, as
    the line-by-line reader decodes it (DuckDB refuses lone surrogates, so a text it rendered
    decodes like the line it came from)."""
    text = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    text = text.cast(pa.string())
    plain = pc.fill_null(pc.starts_with(text, '"'), _FALSE)
    inner = pc.binary_slice(text.cast(pa.binary()), 1, -1).cast(pa.string())
    if escapes:
        escaped = pc.fill_null(pc.and_(plain, pc.match_substring(text, "\\")), _FALSE)
        if pc.any(escaped).as_py():
            where = pc.indices_nonzero(escaped)
            decoded: list[str] = []
            failed = False
            for item in text.take(where).to_pylist():
                try:
                    value = orjson.loads(item)
                except orjson.JSONDecodeError:
                    value = None
                if not isinstance(value, str):
                    failed = True
                    value = ""
                decoded.append(value)
            if failed:  # not expected: leave every escaped string of the chunk to the exact path
                plain = pc.and_(plain, pc.invert(escaped))
            else:
                inner = pc.replace_with_mask(inner, escaped, _string_array(decoded))
    return plain, inner


def _string_array(values: list[str]) -> pa.Array:
    """A string array of ``values`` (without ``pa.array``, which imports pandas)."""
    encoded = [value.encode("utf-8") for value in values]
    offsets = array("i", [0])
    total = 0
    for item in encoded:
        total += len(item)
        offsets.append(total)
    return pa.StringArray.from_buffers(len(values), pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded)))


def _finish(kind: Kind, table: pa.Table, escapes: bool) -> pa.Table:
    """The rows of :func:`_bulk_sql`'s result in the kind's columns, with ``i`` and ``ok``: string
    fields unquoted, and ``ok`` also requiring the checks Arrow does faster than DuckDB (JSON
    string types, a non-empty id, the timestamp's form (TS_VOUCHED), entity ref field types)."""
    ok = table.column("ok").combine_chunks()
    out: dict[str, pa.Array] = {"i": table.column("i").combine_chunks()}
    for name in _strings(kind):
        plain, value = _json_strings(table.column(name), escapes)
        ok = pc.and_(ok, plain)
        out[name] = value
    ok = pc.and_(ok, pc.fill_null(pc.greater(pc.binary_length(out[kind.id_field]), int64_scalar(0)), _FALSE))
    plain, ts_text = _json_strings(table.column("timestamp_text"), escapes)
    ts_ok = pc.fill_null(pc.match_substring_regex(ts_text, _rules.TS_VOUCHED), _FALSE)
    ok = pc.and_(ok, pc.and_(plain, ts_ok))
    out["timestamp"] = table.column("timestamp").combine_chunks()
    out["payload"] = table.column("payload").combine_chunks().cast(pa.string())
    ok, out["entity_refs"] = _refs(table.column("entity_refs").combine_chunks(), ok, escapes)
    out["trace"] = table.column("trace").combine_chunks().cast(pa.string())
    out["raw"] = table.column("raw").combine_chunks().cast(pa.string())
    out["ok"] = pc.fill_null(ok, _FALSE)
    return pa.table(out)


def _refs(refs: pa.ListArray, ok: pa.Array, escapes: bool) -> tuple[pa.Array, pa.ListArray]:
    """Entity refs with string fields unquoted; ``ok`` false where a ref field is not a JSON
    string (``platform`` / ``label`` may be null) or holds an escape."""
    values = refs.values
    fields: list[pa.Array] = []
    element_ok: pa.Array | None = None
    for name in REF_FIELDS:
        plain, value = _json_strings(values.field(name), escapes)
        if name in ("platform", "label"):
            plain = pc.or_(plain, values.field(name).is_null())
        element_ok = plain if element_ok is None else pc.and_(element_ok, plain)
        fields.append(value)
    rebuilt = pa.ListArray.from_arrays(refs.offsets, pa.StructArray.from_arrays(fields, names=list(REF_FIELDS)))
    if element_ok is not None and not pc.all(element_ok).as_py():
        # The rows holding a bad element (an element outside every row's list does not count).
        start = refs.offsets[0].as_py()
        parents = pc.list_parent_indices(refs)
        bad = pc.invert(element_ok.slice(start, len(parents)))
        bad_rows = pc.unique(pc.filter(parents, bad)).cast(pa.int64())
        ok = pc.and_(ok, pc.invert(pc.is_in(int64_range(len(refs)), value_set=bad_rows)))
    return ok, rebuilt


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
    first ``len(data)`` bytes are ``data``; it is no longer needed (the chunk is parsed from
    memory) and kept for callers.
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
    DuckDB's rows for the lines it vouches for, the line-by-line verdict for the others.
    ``whole_file`` is accepted for callers that have one; the chunk is parsed from memory."""
    n_lines = data.count(b"\n")
    try:
        table = _bulk_or_none(kind, con, data, n_lines, whole_file)
    except duckdb.OutOfMemoryException as exc:
        # Not the line-by-line path: it needs more memory still (under `ulimit -v`, orjson then
        # crashed the process). The read becomes a QueryError naming the settings (``_query``).
        raise MemoryError(f"parsing {path}: {exc}") from exc
    except duckdb.Error:
        table = None  # a query the bulk path cannot run: the exact path decides every line
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
    vouched = table.filter(ok).drop_columns(["i", "ok"])
    seq = pc.add(table.column("i").filter(ok), int64_scalar(first_line))
    vouched = vouched.append_column("extra", pa.nulls(vouched.num_rows, pa.string()))
    vouched = vouched.append_column("seq", seq).select(schema_for(kind).names).cast(schema_for(kind))
    if rows:
        vouched = pa.concat_tables([vouched, rows_to_table(kind, rows)]).sort_by("seq")
    return vouched, bad, n_lines


_SEQUENCE = itertools.count()
_BATCH_ROWS = 2048


def _bulk_or_none(
    kind: Kind, con: duckdb.DuckDBPyConnection, data: bytes, n_lines: int, whole_file: Path | None = None
) -> pa.Table | None:
    """The bulk SQL's rows for ``data`` (one per line, in order, with ``i`` and ``ok``), or None
    when it cannot vouch for the chunk as a whole."""
    text = data if _is_utf8(data) else _utf8_lines(data)
    if text is None:
        return None
    whole = _one_string(text)
    # Lines without their newline; the split leaves an empty string after the last newline.
    lines = pc.split_pattern(whole, "\n").values.slice(0, n_lines)
    if len(lines) != n_lines:
        return None
    name = f"__metaspn_bulk_lines_{next(_SEQUENCE)}"
    # Batches of a few thousand lines: DuckDB's threads scan them in parallel.
    batches = pa.table({"i": int64_range(n_lines), "line": lines}).to_batches(max_chunksize=_BATCH_ROWS)
    con.register(name, pa.Table.from_batches(batches))
    # SUSPICIOUS_BYTES first, in this thread (a thread of its own overlapped DuckDB, but creating
    # it could abort the process under `ulimit -v`: glibc's thread-local data).
    suspicious = _suspicious(whole, lines)
    params = {"max_open": _rules.MAX_VOUCHED_OPENINGS, "max_line": _rules.MAX_LINE_BYTES}
    try:
        try:
            sql = _bulk_sql(kind, False).replace("FROM lines", f"FROM {name}")
            table = con.sql(sql, params=params).to_arrow_table()
        except (duckdb.InvalidInputException, duckdb.ConversionException):
            # A line that is not an object with the envelope's keys: again, tolerating it.
            sql = _bulk_sql(kind, True).replace("FROM lines", f"FROM {name}")
            table = con.sql(sql, params=params).to_arrow_table()
    finally:
        con.unregister(name)
    if table.num_rows != n_lines:
        return None
    out = _finish(kind, table, b"\\" in text)
    if suspicious is not None:
        ok = pc.and_(out.column("ok"), pc.invert(suspicious))
        out = out.set_column(out.schema.get_field_index("ok"), "ok", ok)
    return out


def _suspicious(whole: pa.Array, lines: pa.Array) -> pa.Array | None:
    """Per line, whether SUSPICIOUS_BYTES occurs in it; None when it occurs nowhere in the chunk
    (any match inside a line is a match inside the chunk), as usual."""
    if not pc.match_substring_regex(whole, _rules.SUSPICIOUS_BYTES)[0].as_py():
        return None
    return pc.match_substring_regex(lines, _rules.SUSPICIOUS_BYTES)


def _one_string(data: bytes) -> pa.Array:
    """``data`` as a one-element Arrow string array, without copying."""
    large = len(data) >= 2**31 - 1
    offsets = pa.py_buffer(array("q" if large else "i", [0, len(data)]))
    factory = pa.LargeStringArray if large else pa.StringArray
    return factory.from_buffers(1, offsets, pa.py_buffer(data))


# Arrow scalars made from buffers: a Python value handed to pyarrow (pa.scalar, pa.array of a
# list, a literal argument of a compute function) imports pandas, ~0.8 s of a fresh process's
# first parse.
_FALSE = pa.Array.from_buffers(pa.bool_(), 1, [None, pa.py_buffer(b"\x00")])[0]


def _is_utf8(data: bytes) -> bool:
    try:
        _one_string(data).validate(full=True)
    except pa.ArrowInvalid:
        return False
    return True


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

