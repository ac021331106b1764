"""The write path's shortcut renders exactly what the general path renders.

``_codec.encode_line`` (what ``write_*`` use) takes a shortcut for plain envelopes; whatever it
returns must equal ``encode`` + ``dumps_line`` byte for byte, and for anything it cannot take
(tuples, datetimes, dataclasses, NaN, big ints, bad keys, subclasses, lone surrogates...) the
error must be the same exception with the same message, record id and field.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import uuid
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from metaspn_schemas import EmissionEnvelope, EntityRef, SignalEnvelope, TraceContext

from metaspn_store import FileSystemStore, InvalidRecordError, _codec
from metaspn_store._index import digest
from metaspn_store._layout import EMISSIONS, SIGNALS

UTC = timezone.utc
SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class Color(enum.Enum):
    RED = "red"


class StrColor(str, enum.Enum):
    BLUE = "blue"


class SubStr(str):
    pass


class SubInt(int):
    pass


class SubDict(dict):  # type: ignore[type-arg]
    pass


class SubList(list):  # type: ignore[type-arg]
    pass


class SubDatetime(datetime):
    pass


@dataclasses.dataclass
class Point:
    x: Any
    y: Any = None


def _outcome(fn: Any) -> tuple[Any, ...]:
    try:
        return ("ok", *fn())
    except Exception as exc:  # noqa: BLE001 - the point is to compare any failure
        return ("error", type(exc), str(exc), getattr(exc, "record_id", None), getattr(exc, "field", None))


def _general(kind: Any, envelope: Any) -> tuple[Any, ...]:
    record_id, ts, record = _codec.encode(kind, envelope)
    return record_id, ts.date(), _codec.dumps_line(record, f"{kind.label} {record_id!r}")


def _assert_same(kind: Any, envelope: Any) -> tuple[Any, ...]:
    general = _outcome(lambda: _general(kind, envelope))
    shortcut = _outcome(lambda: _codec.encode_line(kind, envelope))
    assert shortcut == general
    return shortcut


# --------------------------------------------------------------------------- strategies

_finite = st.floats(allow_nan=False, allow_infinity=False)
_plain_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    _finite,
    st.text(max_size=12),
)
_hostile_leaf = st.one_of(
    st.sampled_from([float("nan"), float("inf"), -float("inf"), 2**63, -(2**63) - 1, 2**64, 10**40]),
    st.integers(2**63, 2**64 - 1),  # orjson writes these; JSON readers do not keep them exactly
    st.sampled_from(["\ud800", "a\udfffb"]),
    st.datetimes(timezones=st.sampled_from([None, UTC, timezone(timedelta(hours=5, minutes=30))])),
    st.builds(Point, _plain_leaf, st.one_of(_plain_leaf, st.just((1, 2)))),
    st.sampled_from([Color.RED, StrColor.BLUE, uuid.UUID(int=7), Decimal("1.5"), b"raw", {1, 2}, date(2026, 1, 1)]),
    st.builds(SubStr, st.text(max_size=3)),
    st.builds(SubInt, st.integers(-5, 5)),
    st.just(SubDatetime(2026, 1, 1, tzinfo=UTC)),
)
_leaf = st.one_of(_plain_leaf, _plain_leaf, _plain_leaf, _hostile_leaf)
_keys = st.one_of(st.text(max_size=6), st.text(max_size=6), st.integers(0, 3), st.just((1, 2)), st.just("\udc00"))


def _containers(children: Any) -> Any:
    return st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(_keys, children, max_size=4),
        st.lists(children, max_size=3).map(tuple),
        st.dictionaries(st.text(max_size=4), children, max_size=3).map(SubDict),
        st.lists(children, max_size=3).map(SubList),
    )


_values = st.recursive(_leaf, _containers, max_leaves=12)
_plain_values = st.recursive(
    _plain_leaf,
    lambda c: st.one_of(st.lists(c, max_size=4), st.dictionaries(st.text(max_size=6), c, max_size=4)),
    max_leaves=12,
)
# Plain JSON with the odd value orjson would write but the store must refuse: NaN/inf (orjson
# writes null), unsigned 64-bit ints, non-string keys (without the tuples or dataclasses that
# would send the whole value down the converting path anyway).
_subtle_leaf = st.one_of(
    st.sampled_from([float("nan"), float("inf"), -float("inf"), -(2**63) - 1]),
    st.integers(2**63, 2**64 - 1),
)
_nearly_plain_values = st.recursive(
    st.one_of(_plain_leaf, _plain_leaf, _plain_leaf, _plain_leaf, _subtle_leaf),
    lambda c: st.one_of(
        st.lists(c, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=6), st.text(max_size=6), st.integers(0, 3)), c, max_size=4),
    ),
    max_leaves=8,
)
_timestamps = st.one_of(
    st.datetimes(timezones=st.just(UTC)),
    st.datetimes(),
    st.datetimes(
        min_value=datetime(2, 1, 1),
        max_value=datetime(9998, 1, 1),
        timezones=st.builds(lambda m: timezone(timedelta(minutes=m)), st.integers(-1439, 1439)),
    ),
    st.datetimes(timezones=st.just(UTC)).map(lambda d: d.replace(microsecond=0)),
    st.sampled_from(["2026-01-01T00:00:00Z", 0, None, date(2026, 1, 1), SubDatetime(2026, 1, 1, 1, tzinfo=UTC)]),
)
_ref_field = st.one_of(st.none(), st.text(max_size=5), st.text(max_size=5), _leaf)
_refs = st.builds(
    EntityRef,
    ref_type=st.one_of(st.just("eqv-person"), st.just("eqv-project"), _ref_field),
    value=st.one_of(st.text(max_size=5).map(lambda s: "eqv-" + s), _ref_field),
    platform=_ref_field,
    label=_ref_field,
    schema_version=st.one_of(st.just("0.8"), _ref_field),
)
_traces = st.one_of(
    st.none(),
    st.builds(
        TraceContext,
        trace_id=st.one_of(st.text(max_size=6), _leaf),
        caused_by=st.one_of(st.lists(st.text(max_size=4), max_size=3).map(tuple), _values),
        provenance=st.one_of(st.none(), st.text(max_size=4), _leaf),
        redactions=st.one_of(st.just(()), st.just(("raw",)), _values),
        metadata=st.one_of(st.dictionaries(st.text(max_size=4), st.text(max_size=4), max_size=3), _values),
        privacy_mode=st.one_of(st.booleans(), _leaf),
        schema_version=st.one_of(st.just("0.8"), _leaf),
    ),
    st.sampled_from(["t", {"trace_id": "t"}, 3]),
)
_ids = st.one_of(st.text(min_size=1, max_size=8), st.sampled_from(["", None, 5, SubStr("sub"), "\ud800x"]))
_strs = st.one_of(st.text(max_size=6), st.text(max_size=6), st.sampled_from([None, 3, SubStr("s"), "\udfff"]))
_versions = st.one_of(st.just("0.8"), st.just("0.8"), st.sampled_from(["", None, 8, "0.9", SubStr("0.8")]))
_ref_lists = st.one_of(
    st.lists(_refs, max_size=3).map(tuple),
    st.lists(_refs, max_size=2),
    st.sampled_from([None, (), ("not a ref",), ({"ref_type": "x"},)]),
)


def _raw_envelope(cls: type, fields: dict[str, Any]) -> Any:
    """An envelope with exactly these attribute values (no ``__post_init__`` normalisation)."""
    envelope = object.__new__(cls)
    object.__setattr__(envelope, "__dict__", fields)
    return envelope


@st.composite
def signals(draw: Any, payloads: Any = _values) -> Any:
    fields = {
        "signal_id": draw(_ids),
        "timestamp": draw(_timestamps),
        "source": draw(_strs),
        "payload_type": draw(_strs),
        "payload": draw(payloads),
        "schema_version": draw(_versions),
        "entity_refs": draw(_ref_lists),
        "trace": draw(_traces),
        "raw": draw(st.one_of(st.none(), st.none(), st.dictionaries(_keys, _values, max_size=3), _values)),
    }
    if draw(st.booleans()):
        return _raw_envelope(SignalEnvelope, fields)
    try:
        return SignalEnvelope(**fields)
    except Exception:  # noqa: BLE001 - e.g. a non-datetime timestamp: keep the raw form
        return _raw_envelope(SignalEnvelope, fields)


@st.composite
def emissions(draw: Any, payloads: Any = _values) -> Any:
    fields = {
        "emission_id": draw(_ids),
        "timestamp": draw(_timestamps),
        "emission_type": draw(_strs),
        "payload": draw(payloads),
        "caused_by": draw(_strs),
        "schema_version": draw(_versions),
        "trace": draw(_traces),
        "entity_refs": draw(_ref_lists),
    }
    return _raw_envelope(EmissionEnvelope, fields)


# --------------------------------------------------------------------------- properties


@SETTINGS
@given(signals())
def test_signal_line_and_error_equal_the_general_path(envelope):
    _assert_same(SIGNALS, envelope)


@SETTINGS
@given(emissions())
def test_emission_line_and_error_equal_the_general_path(envelope):
    _assert_same(EMISSIONS, envelope)


@SETTINGS
@given(st.one_of(signals(_plain_values), emissions(_plain_values)))
def test_plain_envelopes_equal_the_general_path(envelope):
    _assert_same(SIGNALS if isinstance(envelope, SignalEnvelope) else EMISSIONS, envelope)


@SETTINGS
@given(st.text(max_size=40))
def test_digest_is_the_two_little_endian_md5_halves(record_id):
    raw = hashlib.md5(record_id.encode("utf-8"), usedforsecurity=False).digest()
    assert digest(record_id) == (int.from_bytes(raw[:8], "little"), int.from_bytes(raw[8:], "little"))


# --------------------------------------------------------------------------- pinned bytes


@dataclasses.dataclass
class _Stamp:
    x: int
    when: datetime


PINNED = [
    (
        SIGNALS,
        SignalEnvelope(
            signal_id="s1",
            timestamp=datetime(2026, 3, 1, 23, 30),
            source="src",
            payload_type="T",
            payload={"b": 1, "a": [1.5, None, True, "zoë 🚀"], "c": {"z": 2**63 - 1, "y": -(2**63)}},
        ),
        date(2026, 3, 1),
        '{"entity_refs":[],"payload":{"a":[1.5,null,true,"zoë 🚀"],"b":1,"c":{"y":-9223372036854775808,'
        '"z":9223372036854775807}},"payload_type":"T","raw":null,"schema_version":"0.8","signal_id":"s1",'
        '"source":"src","timestamp":"2026-03-01T23:30:00Z","trace":null}\n',
    ),
    (
        SIGNALS,
        SignalEnvelope(
            signal_id="s2",
            timestamp=datetime(2026, 3, 1, 23, 30, 0, 120, tzinfo=timezone(timedelta(hours=-2))),
            source="src",
            payload_type="T",
            payload=(1, (2, 3), {"t": datetime(2026, 1, 1, 5, tzinfo=timezone(timedelta(hours=1)))}),
            entity_refs=(EntityRef("person", "p1", "twitter", "Zoë"), EntityRef("project", "x")),
            trace=TraceContext(trace_id="t1", caused_by=("a", "b"), metadata={"k": "v"}),
            raw={"h": [_Stamp(1, datetime(2026, 1, 1))]},
        ),
        date(2026, 3, 2),
        '{"entity_refs":[{"label":"Zoë","platform":"twitter","ref_type":"person","schema_version":"0.8",'
        '"value":"p1"},{"label":null,"platform":null,"ref_type":"project","schema_version":"0.8","value":"x"}],'
        '"payload":[1,[2,3],{"t":"2026-01-01T04:00:00Z"}],"payload_type":"T",'
        '"raw":{"h":[{"when":"2026-01-01T00:00:00Z","x":1}]},"schema_version":"0.8","signal_id":"s2",'
        '"source":"src","timestamp":"2026-03-02T01:30:00.000120Z","trace":{"caused_by":["a","b"],'
        '"metadata":{"k":"v"},"privacy_mode":false,"provenance":null,"redactions":[],"schema_version":"0.8",'
        '"trace_id":"t1"}}\n',
    ),
    (
        EMISSIONS,
        EmissionEnvelope(
            emission_id="e1",
            timestamp=datetime(2026, 3, 2, tzinfo=UTC),
            emission_type="OutcomeSuccess",
            payload="done",
            caused_by="s1",
            trace=TraceContext(trace_id="t", privacy_mode=True, redactions=("raw",)),
        ),
        date(2026, 3, 2),
        '{"caused_by":"s1","emission_id":"e1","emission_type":"OutcomeSuccess","entity_refs":[],"payload":"done",'
        '"schema_version":"0.8","timestamp":"2026-03-02T00:00:00Z","trace":{"caused_by":[],"metadata":{},'
        '"privacy_mode":true,"provenance":null,"redactions":["raw"],"schema_version":"0.8","trace_id":"t"}}\n',
    ),
]


@pytest.mark.parametrize(("kind", "envelope", "day", "line"), PINNED)
def test_pinned_lines(kind, envelope, day, line):
    assert _assert_same(kind, envelope) == ("ok", envelope.__dict__[kind.id_field], day, line.encode("utf-8"))


@pytest.mark.parametrize(
    "when",
    [
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(999, 12, 31, 23, 59, 59, 1, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2026, 3, 1, fold=1, tzinfo=UTC),
        datetime(2026, 3, 1, 0, 0, 0, 10),
    ],
)
def test_timestamp_text_is_iso_z(when):
    envelope = SignalEnvelope(signal_id="s", timestamp=when, source="a", payload_type="b", payload=None)
    outcome = _assert_same(SIGNALS, envelope)
    assert f'"timestamp":"{_codec.iso_z(when)}"'.encode() in outcome[3]


# --------------------------------------------------------------------------- whole batches


def _signal(record_id: str, hour: int, payload: Any = None) -> SignalEnvelope:
    return SignalEnvelope(
        signal_id=record_id,
        timestamp=datetime(2026, 3, 1, tzinfo=UTC) + timedelta(hours=hour),
        source="src",
        payload_type="T",
        payload=payload,
    )


def test_mixed_batch_drops_duplicates_keeps_order_and_returns_first_locations(tmp_path):
    store = FileSystemStore(tmp_path)
    first = store.write_signals([_signal("a", 0, 1), _signal("b", 30, 1)])
    batch = [
        _signal("c", 1, 2),
        _signal("a", 40, 2),  # stored already (day 1)
        _signal("d", 50, 2),  # day 3
        _signal("c", 2, 3),  # repeated inside the batch
        _signal("b", 0, 3),  # stored already (day 2)
        _signal("e", 3, 2),
        _signal("f", 55, 2),
    ]
    paths = store.write_signals(batch)
    day1, day2, day3 = (store.signals_dir / f"2026-03-0{d}.jsonl" for d in (1, 2, 3))
    assert first == [day1, day2]
    assert paths == [day1, day1, day3, day1, day2, day1, day3]
    expected = {
        day1: [_signal("a", 0, 1), _signal("c", 1, 2), _signal("e", 3, 2)],
        day2: [_signal("b", 30, 1)],
        day3: [_signal("d", 50, 2), _signal("f", 55, 2)],
    }
    for path, envelopes in expected.items():
        assert path.read_bytes() == b"".join(_codec.encode_line(SIGNALS, e)[2] for e in envelopes)
    assert store.write_signals([_signal("a", 3), _signal("c", 60)]) == [day1, day1]
    assert not (store.signals_dir / "2026-03-03.jsonl").read_bytes().count(b'"c"')


def test_a_bad_record_anywhere_in_a_batch_writes_nothing(tmp_path):
    store = FileSystemStore(tmp_path)
    batch = [_signal("a", 0), _signal("b", 30), _signal("c", 1, {"x": float("nan")})]
    with pytest.raises(ValueError, match=r"signal 'c': field payload.x holds nan"):
        store.write_signals(batch)
    assert not list(store.signals_dir.glob("*.jsonl"))


# --------------------------------------------------------------------------- an independent oracle
# The properties above compare the shortcut with the general path, which share helpers. This one
# checks both against a from-scratch statement of the rules: metaspn-schemas' ``to_dict``
# (tuples -> lists, datetimes -> ISO text with Z, dataclasses -> dicts), refusing NaN/inf,
# integers outside 64 bits, non-string keys, strings that are not UTF-8 and any other type.


class _Refused(Exception):
    pass


def _oracle_value(value: Any) -> Any:
    if value is None or isinstance(value, str | bool):
        return value
    if isinstance(value, int):
        if value < -(2**63) or value >= 2**63:
            raise _Refused
        return value
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise _Refused
        return value
    if isinstance(value, dict):
        if any(not isinstance(key, str) for key in value):
            raise _Refused
        return {key: _oracle_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_oracle_value(item) for item in value]
    if isinstance(value, datetime):
        return _utc_text(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _oracle_value(getattr(value, f.name)) for f in dataclasses.fields(value)}
    raise _Refused


def _utc_text(value: datetime) -> str:
    utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    text = f"{utc:%Y-%m-%dT%H:%M:%S}"
    if utc.year < 1000:
        text = f"{utc.year:04d}" + text[text.index("-") :]
    return text + (f".{utc.microsecond:06d}" if utc.microsecond else "") + "Z"


def _oracle_line(kind: Any, envelope: Any) -> bytes:
    """The line, or _Refused / ValueError where the store must refuse the envelope."""
    fields = envelope.__dict__
    if not fields.get(kind.id_field) or not fields.get("schema_version"):
        raise ValueError("required")
    strings = [kind.id_field, "schema_version"] + (
        ["source", "payload_type"] if kind is SIGNALS else ["emission_type", "caused_by"]
    )
    if any(not isinstance(fields[name], str) for name in strings):
        raise _Refused
    if not isinstance(fields["timestamp"], datetime):
        raise _Refused
    if any(not isinstance(ref, EntityRef) for ref in fields["entity_refs"] or ()):
        raise _Refused
    if fields["trace"] is not None and not isinstance(fields["trace"], TraceContext):
        raise _Refused
    if kind is SIGNALS and fields["raw"] is not None and not isinstance(fields["raw"], dict):
        raise _Refused
    record = {name: _oracle_value(value) for name, value in fields.items()}
    record["timestamp"] = _utc_text(fields["timestamp"])
    record["entity_refs"] = [_oracle_value(ref) for ref in fields["entity_refs"] or ()]
    try:  # orjson only renders here: numbers as the store writes them; it refuses lone surrogates
        return orjson.dumps(record, option=orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE)
    except orjson.JSONEncodeError:
        raise _Refused from None


_oracle_refs = st.builds(
    EntityRef,
    ref_type=st.sampled_from(["orc-person", "orc-project"]),
    value=st.text(max_size=5).map(lambda s: "orc-" + s),
    platform=st.one_of(st.none(), st.text(max_size=4), st.sampled_from([float("nan"), 2**64, object()])),
    label=st.one_of(st.none(), st.text(max_size=4)),
)


@st.composite
def _oracle_envelopes(draw: Any) -> tuple[Any, Any]:
    """Mostly well-formed envelopes (so an odd value deep inside decides the outcome), some with a
    bad top-level field."""
    sound = draw(st.integers(0, 3)) > 0
    payloads = st.one_of(_values, _plain_values, _nearly_plain_values, _nearly_plain_values)
    ids = st.text(min_size=1, max_size=8)
    versions = st.just("0.8")
    strs = st.text(max_size=6)
    timestamps = _timestamps.filter(lambda ts: isinstance(ts, datetime)) if sound else _timestamps
    metadata = st.dictionaries(st.text(max_size=3), st.text(max_size=3) if sound else _leaf)
    refs = st.lists(_oracle_refs, max_size=2).map(tuple)
    if sound:
        refs = st.lists(_oracle_refs.filter(lambda ref: ref.platform is None or isinstance(ref.platform, str)), max_size=2)
    else:
        ids = st.one_of(ids, st.sampled_from(["", None, 5]))
        versions = st.sampled_from(["0.8", "", None, 8])
        strs = st.one_of(strs, st.sampled_from([None, 3]))
    traces = st.one_of(st.none(), st.builds(TraceContext, trace_id=st.text(max_size=4), metadata=metadata))
    if draw(st.booleans()):
        return SIGNALS, _raw_envelope(
            SignalEnvelope,
            {
                "signal_id": draw(ids),
                "timestamp": draw(timestamps),
                "source": draw(strs),
                "payload_type": draw(strs),
                "payload": draw(payloads),
                "schema_version": draw(versions),
                "entity_refs": draw(refs),
                "trace": draw(traces),
                "raw": draw(st.one_of(st.none(), st.dictionaries(_keys, _values, max_size=3), _nearly_plain_values)),
            },
        )
    return EMISSIONS, _raw_envelope(
        EmissionEnvelope,
        {
            "emission_id": draw(ids),
            "timestamp": draw(timestamps),
            "emission_type": draw(strs),
            "payload": draw(payloads),
            "caused_by": draw(strs),
            "schema_version": draw(versions),
            "trace": draw(traces),
            "entity_refs": draw(refs),
        },
    )


@SETTINGS
@given(_oracle_envelopes())
def test_lines_and_refusals_follow_the_rules(case):
    kind, envelope = case
    try:
        expected = _oracle_line(kind, envelope)
    except ValueError:  # 0.1.8's own refusals (missing id or schema_version)
        with pytest.raises(ValueError, match="is required"):
            _codec.encode_line(kind, envelope)
        return
    except _Refused:
        with pytest.raises(InvalidRecordError) as info:
            _codec.encode_line(kind, envelope)
        assert str(info.value).startswith(f"{kind.label} {envelope.__dict__[kind.id_field]!r}: ")
        return
    assert _codec.encode_line(kind, envelope)[2] == expected


def test_refs_with_non_string_values_are_refused_not_written(tmp_path):
    """EntityRef(value=1) == EntityRef(value=True) == EntityRef(value=1.0), but a reader (0.1.8's
    from_dict included) turns each into a string: none would read back equal, so all are refused
    before anything is written, whichever encode path sees them first (the ref cache included)."""
    when = datetime(2026, 2, 1, tzinfo=timezone.utc)
    store = FileSystemStore(tmp_path)
    store.write_signal(SignalEnvelope(signal_id="ok", timestamp=when, source="s", payload_type="p", payload={},
                                      entity_refs=(EntityRef(ref_type="t", value="1"),)))
    for n, value in enumerate([1, True, 1.0]):
        with pytest.raises(InvalidRecordError, match=r"entity_refs\[0\]\.value"):
            store.write_signal(
                SignalEnvelope(signal_id=f"r{n}", timestamp=when, source="s", payload_type="p", payload={},
                               entity_refs=(EntityRef(ref_type="t", value=value),))  # type: ignore[arg-type]
            )
    lines = (tmp_path / "store" / "signals" / "2026-02-01.jsonl").read_bytes().splitlines()
    assert [orjson.loads(line)["signal_id"] for line in lines] == ["ok"]
