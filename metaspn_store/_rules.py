"""Record rules: decided here once and used by every other module.

1. What a valid record line is
------------------------------
A hot-tier line (the bytes between two newlines) is read by :func:`row_from_line`; that function
*is* the definition, and every other path (DuckDB's bulk parse of large files, the id index, the
compactor, saved parses) either gives exactly its result or hands the line to it.

* **Blank lines** (only spaces, tabs, CR, VT, FF) are skipped silently, as 0.1.8 skips them.
  A trailing CR (CRLF files) is whitespace.
* **JSON** is RFC 8259 as orjson reads it. These make a line *bad* (skipped with a
  ``BadLineWarning``, listed by ``verify()``, quarantined by the compactor, never lost):
  ``NaN`` / ``Infinity`` / ``-Infinity`` (0.1.8 could write them, but no JSON reader other than
  Python's keeps them, and ``nan != nan`` means such a record never compared equal anyway);
  numbers that overflow a double (``1e309``); trailing commas; comments; a UTF-8 byte order mark;
  invalid UTF-8 or lone surrogate escapes; control characters inside strings; nesting deeper than
  254 levels; a second JSON value on the line.
* **Integers** beyond 64 bits are read as the nearest double (as orjson reads them; 0.1.8 kept
  them as exact Python ints). This store never writes them.
* **A repeated key**: the last occurrence wins, as in Python's ``json`` and 0.1.8. (Limit: below
  the first level of ``payload`` / ``raw`` a line with a repeated key keeps both copies in its
  stored JSON text, so SQL paths into that depth see the first; every envelope and every read
  model sees the last.)
* **The object** must build an envelope the way metaspn-schemas' ``from_dict`` does (0.1.8's
  reader): required fields present, values coerced as ``from_dict`` coerces them (a number where
  a string is expected becomes its ``str``); then the id must be a non-empty string, entity refs
  and trace must be objects of their shape, ``raw`` an object or null.
* **Timestamps** are parsed like 0.1.8 (``datetime.fromisoformat`` after turning a trailing
  ``Z`` into ``+00:00``; naive means UTC). A timestamp that does not parse (``2026-02-30``,
  ``24:00``, ``+99:99``) or cannot be expressed in UTC makes the line bad; it never becomes NULL.
* **Unknown top-level keys** are kept (the Parquet ``extra`` column), never a reason to refuse.
* **Size**: a line longer than :data:`MAX_LINE_BYTES` (64 MiB) is bad; the writer refuses a
  record whose line would be longer, before anything is written.

The bulk path (DuckDB, files from :data:`BULK_THRESHOLD` bytes) vouches for a line only when
every one of :data:`BULK_SCREEN` holds; each condition implies that the line-by-line reader
would build the same row. Any other line goes to :func:`row_from_line`. A property test feeds
the same generated lines through both paths (tests/test_parse_paths.py).

2. Which record holds an id
---------------------------
Only a valid record claims an id. Among valid records with the same id, the record of that id
is the one first in **(day, tier, seq)** order (:data:`POSITION_SQL`, :func:`code_for`): the
earliest day file it was appended to, then the cold tier before the hot tier of that day (the
cold tier holds what was appended to that day before its last compaction), then append order
within the file. That is the first record a reader of 0.1.8's files would meet. Every other
copy is invisible to every read, is a duplicate for writes, and is dropped by compaction. The id
index (writes) and the whole-store views of ``sql()`` apply it over the whole store; windowed
reads apply it among the records of the days they read.

3. Which file holds a window's records
--------------------------------------
A record belongs to the day of the file it was appended to (our writer picks the UTC day of the
timestamp; other tools may not). A read of ``[start, end]`` reads the files of the UTC days
``start.date()..end.date()`` (:func:`window_days`) and keeps the records whose timestamp is in
the window, wherever in those files they are; compaction keeps each record in its file's day.
This is what 0.1.8's readers do. A record whose timestamp lies outside its file's day is
therefore returned by a read whose window covers both its timestamp and its file's day.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from datetime import date, datetime
from typing import Any

import orjson
from metaspn_schemas.utils.time import str_to_datetime

from metaspn_store._codec import KNOWN_KEYS, dumps_json, envelope_class, row_from_envelope
from metaspn_store._layout import Kind

# ---------------------------------------------------------------------------- 1. valid lines

# From this many bytes a chunk of a hot file is parsed by DuckDB (the bulk path).
BULK_THRESHOLD = 256 * 1024

_BLANK = b" \t\r\x0b\x0c"
# The longest line that is a record: far above any real envelope, low enough that one record
# never threatens a reader's memory (DuckDB's own JSON reader stops at 16 MiB; we read past it).
MAX_LINE_BYTES = 64 << 20


class BadLine(Exception):
    """A line that is not a readable record; carries the reason for the warning."""


def is_blank(line: bytes) -> bool:
    """A line 0.1.8 skips: nothing but whitespace."""
    return not line.strip(_BLANK)


def row_from_line(kind: Kind, line: bytes, seq: int) -> dict[str, Any]:
    """The row of one non-blank line, or :class:`BadLine` with the reason (the definition)."""
    if len(line) > MAX_LINE_BYTES:
        raise BadLine(f"line of {len(line)} bytes is longer than the {MAX_LINE_BYTES} bytes a record may take")
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise BadLine(f"not valid JSON ({exc})") from exc
    return row_from_record(kind, record, seq)


def row_from_record(kind: Kind, record: Any, seq: int) -> dict[str, Any]:
    """The row of one decoded JSON value, with 0.1.8's ``from_dict`` semantics."""
    if not isinstance(record, dict):
        raise BadLine(f"line is JSON {type(record).__name__}, not an object")
    cls: Any = envelope_class(kind)
    try:
        envelope = from_dict(cls, record)
        record_id = getattr(envelope, kind.id_field)
        if not isinstance(record_id, str) or not record_id:
            raise BadLine(f"{kind.id_field} is missing or not a string")
        if not isinstance(envelope.timestamp, datetime):
            raise BadLine("timestamp is not a datetime")
        row = row_from_envelope(kind, envelope, seq)
    except BadLine:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure means "not an envelope 0.1.8 could read"
        raise BadLine(f"not a valid {kind.label} envelope: {exc}") from exc
    extra_keys = {k: v for k, v in record.items() if k not in KNOWN_KEYS[kind.name]}
    row["extra"] = dumps_json(extra_keys) if extra_keys else None
    return row


