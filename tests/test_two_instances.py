"""Two store instances on one workspace behave like two processes: separate caches and indexes.

Regressions found in review: a compaction deletes a hot file and a late write recreates it, often
with the same inode number; the other instance must notice the new file, not skip its first bytes.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

from metaspn_schemas import SignalEnvelope

from metaspn_store import FileSystemStore

D = datetime(2026, 1, 5, 12, tzinfo=timezone.utc)
WINDOW = (D - timedelta(hours=1), D + timedelta(hours=1))


def sig(signal_id: str, ts: datetime) -> SignalEnvelope:
    return SignalEnvelope(signal_id=signal_id, timestamp=ts, source="s", payload_type="P", payload={})


def _ids(store: FileSystemStore) -> list[str]:
    return [s.signal_id for s in store.iter_signals(*WINDOW)]


def test_recreated_hot_file_is_read_from_its_start_by_other_instances(tmp_path):
    writer, reader = FileSystemStore(tmp_path), FileSystemStore(tmp_path)
    writer.write_signal(sig("a-0001", D))
    assert _ids(reader) == ["a-0001"]
    reader.write_signal(sig("zzz-warm", D + timedelta(days=3)))  # reader's id index now covers the day
    writer.compact(before=date(2026, 1, 6))
    writer.write_signals([sig("b-0001", D + timedelta(seconds=1)), sig("c-0001", D + timedelta(seconds=2))])
    assert _ids(reader) == ["a-0001", "b-0001", "c-0001"]
    assert _ids(FileSystemStore(tmp_path)) == ["a-0001", "b-0001", "c-0001"]
    # The reader's index must know b-0001 too: a rewrite is a duplicate, not a second line.
    assert reader.write_signal(sig("b-0001", D + timedelta(days=3))) == writer.signals_dir / "2026-01-05.jsonl"
    lines = [line for f in writer.signals_dir.glob("*.jsonl") for line in f.read_bytes().splitlines()]
    assert sum(b'"b-0001"' in line for line in lines) == 1


def test_duplicate_location_follows_compaction_in_long_lived_instances(tmp_path):
    store = FileSystemStore(tmp_path)
    store.write_signal(sig("a-0001", D))
    store.compact(before=date(2026, 1, 6))
    cold_day = store.store_root / "cold" / "signals" / "day=2026-01-05"
    assert store.write_signal(sig("a-0001", D)) == cold_day
    assert FileSystemStore(tmp_path).write_signal(sig("a-0001", D)) == cold_day
    store.write_signal(sig("late-1", D + timedelta(seconds=5)))  # late data: hot file again
    assert store.write_signal(sig("a-0001", D)) == cold_day
    assert store.write_signal(sig("late-1", D)) == store.signals_dir / "2026-01-05.jsonl"


def test_non_string_filter_values_match_nothing_like_0_1_8(tmp_path):
    store = FileSystemStore(tmp_path)
    store.write_signals([sig("a", D), SignalEnvelope(signal_id="b", timestamp=D, source="1", payload_type="P", payload={})])
    assert [s.signal_id for s in store.iter_signals(*WINDOW, sources=[1])] == []  # type: ignore[list-item]
    assert [s.signal_id for s in store.iter_signals(*WINDOW, sources=["1"])] == ["b"]
