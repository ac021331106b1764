"""Hostile input: foreign and broken lines, SQL-looking values, deep and huge payloads."""

from __future__ import annotations

import warnings
from datetime import datetime, timedelta, timezone

import pytest
from metaspn_schemas import EntityRef, SignalEnvelope

from metaspn_store import BadLineWarning, FileSystemStore, InvalidRecordError

T0 = datetime(2026, 2, 5, 12, tzinfo=timezone.utc)
DAY_START = datetime(2026, 2, 5, tzinfo=timezone.utc)
DAY_END = DAY_START + timedelta(days=1) - timedelta(microseconds=1)

NASTY = [
    "x'); DROP TABLE signals; --",
    'quote"double',
    "semi;colon",
    "$1",
    "?",
    "/slash/~tilde",
    "ünïcödé ✓",
    "",
    "a.b[0]",
    "$.score",
]


def _signal(i: int, **kw) -> SignalEnvelope:
    base = dict(
        signal_id=f"s{i:03d}",
        timestamp=T0 + timedelta(seconds=i),
        source="score.worker",
        payload_type="RecommendationCandidate",
        payload={"score": i / 10, "status": "READY"},
        entity_refs=(EntityRef("person", f"p{i % 3}", "twitter"),),
    )
    base.update(kw)
    return SignalEnvelope(**base)


@pytest.fixture
def store(tmp_path) -> FileSystemStore:
    return FileSystemStore(tmp_path)


def test_broken_and_foreign_lines_are_skipped_with_file_and_line(store):
    good = [_signal(i) for i in range(5)]
    store.write_signals(good)
    path = store.signals_dir / "2026-02-05.jsonl"
    with open(path, "ab") as handle:
        handle.write(b'{"signal_id":"bad\xff","timestamp":"2026-02-05T10:00:00Z"}\n')  # not UTF-8
        handle.write(b"not json at all\n")
        handle.write(b"[" * 300 + b"]" * 300 + b"\n")  # deeper than JSON readers go
        handle.write(  # foreign shape: entity_refs is an object, not a list
            b'{"signal_id":"f1","timestamp":"2026-02-05T13:00:00Z","source":"s","payload_type":"p",'
            b'"payload":{},"schema_version":"0.8","entity_refs":{"ref_type":"x"}}\n'
        )
        handle.write(b'{"signal_id":"f2","timestamp":"2026-02-05T13:00:00Z","source":"s"}\n')  # no payload
    store.write_signal(_signal(9))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        replay = list(FileSystemStore(store.workspace).iter_signals(DAY_START, DAY_END))
    assert replay == [*good, _signal(9)]
    messages = [str(w.message) for w in caught if issubclass(w.category, BadLineWarning)]
    assert [m.split(": skipped")[0] for m in messages] == [f"{path}:{n}" for n in range(6, 11)]
    problems = store.verify()
    assert [(p.path, p.line) for p in problems] == [(str(path), n) for n in range(6, 11)]


def test_torn_tail_is_never_returned_and_next_append_starts_a_fresh_line(store):
    store.write_signal(_signal(1))
    path = store.signals_dir / "2026-02-05.jsonl"
    with open(path, "ab") as handle:
        handle.write(b'{"signal_id":"torn","timestamp":"2026-02-05T12:00:0')
    reader = FileSystemStore(store.workspace)
    assert [s.signal_id for s in reader.iter_signals(DAY_START, DAY_END)] == ["s001"]
    store.write_signal(_signal(2))
    with pytest.warns(BadLineWarning, match=":2: skipped"):
        ids = [s.signal_id for s in FileSystemStore(store.workspace).iter_signals(DAY_START, DAY_END)]
    assert ids == ["s001", "s002"]
    assert path.read_bytes().count(b"\n") == 3


@pytest.mark.parametrize("value", NASTY)
def test_filter_values_and_payload_keys_are_only_data(store, value):
    special = _signal(
        50,
        source=value,
        payload_type=value,
        payload={value: 7, "status": value, "token_id": value, "promise_id": value},
        entity_refs=(EntityRef(value, value, value, value),),
    )
    store.write_signals([_signal(i) for i in range(5)] + [special])
    kw = dict(start=DAY_START, end=DAY_END)
    assert [s.signal_id for s in store.iter_signals(DAY_START, DAY_END, sources=[value])] == ["s050"]
    assert store.get_top_recommendation_candidates(**kw, limit=1, payload_types=[value], score_field=value) == [special]
    assert store.get_ready_candidates(**kw, ready_field=value, ready_value=7) == [special]
    assert store.get_ready_candidates(**kw, ready_value=value) == [special]
    assert store.get_token_signals(**kw, token_id=value) == [special]
    assert store.get_promise_signals(**kw, promise_id=value, status=value) == [special]
    assert store.get_recent_signals_by_entity(entity_ref=EntityRef(value, value, value, value), limit=5, end=DAY_END) == [
        special
    ]
    assert store.sql("select count(*) from signals where source = $v", params={"v": value}).fetchall() == [(1,)]


