"""Envelope <-> JSON line <-> Arrow row: one schema per kind, shared by the hot and cold tiers.

Write side: :func:`encode` validates an envelope and renders the JSON line 0.1.8 would write
(same keys, same values; 0.1.8 reads it back unchanged). Values JSON cannot hold exactly are
rejected with :class:`InvalidRecordError` naming the record id and the field path.

Read side: rows are Arrow tables with the kind's schema (``SIGNAL_SCHEMA`` / ``EMISSION_SCHEMA``);
:class:`EnvelopeBuilder` builds envelopes straight from the columns (no reflective
``from_dict``), sharing one ``EntityRef`` object per distinct ref. Which lines are records is
decided in :mod:`metaspn_store._rules`; :func:`row_from_envelope` only renders a row.
"""

from __future__ import annotations

import dataclasses
import gc
import itertools
import math
from array import array
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime, timedelta, timezone
from typing import Any

import orjson
import pyarrow as pa
from metaspn_schemas import EmissionEnvelope, EntityRef, SignalEnvelope, TraceContext

from metaspn_store._layout import SIGNALS, Kind
from metaspn_store.errors import InvalidRecordError

UTC = timezone.utc
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1

REF_STRUCT = pa.struct(
    [
        ("ref_type", pa.string()),
        ("value", pa.string()),
        ("platform", pa.string()),
        ("label", pa.string()),
        ("schema_version", pa.string()),
    ]
)
REF_FIELDS = ("ref_type", "value", "platform", "label", "schema_version")
TS_TYPE = pa.timestamp("us", tz="UTC")

# Columns shared by both kinds after the kind-specific ones. ``payload``/``trace``/``raw``/``extra``
# hold exact JSON text; ``extra`` keeps top-level keys the envelope does not know;
# ``seq`` is the append order (line number) inside the record's day partition.
_SHARED_TAIL = [
    ("payload", pa.string()),
    ("schema_version", pa.string()),
    ("entity_refs", pa.list_(REF_STRUCT)),
    ("trace", pa.string()),
    ("raw", pa.string()),
    ("extra", pa.string()),
    ("seq", pa.int64()),
]
SIGNAL_SCHEMA = pa.schema(
    [("signal_id", pa.string()), ("timestamp", TS_TYPE), ("source", pa.string()), ("payload_type", pa.string())]
    + _SHARED_TAIL
)
EMISSION_SCHEMA = pa.schema(
    [("emission_id", pa.string()), ("timestamp", TS_TYPE), ("emission_type", pa.string()), ("caused_by", pa.string())]
    + _SHARED_TAIL
)
# Emissions have no ``raw`` field; the column exists (always null) so both kinds share one shape.
KNOWN_KEYS = {
    "signals": frozenset(
        ("signal_id", "timestamp", "source", "payload_type", "payload", "schema_version", "entity_refs", "trace", "raw")
    ),
    "emissions": frozenset(
        ("emission_id", "timestamp", "emission_type", "payload", "caused_by", "schema_version", "trace", "entity_refs")
    ),
}


def schema_for(kind: Kind) -> pa.Schema:
    return SIGNAL_SCHEMA if kind is SIGNALS else EMISSION_SCHEMA


# pyarrow imports pandas (when installed) the first time a Python object is handed to
# ``pa.array``, ``pa.table`` of a foreign table, ``Schema.empty_table`` or ``pa.scalar``: a
# quarter of a second to a second of a fresh process's first read or compaction that never needs
# pandas. Writes, hot reads, consumers and compaction build their Arrow values from buffers
# instead (``tests/test_arrow_builders.py``). Reading the cold tier still imports it:
# ``pyarrow.dataset`` imports pandas when it is imported.


# Batches of at least this many records are written or built with the cyclic collector paused.
GC_PAUSE_FROM = 1_000


