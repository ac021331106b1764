"""Named consumers (``store.consumer``): every stored record once, in each day's append order,
late records included, through compaction, restarts, kills and other hosts.

The model these tests hold the store to: the records of a day are its valid lines' first copies
per id within the day, in append order (the table's rows first once a day is compacted). A
consumer must deliver every one of them (a record on two days is one per day), and a record
delivered before a commit is never delivered again.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from late_arrivals import late_arrival_scenario
from metaspn_schemas import EmissionEnvelope, SignalEnvelope

from metaspn_store import ConsumerBusyError, FileSystemStore, ReadOnlyStoreError, ReplayCheckpoint, StoreError

UTC = timezone.utc
ROOT = Path(__file__).resolve().parents[1]
DAY0 = datetime(2026, 3, 1, tzinfo=UTC)


def sig(i: int | str, when: datetime, *, source: str = "ingest", payload_type: str = "Observation") -> SignalEnvelope:
    return SignalEnvelope(signal_id=str(i), timestamp=when, source=source, payload_type=payload_type, payload={"i": str(i)})


def at(day: int, minute: int = 0) -> datetime:
    return DAY0 + timedelta(days=day, minutes=minute)


def ids(batch: list[Any]) -> list[str]:
    return [getattr(e, "signal_id", None) or e.emission_id for e in batch]


def drain(consumer: Any, step: int = 7) -> list[str]:
    out: list[str] = []
    while True:
        batch = consumer.poll(step)
        if not batch:
            return out
        out.extend(ids(batch))


def compact_all(store: FileSystemStore) -> None:
    store.compact(before=date(2100, 1, 1))


# ---------------------------------------------------------------------------- contract


def test_delivers_days_oldest_first_each_in_append_order(tmp_path: Path) -> None:
    store = FileSystemStore(tmp_path)
    # appended out of timestamp order, across days
    store.write_signals([sig("b2", at(1, 30)), sig("a1", at(0, 50)), sig("b1", at(1, 10)), sig("a2", at(0, 5))])
    consumer = store.consumer("w")
    assert ids(consumer.poll(3)) == ["a1", "a2", "b2"]
    assert ids(consumer.poll(3)) == ["b1"]
    assert consumer.poll() == []


def test_envelopes_are_the_stored_records(tmp_path: Path) -> None:
    store = FileSystemStore(tmp_path)
    records = [sig(i, at(0, i)) for i in range(5)]
    store.write_signals(records)
    assert store.consumer("w").poll() == records
    emissions = [EmissionEnvelope(emission_id=f"e{i}", timestamp=at(0, i), emission_type="Route", payload={"n": i}, caused_by="s1")
                 for i in range(3)]
    store.write_emissions(emissions)
    consumer = store.consumer("w", "emissions", emission_types=["Route"])
    assert consumer.poll() == emissions


def test_a_late_record_is_delivered_hot_and_after_compaction(tmp_path: Path) -> None:
    store = FileSystemStore(tmp_path)
    store.write_signals([sig(f"d0-{i}", at(0, i)) for i in range(5)] + [sig(f"d1-{i}", at(1, i)) for i in range(5)])
    consumer = store.consumer("w")
    assert len(drain(consumer)) == 10
    consumer.commit()
    store.write_signal(sig("late-hot", at(0, 1)))  # an earlier timestamp than everything delivered since
    assert ids(consumer.poll()) == ["late-hot"]
    consumer.commit()
    compact_all(store)
    assert consumer.poll() == []
    store.write_signal(sig("late-cold", at(0, 2)))  # a day that is in the table already
    assert ids(consumer.poll()) == ["late-cold"]
    compact_all(store)
    assert consumer.poll() == []
    consumer.close()
    again = store.consumer("w")
    assert ids(again.poll()) == ["late-cold"]  # polled, never committed: delivered again


def test_uncommitted_records_are_delivered_again_committed_ones_never(tmp_path: Path) -> None:
    store = FileSystemStore(tmp_path)
    store.write_signals([sig(i, at(0, i)) for i in range(10)])
    consumer = store.consumer("w")
    assert ids(consumer.poll(4)) == ["0", "1", "2", "3"]
    consumer.commit()
    assert ids(consumer.poll(4)) == ["4", "5", "6", "7"]
    consumer.close()  # no commit: 4..7 come again
    again = store.consumer("w")
    assert again.lag() == 6
    store.write_signal(sig("late", at(0, 0)))
    assert again.lag() == 7
    assert ids(again.poll(100)) == [str(i) for i in range(4, 10)] + ["late"]
    assert again.lag() == 0


def test_a_position_inside_a_hot_day_survives_its_compaction(tmp_path: Path) -> None:
    store = FileSystemStore(tmp_path)
    store.write_signals([sig(i, at(0, i)) for i in range(20)])
    consumer = store.consumer("w")
    assert len(consumer.poll(7)) == 7
    consumer.commit()
    compact_all(store)
    store.write_signals([sig(f"late-{i}", at(0, 100 + i)) for i in range(3)])
    assert ids(consumer.poll(100)) == [str(i) for i in range(7, 20)] + ["late-0", "late-1", "late-2"]
    consumer.commit()
    consumer.close()
    compact_all(store)
    reopened = store.consumer("w")
    assert reopened.poll() == []
    assert reopened.lag() == 0


def test_positions_survive_the_conversion_of_the_previous_cold_layout(tmp_path: Path) -> None:
    from legacy_layout import compact_the_old_way

    store = FileSystemStore(tmp_path)
    store.write_signals([sig(f"{d}-{i}", at(d, i)) for d in range(3) for i in range(6)])
    compact_the_old_way(store, date(2026, 3, 3))  # days 0 and 1 in the previous layout
    consumer = store.consumer("w")
    assert ids(consumer.poll(9)) == [f"0-{i}" for i in range(6)] + ["1-0", "1-1", "1-2"]
    consumer.commit()
    store.write_signal(sig("late", at(1, 59)))
    compact_all(store)  # converts to the Delta table, then compacts day 1's late record and day 2
    rest = ["1-3", "1-4", "1-5", "late"] + [f"2-{i}" for i in range(6)]
    assert ids(consumer.poll(100)) == rest


def test_filters_select_and_positions_advance_past_the_rest(tmp_path: Path) -> None:
    store = FileSystemStore(tmp_path)
    store.write_signals([sig(i, at(0, i), source="a" if i % 3 else "b", payload_type="P" if i % 2 else "Q")
                         for i in range(30)])
    consumer = store.consumer("w", sources=["b"], payload_types=["P"])
    want = [str(i) for i in range(30) if i % 3 == 0 and i % 2]
    assert consumer.lag() == len(want)
    assert ids(consumer.poll(2)) == want[:2]
    assert ids(consumer.poll(100)) == want[2:]
    consumer.commit()
    assert consumer.lag() == 0
    info = {c["name"]: c for c in store.consumers()}["w"]
    assert info["filter"] == {"sources": ["b"], "payload_types": ["P"]}
    assert info["delivered"] == len(want) and info["lag"] == 0 and info["commits"] == 2


def test_start_now_delivers_only_what_is_stored_later_late_records_included(tmp_path: Path) -> None:
    store = FileSystemStore(tmp_path)
    store.write_signals([sig(i, at(d, i)) for d in range(2) for i in range(d * 10, d * 10 + 5)])
    compact_all(store)
    store.write_signals([sig(f"hot-{i}", at(2, i)) for i in range(5)])
    consumer = store.consumer("w", start="now")
    consumer.close()  # the start position was committed when the name was created
    consumer = store.consumer("w", start="beginning")  # ignored: the name exists
    assert consumer.poll() == []
    store.write_signals([sig("new", at(2, 50)), sig("late", at(0, 59))])
    assert ids(consumer.poll()) == ["late", "new"]


def test_start_from_a_0_1_8_checkpoint(tmp_path: Path) -> None:
    store = FileSystemStore(tmp_path)
    store.write_signals([sig(i, at(0, i)) for i in range(10)])
    store.write_signal(sig("same-ts", at(0, 4)))
    processed = list(store.iter_signals(at(0), at(0, 4)))  # 0..4 (and same-ts, which shares minute 4)
    checkpoint = store.build_signal_checkpoint([s for s in processed if s.signal_id != "same-ts"])
    assert checkpoint is not None
    consumer = store.consumer("switch", start=checkpoint)
    store.write_signal(sig("late", at(0, 1)))  # behind the checkpoint: the old worker never sees it
    assert ids(consumer.poll(100)) == ["5", "6", "7", "8", "9", "same-ts", "late"]
    assert [s.signal_id for s in store.iter_signals_from_checkpoint(end=at(1), checkpoint=checkpoint)] == [
        "same-ts", "5", "6", "7", "8", "9"]
    consumer.commit()
    consumer.close()
    assert store.consumer("switch").poll() == []
    with pytest.raises(ValueError, match="ReplayCheckpoint"):
        store.consumer("e", "emissions", start=ReplayCheckpoint(last_timestamp=at(0)))


def test_a_name_is_open_in_one_place_at_a_time(tmp_path: Path) -> None:
    store = FileSystemStore(tmp_path)
    first = store.consumer("w")
    with pytest.raises(ConsumerBusyError):
        store.consumer("w")
    code = ("import sys; from metaspn_store import FileSystemStore, ConsumerBusyError\n"
            "try:\n FileSystemStore(sys.argv[1]).consumer('w')\nexcept ConsumerBusyError:\n sys.exit(7)\n")
    assert subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=ROOT).returncode == 7
    first.close()
    store.consumer("w").close()
    assert store.consumer("w", "emissions") is not None  # another kind, another name


def test_bad_arguments_and_read_only_stores(tmp_path: Path) -> None:
    store = FileSystemStore(tmp_path)
    store.write_signal(sig(1, at(0)))
    with pytest.raises(ValueError):
        store.consumer("w", start="yesterday")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        store.consumer("w", "emissions", sources=["x"])
    with pytest.raises(TypeError):
        store.consumer("w", sources="ingest")  # type: ignore[arg-type]
    with pytest.raises(StoreError):
        store.consumer("../escape")
    consumer = store.consumer("w")
    with pytest.raises(ValueError):
        consumer.poll(0)
    consumer.close()
    with pytest.raises(StoreError, match="closed"):
        consumer.poll()
    reader = FileSystemStore(tmp_path, read_only=True)
    with pytest.raises(ReadOnlyStoreError):
        reader.consumer("w")
    assert [c["name"] for c in reader.consumers()] == ["w"]  # listing needs no write access


def test_foreign_lines_bad_lines_and_same_day_duplicates(tmp_path: Path) -> None:
    store = FileSystemStore(tmp_path)
    store.write_signals([sig("x", at(0, 1)), sig("y", at(0, 2))])
    hot = tmp_path / "store" / "signals" / "2026-03-01.jsonl"
    line = json.loads(hot.read_text().splitlines()[0])
    with open(hot, "a") as handle:  # another tool: a repeat of x, a bad line, a new record
        handle.write(json.dumps(line) + "\n{not json\n")
        handle.write(json.dumps({**line, "signal_id": "z"}) + "\n")
    consumer = store.consumer("w")
    with pytest.warns(Warning):
        assert ids(consumer.poll()) == ["x", "y", "z"]
    consumer.commit()
    compact_all(store)
    assert consumer.poll() == []


# ---------------------------------------------------------------------------- the model, at random


def _stored_sequence(store: FileSystemStore) -> set[tuple[str, str]]:
    """(day, id) of every record: first copies per id within each day."""
    out = set()
    for row in store.sql("SELECT signal_id, day FROM signals").fetchall():
        out.add((row[1].isoformat(), row[0]))
    return out


OPS = st.lists(
    st.one_of(
        st.tuples(st.just("write"), st.lists(st.tuples(st.integers(0, 3), st.integers(0, 40)), min_size=1, max_size=6)),
        st.tuples(st.just("poll"), st.integers(1, 6)),
        st.tuples(st.just("commit"), st.just(0)),
        st.tuples(st.just("crash"), st.just(0)),
        st.tuples(st.just("compact"), st.integers(0, 4)),
    ),
    min_size=1,
    max_size=30,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS)
def test_random_writes_polls_commits_crashes_and_compactions(tmp_path_factory: pytest.TempPathFactory, ops: list[Any]) -> None:
    ws = tmp_path_factory.mktemp("consumer")
    store = FileSystemStore(ws)
    consumer = store.consumer("w")
    committed: set[str] = set()  # ids delivered before the last commit
    since: list[str] = []  # delivered after it
    delivered: set[str] = set()
    n = 0
    for op, arg in ops:
        if op == "write":
            batch = []
            for day, minute in arg:
                n += 1
                batch.append(sig(f"r{n}", at(day, minute)))
            if n % 4 == 0:
                batch.append(sig("r1", at(0)))  # a duplicate id: a no-op write
            store.write_signals(batch)
        elif op == "poll":
            got = ids(consumer.poll(arg))
            assert not set(got) & committed, "a record delivered before a commit came again"
            assert len(set(got)) == len(got)
            since.extend(got)
            delivered.update(got)
        elif op == "commit":
            consumer.commit()
            committed.update(since)
            since = []
        elif op == "crash":
            consumer.close()
            consumer = store.consumer("w")
            since = []
        else:
            store.compact(before=(DAY0 + timedelta(days=arg)).date())
    while True:
        got = ids(consumer.poll(5))
        if not got:
            break
        assert not set(got) & committed
        delivered.update(got)
    assert delivered == {i for _, i in _stored_sequence(store)}
    consumer.close()


def _between_version_and_hot_read(consumer: Any, day: date, action: Any) -> None:
    """Run ``action`` once, when the consumer's poll reads the hot file of ``day``: after it has
    loaded the table version, before it reads the file (the window another process's compaction
    and writes can fall into)."""
    hot = consumer._hot
    real = hot.table
    fired: list[bool] = []

    def table(d: date) -> Any:
        if d == day and not fired:
            fired.append(True)
            action()
        return real(d)

    hot.table = table


@pytest.mark.parametrize("recreated", ["new file", "same file name reused"])
def test_a_compaction_and_writes_inside_a_poll_neither_skip_nor_repeat_records(tmp_path: Path, recreated: str) -> None:
    # Another process (a second store object: its own caches) writes a late record to a compacted
    # day, compacts it (the commit claims the file, then deletes it) and writes another late record
    # (a new hot file, on ext4 often with the deleted file's inode) while this consumer's poll sits
    # between loading the table version and reading that day's hot file.
    store = FileSystemStore(tmp_path)
    store.write_signals([sig(f"a{i}", at(0, i)) for i in range(3)] + [sig(f"b{i}", at(1, i)) for i in range(3)])
    compact_all(store)
    if recreated == "same file name reused":
        store.write_signals([sig("b-hot", at(1, 50))])  # the day has a hot file when the poll stats it
    other = FileSystemStore(tmp_path)

    def late_writes_and_a_compaction() -> None:
        other.write_signals([sig("late1", at(1, 100))])
        other.compact(before=date(2100, 1, 1))
        other.write_signals([sig("late2", at(1, 200))])

    consumer = FileSystemStore(tmp_path).consumer("w")
    _between_version_and_hot_read(consumer, DAY0.date() + timedelta(days=1), late_writes_and_a_compaction)
    got = drain(consumer, step=100)
    assert sorted(got) == sorted({i for _, i in _stored_sequence(store)})
    assert len(got) == len(set(got)), f"delivered twice: {got}"


# ---------------------------------------------------------------------------- real processes


WORKER = r"""
import os, sys, json
from metaspn_store import FileSystemStore
ws, out = sys.argv[1], sys.argv[2]
store = FileSystemStore(ws)
consumer = store.consumer("worker")
fd = os.open(out, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
batch_no = int(sys.argv[3])
while True:
    batch = consumer.poll(int(sys.argv[4]))
    if not batch:
        if os.path.exists(ws + "/stop"):
            break
        continue
    batch_no += 1
    os.write(fd, (json.dumps({"batch": batch_no, "ids": [s.signal_id for s in batch]}) + "\n").encode())
    os.fsync(fd)
    consumer.commit()
    os.write(fd, (json.dumps({"committed": batch_no}) + "\n").encode())
    os.fsync(fd)
"""


def test_kill_9_of_the_consumer_amid_late_writes_and_compactions(tmp_path: Path) -> None:
    import random

    ws, out = tmp_path / "ws", tmp_path / "delivered.jsonl"
    store = FileSystemStore(ws)
    rng = random.Random(7)
    written: set[str] = set()
    proc = None
    batch_base = 0
    kills = 0
    n = 0
    for round_no in range(24):
        if proc is None:
            proc = subprocess.Popen([sys.executable, "-c", WORKER, str(ws), str(out), str(batch_base), str(rng.randint(5, 60))],
                                    cwd=ROOT, stderr=subprocess.DEVNULL)
        batch = []
        for _ in range(rng.randint(20, 120)):
            n += 1
            day = rng.choice([0, 1, 2, 3, round_no // 6 + 3])  # mostly late days
            batch.append(sig(f"k{n}", at(day, rng.randint(0, 1000))))
            written.add(f"k{n}")
        store.write_signals(batch)
        if round_no % 5 == 4:
            store.compact(before=(DAY0 + timedelta(days=round_no // 6 + 2)).date())
        time.sleep(rng.uniform(0.05, 0.4))
        if round_no % 3 == 2:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
            proc = None
            batch_base += 10_000  # batch numbers of the next process start elsewhere
    (ws / "stop").touch()
    if proc is None:
        proc = subprocess.Popen([sys.executable, "-c", WORKER, str(ws), str(out), str(batch_base), "50"], cwd=ROOT,
                                stderr=subprocess.PIPE)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()
    batches: dict[int, list[str]] = {}
    committed: set[int] = set()
    for line in out.read_text().splitlines():
        doc = json.loads(line)
        if "batch" in doc:
            batches[doc["batch"]] = doc["ids"]
        else:
            committed.add(doc["committed"])
    seen: dict[str, int] = {}
    for batch_ids in batches.values():
        for record_id in batch_ids:
            seen[record_id] = seen.get(record_id, 0) + 1
    assert set(seen) == written, f"missed {sorted(written - set(seen))[:10]}"
    in_committed: dict[str, int] = {}
    for number in committed:
        for record_id in batches[number]:
            in_committed[record_id] = in_committed.get(record_id, 0) + 1
    assert max(in_committed.values()) == 1, "a record was delivered again after its commit"
    # only a batch cut off by a kill (at most one per kill) is delivered twice
    uncommitted = [b for b in batches if b not in committed]
    assert len(uncommitted) <= kills
    assert sum(seen.values()) - len(seen) <= sum(len(batches[b]) for b in uncommitted)


# ---------------------------------------------------------------------------- late arrivals vs 0.1.8 checkpoints


def test_late_arrivals_a_consumer_misses_none_a_checkpoint_misses_many(tmp_path: Path) -> None:
    result = late_arrival_scenario(tmp_path, records=800)
    assert result["records"] == 800 and result["late"] > 40 and result["consumer_crashes"] > 5
    assert result["missed_consumer"] == 0 and result["redelivered_consumer"] == 0
    assert result["missed_checkpoint_late"] > result["late"] // 3  # the reason consumers exist


# ---------------------------------------------------------------------------- several hosts


@pytest.fixture(params=["local", "s3"])
def shared_cold(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, str] | None]:
    """A cold location two workspaces (two hosts) share: a local folder or an S3 prefix (moto)."""
    if request.param == "local":
        return str(tmp_path / "shared-cold"), None
    s3 = request.getfixturevalue("s3")
    return s3.uri("consumers"), s3.options


def test_records_other_hosts_compact_into_a_shared_table(tmp_path: Path, shared_cold: Any) -> None:
    shared, options = shared_cold
    a = FileSystemStore(tmp_path / "a", cold=shared, storage_options=options)
    b = FileSystemStore(tmp_path / "b", cold=shared, storage_options=options)
    a.write_signals([sig(f"a{i}", at(0, i)) for i in range(10)])
    b.write_signals([sig(f"b{i}", at(0, 100 + i)) for i in range(10)])
    consumer = a.consumer("w")
    assert ids(consumer.poll(4)) == ["a0", "a1", "a2", "a3"]  # a's hot records: b's are on b's disk
    consumer.commit()
    b.compact(before=date(2100, 1, 1))  # b's rows land in the table, ahead of a's hot records
    got = drain(consumer)
    # every record, b's included; a's hot records already delivered may come again (the limit)
    assert {f"b{i}" for i in range(10)} | {f"a{i}" for i in range(4, 10)} <= set(got)
    assert set(got) - {f"b{i}" for i in range(10)} <= {f"a{i}" for i in range(10)}
    consumer.commit()
    a.compact(before=date(2100, 1, 1))  # a's own compaction moves nothing in the sequence
    assert consumer.poll() == []
    b.write_signal(sig("b-late", at(0, 500)))
    b.compact(before=date(2100, 1, 1))
    assert ids(consumer.poll()) == ["b-late"]


def test_a_hosts_own_compaction_keeps_positions_exact_on_a_shared_table(tmp_path: Path, shared_cold: Any) -> None:
    shared, options = shared_cold
    a = FileSystemStore(tmp_path / "a", cold=shared, storage_options=options)
    b = FileSystemStore(tmp_path / "b", cold=shared, storage_options=options)
    b.write_signals([sig(f"b{i}", at(0, i)) for i in range(5)])
    b.compact(before=date(2100, 1, 1))
    a.write_signals([sig(f"a{i}", at(0, 10 + i)) for i in range(10)])
    consumer = a.consumer("w")
    assert ids(consumer.poll(8)) == [f"b{i}" for i in range(5)] + ["a0", "a1", "a2"]
    consumer.commit()
    a.compact(before=date(2100, 1, 1))
    assert ids(consumer.poll()) == [f"a{i}" for i in range(3, 10)]  # exactly the rest


def test_cli_lists_consumers_with_their_lag(tmp_path: Path) -> None:
    store = FileSystemStore(tmp_path)
    store.write_signals([sig(i, at(0, i)) for i in range(6)])
    consumer = store.consumer("route_worker", sources=["ingest"])
    consumer.poll(2)
    consumer.commit()
    consumer.close()
    out = subprocess.run([sys.executable, "-m", "metaspn_store", "consumers", str(tmp_path)], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    assert "route_worker" in out and "signals" in out
    row = next(line for line in out.splitlines() if "route_worker" in line)
    assert row.split()[2:4] == ["2", "4"]  # delivered, lag
    data = json.loads(subprocess.run([sys.executable, "-m", "metaspn_store", "consumers", str(tmp_path), "--json"],
                                     cwd=ROOT, capture_output=True, text=True, check=True).stdout)
    assert data[0]["lag"] == 4 and data[0]["filter"] == {"sources": ["ingest"]}
