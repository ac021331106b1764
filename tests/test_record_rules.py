"""The record rules of ``metaspn_store._rules`` on the paths issue 10 found broken.

* rule 2 (which record holds an id): foreign copies of an id on other days and tiers, before,
  during and after compaction;
* rule 3 (which file holds a window's records): a record whose timestamp is not its file's UTC
  day (a tool that computes the day in local time).
"""

from __future__ import annotations

import warnings
from datetime import date, datetime, timezone
from pathlib import Path

import orjson
import pytest
from metaspn_schemas import SignalEnvelope

from metaspn_store import DuplicateEventError, FileSystemStore

UTC = timezone.utc


def at(day: int, hour: int = 12, minute: int = 0) -> datetime:
    return datetime(2026, 2, day, hour, minute, tzinfo=UTC)


def signal(signal_id: str, when: datetime, score: float = 0.5, source: str = "score.worker") -> SignalEnvelope:
    return SignalEnvelope(signal_id=signal_id, timestamp=when, source=source,
                          payload_type="RecommendationCandidate", payload={"score": score})


def foreign_line(envelope: SignalEnvelope, **changes: object) -> bytes:
    """The line another tool would append (same format, maybe other values)."""
    record = envelope.to_dict()
    record.update(changes)
    return orjson.dumps(record, option=orjson.OPT_SORT_KEYS) + b"\n"


def append(store: FileSystemStore, day: str, line: bytes) -> None:
    with open(store.signals_dir / f"{day}.jsonl", "ab") as handle:
        handle.write(line)


def replay_ids(store: FileSystemStore, start: datetime, end: datetime) -> list[str]:
    return [s.signal_id for s in store.iter_signals(start, end)]


def answers(store: FileSystemStore) -> dict:
    """What every kind of read says about the store."""
    whole = (at(1, 0), at(9, 0))
    return {
        "replay": [s.to_dict() for s in store.iter_signals(*whole)],
        "replay_05": [s.to_dict() for s in store.iter_signals(at(5, 0), at(5, 23, 59))],
        "checkpoint": [s.signal_id for s in store.iter_signals_from_checkpoint(end=whole[1])],
        "table": store.read_signals(*whole).column("signal_id").to_pylist(),
        "top": [s.signal_id for s in store.get_top_recommendation_candidates(
            start=whole[0], end=whole[1], limit=50, unique_by_entity=False)],
        "sql": sorted(r[0] for r in store.sql("SELECT signal_id FROM signals").fetchall()),
        "sql_count": store.sql("SELECT count(*) FROM signals").fetchall()[0][0],
    }


# ---------------------------------------------------------------------------- rule 2


def test_a_foreign_copy_on_an_earlier_hot_day_of_an_id_compacted_later(tmp_path):
    """Issue 10 case 3: X compacted on 02-05, then a foreign copy lands in 02-04's hot file."""
    store = FileSystemStore(tmp_path)
    store.write_signals([signal("X", at(5), 0.9), signal("A", at(5, 13)), signal("B", at(4, 9))])
    store.compact(before=date(2026, 2, 6))
    append(store, "2026-02-04", foreign_line(signal("X", at(4, 10), 0.1)))
    before = answers(store)
    # The whole store holds X once: the 02-04 copy is first in (day, append order).
    assert before["sql"] == ["A", "B", "X"] and before["sql_count"] == 3
    assert [r["signal_id"] for r in before["replay"]] == ["B", "X", "A"]
    assert [r["payload"] for r in before["replay"] if r["signal_id"] == "X"] == [{"score": 0.1}]
    # A window that reads only 02-05's file returns that day's copy (as 0.1.8 does).
    assert [r["payload"] for r in before["replay_05"] if r["signal_id"] == "X"] == [{"score": 0.9}]
    with pytest.raises(DuplicateEventError):
        store.write_signal(signal("X", at(6)), on_duplicate="raise")
    store.compact(before=date(2026, 2, 6))
    assert answers(store) == before
    assert answers(FileSystemStore(tmp_path)) == before