@contextmanager
def collector_paused(records: int) -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a batch of ``records`` records is encoded or
    built into envelopes (from ``GC_PAUSE_FROM`` records; never if the caller disabled it).

    Such a batch allocates a few objects per record and makes no reference cycles, yet the
    collector would run every 700 allocations, and now and then over the whole heap: a caller
    that keeps the envelopes (``list(store.iter_signals(...))``) spent a third of its replay in
    the collector. What the batch frees, reference counting frees; the rare cycle (a traceback)
    is collected after."""
    paused = records >= GC_PAUSE_FROM and gc.isenabled()
    if paused:
        gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()


def no_rows(schema: pa.Schema) -> pa.Table:
    """An empty table of ``schema`` (without importing pandas)."""
    return pa.Table.from_batches([], schema=schema)


def int64_scalar(value: int) -> pa.Scalar:
    """``pa.scalar(value, pa.int64())`` (without importing pandas)."""
    return pa.Array.from_buffers(pa.int64(), 1, [None, pa.py_buffer(array("q", [value]))])[0]


def int64_range(n: int) -> pa.Array:
    """0 .. n-1 as int64 (without importing pandas)."""
    return pa.Array.from_buffers(pa.int64(), n, [None, pa.py_buffer(array("q", range(n)))])


def _bitmap(flags: Sequence[bool]) -> pa.Buffer:
    """Arrow's bit-packed form of ``flags`` (least significant bit first)."""
    bits = int("".join("1" if flag else "0" for flag in reversed(flags)) or "0", 2)
    return pa.py_buffer(bits.to_bytes((len(flags) + 7) // 8, "little"))


def bool_array(values: Sequence[bool]) -> pa.BooleanArray:
    """``pa.array(values, pa.bool_())`` without None (without importing pandas)."""
    return pa.Array.from_buffers(pa.bool_(), len(values), [None, _bitmap(values)])


def repeated_date(day: date, n: int) -> pa.Array:
    """``day`` ``n`` times as date32 (without importing pandas)."""
    days = (day - date(1970, 1, 1)).days
    return pa.Array.from_buffers(pa.date32(), n, [None, pa.py_buffer(array("i", [days]) * n)])


def string_array(values: Sequence[str | None]) -> pa.Array:
    """``pa.array(values, pa.string())`` (without importing pandas)."""
    encoded = [b"" if v is None else v.encode() for v in values]
    offsets = array("i", [0])
    offsets.extend(itertools.accumulate(map(len, encoded)))
    if offsets[-1] >= 2**31:
        raise OverflowError("more than 2 GiB of text in one string column")
    return pa.Array.from_buffers(pa.string(), len(values),
                                 [_validity(values), pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))])


def _validity(values: Sequence[Any]) -> pa.Buffer | None:
    """The validity bitmap of ``values`` (None when no value is None)."""
    if None not in values:
        return None
    return _bitmap([v is not None for v in values])


def envelope_class(kind: Kind) -> type:
    return SignalEnvelope if kind is SIGNALS else EmissionEnvelope


