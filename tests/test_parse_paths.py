"""One definition of a valid record line (``metaspn_store._rules``), whatever path reads it.

The same generated lines (valid, hostile, 0.1.8-written NaN, repeated keys, odd timestamps, BOM,
CRLF, blank lines, foreign shapes, ids on bad lines, invalid UTF-8, deep nesting) go through

* the line-by-line path and the bulk (DuckDB) path of the parser: identical rows and reports;
* a real store whose day file is small (read line by line) and one whose day file is above the
  production bulk threshold: identical replays, ``verify()`` reports, duplicate decisions of the
  id index, compaction (quarantine and the rows it keeps), and reopened stores (saved files).
"""

from __future__ import annotations

import warnings
from datetime import datetime, timezone
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from metaspn_schemas import SignalEnvelope

from metaspn_store import BadLineWarning, FileSystemStore
from metaspn_store._layout import SIGNALS
from metaspn_store._parse import new_connection, parse_bulk, parse_exact
from metaspn_store._rules import BULK_THRESHOLD

UTC = timezone.utc
DAY = "2026-02-05"
WINDOW = (datetime(2026, 2, 4, tzinfo=UTC), datetime(2026, 2, 7, tzinfo=UTC))


def base_record(record_id: str, second: int = 0) -> dict:
    """A record exactly as the writer renders it (sorted keys, every field present)."""
    return {
        "entity_refs": [
            {"label": None, "platform": "x", "ref_type": "person", "schema_version": "0.8", "value": "p1"}
        ],
        "payload": {"score": 0.5, "status": "READY", "n": 3},
        "payload_type": "RecommendationCandidate",
        "raw": None,
        "schema_version": "0.8",
        "signal_id": record_id,
        "source": "score.worker",
        "timestamp": f"{DAY}T12:00:{second % 60:02d}Z",
        "trace": None,
    }


def dumps(record: dict) -> bytes:
    return orjson.dumps(record, option=orjson.OPT_SORT_KEYS)


def _with(record: dict, **changes: object) -> bytes:
    return dumps({**record, **changes})


TRACE = {"trace_id": "t", "caused_by": ["a"], "provenance": None, "redactions": [], "metadata": {"k": "v"},
         "privacy_mode": False, "schema_version": "0.8"}