# metaspn-schemas' ``from_dict`` (what 0.1.8 reads lines with), with each class's type hints and
# fields looked up once instead of on every call: ``typing.get_type_hints`` re-evaluates string
# annotations each time and cost about 300 us of a 330 us line. tests/test_parse_paths.py checks
# it against the real ``from_dict`` on hostile input.
_HINTS: dict[type, tuple[tuple[dataclasses.Field[Any], Any], ...]] = {}


def from_dict(cls: Any, data: Any) -> Any:
    """``cls.from_dict(data)`` of metaspn-schemas' ``Serializable``, with cached type hints."""
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise TypeError("dataclass_from_dict expects a dataclass type")
    plan = _HINTS.get(cls)
    if plan is None:
        hints = typing.get_type_hints(cls)
        plan = _HINTS[cls] = tuple((f, hints.get(f.name, Any)) for f in dataclasses.fields(cls))
    kwargs: dict[str, Any] = {}
    for f, hint in plan:
        if f.name in data:
            kwargs[f.name] = _coerce(hint, data[f.name])
        elif f.default is not dataclasses.MISSING:
            kwargs[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            kwargs[f.name] = f.default_factory()
        else:
            raise ValueError(f"Missing required field: {f.name}")
    return cls(**kwargs)


def _coerce(hint: Any, value: Any) -> Any:
    """metaspn-schemas' ``_coerce_value``, step for step."""
    if value is None:
        return None
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return value
    if hint is datetime:
        if isinstance(value, datetime):
            return value
        if isinstance(value, str):
            return str_to_datetime(value)
        raise TypeError(f"Cannot parse datetime from {type(value)!r}")
    if origin in (typing.Union, types.UnionType):
        last_error: Exception | None = None
        for option in args:
            if option is type(None):
                continue
            try:
                return _coerce(option, value)
            except Exception as err:  # noqa: BLE001 - as metaspn-schemas: try the next option
                last_error = err
        if last_error is not None:
            raise last_error
        return value
    if origin is tuple:
        item_type = args[0] if args else Any
        return tuple(_coerce(item_type, item) for item in value)
    if origin is list:
        item_type = args[0] if args else Any
        return [_coerce(item_type, item) for item in value]
    if origin is dict:
        key_type = args[0] if len(args) > 0 else Any
        value_type = args[1] if len(args) > 1 else Any
        return {_coerce(key_type, k): _coerce(value_type, v) for k, v in value.items()}
    if dataclasses.is_dataclass(hint):
        if isinstance(value, hint):  # type: ignore[arg-type]
            return value
        if isinstance(value, dict):
            return from_dict(hint, value)
    if hint in (str, int, float, bool):
        return hint(value)
    return value


# Timestamps the bulk path may convert itself: DuckDB's TIMESTAMPTZ cast and Python's
# fromisoformat agree on these (year 1000-9998 so no UTC conversion leaves the datetime range;
# hours 00-23, minutes and seconds 00-59, 1-6 fraction digits, Z or a +-HH:MM offset under 24h).
# The calendar date is checked separately (February 30th matches the pattern).
TS_VOUCHED = (
    r"^([1-8]\d{3}|9[0-8]\d\d|99[0-8]\d)-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{1,6})?"
    r"(Z|[+-]([01]\d|2[0-3]):[0-5]\d)$"
)
# Text where DuckDB's parser and orjson may disagree: a value that is NaN, Infinity, a number
# with a 3-digit exponent (may overflow) or a 19-digit run (may exceed 64 bits); a trailing
# comma; a byte order mark. Matching inside a string only costs a detour through the
# line-by-line path.
SUSPICIOUS_BYTES = (
    r"[:,\[]\s*-?(NaN|Infinity|\d{19}|\d+(\.\d+)?[eE][+-]?\d{3})|,\s*[\]}]|\xEF\xBB\xBF"
)
# orjson stops at 255 levels of nesting and DuckDB does not: a line whose payload or raw JSON
# text (the only values of a vouched line that can nest: every other field has a fixed shape)
# holds this many opening brackets (strings included) is left to the line-by-line path.
MAX_VOUCHED_OPENINGS = 250

BULK_SCREEN = (
    "the line parses as JSON and is an object",
    "no byte sequence of SUSPICIOUS_BYTES occurs in it",
    "fewer than MAX_VOUCHED_OPENINGS '[' / '{' bytes in the payload's and raw's JSON text",
    "no repeated key at the top level, in the first level of payload / raw, among a ref's fields, "
    "in the trace",
    "exactly the envelope's keys, each with the JSON type the writer gives it (strings, arrays "
    "of ref objects with all five fields, strings or null for platform and label, a trace of "
    "exactly TraceContext's shape, raw an object or null)",
    "the timestamp matches TS_VOUCHED and names a real calendar date",
    "at most MAX_LINE_BYTES bytes",
)

# ---------------------------------------------------------------------------- 2. first write

TIER_COLD = 0
TIER_HOT = 1
# Order of copies of one id: the smallest wins. ``day``/``tier``/``seq`` are columns of every
# row relation the query layer builds.
POSITION_SQL = "struct_pack(d := day, t := tier, s := seq)"


def code_for(day: date, tier: int) -> int:
    """The id index's code of a partition: day and tier in one int, ordered like positions."""
    return day.toordinal() * 2 + tier


def decode_code(code: int) -> tuple[date, int]:
    return date.fromordinal(code // 2), code % 2


# ---------------------------------------------------------------------------- 3. windows


def window_days(start_utc: datetime, end_utc: datetime) -> tuple[date, date]:
    """The first and last day file a read of ``[start_utc, end_utc]`` opens."""
    return start_utc.date(), end_utc.date()


__all__ = [
    "BULK_SCREEN",
    "BULK_THRESHOLD",
    "BadLine",
    "POSITION_SQL",
    "TIER_COLD",
    "TIER_HOT",
    "code_for",
    "decode_code",
    "is_blank",
    "row_from_line",
    "row_from_record",
    "window_days",
]