def test_duplicates_across_days_read_the_same_in_every_state(tmp_path):
    """An id written on three days by foreign tools, compacted one day at a time."""
    store = FileSystemStore(tmp_path)
    store.write_signals([signal("K", at(3), 0.3), signal("L", at(4, 8))])
    append(store, "2026-02-04", foreign_line(signal("K", at(4), 0.4)))
    append(store, "2026-02-05", foreign_line(signal("K", at(5), 0.5)))
    append(store, "2026-02-03", foreign_line(signal("K", at(3, 15), 0.35)))  # same day: never seen
    before = answers(store)
    assert before["sql"] == ["K", "L"]
    assert [r["payload"]["score"] for r in before["replay"] if r["signal_id"] == "K"] == [0.3]
    for cutoff in (date(2026, 2, 4), date(2026, 2, 5), date(2026, 2, 6)):
        store.compact(before=cutoff)
        assert answers(store) == before, cutoff
        assert answers(FileSystemStore(tmp_path)) == before, cutoff


def test_a_replay_running_while_a_later_day_is_compacted_keeps_every_id(tmp_path):
    """Issue 10 case 3, second half: positions of a foreign duplicate change under a replay."""
    store = FileSystemStore(tmp_path)
    store.write_signals([signal("first", at(4)), signal("X", at(5)), signal("Y", at(5, 13)), signal("Z", at(6))])
    append(store, "2026-02-06", foreign_line(signal("X", at(6, 1))))
    replay = store.iter_signals(at(4, 0), at(6, 23))
    assert next(replay).signal_id == "first"
    FileSystemStore(tmp_path).compact(before=date(2026, 2, 6))  # another process compacts 02-04 and 02-05
    assert [s.signal_id for s in replay] == ["X", "Y", "Z"]


def test_a_duplicate_within_a_day_is_dropped_by_compaction_and_never_read(tmp_path):
    store = FileSystemStore(tmp_path)
    store.write_signals([signal("D", at(5), 0.2)])
    append(store, "2026-02-05", foreign_line(signal("D", at(5, 1), 0.8)))
    before = answers(store)
    report = store.compact(before=date(2026, 2, 6))
    assert report.days[0].duplicates_dropped == 1
    assert answers(store) == before


# ---------------------------------------------------------------------------- rule 3


def test_a_record_in_a_file_of_another_day_is_read_like_0_1_8(tmp_path):
    """Issue 10 case 4: ``2026-02-05T23:30:00-05:00`` (02-06 04:30 UTC) in 02-05's file."""
    store = FileSystemStore(tmp_path)
    store.write_signals([signal("a", at(5, 10)), signal("b", at(6, 3)), signal("c", at(6, 5)), signal("d", at(7))])
    stray = signal("stray", at(6, 4, 30))
    append(store, "2026-02-05", foreign_line(stray, timestamp="2026-02-05T23:30:00-05:00"))
    both_days = (at(5, 0), at(6, 23, 59))
    # Replays keep (timestamp, append order): the stray record sits between b and c.
    assert replay_ids(store, *both_days) == ["a", "b", "stray", "c"]
    assert [s.signal_id for s in store.iter_signals_from_checkpoint(start=both_days[0], end=both_days[1])] == [
        "a", "b", "stray", "c"]
    assert (next(s for s in store.iter_signals(*both_days) if s.signal_id == "stray")).timestamp == stray.timestamp
    # Every read model agrees: its file (02-05) is read when the window covers 02-05.
    assert "stray" in store.read_signals(*both_days).column("signal_id").to_pylist()
    assert "stray" in [s.signal_id for s in store.get_latest_draft_signals(limit=10, start=both_days[0],
                                                                            end=both_days[1])]
    # A window over 02-06 alone does not read 02-05's file (0.1.8 does not either) ...
    assert replay_ids(store, at(6, 0), at(6, 23, 59)) == ["b", "c"]
    assert "stray" not in store.read_signals(at(6, 0), at(6, 23, 59)).column("signal_id").to_pylist()
    # ... and a window over 02-05 alone reads the file, but the timestamp is outside the window.
    assert replay_ids(store, at(5, 0), at(5, 23, 59)) == ["a"]
    before = answers(store)
    store.compact(before=date(2026, 2, 7))
    assert answers(store) == before
    assert replay_ids(store, *both_days) == ["a", "b", "stray", "c"]