# Each mutation turns a valid record (with its own id) into the bytes of one line.
MUTATIONS = {
    "valid": lambda r: dumps(r),
    "valid_trace": lambda r: _with(r, trace=TRACE),
    "valid_raw": lambda r: _with(r, raw={"k": [1, 2.5, None]}),
    "unknown_key": lambda r: _with(r, extra_field={"a": 1}),
    "crlf": lambda r: dumps(r) + b"\r",
    "spaces": lambda r: b"  " + dumps(r).replace(b",", b", ") + b"  ",
    "unsorted": lambda r: orjson.dumps(dict(reversed(list(r.items())))),
    "nan": lambda r: dumps(r).replace(b'"score":0.5', b'"score":NaN'),
    "infinity": lambda r: dumps(r).replace(b'"score":0.5', b'"score":-Infinity'),
    "overflow": lambda r: dumps(r).replace(b'"score":0.5', b'"score":1e309'),
    "big_int": lambda r: dumps(r).replace(b'"score":0.5', b'"score":123456789012345678901234567890'),
    "exp_number": lambda r: dumps(r).replace(b'"score":0.5', b'"score":1E+2'),
    "trailing_comma": lambda r: dumps(r).replace(b'"n":3}', b'"n":3,}'),
    "trailing_comma_list": lambda r: dumps(r).replace(b'"value":"p1"}]', b'"value":"p1"},]'),
    "repeated_top_key": lambda r: dumps(r)[:-1] + b',"signal_id":"other-' + r["signal_id"].encode() + b'"}',
    "repeated_payload": lambda r: dumps(r)[:-1] + b',"payload":{"score":9}}',
    "repeated_score": lambda r: dumps(r).replace(b'"score":0.5', b'"score":0.5,"score":"high"'),
    "repeated_ref_key": lambda r: dumps(r).replace(b'"value":"p1"', b'"value":"p1","value":"p2"'),
    "repeated_trace_meta": lambda r: _with(r, trace=TRACE).replace(b'"k":"v"', b'"k":"v","k":"w"'),
    "bom": lambda r: b"\xef\xbb\xbf" + dumps(r),
    "comment": lambda r: dumps(r).replace(b'"n":3', b'"n":3 /* c */'),
    "two_values": lambda r: dumps(r) + b" {}",
    "tab_in_string": lambda r: dumps(r).replace(b"READY", b"RE\tADY"),
    "invalid_utf8": lambda r: dumps(r).replace(b"READY", b"RE\xffADY"),
    "lone_surrogate": lambda r: dumps(r).replace(b"READY", b"\\ud800"),
    "unicode_escape": lambda r: dumps(r).replace(b"READY", b"\\u00e9t\\u00e9"),
    "deep": lambda r: dumps(r).replace(b'"n":3', b'"n":' + b"[" * 300 + b"]" * 300),
    "array_line": lambda r: b"[1,2]",
    "scalar_line": lambda r: b'"just text"',
    "null_line": lambda r: b"null",
    "empty_object": lambda r: b"{}",
    "missing_payload": lambda r: dumps({k: v for k, v in r.items() if k != "payload"}),
    "null_payload": lambda r: _with(r, payload=None),
    "list_payload": lambda r: _with(r, payload=[1, "a"]),
    "missing_timestamp": lambda r: dumps({k: v for k, v in r.items() if k != "timestamp"}),
    "missing_schema_version": lambda r: dumps({k: v for k, v in r.items() if k != "schema_version"}),
    "empty_id": lambda r: _with(r, signal_id=""),
    "int_id": lambda r: _with(r, signal_id=12345),
    "null_id": lambda r: _with(r, signal_id=None),
    "int_source": lambda r: _with(r, source=7),
    "ref_int_value": lambda r: _with(r, entity_refs=[{"ref_type": "person", "value": 1, "schema_version": "0.8"}]),
    "ref_bool_value": lambda r: _with(r, entity_refs=[{"ref_type": "person", "value": True, "schema_version": "0.8"}]),
    "ref_missing_version": lambda r: _with(r, entity_refs=[{"ref_type": "person", "value": "p"}]),
    "ref_not_object": lambda r: _with(r, entity_refs=["p1"]),
    "refs_not_list": lambda r: _with(r, entity_refs={"ref_type": "person"}),
    "trace_partial": lambda r: _with(r, trace={"trace_id": "t"}),
    "trace_null_lists": lambda r: _with(r, trace={"trace_id": "t", "caused_by": None, "redactions": None}),
    "trace_bad": lambda r: _with(r, trace={"trace_id": 5}),
    "trace_extra": lambda r: _with(r, trace={**TRACE, "x": 1}),
    "raw_list": lambda r: _with(r, raw=[1]),
    "ts_feb30": lambda r: _with(r, timestamp="2026-02-30T00:00:00Z"),
    "ts_24h": lambda r: _with(r, timestamp=f"{DAY}T24:00:00Z"),
    "ts_bad_offset": lambda r: _with(r, timestamp=f"{DAY}T12:00:00+99:99"),
    "ts_naive": lambda r: _with(r, timestamp=f"{DAY}T12:00:00"),
    "ts_date_only": lambda r: _with(r, timestamp=DAY),
    "ts_lower_z": lambda r: _with(r, timestamp=f"{DAY}T12:00:00z"),
    "ts_comma": lambda r: _with(r, timestamp=f"{DAY}T12:00:00,5Z"),
    "ts_7_digits": lambda r: _with(r, timestamp=f"{DAY}T12:00:00.1234567Z"),
    "ts_space": lambda r: _with(r, timestamp=f"{DAY} 12:00:00Z"),
    "ts_week": lambda r: _with(r, timestamp="2026-W06-4"),
    "ts_leap_second": lambda r: _with(r, timestamp=f"{DAY}T23:59:60Z"),
    "ts_local_offset": lambda r: _with(r, timestamp=f"{DAY}T23:30:00-05:00"),
    "ts_year_edge": lambda r: _with(r, timestamp="9999-12-31T23:00:00-05:00"),
    "ts_year_one": lambda r: _with(r, timestamp="0001-01-01T00:30:00+01:00"),
    "ts_number": lambda r: _with(r, timestamp=1770000000),
    "blank": lambda r: b"",
    "whitespace": lambda r: b" \t ",
    "form_feed": lambda r: b"\x0c",
    "cr_only": lambda r: b"\r",
}

