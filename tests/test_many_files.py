"""Many hot day files (issue 11 case 5): a migrated 0.1.8 workspace or a store never compacted.

Costs are measured in benchmarks/ (``--many-files``); these tests check that the shortcuts that
keep a write's cost independent of the number of files never miss another writer's line.
"""

from __future__ import annotations

import os
import time
from datetime import datetime, timedelta, timezone

import orjson
import pytest
from metaspn_schemas import SignalEnvelope

from metaspn_store import DuplicateEventError, FileSystemStore

UTC = timezone.utc
T0 = datetime(2025, 1, 1, 12, tzinfo=UTC)


def signal(signal_id: str, day: int, second: int = 0) -> SignalEnvelope:
    return SignalEnvelope(signal_id=signal_id, timestamp=T0 + timedelta(days=day, seconds=second), source="w",
                          payload_type="p", payload={"day": day})


def _age_folder(store: FileSystemStore) -> None:
    """An old folder mtime: the writer then relies on the append generation and its sweeps, not
    on the rule that rescans a folder changed in the last two seconds."""
    old = time.time() - 3600
    os.utime(store.signals_dir, (old, old))


def test_a_batch_spanning_many_days_is_written_and_indexed(tmp_path):
    """More day files in one batch than the writer keeps descriptors open for (32)."""
    store = FileSystemStore(tmp_path)
    batch = [signal(f"s{d}-{k}", d, k) for d in range(40) for k in range(3)]
    paths = store.write_signals(batch)
    assert len(set(paths)) == 40
    replay = list(store.iter_signals(T0 - timedelta(days=1), T0 + timedelta(days=41)))
    assert replay == batch
    with pytest.raises(DuplicateEventError):
        FileSystemStore(tmp_path).write_signal(batch[5], on_duplicate="raise")
    with pytest.raises(DuplicateEventError):
        store.write_signal(batch[-1], on_duplicate="raise")


def test_a_replay_over_hundreds_of_day_files_is_complete_and_ordered(tmp_path):
    store = FileSystemStore(tmp_path)
    batch = [signal(f"s{d}-{k}", d, 100 - k) for d in range(300) for k in range(4)]
    store.write_signals(batch)
    expected = sorted(batch, key=lambda s: s.timestamp)
    assert list(FileSystemStore(tmp_path).iter_signals(T0 - timedelta(days=1), T0 + timedelta(days=301))) == expected


def test_another_writers_append_to_an_old_day_is_seen_at_once(tmp_path):
    """Writers of this package count their appends in the lock file: a second store (its own
    lock descriptor, as another process has) appending to an old day is noticed by the next
    write, without a sweep of every file."""
    first = FileSystemStore(tmp_path)
    first.write_signals([signal(f"s{d}", d) for d in range(50)])
    _age_folder(first)
    first.write_signal(signal("warm", 49, 1))
    other = FileSystemStore(tmp_path)
    other.write_signal(signal("X", 3, 5))
    with pytest.raises(DuplicateEventError):
        first.write_signal(signal("X", 49, 9), on_duplicate="raise")


def test_a_tool_appending_without_the_lock_is_seen_within_a_second(tmp_path):
    store = FileSystemStore(tmp_path)
    store.write_signals([signal(f"s{d}", d) for d in range(50)])
    _age_folder(store)
    store.write_signal(signal("warm", 49, 1))
    with open(store.signals_dir / "2025-01-04.jsonl", "ab") as handle:
        handle.write(orjson.dumps(signal("T", 3, 7).to_dict()) + b"\n")
    time.sleep(1.1)
    with pytest.raises(DuplicateEventError):
        store.write_signal(signal("T", 49, 9), on_duplicate="raise")


def test_a_tool_leaving_a_torn_line_in_an_open_day_never_glues_lines(tmp_path):
    """The writer's cached view of a file can be stale; it checks the real length before it
    appends, so its line never continues a line a dead tool left without a newline."""
    store = FileSystemStore(tmp_path)
    store.write_signal(signal("a", 0))
    path = store.signals_dir / "2025-01-01.jsonl"
    with open(path, "ab") as handle:
        handle.write(b'{"signal_id": "torn", "time')
    store.write_signal(signal("b", 0, 1))
    lines = path.read_bytes().split(b"\n")
    assert lines[1] == b'{"signal_id": "torn", "time'
    assert orjson.loads(lines[2])["signal_id"] == "b"
