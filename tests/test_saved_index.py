"""The persisted id index (``store/.index/<kind>.arrow``).

A fresh writer adopts the saved index only while it still describes the files on disk, reads just
the bytes appended since, and otherwise rebuilds. Whatever path it takes, the index it ends up
with must equal one built from scratch, and duplicate detection must be unchanged.
"""

from __future__ import annotations

import os
import random
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import orjson
import pytest
from metaspn_schemas import SignalEnvelope

import metaspn_store._hot as hot_module
from metaspn_store import FileSystemStore
from metaspn_store import _index as saved
from metaspn_store._index import IdIndex, digest
from metaspn_store._layout import SIGNALS

UTC = timezone.utc
DAY1 = datetime(2026, 2, 1, 12, tzinfo=UTC)


def signal(record_id: str, when: datetime = DAY1, **payload: object) -> SignalEnvelope:
    return SignalEnvelope(
        signal_id=record_id, timestamp=when, source="test.worker", payload_type="Probe", payload=dict(payload)
    )


@pytest.fixture(autouse=True)
def save_small_indexes(monkeypatch):
    monkeypatch.setattr(hot_module, "SAVE_MIN_IDS", 1)


def contents(index: IdIndex) -> tuple[list[tuple[int, int, int]], set[tuple[int, int]]]:
    index.compact()
    return sorted(zip(index._hi, index._lo, index._code, strict=True)), set(index.repeated)


def writer_index(workspace: Path) -> tuple[str, IdIndex]:
    """Open a store the way a fresh worker does and return (how it got its index, the index)."""
    store = FileSystemStore(workspace)
    hot = store._hot["signals"]
    with hot.write_lock.hold():
        index = store._id_index(SIGNALS)
    source = hot.index_source
    store.close()
    return source, index


def rebuilt_index(workspace: Path) -> IdIndex:
    saved_file = workspace / "store" / ".index" / "signals.arrow"
    kept = saved_file.read_bytes() if saved_file.exists() else None
    saved_file.unlink(missing_ok=True)
    try:
        source, index = writer_index(workspace)
        assert source == "built"
        return index
    finally:
        if kept is not None:
            saved_file.write_bytes(kept)


def fill(workspace: Path, n: int = 300, days: int = 3) -> list[str]:
    ids = [f"s-{i:05d}" for i in range(n)]
    with FileSystemStore(workspace) as store:
        store.write_signals(signal(i, DAY1 + timedelta(days=k % days, seconds=k)) for k, i in enumerate(ids))
    return ids


def test_save_and_load_round_trip(tmp_path):
    index = IdIndex()
    rng = random.Random(3)
    keys = [digest(f"id-{rng.random()}") for _ in range(5_000)]
    for n, key in enumerate(keys):
        index.add(key, n % 7)
    index.add(keys[10], 1)
    index.add(keys[4_999], 1)
    target = tmp_path / "x.arrow"
    saved.save(target, index, {"kind": "signals", "cold": [], "hot": {}})
    loaded = saved.load(target)
    assert loaded is not None
    again, meta = loaded
    assert meta == {"format": 2, "kind": "signals", "cold": [], "hot": {}}
    assert contents(again) == contents(index)
    assert again.repeated == {keys[10], keys[4_999]}


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty", "wrong_format"])
def test_unreadable_saved_index_is_ignored(tmp_path, damage):
    ids = fill(tmp_path)
    saved_file = tmp_path / "store" / ".index" / "signals.arrow"
    assert saved_file.exists()
    data = saved_file.read_bytes()
    if damage == "truncate":
        saved_file.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        saved_file.write_bytes(os.urandom(len(data)))
    elif damage == "empty":
        saved_file.write_bytes(b"")
    else:
        index = IdIndex()
        saved.save(saved_file, index, {"kind": "signals"})
        raw = saved_file.read_bytes().replace(b'"format":1', b'"format":9')
        saved_file.write_bytes(raw)
    source, index = writer_index(tmp_path)
    assert source == "built"
    assert all(index.get(digest(i)) is not None for i in ids)
    # ... and the rebuild saved a good one again
    assert writer_index(tmp_path)[0] == "saved"


def test_reopened_writer_uses_saved_index_and_still_sees_duplicates(tmp_path):
    ids = fill(tmp_path)
    source, index = writer_index(tmp_path)
    assert source == "saved"
    assert contents(index) == contents(rebuilt_index(tmp_path))
    with FileSystemStore(tmp_path) as store:
        before = sorted((tmp_path / "store" / "signals").glob("*.jsonl"))
        sizes = [p.stat().st_size for p in before]
        path = store.write_signal(signal(ids[7], DAY1 + timedelta(days=5)))
        assert path.name == "2026-02-02.jsonl"  # where the first write of that id lives
        assert [p.stat().st_size for p in before] == sizes
        assert store._hot["signals"].index_source == "saved"