lines_strategy = st.lists(
    st.tuples(st.sampled_from(sorted(MUTATIONS)), st.integers(0, 5), st.integers(0, 59)),
    min_size=1,
    max_size=25,
)


def make_lines(spec: list[tuple[str, int, int]]) -> list[bytes]:
    """Lines from (mutation, id number, second): few distinct ids, so ids repeat across lines."""
    return [MUTATIONS[name](base_record(f"s{number}", second)) for name, number, second in spec]


def normalized(table) -> list[dict]:
    """Rows with JSON text columns decoded (two renderings of one value are the same row)."""
    out = []
    for row in table.to_pylist():
        for key in ("payload", "trace", "raw", "extra"):
            if row[key] is not None:
                row[key] = orjson.loads(row[key])
        out.append(row)
    return out


def test_every_mutation_is_classified_the_same_by_both_paths(tmp_path):
    """Each hostile line on its own, between two valid lines, through both parser paths."""
    con = new_connection()
    for name in sorted(MUTATIONS):
        lines = [dumps(base_record("before")), MUTATIONS[name](base_record("x", 1)), dumps(base_record("after"))]
        data = b"\n".join(lines) + b"\n"
        exact = parse_exact(SIGNALS, data, 0, "f")
        bulk = parse_bulk(SIGNALS, con, data, 0, "f")
        assert normalized(bulk[0]) == normalized(exact[0]), name
        assert bulk[1] == exact[1], name
        assert bulk[2] == exact[2] == 3


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines_strategy, st.integers(0, 3))
def test_parser_paths_agree(spec, first_line):
    con = new_connection()
    data = b"\n".join(make_lines(spec)) + b"\n"
    exact = parse_exact(SIGNALS, data, first_line, "f")
    bulk = parse_bulk(SIGNALS, con, data, first_line, "f")
    assert normalized(bulk[0]) == normalized(exact[0])
    assert bulk[1] == exact[1]
    assert bulk[2] == exact[2]


def test_bulk_path_reads_the_live_file_in_place(tmp_path):
    """``whole_file``: DuckDB reads the file itself; appended bytes past the chunk are ignored."""
    con = new_connection()
    lines = make_lines([(name, i % 6, i) for i, name in enumerate(sorted(MUTATIONS))])
    data = b"\n".join(lines) + b"\n"
    path = tmp_path / "f.jsonl"
    path.write_bytes(data + dumps(base_record("later")) + b"\n")
    exact = parse_exact(SIGNALS, data, 0, str(path))
    bulk = parse_bulk(SIGNALS, con, data, 0, str(path), whole_file=path)
    assert normalized(bulk[0]) == normalized(exact[0])
    assert bulk[1] == exact[1]


# ---------------------------------------------------------------------------- whole stores


def _store_with(tmp: Path, lines: list[bytes], *, large: bool) -> FileSystemStore:
    folder = tmp / "store" / "signals"
    folder.mkdir(parents=True)
    data = b"\n".join(lines) + b"\n"
    if large:
        # A blank (whitespace-only) line: skipped by every reader, and it makes the file big
        # enough for the bulk path.
        data += b" " * BULK_THRESHOLD + b"\n"
        assert len(data) >= BULK_THRESHOLD
    (folder / f"{DAY}.jsonl").write_bytes(data)
    return FileSystemStore(tmp)


