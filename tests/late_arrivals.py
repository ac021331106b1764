"""The late-arrival scenario of the consumers issue, shared by the test and the benchmark.

Records are stamped over five hours around midnight (UTC); 10% arrive 1-15 minutes after their
timestamp, the rest at once. Every 5 minutes the records that have arrived are written, then two
workers catch up: one with a 0.1.8 ``ReplayCheckpoint`` (``iter_signals_from_checkpoint`` up to
now, then ``build_signal_checkpoint``), one with a named consumer (poll until empty, commit).
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

from metaspn_schemas import SignalEnvelope

from metaspn_store import FileSystemStore

UTC = timezone.utc


def late_arrival_scenario(ws: Path, *, records: int = 1500, seed: int = 3, late_share: float = 0.10) -> dict[str, int]:
    """What each worker never saw: ``missed_checkpoint`` (and of the late records,
    ``missed_checkpoint_late``) and ``missed_consumer``; ``redelivered_consumer`` counts records
    the consumer gave again after they were committed.

    Hourly, the closed days are compacted (so late records also reach compacted days), and every
    seventh catch-up the consumer "crashes": it polls a batch, then is dropped without a commit and
    reopened (the uncommitted batch is delivered again, which is allowed)."""
    rng = random.Random(seed)
    start = datetime(2026, 3, 1, 22, 0, tzinfo=UTC)  # crosses midnight: late records land in yesterday's file
    events = []
    for i in range(records):
        stamp = start + timedelta(seconds=rng.uniform(0, 5 * 3600))
        delay = timedelta(minutes=rng.uniform(1, 15)) if rng.random() < late_share else timedelta(0)
        events.append((stamp + delay, stamp, f"late-{i}" if delay else f"r-{i}"))
    events.sort()
    store = FileSystemStore(ws)
    consumer = store.consumer("worker")
    checkpoint = None
    by_checkpoint: set[str] = set()
    committed: set[str] = set()
    by_consumer: set[str] = set()
    redelivered = 0
    crashes = 0
    poll_at = start
    pending = list(events)
    end = start + timedelta(hours=6)
    while poll_at <= end:
        arrived = [e for e in pending if e[0] <= poll_at]
        pending = pending[len(arrived):]
        if arrived:
            store.write_signals([
                SignalEnvelope(signal_id=record_id, timestamp=stamp, source="ingest", payload_type="Observation",
                               payload={"n": 1})
                for _, stamp, record_id in arrived
            ])
        replay = list(store.iter_signals_from_checkpoint(end=poll_at, checkpoint=checkpoint))
        by_checkpoint.update(s.signal_id for s in replay)
        checkpoint = store.build_signal_checkpoint(replay) or checkpoint
        if poll_at.minute == 0:
            store.compact(before=poll_at.date())
        if crashes * 7 < (poll_at - start) // timedelta(minutes=5):
            crashes += 1
            lost = consumer.poll(50)  # processed, never committed: the worker died
            by_consumer.update(s.signal_id for s in lost)
            consumer.close()
            consumer = store.consumer("worker")
        while batch := consumer.poll(500):
            got = [s.signal_id for s in batch]
            redelivered += len(committed.intersection(got))
            by_consumer.update(got)
            committed.update(got)
            consumer.commit()
        poll_at += timedelta(minutes=5)
    consumer.close()
    everything = {e[2] for e in events}
    late = {e[2] for e in events if e[2].startswith("late-")}
    return {
        "records": len(everything),
        "late": len(late),
        "missed_checkpoint": len(everything - by_checkpoint),
        "missed_checkpoint_late": len(late - by_checkpoint),
        "missed_consumer": len(everything - by_consumer),
        "redelivered_consumer": redelivered,
        "consumer_crashes": crashes,
    }