def test_lines_appended_after_the_save_are_read(tmp_path):
    fill(tmp_path)
    # Another tool (or 0.1.8) appends to a covered file and creates a new day file.
    late = {"signal_id": "late-1", "timestamp": "2026-02-01T13:00:00Z", "source": "x", "payload_type": "y",
            "payload": {}, "schema_version": "0.1", "entity_refs": [], "trace": None, "raw": None}
    with open(tmp_path / "store" / "signals" / "2026-02-01.jsonl", "ab") as handle:
        handle.write(orjson.dumps(late) + b"\n")
        handle.write(b'{"signal_id": "torn-')  # a torn tail is not an id yet
    new_day = dict(late, signal_id="late-2", timestamp="2026-02-09T00:00:00Z")
    (tmp_path / "store" / "signals" / "2026-02-09.jsonl").write_bytes(orjson.dumps(new_day) + b"\n")
    source, index = writer_index(tmp_path)
    assert source == "saved"
    assert index.get(digest("late-1")) is not None and index.get(digest("late-2")) is not None
    assert index.get(digest("torn-")) is None
    assert contents(index) == contents(rebuilt_index(tmp_path))
    with FileSystemStore(tmp_path) as store:
        assert store.write_signal(signal("late-2")).name == "2026-02-09.jsonl"


def test_a_replaced_hot_file_forces_a_rebuild(tmp_path):
    fill(tmp_path)
    day_file = tmp_path / "store" / "signals" / "2026-02-01.jsonl"
    lines = day_file.read_bytes().splitlines(keepends=True)
    day_file.unlink()
    # Same size, other first line: a different file even if the inode number is reused.
    day_file.write_bytes(b"".join([lines[1], lines[0], *lines[2:]]))
    assert writer_index(tmp_path)[0] == "built"
    day_file.write_bytes(b"".join(lines[:5]))  # shorter than what the saved index covers
    source, index = writer_index(tmp_path)
    assert source == "built"
    assert contents(index) == contents(rebuilt_index(tmp_path))


def test_compaction_invalidates_the_saved_index(tmp_path):
    ids = fill(tmp_path)
    assert writer_index(tmp_path)[0] == "saved"
    with FileSystemStore(tmp_path) as store:
        report = store.compact(before=date(2026, 2, 3))
        assert report.days
    source, index = writer_index(tmp_path)
    assert source == "built"
    assert writer_index(tmp_path)[0] == "saved"
    with FileSystemStore(tmp_path) as store:
        compacted = store.write_signal(signal(ids[0], DAY1 + timedelta(days=4)))
        assert "cold" in compacted.parts
        assert sum(1 for _ in store.iter_signals(DAY1 - timedelta(days=1), DAY1 + timedelta(days=9))) == len(ids)


def test_small_stores_write_no_index_file(tmp_path, monkeypatch):
    monkeypatch.setattr(hot_module, "SAVE_MIN_IDS", 1_000)
    fill(tmp_path, n=50)
    assert not (tmp_path / "store" / ".index").exists()


def test_large_reads_since_the_save_refresh_it(tmp_path, monkeypatch):
    monkeypatch.setattr(hot_module, "RESAVE_BYTES", 1)
    fill(tmp_path)
    saved_file = tmp_path / "store" / ".index" / "signals.arrow"
    with open(tmp_path / "store" / "signals" / "2026-02-01.jsonl", "ab") as handle:
        handle.write(orjson.dumps({"signal_id": "late-9", "timestamp": "2026-02-01T13:00:00Z", "source": "x",
                                   "payload_type": "y", "payload": {}, "schema_version": "0.1"}) + b"\n")
    assert writer_index(tmp_path)[0] == "saved"
    index, meta = saved.load(saved_file)  # type: ignore[misc]
    assert index.get(digest("late-9")) is not None
    assert meta["hot"]["2026-02-01"][2] == (tmp_path / "store" / "signals" / "2026-02-01.jsonl").stat().st_size


def test_too_much_unindexed_data_means_a_rebuild(tmp_path, monkeypatch):
    fill(tmp_path)
    monkeypatch.setattr(hot_module, "RELOAD_MAX_BYTES", 10)
    record = {"signal_id": "n-1", "timestamp": "2026-02-02T13:00:00Z", "source": "x", "payload_type": "y",
              "payload": {}, "schema_version": "0.1"}
    with open(tmp_path / "store" / "signals" / "2026-02-02.jsonl", "ab") as handle:
        handle.write(orjson.dumps(record) + b"\n")  # appended by a tool that does not save the index
    source, index = writer_index(tmp_path)
    assert source == "built"
    assert index.get(digest("n-1")) is not None


def test_closing_a_writer_saves_what_it_added(tmp_path):
    fill(tmp_path)
    with FileSystemStore(tmp_path) as store:
        store.write_signals(signal(f"n-{i}", DAY1 + timedelta(days=1)) for i in range(20))
    index, meta = saved.load(tmp_path / "store" / ".index" / "signals.arrow")  # type: ignore[misc]
    assert index.get(digest("n-19")) is not None
    source, index = writer_index(tmp_path)
    assert source == "saved"
    assert contents(index) == contents(rebuilt_index(tmp_path))