def test_deep_nesting_is_a_clear_error_and_nothing_is_written(store):
    deep: dict = {}
    cursor = deep
    for _ in range(3000):
        cursor["a"] = {}
        cursor = cursor["a"]
    with pytest.raises(InvalidRecordError, match="s001.*nest too deeply"):
        store.write_signal(_signal(1, payload=deep))
    shallow_but_too_deep: list = []
    cursor_list = shallow_but_too_deep
    for _ in range(300):
        cursor_list.append([])
        cursor_list = cursor_list[0]
    with pytest.raises(InvalidRecordError, match="nest too deeply"):
        store.write_signals([_signal(2), _signal(3, payload=shallow_but_too_deep)])
    assert not (store.signals_dir / "2026-02-05.jsonl").exists()


def test_huge_payload_round_trips(store):
    big = _signal(1, payload={"blob": "x" * 5_000_000, "score": 1.0})
    store.write_signal(big)
    assert list(FileSystemStore(store.workspace).iter_signals(DAY_START, DAY_END)) == [big]


def test_duplicates_are_detected_in_large_day_files(tmp_path):
    """Regression: large files are indexed by a DuckDB scan, which must read the real id field."""
    first = FileSystemStore(tmp_path)
    batch = [_signal(i, payload={"score": 0.5, "pad": "x" * 400}) for i in range(2000)]  # > 256 KiB
    first.write_signals(batch)
    path = first.signals_dir / "2026-02-05.jsonl"
    assert path.stat().st_size > 256 * 1024
    size = path.stat().st_size
    reopened = FileSystemStore(tmp_path)
    assert reopened.write_signal(batch[1234]) == path
    assert reopened.write_signals(batch[:10]) == [path] * 10
    with pytest.raises(ValueError, match="s1999"):
        reopened.write_signal(batch[1999], on_duplicate="raise")
    assert path.stat().st_size == size


def test_foreign_duplicates_resolve_to_the_first_write_in_every_read(store):
    """A tool appending an existing id to another day (or the same day) never doubles a record."""
    first = _signal(1)
    store.write_signals([first, _signal(2)])
    next_day = store.signals_dir / "2026-02-06.jsonl"
    late_copy = SignalEnvelope(**{**first.__dict__, "timestamp": T0 + timedelta(days=1), "source": "copy"})
    same_day_copy = SignalEnvelope(**{**first.__dict__, "source": "copy2"})
    import orjson

    with open(next_day, "ab") as handle:
        handle.write(orjson.dumps(late_copy.to_dict()) + b"\n")
    with open(store.signals_dir / "2026-02-05.jsonl", "ab") as handle:
        handle.write(orjson.dumps(same_day_copy.to_dict()) + b"\n")
    reader = FileSystemStore(store.workspace)
    end = DAY_END + timedelta(days=1)
    assert list(reader.iter_signals(DAY_START, end)) == [first, _signal(2)]
    assert [s.signal_id for s in reader.get_latest_draft_signals(limit=10, start=DAY_START, end=end)] == ["s002", "s001"]
    assert reader.sql("select count(*) from signals").fetchall() == [(2,)]
    from datetime import date

    # The copy on 02-06 is what a window over 02-06 alone returns (_rules rule 2), so compaction
    # keeps it; only the same-day copy can never be an answer and is dropped.
    assert [s.source for s in reader.iter_signals(DAY_START + timedelta(days=1), end)] == ["copy"]
    report = reader.compact(before=date(2026, 2, 7))
    assert sum(d.duplicates_dropped for d in report.days) == 1
    assert list(FileSystemStore(store.workspace).iter_signals(DAY_START, end)) == [first, _signal(2)]
    assert [s.source for s in reader.iter_signals(DAY_START + timedelta(days=1), end)] == ["copy"]
    assert reader.sql("select count(*) from signals").fetchall() == [(2,)]


@pytest.mark.parametrize("padding", [0, 600])  # small files: exact path; large ones: DuckDB bulk path
def test_unknown_top_level_keys_survive_compaction(store, padding):
    """Foreign lines may carry keys the envelope does not know; the Parquet keeps them in ``extra``."""
    import json
    from datetime import date

    import pyarrow.parquet as pq

    store.write_signals([_signal(i, payload={"pad": "x" * padding}) for i in range(600)])
    record = _signal(700).to_dict()
    record["tenant"] = {"id": 7}
    record["zz_note"] = "kept"
    with open(store.signals_dir / "2026-02-05.jsonl", "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")
    store.compact(before=date(2026, 2, 6))
    files = list((store.store_root / "cold" / "signals").rglob("*.parquet"))
    table = pq.read_table(files).to_pylist()
    extras = {row["signal_id"]: row["extra"] for row in table if row["extra"] is not None}
    assert {k: json.loads(v) for k, v in extras.items()} == {"s700": {"tenant": {"id": 7}, "zz_note": "kept"}}
    replay = list(FileSystemStore(store.workspace).iter_signals(DAY_START, DAY_END))
    assert [s.signal_id for s in replay][-1] == "s700" and len(replay) == 601
