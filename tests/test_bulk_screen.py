"""The bulk screen's conditions that tests/test_parse_paths.py's mutations do not reach.

Its mutations drop fields from refs (so the strict parse refuses them before any type check)
and put escapes only in the payload. Here every line keeps the envelope's shape and breaks one
condition at a time: both parser paths must give the same rows and reports, and the plain lines
around each one must still be vouched for (the comparison is not passed by falling back).
"""

from __future__ import annotations

import json

import orjson
import pytest

from metaspn_store._layout import EMISSIONS, SIGNALS
from metaspn_store._parse import _bulk_or_none, new_connection, parse_bulk, parse_exact

REF = {"label": None, "platform": "x", "ref_type": "person", "schema_version": "0.8", "value": "p1"}
TRACE = {"caused_by": ["a"], "metadata": {"k": "v"}, "privacy_mode": False, "provenance": None,
         "redactions": [], "schema_version": "0.8", "trace_id": "t"}


def signal(record_id: str, **changes: object) -> dict:
    record = {
        "entity_refs": [REF],
        "payload": {"n": 3, "score": 0.5},
        "payload_type": "RecommendationCandidate",
        "raw": None,
        "schema_version": "0.8",
        "signal_id": record_id,
        "source": "score.worker",
        "timestamp": "2026-02-05T12:00:00Z",
        "trace": None,
    }
    record.update(changes)
    return record


def nested(depth: int) -> str:
    """A JSON array nested ``depth`` deep (orjson does not write past 254 levels)."""
    return "[" * depth + "1" + "]" * depth


CASES = {
    "ref_int_value": {"entity_refs": [{**REF, "value": 1}]},
    "ref_bool_platform": {"entity_refs": [{**REF, "platform": True}]},
    "ref_object_label": {"entity_refs": [{**REF, "label": {"a": "b"}}]},
    "ref_null_type": {"entity_refs": [{**REF, "ref_type": None}]},
    "ref_float_version": {"entity_refs": [REF, {**REF, "schema_version": 0.8}]},
    "ref_extra_key": {"entity_refs": [{**REF, "extra": 1}]},
    "ref_escaped_value": {"entity_refs": [{**REF, "value": 'p"1\\n'}]},
    "escaped_id": {"signal_id": 'id"with\\escapes\n'},
    "escaped_source": {"source": "tab\there"},
    "unicode_source": {"source": "caf\u00e9 \U0001f680"},
    # as 0.1.8 writes non-ASCII text (json.dumps ensure_ascii): the bulk path decodes the escapes
    "ascii_escaped_label": {"entity_refs": [{**REF, "label": "ASCII_ESCAPED"}]},
    "int_payload_type": {"payload_type": 5},
    "list_schema_version": {"schema_version": ["0.8"]},
    "deep_payload_249": {"payload": {"a": "DEEP248"}},
    "deep_payload_260": {"payload": {"a": "DEEP259"}},
    "deep_raw": {"raw": {"a": "DEEP259"}},
    "payload_unsorted_keys": {"payload": {"b": 1, "a": 2}},
    # first-level repeats, sorted and not: SQL on the stored text would see the first copy
    "payload_repeated_key": {"payload": "REPEAT_SORTED"},
    "payload_unsorted_repeated_key": {"payload": "REPEAT_UNSORTED"},
    "raw_object": {"raw": {"k": [1, 2]}},
    "trace_object": {"trace": TRACE},
}


# The lines among CASES the bulk path reads itself; it leaves every other one to the exact path.
VOUCHED = {"deep_payload_249", "payload_unsorted_keys", "raw_object", "ref_extra_key", "trace_object", "unicode_source",
           "escaped_id", "escaped_source", "ref_escaped_value", "ascii_escaped_label"}


def _line(record: dict) -> bytes:
    line = orjson.dumps(record)
    for depth in (248, 259):
        line = line.replace(f'"DEEP{depth}"'.encode(), nested(depth).encode())
    line = line.replace(b'"ASCII_ESCAPED"', b'"Bj\\u00f6rn \\ud83d\\ude80 \\u00d8stergaard"')
    line = line.replace(b'"REPEAT_SORTED"', b'{"a":1,"score":0.5,"score":"high"}')
    return line.replace(b'"REPEAT_UNSORTED"', b'{"score":0.5,"a":1,"score":"high"}')


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_condition_gives_the_same_rows_on_both_paths(name: str) -> None:
    lines = [_line(signal("before")), _line(signal("x", **CASES[name])), _line(signal("after"))]
    data = b"\n".join(lines) + b"\n"
    con = new_connection()
    exact = parse_exact(SIGNALS, data, 0, "f")
    bulk = parse_bulk(SIGNALS, con, data, 0, "f")
    assert _json_equal(bulk[0], exact[0]), name
    assert bulk[1] == exact[1], name
    table = _bulk_or_none(SIGNALS, con, data, 3)
    assert table is not None
    ok = table.column("ok").to_pylist()
    assert ok[0] and ok[2], name
    assert ok[1] == (name in VOUCHED), name


def _json_equal(a, b) -> bool:
    """Rows equal with JSON texts decoded, whichever copy of a repeated key a reader keeps
    (Python keeps the last, DuckDB's JSON functions the first)."""
    def norm(table, loads):
        rows = table.to_pylist()
        for row in rows:
            for key in ("payload", "trace", "raw", "extra"):
                if row[key] is not None:
                    row[key] = loads(row[key])
        return rows

    def first_wins(text: str) -> object:
        return json.loads(text, object_pairs_hook=lambda pairs: dict(reversed(pairs)))

    return norm(a, orjson.loads) == norm(b, orjson.loads) and norm(a, first_wins) == norm(b, first_wins)


def test_emission_refs_and_strings_are_checked_too() -> None:
    def emission(record_id: str, **changes: object) -> dict:
        record = {"caused_by": "s0", "emission_id": record_id, "emission_type": "OutcomeSuccess",
                  "entity_refs": [REF], "payload": {"v": 1}, "schema_version": "0.8",
                  "timestamp": "2026-02-05T12:00:00Z", "trace": TRACE}
        record.update(changes)
        return record

    lines = [_line(emission("e0")), _line(emission("e1", caused_by=7)),
             _line(emission("e2", entity_refs=[{**REF, "value": 2}])), _line(emission("e3", caused_by="a\\b")),
             _line(emission("e4"))]
    data = b"\n".join(lines) + b"\n"
    con = new_connection()
    exact = parse_exact(EMISSIONS, data, 0, "f")
    bulk = parse_bulk(EMISSIONS, con, data, 0, "f")
    assert _json_equal(bulk[0], exact[0])
    assert bulk[1] == exact[1]
    ok = _bulk_or_none(EMISSIONS, con, data, len(lines)).column("ok").to_pylist()
    assert ok[0] and ok[4]


def test_plain_lines_are_vouched_for() -> None:
    """What our writer and 0.1.8 write is read by the bulk path itself."""
    lines = [_line(signal(f"s{i}", raw={"k": i}, trace=TRACE if i % 2 else None)) for i in range(10)]
    data = b"\n".join(lines) + b"\n"
    table = _bulk_or_none(SIGNALS, new_connection(), data, len(lines))
    assert table is not None and all(table.column("ok").to_pylist())