def test_a_long_running_writer_saves_as_it_grows(tmp_path, monkeypatch):
    monkeypatch.setattr(hot_module, "SAVE_MIN_IDS", 100)
    saved_file = tmp_path / "store" / ".index" / "signals.arrow"
    store = FileSystemStore(tmp_path)
    for batch in range(5):
        store.write_signals(signal(f"b{batch}-{i}", DAY1) for i in range(60))
    # Not closed: a worker that is killed never gets to close(); the index was saved on the way.
    index, _ = saved.load(saved_file)  # type: ignore[misc]
    assert 120 <= len(index) < 300
    assert writer_index(tmp_path)[0] == "saved"


# --- regressions found in review ---------------------------------------------------------------

D2 = DAY1 + timedelta(days=1)


def test_a_compaction_by_another_process_is_seen_by_a_long_running_writer(tmp_path):
    """Writer 1 never read the hot line another process wrote and compacted; it must not miss that
    id, nor save an index claiming to cover the new Parquet file."""
    from metaspn_store import DuplicateEventError

    long_running = FileSystemStore(tmp_path)
    long_running.write_signals([signal("a", D2)])
    other = FileSystemStore(tmp_path)
    other.write_signal(signal("X", DAY1))
    other.compact(before=D2.date())
    other.close()
    with pytest.raises(DuplicateEventError):
        long_running.write_signal(signal("X", D2 + timedelta(days=1)), on_duplicate="raise")
    long_running.write_signal(signal("c", D2))
    long_running.close()
    with FileSystemStore(tmp_path) as fresh:
        with pytest.raises(DuplicateEventError):
            fresh.write_signal(signal("X", D2 + timedelta(days=1)), on_duplicate="raise")
    source, index = writer_index(tmp_path)
    assert contents(index)[0] == contents(rebuilt_index(tmp_path))[0]


def test_a_line_appended_without_the_lock_during_a_write_is_not_skipped(tmp_path, monkeypatch):
    """A tool (or 0.1.8) appending between our look at the file and our write: its line must be
    indexed, so the saved offset may not jump over it."""
    from metaspn_store import DuplicateEventError

    store = FileSystemStore(tmp_path)
    store.write_signal(signal("a"))
    day_file = tmp_path / "store" / "signals" / "2026-02-01.jsonl"
    foreign = day_file.read_bytes().replace(b'"a"', b'"FOREIGN"')
    real_index = store._id_index

    def index_then_foreign_append(kind):  # the other writer's append lands right after our look
        found = real_index(kind)
        monkeypatch.setattr(store, "_id_index", real_index)
        with open(day_file, "ab") as handle:
            handle.write(foreign)
        return found

    monkeypatch.setattr(store, "_id_index", index_then_foreign_append)
    store.write_signal(signal("b"))
    store.close()
    with FileSystemStore(tmp_path) as fresh:
        with pytest.raises(DuplicateEventError):
            fresh.write_signal(signal("FOREIGN"), on_duplicate="raise")
        assert fresh._hot["signals"].index_source == "saved"


def test_an_earlier_day_duplicate_read_later_still_wins(tmp_path):
    """Refreshing reads lines in file order, not day order: the index must keep the earliest day,
    as a build does, or compaction keeps both copies."""
    with FileSystemStore(tmp_path) as store:
        store.write_signals([signal("X", D2), signal("a", D2)])
        record = orjson.loads((tmp_path / "store" / "signals" / "2026-02-02.jsonl").read_bytes().splitlines()[0])
        record["timestamp"] = "2026-02-01T12:00:00Z"
        with open(tmp_path / "store" / "signals" / "2026-02-01.jsonl", "ab") as handle:
            handle.write(orjson.dumps(record) + b"\n")  # a foreign copy of X on the earlier day
        store.write_signals([signal("b", D2)])
    source, index = writer_index(tmp_path)
    assert source == "saved"
    assert contents(index) == contents(rebuilt_index(tmp_path))
    with FileSystemStore(tmp_path) as store:
        store.compact(before=D2.date() + timedelta(days=1))
        ids = [s.signal_id for s in store.iter_signals(DAY1 - timedelta(days=1), D2 + timedelta(days=1))]
    assert ids == ["X", "a", "b"]


def test_a_damaged_saved_index_is_rebuilt_not_believed(tmp_path):
    """Issue 10 case 5: a damaged ``.index/<kind>.arrow`` let stored ids be written again."""
    from metaspn_store import DuplicateEventError

    when = datetime(2026, 2, 1, 12, tzinfo=timezone.utc)
    ids = [f"id-{k:05d}" for k in range(500)]
    batch = [SignalEnvelope(signal_id=i, timestamp=when, source="s", payload_type="p", payload={}) for i in ids]
    with FileSystemStore(tmp_path) as store:
        store.write_signals(batch)
    saved = tmp_path / "store" / ".index" / "signals.arrow"
    assert saved.exists()
    data = bytearray(saved.read_bytes())
    # Damage the digest columns (the start of the record batch body, after the schema).
    middle = len(data) // 2
    for k in range(middle, middle + 64):
        data[k] ^= 0xFF
    saved.write_bytes(bytes(data))
    store = FileSystemStore(tmp_path)
    for envelope in batch:
        with pytest.raises(DuplicateEventError):
            store.write_signal(envelope, on_duplicate="raise")