def ensure_utc(value: datetime) -> datetime:
    """Naive datetimes are UTC; aware ones are converted to UTC (0.1.8 semantics)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def to_micros(value: datetime) -> int:
    delta = ensure_utc(value) - EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def iso_z(value: datetime) -> str:
    """The timestamp text metaspn-schemas writes: UTC ISO-8601 with a ``Z`` suffix."""
    if value.tzinfo is not UTC:
        value = ensure_utc(value)
    return value.isoformat().replace("+00:00", "Z")


# --------------------------------------------------------------------------- write side


def _primitive(value: Any, record: str, path: str) -> Any:
    """metaspn-schemas' ``to_dict`` conversion, refusing what JSON cannot hold exactly."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise InvalidRecordError(
                f"{record}: field {path} holds integer {value}, outside the 64-bit range JSON readers keep exactly",
                record_id=record,
                field=path,
            )
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidRecordError(
                f"{record}: field {path} holds {value!r}; non-finite floats cannot be stored as JSON",
                record_id=record,
                field=path,
            )
        return value
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidRecordError(
                    f"{record}: field {path} has key {key!r} of type {type(key).__name__}; JSON object keys must be strings",
                    record_id=record,
                    field=path,
                )
            out[key] = _primitive(item, record, f"{path}.{key}")
        return out
    if isinstance(value, (list, tuple)):
        return [_primitive(item, record, f"{path}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, datetime):
        return iso_z(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: _primitive(getattr(value, f.name), record, f"{path}.{f.name}") for f in dataclasses.fields(value)
        }
    raise InvalidRecordError(
        f"{record}: field {path} holds a {type(value).__name__}, which JSON cannot hold "
        "(use dict, list, str, int, float, bool or None)",
        record_id=record,
        field=path,
    )


_INF = float("inf")


def _plain(value: Any) -> bool:
    """True when ``value`` is already what ``to_dict`` would produce and JSON holds exactly:
    str/bool/None, finite floats, 64-bit ints, lists and str-keyed dicts of those.
    Anything else (tuples, datetimes, dataclasses, NaN, ...) takes the slow converting path."""
    t = type(value)
    if t is dict:
        return _plain_dict(value)
    if t is list:
        return _plain_list(value)
    if t is str or t is bool or value is None:
        return True
    if t is float:
        return -_INF < value < _INF
    if t is int:
        return _INT64_MIN <= value <= _INT64_MAX
    return False


# The two walkers below are _plain unrolled for the common leaves (one call per container, not
# per value): exact types only, so subclasses, tuples, NaN, ... still take the converting path.
def _plain_dict(value: dict[Any, Any]) -> bool:
    for key, item in value.items():
        if type(key) is not str:
            return False
        t = type(item)
        if t is str or item is None or t is bool:
            continue
        if t is int:
            if _INT64_MIN <= item <= _INT64_MAX:
                continue
            return False
        if t is float:
            if -_INF < item < _INF:
                continue
            return False
        if t is dict:
            if _plain_dict(item):
                continue
            return False
        if t is list:
            if _plain_list(item):
                continue
        return False
    return True


def _plain_list(value: list[Any]) -> bool:
    for item in value:
        t = type(item)
        if t is str or item is None or t is bool:
            continue
        if t is int:
            if _INT64_MIN <= item <= _INT64_MAX:
                continue
            return False
        if t is float:
            if -_INF < item < _INF:
                continue
            return False
        if t is dict:
            if _plain_dict(item):
                continue
            return False
        if t is list:
            if _plain_list(item):
                continue
        return False
    return True


# The shortcuts' walkers: _plain_dict / _plain_list without the key check. orjson itself refuses
# every key that is not an exact str (TypeError), and the shortcut then hands the envelope to the
# general path, which reports it (or, for a str subclass, renders it the same way).
def _values_plain_dict(value: dict[Any, Any]) -> bool:
    for item in value.values():
        t = type(item)
        if t is str or item is None or t is bool:
            continue
        if t is int:
            if _INT64_MIN <= item <= _INT64_MAX:
                continue
            return False
        if t is float:
            if -_INF < item < _INF:
                continue
            return False
        if t is dict:
            if _values_plain_dict(item):
                continue
            return False
        if t is list:
            if _values_plain_list(item):
                continue
        return False
    return True


def _values_plain_list(value: list[Any]) -> bool:
    for item in value:
        t = type(item)
        if t is str or item is None or t is bool:
            continue
        if t is int:
            if _INT64_MIN <= item <= _INT64_MAX:
                continue
            return False
        if t is float:
            if -_INF < item < _INF:
                continue
            return False
        if t is dict:
            if _values_plain_dict(item):
                continue
            return False
        if t is list:
            if _values_plain_list(item):
                continue
        return False
    return True


def _values_plain(value: Any) -> bool:
    """:func:`_plain` for the shortcuts (keys left to orjson, see above)."""
    t = type(value)
    if t is dict:
        return _values_plain_dict(value)
    if t is list:
        return _values_plain_list(value)
    return _plain(value)


def _convert(value: Any, record: str, path: str) -> Any:
    return value if _plain(value) else _primitive(value, record, path)


_REF_CACHE: dict[Any, dict[str, Any]] = {}


def _ref_dict(ref: EntityRef, record: str, path: str) -> dict[str, Any]:
    try:
        cached = _REF_CACHE.get(ref)
    except TypeError:  # an unhashable field value: convert without the cache
        return _primitive(ref, record, path)
    if cached is None:
        cached = _plain_ref_dict(ref)
        if cached is None:
            # Not cached: refs with other field types can be equal yet render differently
            # (EntityRef(value=1) == EntityRef(value=True) == EntityRef(value=1.0)).
            return _primitive(ref, record, path)
        if len(_REF_CACHE) < 100_000:
            _REF_CACHE[ref] = cached
    return cached


_REF_FIELDS_FAST = tuple(f.name for f in dataclasses.fields(EntityRef)) == REF_FIELDS


def _plain_ref_dict(ref: Any) -> dict[str, Any] | None:
    """What ``_primitive`` makes of an exact EntityRef whose fields are all str or None (else None)."""
    if type(ref) is not EntityRef or not _REF_FIELDS_FAST:
        return None
    ref_type, value, platform, label, version = ref.ref_type, ref.value, ref.platform, ref.label, ref.schema_version
    if (
        type(ref_type) is str
        and type(value) is str
        and (platform is None or type(platform) is str)
        and (label is None or type(label) is str)
        and (version is None or type(version) is str)
    ):
        return {"ref_type": ref_type, "value": value, "platform": platform, "label": label, "schema_version": version}
    return None


# Field types a reader rebuilds exactly (``_rules``: from_dict would turn a number where a
# string belongs into its str, so the envelope read back would not equal the one written).
# None reads back as None, so it is allowed everywhere.
_OPT_STR = (str, type(None))
_REF_TYPES = {name: _OPT_STR for name in ("ref_type", "value", "platform", "label", "schema_version")}
_TRACE_TYPES = {
    "trace_id": _OPT_STR,
    "caused_by": "strings",
    "provenance": _OPT_STR,
    "redactions": "strings",
    "metadata": "string map",
    "privacy_mode": (bool, type(None)),
    "schema_version": _OPT_STR,
}


def _check_fields(value: Any, types: dict[str, Any], record: str, path: str) -> None:
    """Refuse an entity ref or trace whose fields would not read back as written."""
    for name, expected in types.items():
        item = getattr(value, name, None)
        if item is None:
            ok = True
        elif expected == "strings":
            ok = isinstance(item, (list, tuple)) and all(isinstance(x, _OPT_STR) for x in item)
        elif expected == "string map":
            ok = isinstance(item, dict) and all(
                isinstance(k, str) and isinstance(v, _OPT_STR) for k, v in item.items()
            )
        else:
            ok = isinstance(item, expected)
        if not ok:
            raise InvalidRecordError(
                f"{record}: field {path}.{name} holds {type(item).__name__} {item!r:.40}; "
                f"{path.split('[')[0]} fields must have their declared types to read back equal",
                record_id=record,
                field=f"{path}.{name}",
            )


def _required_str(value: Any, record: str, name: str) -> str:
    if not isinstance(value, str):
        raise InvalidRecordError(
            f"{record}: field {name} must be a string, got {type(value).__name__}", record_id=record, field=name
        )
    return value


def encode(kind: Kind, envelope: Any) -> tuple[str, datetime, dict[str, Any]]:
    """Validate one envelope; see :func:`_encode`. Deep nesting becomes a clear error."""
    try:
        return _encode(kind, envelope)
    except RecursionError as exc:
        raise _too_deep(f"{kind.label} {getattr(envelope, kind.id_field, None)!r}") from exc


def _encode(kind: Kind, envelope: Any) -> tuple[str, datetime, dict[str, Any]]:
    """Validate one envelope; return ``(id, utc timestamp, dict 0.1.8 would write)``.

    Raises ValueError exactly where 0.1.8 does (missing id / schema_version) and
    :class:`InvalidRecordError` for values JSON cannot hold.
    """
    record_id = getattr(envelope, kind.id_field, None)
    if not record_id:
        raise ValueError(f"{kind.id_field} is required for stable IDs")
    if not getattr(envelope, "schema_version", None):
        raise ValueError("schema_version is required")
    label = f"{kind.label} {record_id!r}"
    _required_str(record_id, label, kind.id_field)
    _required_str(envelope.schema_version, label, "schema_version")
    timestamp = envelope.timestamp
    if not isinstance(timestamp, datetime):
        raise InvalidRecordError(
            f"{label}: field timestamp must be a datetime, got {type(timestamp).__name__}",
            record_id=record_id,
            field="timestamp",
        )
    try:
        ts = timestamp if timestamp.tzinfo is UTC else ensure_utc(timestamp)
    except OverflowError as exc:
        raise InvalidRecordError(
            f"{label}: field timestamp {timestamp.isoformat()} is outside the range of UTC datetimes",
            record_id=record_id,
            field="timestamp",
        ) from exc
    refs = []
    for i, ref in enumerate(envelope.entity_refs or ()):
        if not isinstance(ref, EntityRef):
            raise InvalidRecordError(
                f"{label}: field entity_refs[{i}] must be an EntityRef, got {type(ref).__name__}",
                record_id=record_id,
                field=f"entity_refs[{i}]",
            )
        _check_fields(ref, _REF_TYPES, label, f"entity_refs[{i}]")
        refs.append(_ref_dict(ref, label, f"entity_refs[{i}]"))
    trace = envelope.trace
    trace_out = None
    if trace is not None:
        if not isinstance(trace, TraceContext):
            raise InvalidRecordError(
                f"{label}: field trace must be a TraceContext or None, got {type(trace).__name__}",
                record_id=record_id,
                field="trace",
            )
        _check_fields(trace, _TRACE_TYPES, label, "trace")
        trace_out = _primitive(trace, label, "trace")
    payload = _convert(envelope.payload, label, "payload")
    if kind is SIGNALS:
        raw = envelope.raw
        if raw is not None and not isinstance(raw, dict):
            raise InvalidRecordError(
                f"{label}: field raw must be a dict or None, got {type(raw).__name__}", record_id=record_id, field="raw"
            )
        out = {
            "signal_id": record_id,
            "timestamp": iso_z(ts),
            "source": _required_str(envelope.source, label, "source"),
            "payload_type": _required_str(envelope.payload_type, label, "payload_type"),
            "payload": payload,
            "schema_version": envelope.schema_version,
            "entity_refs": refs,
            "trace": trace_out,
            "raw": _convert(raw, label, "raw"),
        }
    else:
        out = {
            "emission_id": record_id,
            "timestamp": iso_z(ts),
            "emission_type": _required_str(envelope.emission_type, label, "emission_type"),
            "payload": payload,
            "caused_by": _required_str(envelope.caused_by, label, "caused_by"),
            "schema_version": envelope.schema_version,
            "trace": trace_out,
            "entity_refs": refs,
        }
    return record_id, ts, out


def dumps_line(record: dict[str, Any], label: str = "record") -> bytes:
    """One JSONL line (with trailing newline), keys sorted and compact like 0.1.8 writes them."""
    try:
        return orjson.dumps(record, option=orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE)
    except orjson.JSONEncodeError as exc:
        if "recursion" in str(exc).lower():
            raise _too_deep(label) from exc
        try:
            path = _unencodable_path(record, "") or "?"
        except RecursionError:
            path = "?"
        raise InvalidRecordError(
            f"{label}: field {path.lstrip('.')} cannot be written as UTF-8 JSON ({exc})", field=path.lstrip(".")
        ) from exc


_LINE_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE
# The fast path hands the (UTC) timestamp itself to orjson: with OPT_UTC_Z it writes exactly
# ``iso_z``'s text (``YYYY-MM-DDTHH:MM:SS[.ffffff]Z``, microseconds only when non-zero).
_FAST_LINE_OPTIONS = _LINE_OPTIONS | orjson.OPT_UTC_Z
_TRACE_FIELDS = ("trace_id", "caused_by", "provenance", "redactions", "metadata", "privacy_mode", "schema_version")
_FAST_TRACE = tuple(f.name for f in dataclasses.fields(TraceContext)) == _TRACE_FIELDS


def encode_line(kind: Kind, envelope: Any) -> tuple[str, date, bytes]:
    """``(id, UTC day, JSON line)`` of one envelope: the same result, bytes and errors as
    :func:`encode` followed by :func:`dumps_line`.

    Envelopes of the exact schema classes whose values are all plain JSON take a shortcut that
    builds the record once and lets orjson render it; anything else (errors included) goes
    through the general path, which alone decides what is written or raised.
    """
    try:
        fast = _fast_line(kind, envelope)
    except Exception:  # noqa: BLE001 - whatever failed, the general path reports it exactly
        fast = None
    if fast is not None:
        return fast
    record_id, ts, record = encode(kind, envelope)
    return record_id, ts.date(), dumps_line(record, f"{kind.label} {record_id!r}")


def _fast_line(kind: Kind, envelope: Any) -> tuple[str, date, bytes] | None:
    """The line of a plain envelope, or None when the general path must decide."""
    return (_fast_signal_line if kind is SIGNALS else _fast_emission_line)(envelope)


def fast_encoder(kind: Kind) -> Callable[[Any], tuple[str, date, bytes] | None]:
    """The shortcut of :func:`encode_line` for one kind: ``(id, UTC day, line)`` of a plain
    envelope, or None (or an exception) when :func:`encode_line` must decide. Batch writers call
    it once per record and :func:`encode_line` only when it declines."""
    return _fast_signal_line if kind is SIGNALS else _fast_emission_line


# Rendered refs by their field values: a 5-tuple of str/None hashes in C (the dataclass's own
# __hash__ is a Python function). Only refs whose fields are all str or None are entered, and no
# str equals a value of another type, so a hit is a ref the general path renders the same way.
_REF_BY_FIELDS: dict[tuple[Any, ...], dict[str, Any]] = {}


def _fast_refs(entity_refs: Any) -> list[dict[str, Any]] | None:
    """The rendered refs of a plain ref list (tuple or list of exact EntityRefs with str/None
    fields), or None."""
    if type(entity_refs) is not tuple and type(entity_refs) is not list:
        return None
    refs = []
    cache = _REF_BY_FIELDS
    for ref in entity_refs:
        if type(ref) is not EntityRef:
            return None
        key = (ref.ref_type, ref.value, ref.platform, ref.label, ref.schema_version)
        ref_dict = cache.get(key)
        if ref_dict is None:
            ref_dict = _plain_ref_dict(ref)
            if ref_dict is None:
                return None  # a field of another type: the general path refuses it
            if len(cache) < 100_000:
                cache[key] = ref_dict
        refs.append(ref_dict)
    return refs


def _fast_trace(trace: Any) -> dict[str, Any] | None:
    """The rendered trace of an exact TraceContext with plain fields, or None."""
    if type(trace) is not TraceContext or not _FAST_TRACE:
        return None
    try:
        _check_fields(trace, _TRACE_TYPES, "", "trace")
    except InvalidRecordError:
        return None
    caused = trace.caused_by
    redactions = trace.redactions
    out = {
        "trace_id": trace.trace_id,
        "caused_by": list(caused) if type(caused) is tuple else caused,
        "provenance": trace.provenance,
        "redactions": list(redactions) if type(redactions) is tuple else redactions,
        "metadata": trace.metadata,
        "privacy_mode": trace.privacy_mode,
        "schema_version": trace.schema_version,
    }
    return out if _plain_dict(out) else None


# The two shortcuts below check exact types only (subclasses, tuples where lists belong, NaN,
# ... take the general path) and build the record dict once for orjson; what they accept is
# rendered byte for byte as the general path renders it (tests/test_encode_equivalence.py).
def _fast_signal_line(
    envelope: Any,
    _cls: Any = SignalEnvelope,
    _dt: Any = datetime,
    _utc: Any = UTC,
    _plain_dict: Callable[[Any], bool] = _values_plain_dict,
    _plain: Callable[[Any], bool] = _values_plain,
    _dumps: Callable[..., bytes] = orjson.dumps,
    _options: int = _FAST_LINE_OPTIONS,
) -> tuple[str, date, bytes] | None:
    if type(envelope) is not _cls:
        return None
    record_id = envelope.signal_id
    source = envelope.source
    payload_type = envelope.payload_type
    version = envelope.schema_version
    ts = envelope.timestamp
    if (
        type(record_id) is not str
        or not record_id
        or type(source) is not str
        or type(payload_type) is not str
        or type(version) is not str
        or not version
        or type(ts) is not _dt
    ):
        return None
    if ts.tzinfo is not _utc:
        ts = ensure_utc(ts)
    entity_refs = envelope.entity_refs
    refs = _fast_refs(entity_refs) if entity_refs else []
    if refs is None:
        return None
    trace = envelope.trace
    if trace is not None:
        trace = _fast_trace(trace)
        if trace is None:
            return None
    payload = envelope.payload
    if not (_plain_dict(payload) if type(payload) is dict else _plain(payload)):
        return None
    raw = envelope.raw
    if raw is not None and (type(raw) is not dict or not _plain_dict(raw)):
        return None
    line = _dumps(
        {
            "signal_id": record_id,
            "timestamp": ts,
            "source": source,
            "payload_type": payload_type,
            "payload": payload,
            "schema_version": version,
            "entity_refs": refs,
            "trace": trace,
            "raw": raw,
        },
        option=_options,
    )
    return record_id, ts.date(), line


def _fast_emission_line(
    envelope: Any,
    _cls: Any = EmissionEnvelope,
    _dt: Any = datetime,
    _utc: Any = UTC,
    _plain_dict: Callable[[Any], bool] = _values_plain_dict,
    _plain: Callable[[Any], bool] = _values_plain,
    _dumps: Callable[..., bytes] = orjson.dumps,
    _options: int = _FAST_LINE_OPTIONS,
) -> tuple[str, date, bytes] | None:
    if type(envelope) is not _cls:
        return None
    record_id = envelope.emission_id
    emission_type = envelope.emission_type
    caused_by = envelope.caused_by
    version = envelope.schema_version
    ts = envelope.timestamp
    if (
        type(record_id) is not str
        or not record_id
        or type(emission_type) is not str
        or type(caused_by) is not str
        or type(version) is not str
        or not version
        or type(ts) is not _dt
    ):
        return None
    if ts.tzinfo is not _utc:
        ts = ensure_utc(ts)
    entity_refs = envelope.entity_refs
    refs = _fast_refs(entity_refs) if entity_refs else []
    if refs is None:
        return None
    trace = envelope.trace
    if trace is not None:
        trace = _fast_trace(trace)
        if trace is None:
            return None
    payload = envelope.payload
    if not (_plain_dict(payload) if type(payload) is dict else _plain(payload)):
        return None
    line = _dumps(
        {
            "emission_id": record_id,
            "timestamp": ts,
            "emission_type": emission_type,
            "payload": payload,
            "caused_by": caused_by,
            "schema_version": version,
            "trace": trace,
            "entity_refs": refs,
        },
        option=_options,
    )
    return record_id, ts.date(), line


def _too_deep(label: str) -> InvalidRecordError:
    return InvalidRecordError(
        f"{label}: payload/raw/trace nest too deeply for JSON readers (orjson and DuckDB stop at 254 levels)",
        field="payload",
    )


def _unencodable_path(value: Any, path: str) -> str | None:
    """Where the first string that is not valid UTF-8 (e.g. a lone surrogate) sits."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return path or "value"
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            found = _unencodable_path(key, f"{path}.<key>") or _unencodable_path(item, f"{path}.{key}")
            if found:
                return found
    if isinstance(value, list):
        for i, item in enumerate(value):
            found = _unencodable_path(item, f"{path}[{i}]")
            if found:
                return found
    return None


def dumps_json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode("utf-8")


# --------------------------------------------------------------------------- read side


_TRACE_KEYS = frozenset(
    ("trace_id", "caused_by", "provenance", "redactions", "metadata", "privacy_mode", "schema_version")
)


def trace_from_json(data: Any, *, strict: bool = False) -> TraceContext | None:
    """TraceContext from its JSON dict without the reflective from_dict when the shape is exact.

    With ``strict`` returns None instead of falling back when the shape is not exact.
    """
    if (
        isinstance(data, dict)
        and data.keys() <= _TRACE_KEYS
        and isinstance(data.get("trace_id"), str)
        and isinstance(data.get("caused_by", ()), list | tuple)
        and all(isinstance(x, str) for x in data.get("caused_by", ()))
        and isinstance(data.get("redactions", ()), list | tuple)
        and all(isinstance(x, str) for x in data.get("redactions", ()))
        and isinstance(data.get("metadata", {}), dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in data.get("metadata", {}).items())
        and isinstance(data.get("privacy_mode", False), bool)
        and isinstance(data.get("provenance"), str | None)
        and isinstance(data.get("schema_version", ""), str)
    ):
        return TraceContext(
            trace_id=data["trace_id"],
            caused_by=tuple(data.get("caused_by", ())),
            provenance=data.get("provenance"),
            redactions=tuple(data.get("redactions", ())),
            metadata=dict(data.get("metadata", {})),
            privacy_mode=data.get("privacy_mode", False),
            schema_version=data.get("schema_version", _TRACE_DEFAULT_VERSION),
        )
    if strict:
        return None
    return TraceContext.from_dict(data)


_TRACE_DEFAULT_VERSION = TraceContext.__dataclass_fields__["schema_version"].default


def _json_text_or_none(value: Any) -> str | None:
    return None if value is None else dumps_json(value)


def row_from_envelope(kind: Kind, envelope: Any, seq: int) -> dict[str, Any]:
    """Row of an envelope already in memory (used for lines that needed ``from_dict``)."""
    refs = [
        {name: _opt_str(getattr(ref, name)) for name in REF_FIELDS}
        for ref in envelope.entity_refs or ()
        if isinstance(ref, EntityRef)
    ]
    if len(refs) != len(envelope.entity_refs or ()):
        raise ValueError("entity_refs holds something that is not an entity ref")
    trace = envelope.trace
    if trace is not None and not isinstance(trace, TraceContext):
        raise ValueError("trace is not a trace context")
    common = {
        "timestamp": to_micros(envelope.timestamp),
        "payload": dumps_json(envelope.payload),
        "schema_version": _opt_str(envelope.schema_version),
        "entity_refs": refs,
        "trace": None if trace is None else dumps_json(trace.to_dict()),
        "extra": None,
        "seq": seq,
    }
    if kind is SIGNALS:
        raw = envelope.raw
        if raw is not None and not isinstance(raw, dict):
            raise ValueError("raw is not an object")
        common.update(
            signal_id=envelope.signal_id,
            source=_opt_str(envelope.source),
            payload_type=_opt_str(envelope.payload_type),
            raw=_json_text_or_none(raw),
        )
    else:
        common.update(
            emission_id=envelope.emission_id,
            emission_type=_opt_str(envelope.emission_type),
            caused_by=_opt_str(envelope.caused_by),
            raw=None,
        )
    return common


def _opt_str(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise ValueError(f"expected a string, got {type(value).__name__}")


def rows_to_table(kind: Kind, rows: list[dict[str, Any]]) -> pa.Table:
    """The rows (dicts of the kind's columns: str / None, int microseconds, lists of ref dicts)
    as a table of the kind's schema, built from buffers (without importing pandas)."""
    schema = schema_for(kind)
    arrays = []
    for field in schema:
        values = [row[field.name] for row in rows]
        if field.type == pa.string():
            arrays.append(string_array(values))
        elif field.type in (pa.int64(), TS_TYPE):
            arrays.append(_int64_column(values, field.type))
        else:
            arrays.append(_refs_column(values, field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def _int64_column(values: list[int | None], type_: pa.DataType) -> pa.Array:
    data = array("q", [0 if v is None else v for v in values])
    return pa.Array.from_buffers(type_, len(values), [_validity(values), pa.py_buffer(data)])


def _refs_column(values: list[list[dict[str, str | None]] | None], type_: pa.DataType) -> pa.Array:
    flat = [ref for refs in values if refs for ref in refs]
    children = [string_array([ref[name] for ref in flat]) for name in REF_FIELDS]
    structs = pa.StructArray.from_arrays(children, fields=list(REF_STRUCT))
    offsets = array("i", [0])
    offsets.extend(itertools.accumulate(len(refs) if refs else 0 for refs in values))
    return pa.Array.from_buffers(type_, len(values), [_validity(values), pa.py_buffer(offsets)], children=[structs])


class EnvelopeBuilder:
    """Builds envelopes from Arrow batches, reusing one EntityRef per distinct ref."""

    def __init__(self, kind: Kind) -> None:
        self.kind = kind
        self._ref_objects: dict[tuple[Any, ...], EntityRef] = {}
        self._ref_lists: dict[str, tuple[EntityRef, ...]] = {}
        self._cls = envelope_class(kind)
        # Frozen dataclasses without __slots__ can be filled through __dict__, which skips
        # the per-field object.__setattr__ and __post_init__ (timestamps are already UTC).
        self._direct = not hasattr(self._cls, "__slots__") and dataclasses.is_dataclass(self._cls)

    def _refs_per_row(self, column: pa.ChunkedArray | pa.Array) -> list[tuple[EntityRef, ...]]:
        """One tuple of EntityRef per row; equal refs share one object."""
        arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
        n = len(arr)
        if n == 0:
            return []
        offsets = arr.offsets.to_pylist()
        flat = arr.flatten()  # honours the slice offset
        base = offsets[0]
        if len(flat) == 0:
            return [()] * n
        fields = [flat.field(name).to_pylist() for name in REF_FIELDS]
        cache = self._ref_objects
        refs = []
        for key in zip(*fields, strict=True):
            ref = cache.get(key)
            if ref is None:
                ref = EntityRef(*key)
                if len(cache) < 1_000_000:
                    cache[key] = ref
            refs.append(ref)
        empty: tuple[EntityRef, ...] = ()
        return [tuple(refs[offsets[i] - base : offsets[i + 1] - base]) if offsets[i + 1] > offsets[i] else empty for i in range(n)]

    def _refs(self, batch: pa.RecordBatch | pa.Table, names: list[str]) -> list[tuple[EntityRef, ...]]:
        """Per-row ref tuples; with a ``__refs_key`` column (refs as JSON text) equal lists share
        one tuple and most rows cost a single dict lookup."""
        if "__refs_key" not in names:
            return self._refs_per_row(batch.column(names.index("entity_refs")))
        keys = batch.column(names.index("__refs_key")).to_pylist()
        cache = self._ref_lists
        objects = self._ref_objects
        out: list[tuple[EntityRef, ...]] = []
        for key in keys:
            refs = cache.get(key)
            if refs is None:
                items = []
                for d in orjson.loads(key) or ():
                    ref_key = (d["ref_type"], d["value"], d["platform"], d["label"], d["schema_version"])
                    ref = objects.get(ref_key)
                    if ref is None:
                        ref = EntityRef(*ref_key)
                        if len(objects) < 1_000_000:
                            objects[ref_key] = ref
                    items.append(ref)
                refs = tuple(items)
                if len(cache) < 200_000:
                    cache[key] = refs
            out.append(refs)
        return out

    def build(self, batch: pa.RecordBatch | pa.Table) -> list[Any]:
        """Envelopes of every row, in row order."""
        n = batch.num_rows
        if n == 0:
            return []
        with collector_paused(n):
            return self._build(batch, n)

    def _build(self, batch: pa.RecordBatch | pa.Table, n: int) -> list[Any]:
        names = batch.schema.names

        def col(name: str) -> list[Any]:
            return batch.column(names.index(name)).to_pylist()

        ids = col(self.kind.id_field)
        micros = batch.column(names.index("timestamp")).cast(pa.int64()).to_pylist()
        payloads = col("payload")
        versions = col("schema_version")
        refs = self._refs(batch, names)
        traces = col("trace")
        loads = orjson.loads
        epoch = EPOCH
        td = timedelta
        trace_from = trace_from_json
        cls = self._cls
        new = object.__new__
        set_dict = object.__setattr__
        direct = self._direct
        out: list[Any] = []
        append = out.append
        if self.kind is SIGNALS:
            sources = col("source")
            types = col("payload_type")
            raws = col("raw")
            for i in range(n):
                t = traces[i]
                raw = raws[i]
                fields = {
                    "signal_id": ids[i],
                    "timestamp": epoch + td(0, 0, micros[i]),
                    "source": sources[i],
                    "payload_type": types[i],
                    "payload": loads(payloads[i]),
                    "schema_version": versions[i],
                    "entity_refs": refs[i],
                    "trace": None if t is None else trace_from(loads(t)),
                    "raw": None if raw is None else loads(raw),
                }
                if direct:
                    obj: Any = new(cls)
                    set_dict(obj, "__dict__", fields)
                    append(obj)
                else:
                    append(cls(**fields))
        else:
            types = col("emission_type")
            causes = col("caused_by")
            for i in range(n):
                t = traces[i]
                fields = {
                    "emission_id": ids[i],
                    "timestamp": epoch + td(0, 0, micros[i]),
                    "emission_type": types[i],
                    "payload": loads(payloads[i]),
                    "caused_by": causes[i],
                    "schema_version": versions[i],
                    "trace": None if t is None else trace_from(loads(t)),
                    "entity_refs": refs[i],
                }
                if direct:
                    obj = new(cls)
                    set_dict(obj, "__dict__", fields)
                    append(obj)
                else:
                    append(cls(**fields))
        return out


__all__ = [
    "EnvelopeBuilder",
    "encode",
    "encode_line",
    "fast_encoder",
    "dumps_line",
    "row_from_envelope",
    "rows_to_table",
    "schema_for",
]
