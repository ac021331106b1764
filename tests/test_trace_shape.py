"""The bulk parser's SQL check of a trace's shape agrees with the Python one it replaced.

``_parse._TRACE_OK`` decides in DuckDB whether a line's trace can be kept as is; it must accept
exactly the traces ``trace_from_json(strict=True)`` accepts (accepting more would skip 0.1.8's
``from_dict`` for a trace it would treat differently; accepting less only costs speed, but we
pin equality so a drift is noticed).
"""

from __future__ import annotations

import os
import tempfile

import duckdb
import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from metaspn_store._codec import trace_from_json
from metaspn_store._parse import _TRACE_OK

_CON = duckdb.connect()
_KEYS = ["trace_id", "caused_by", "provenance", "redactions", "metadata", "privacy_mode", "schema_version"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=False), st.text(max_size=4))
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=3), inner, max_size=3)),
    max_leaves=6,
)
string_lists = st.lists(st.text(max_size=4), max_size=3)
traces = st.one_of(
    st.fixed_dictionaries(
        {"trace_id": st.text(max_size=5)},
        optional={
            "caused_by": st.one_of(string_lists, values),
            "redactions": st.one_of(string_lists, values),
            "metadata": st.one_of(st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=3), values),
            "privacy_mode": st.one_of(st.booleans(), values),
            "provenance": st.one_of(st.none(), st.text(max_size=4), values),
            "schema_version": st.one_of(st.text(max_size=4), values),
            "unknown": values,
        },
    ),
    st.dictionaries(st.sampled_from([*_KEYS, "x"]), values, max_size=4),
    values,
)


def sql_ok(trace: object) -> bool:
    return sql_ok_text(orjson.dumps(trace).decode())


def sql_ok_text(text: str) -> bool:
    """The check as the bulk parser runs it: on read_json's JSON column of a real line."""
    with tempfile.NamedTemporaryFile("wb", suffix=".jsonl", delete=False) as handle:
        handle.write(b'{"trace": ' + text.encode() + b"}\n")
    try:
        row = _CON.execute(
            f"SELECT {_TRACE_OK} FROM read_json($path, format = 'newline_delimited', records = true, "
            "columns = {'trace': 'JSON'})",
            {"path": handle.name},
        )
        return bool(row.fetchall()[0][0])
    finally:
        os.unlink(handle.name)


def python_ok(trace: object) -> bool:
    return trace is None or trace_from_json(orjson.loads(orjson.dumps(trace)), strict=True) is not None


@settings(max_examples=400, deadline=None)
@given(traces)
def test_sql_trace_check_equals_the_python_one(trace):
    assert sql_ok(trace) == python_ok(trace)


def test_known_shapes():
    full = {"trace_id": "t", "caused_by": ["a"], "provenance": None, "redactions": [], "metadata": {"k": "v"},
            "privacy_mode": False, "schema_version": "0.8"}
    assert sql_ok(full) and sql_ok({"trace_id": "t"}) and sql_ok(None)
    for bad in ({"trace_id": 1}, {"caused_by": []}, dict(full, metadata={"k": 1}), dict(full, privacy_mode=None),
                dict(full, caused_by=["a", 2]), dict(full, extra=1), ["t"], "t"):
        assert not sql_ok(bad), bad


def test_a_foreign_trace_with_null_lists_reads_like_0_1_8(tmp_path):
    """0.1.8's from_dict keeps ``caused_by: null`` as None; reading it must not fail."""
    from datetime import datetime, timezone

    from metaspn_store import FileSystemStore

    line = {"signal_id": "a", "timestamp": "2026-02-01T00:00:00Z", "source": "s", "payload_type": "p",
            "payload": {}, "schema_version": "0.8", "entity_refs": [],
            "trace": {"trace_id": "t", "caused_by": None, "redactions": None}, "raw": None}
    folder = tmp_path / "store" / "signals"
    folder.mkdir(parents=True)
    (folder / "2026-02-01.jsonl").write_bytes(orjson.dumps(line) + b"\n")
    store = FileSystemStore(tmp_path)
    utc = timezone.utc
    (signal,) = store.iter_signals(datetime(2026, 1, 1, tzinfo=utc), datetime(2026, 3, 1, tzinfo=utc))
    assert signal.trace is not None
    assert signal.trace.trace_id == "t" and signal.trace.caused_by is None and signal.trace.redactions is None


def test_repeated_keys_go_to_the_exact_path():
    """DuckDB reads the first of two equal keys, orjson the last: such traces are never vouched
    for in SQL (the exact path then reads the line as 0.1.8 would)."""
    assert sql_ok_text('{"trace_id": "t", "metadata": {"k": "v"}}')
    for text in (
        '{"trace_id": "t", "trace_id": 5}',
        '{"trace_id": "t", "metadata": {"k": "v"}, "metadata": [1]}',
        '{"trace_id": "t", "caused_by": ["a"], "caused_by": 5}',
        '{"trace_id": "t", "metadata": {"k": "v", "k": 1}}',
    ):
        assert not sql_ok_text(text), text