def _observe(store: FileSystemStore, ids: list[str]) -> dict:
    """Everything a user can see of the day: replay, table, reports, duplicate decisions."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BadLineWarning)
        replay = [s.to_dict() for s in store.iter_signals(*WINDOW)]
        table = store.read_signals(*WINDOW)
        reports = sorted((r.line, r.reason) for r in store.verify())
        count = store.sql("SELECT count(*) FROM signals").fetchall()[0][0]
        top = [s.signal_id for s in store.get_top_recommendation_candidates(
            start=WINDOW[0], end=WINDOW[1], limit=10, unique_by_entity=False)]
    return {
        "replay": replay,
        "table": [(r["signal_id"], r["seq"], r["payload"]) for r in normalized_view(table)],
        "reports": reports,
        "count": count,
        "top": top,
    }


def normalized_view(table) -> list[dict]:
    rows = table.to_pylist()
    for row in rows:
        row["payload"] = orjson.loads(row["payload"]) if row["payload"] is not None else None
    return rows


def _duplicate_decisions(store: FileSystemStore, ids: list[str]) -> dict[str, bool]:
    """For each id: does the store already hold a record of it? (write with on_duplicate=raise)."""
    out = {}
    for record_id in ids:
        probe = SignalEnvelope(
            signal_id=record_id, timestamp=datetime(2026, 2, 6, 1, tzinfo=UTC), source="probe",
            payload_type="Probe", payload={},
        )
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", BadLineWarning)
                store.write_signal(probe, on_duplicate="raise")
            out[record_id] = False
        except ValueError:
            out[record_id] = True
    return out


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(spec=lines_strategy)
def test_small_and_large_files_answer_the_same_before_and_after_compaction(tmp_path_factory, spec):
    lines = make_lines(spec)
    ids = [f"s{i}" for i in range(6)] + ["other-s0", "12345"]
    small = _store_with(tmp_path_factory.mktemp("small"), lines, large=False)
    large = _store_with(tmp_path_factory.mktemp("large"), lines, large=True)
    seen_small, seen_large = _observe(small, ids), _observe(large, ids)
    assert seen_large == seen_small
    # Reopened: the large store saved its parse; the answers stay the same.
    reopened = FileSystemStore(large.workspace)
    assert _observe(reopened, ids) == seen_small
    # Compaction keeps exactly what reads returned and quarantines exactly what verify reported.
    for store in (small, large):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", BadLineWarning)
            store.compact(before=datetime(2026, 3, 1).date())
        after = _observe(store, ids)
        assert after["replay"] == seen_small["replay"]
        assert after["top"] == seen_small["top"]
        assert after["count"] == seen_small["count"]
        assert after["reports"] == []
        quarantined = sorted(
            (entry["line"], entry["reason"])
            for path in (store.store_root / "quarantine" / "signals").glob("*.jsonl")
            for entry in map(orjson.loads, path.read_bytes().splitlines())
        ) if (store.store_root / "quarantine").exists() else []
        assert quarantined == seen_small["reports"]
    # The id index (writes) agrees with the reads: an id is taken iff a valid record holds it.
    held = {s["signal_id"] for s in seen_small["replay"]}
    for store in (small, large):
        decisions = _duplicate_decisions(store, ids)
        assert decisions == {i: i in held for i in ids}


@pytest.mark.parametrize("large", [False, True])
def test_a_bad_line_with_an_id_does_not_claim_it(tmp_path, large):
    """Issue 10 case 2: a malformed line carrying X, then a valid X on a later day."""
    bad = dumps(base_record("X")).replace(b'"score":0.5', b'"score":NaN')
    store = _store_with(tmp_path, [bad, dumps(base_record("Y"))], large=large)
    later = SignalEnvelope(signal_id="X", timestamp=datetime(2026, 2, 6, 1, tzinfo=UTC), source="s",
                           payload_type="p", payload={"v": 1})
    with pytest.warns(BadLineWarning):
        path = store.write_signal(later, on_duplicate="raise")
    assert path.name == "2026-02-06.jsonl"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BadLineWarning)
        store.compact(before=datetime(2026, 3, 1).date())
        assert [s for s in store.iter_signals(*WINDOW) if s.signal_id == "X"] == [later]


def test_the_bulk_path_vouches_for_plain_lines_and_never_for_bad_ones():
    """The comparison above would pass trivially if the bulk SQL always fell back to the exact
    path: check what it vouches for. Plain lines (ours, 0.1.8's) are vouched for; no line the
    definition rejects ever is."""
    from metaspn_store._parse import _bulk_or_none

    con = new_connection()
    names = sorted(MUTATIONS)
    lines = [MUTATIONS[name](base_record(f"x{i}", i)) for i, name in enumerate(names)]
    data = b"\n".join(lines) + b"\n"
    table = _bulk_or_none(SIGNALS, con, data, len(lines), None)
    assert table is not None
    vouched = dict(zip(names, table.column("ok").to_pylist(), strict=True))
    _, bad, _ = parse_exact(SIGNALS, data, 0, "f")
    rejected = {names[report.line - 1] for report in bad}
    assert rejected, "the mutations must include bad lines"
    assert not {name for name in rejected if vouched[name]}
    assert vouched["valid"] and vouched["valid_trace"] and vouched["valid_raw"] and vouched["crlf"]


# ---------------------------------------------------------------------------- writer -> reader

from datetime import timedelta  # noqa: E402

from metaspn_schemas import EntityRef, TraceContext  # noqa: E402

from metaspn_store import InvalidRecordError  # noqa: E402
from metaspn_store._codec import EnvelopeBuilder, encode_line  # noqa: E402

odd_scalars = st.one_of(st.text(max_size=3), st.none(), st.integers(-3, 3), st.booleans(), st.floats(-1, 1))
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=False,
              allow_infinity=False), st.text(max_size=5)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)),
    max_leaves=8,
)
refs = st.builds(EntityRef, ref_type=odd_scalars, value=odd_scalars, platform=odd_scalars, label=odd_scalars,
                 schema_version=odd_scalars)
traces = st.one_of(st.none(), st.builds(
    TraceContext, trace_id=odd_scalars, caused_by=st.one_of(st.tuples(odd_scalars), st.just(())),
    provenance=odd_scalars, redactions=st.just(()), metadata=st.dictionaries(st.text(max_size=2), odd_scalars,
                                                                            max_size=2),
    privacy_mode=st.one_of(st.booleans(), st.none()),
))
timestamps = st.builds(
    lambda when, minutes: when.replace(tzinfo=timezone(timedelta(minutes=minutes))),
    # A day in from either end: metaspn-schemas converts the timestamp to UTC when the envelope is
    # built, and 0001-01-01 at +01:00 (or 9999-12-31 at -01:00) cannot be, so hypothesis failed
    # while generating envelopes (OverflowError), before any code of ours ran.
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30, 23, 59)),
    st.integers(-23 * 60, 23 * 60),
)
signals = st.builds(
    SignalEnvelope, signal_id=st.text(min_size=1, max_size=4), timestamp=timestamps, source=st.text(max_size=3),
    payload_type=st.text(max_size=3), payload=json_values, entity_refs=st.lists(refs, max_size=2).map(tuple),
    trace=traces, raw=st.one_of(st.none(), st.dictionaries(st.text(max_size=3), json_values, max_size=2)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(signals, min_size=1, max_size=6))
def test_what_the_writer_accepts_reads_back_equal_on_both_paths(envelopes):
    """Every line the writer renders is a valid line by the rules, on both paths, and reads back
    as an envelope equal to the one written; what would not is refused before writing."""
    accepted, lines = [], []
    for envelope in envelopes:
        try:
            _, _, line = encode_line(SIGNALS, envelope)
        except InvalidRecordError:
            continue
        accepted.append(envelope)
        lines.append(line)
    if not lines:
        return
    data = b"".join(lines)
    con = new_connection()
    for table, bad, _ in (parse_exact(SIGNALS, data, 0, "f"), parse_bulk(SIGNALS, con, data, 0, "f")):
        assert bad == []
        assert EnvelopeBuilder(SIGNALS).build(table) == accepted


# ---------------------------------------------------------------------------- from_dict

from metaspn_schemas import EmissionEnvelope  # noqa: E402

from metaspn_store._rules import from_dict  # noqa: E402

leaf = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.floats(allow_nan=False), st.text(max_size=3),
                 st.sampled_from(["2026-02-05T12:00:00Z", "2026-02-30", "2026-02-05T12:00:00+01:00", "x"]))
loose = st.recursive(leaf, lambda inner: st.one_of(st.lists(inner, max_size=2),
                                                   st.dictionaries(st.text(max_size=3), inner, max_size=2)),
                     max_leaves=5)
ref_like = st.fixed_dictionaries({}, optional={k: loose for k in ("ref_type", "value", "platform", "label",
                                                                   "schema_version", "x")})
trace_like = st.fixed_dictionaries({}, optional={k: loose for k in ("trace_id", "caused_by", "provenance",
                                                                     "redactions", "metadata", "privacy_mode")})
field_values = {
    "entity_refs": st.one_of(st.lists(st.one_of(ref_like, loose), max_size=2), loose),
    "trace": st.one_of(trace_like, loose),
    "raw": st.one_of(st.dictionaries(st.text(max_size=2), loose, max_size=2), loose),
}
KEYS = ["signal_id", "emission_id", "timestamp", "source", "payload_type", "emission_type", "caused_by",
        "payload", "schema_version", "entity_refs", "trace", "raw", "other"]
records = st.fixed_dictionaries({}, optional={k: field_values.get(k, loose) for k in KEYS})


def _outcome(call, *args):
    try:
        value = call(*args)
    except Exception as exc:  # noqa: BLE001 - the comparison is the point
        return ("raised", type(exc).__name__, str(exc))
    return ("value", value, repr(value))


@settings(max_examples=400, deadline=None)
@given(records)
def test_cached_from_dict_is_metaspn_schemas_from_dict(record):
    for cls in (SignalEnvelope, EmissionEnvelope):
        assert _outcome(from_dict, cls, record) == _outcome(cls.from_dict, record)


def test_emission_lines_are_classified_the_same_by_both_paths():
    """The bulk SQL is built per kind: emissions (no raw, caused_by) through the same mutations."""
    from metaspn_store._layout import EMISSIONS

    def emission(record_id: str, second: int) -> dict:
        record = base_record(record_id, second)
        record.pop("raw")
        record.pop("source")
        record["emission_id"] = record.pop("signal_id")
        record["emission_type"] = record.pop("payload_type")
        record["caused_by"] = "s0"
        return record

    con = new_connection()
    names = [n for n in sorted(MUTATIONS) if not n.startswith(("int_source", "raw_list", "valid_raw",
                                                                "repeated_top_key", "empty_id", "int_id", "null_id"))]
    lines = [MUTATIONS[name](emission(f"e{i}", i)) for i, name in enumerate(names)]
    lines += [dumps({**emission("e-int-cause", 1), "caused_by": 5}), dumps({**emission("e-raw", 2), "raw": {"a": 1}}),
              dumps({k: v for k, v in emission("e-no-cause", 3).items() if k != "caused_by"})]
    data = b"\n".join(lines) + b"\n"
    exact = parse_exact(EMISSIONS, data, 0, "f")
    bulk = parse_bulk(EMISSIONS, con, data, 0, "f")
    assert normalized(bulk[0]) == normalized(exact[0])
    assert bulk[1] == exact[1]
    assert normalized(bulk[0]), "some emission lines must be valid"