def test_a_checkpoint_replay_reads_the_files_of_its_window_days(tmp_path):
    """Resuming reads the files from the checkpoint's day on: a stray record in an earlier day's
    file is delivered while the checkpoint is on that day, and not after (as in 0.1.8)."""
    store = FileSystemStore(tmp_path)
    store.write_signals([signal("a", at(5, 10)), signal("b", at(6, 3)), signal("c", at(6, 5))])
    append(store, "2026-02-05", foreign_line(signal("stray", at(6, 4)), timestamp="2026-02-05T23:00:00-05:00"))
    end = at(6, 23)
    after_a = store.build_signal_checkpoint([signal("a", at(5, 10))])
    assert [s.signal_id for s in store.iter_signals_from_checkpoint(end=end, checkpoint=after_a)] == [
        "b", "stray", "c"]
    after_b = store.build_signal_checkpoint([signal("b", at(6, 3))])
    assert [s.signal_id for s in store.iter_signals_from_checkpoint(end=end, checkpoint=after_b)] == ["c"]


# ---------------------------------------------------------------------------- empty day files


@pytest.mark.parametrize("content", [b"", b"\n\n  \n", b'{"signal_id": "torn", "timest'])
def test_a_day_file_without_records_next_to_compacted_days(tmp_path, content):
    """Issue 11 case 1: a hot day file with no complete record beside compacted days."""
    store = FileSystemStore(tmp_path)
    store.write_signals([signal("a", at(4)), signal("b", at(6))])
    store.compact(before=date(2026, 2, 7))
    (store.signals_dir / "2026-02-05.jsonl").write_bytes(content)
    assert replay_ids(store, at(4, 0), at(6, 23)) == ["a", "b"]
    assert store.sql("SELECT count(*) FROM signals").fetchall()[0][0] == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        store.compact(before=date(2026, 2, 7))
    assert not (store.signals_dir / "2026-02-05.jsonl").exists()
    quarantine = list((store.store_root / "quarantine" / "signals").glob("2026-02-05.*.jsonl"))
    if content.endswith(b"timest"):
        (entry,) = [orjson.loads(line) for path in quarantine for line in path.read_bytes().splitlines()]
        assert entry["text"] == content.decode() and "torn" in entry["reason"]
    else:
        assert quarantine == []
    assert replay_ids(store, at(4, 0), at(6, 23)) == ["a", "b"]



def test_entries_that_are_not_regular_files_are_reported_and_skipped(tmp_path):
    """Issue 11 case 8: a symlink loop or a folder named like a day file."""
    from metaspn_store import StoreIOError

    store = FileSystemStore(tmp_path)
    store.write_signals([signal("a", at(4)), signal("b", at(6))])
    folder = store.signals_dir
    (folder / "loop-a").symlink_to(folder / "loop-b")
    (folder / "loop-b").symlink_to(folder / "loop-a")
    (folder / "2026-02-05.jsonl").symlink_to(folder / "loop-a")
    (folder / "2026-02-07.jsonl").mkdir()
    assert replay_ids(store, at(1, 0), at(9, 0)) == ["a", "b"]
    reports = sorted((Path(r.path).name, r.line) for r in store.verify())
    assert reports == [("2026-02-05.jsonl", 0), ("2026-02-07.jsonl", 0)]
    with pytest.raises(StoreIOError, match="2026-02-05.jsonl"):
        store.write_signal(signal("c", at(5)))
    with pytest.raises(StoreIOError, match="2026-02-07.jsonl"):
        store.write_signal(signal("d", at(7)))
    store.write_signal(signal("e", at(6, 20)))
    store.compact(before=date(2026, 2, 9))
    assert replay_ids(store, at(1, 0), at(9, 0)) == ["a", "b", "e"]
    assert (folder / "2026-02-07.jsonl").is_dir()
