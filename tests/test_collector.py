"""Big batches (writes, envelopes built by reads) run with Python's cyclic collector paused, and
leave it as they found it (``_codec.collector_paused``). Counted, not timed: the collector's own
callbacks count its runs."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from metaspn_schemas import SignalEnvelope

from metaspn_store import FileSystemStore

T0 = datetime(2026, 3, 1, tzinfo=timezone.utc)
N = 6_000


def _signals(prefix: str) -> list[SignalEnvelope]:
    return [SignalEnvelope(signal_id=f"{prefix}{i}", timestamp=T0 + timedelta(seconds=i), source="s",
                           payload_type="P", payload={"i": i, "tags": ["a", "b"]}) for i in range(N)]


@pytest.fixture
def collections() -> Iterator[list[int]]:
    runs: list[int] = []

    def count(phase: str, info: dict) -> None:
        if phase == "start":
            runs.append(info["generation"])

    gc.collect()
    gc.callbacks.append(count)
    try:
        yield runs
    finally:
        gc.callbacks.remove(count)


def test_a_batch_write_and_a_replay_kept_in_memory_barely_run_the_collector(tmp_path: Path, collections: list[int]) -> None:
    store = FileSystemStore(tmp_path)
    batch = _signals("s")
    collections.clear()
    store.write_signals(batch)
    # unpaused, 6,000 records (a few allocations each) start the collector dozens of times
    assert len(collections) <= 3, collections
    collections.clear()
    kept = list(store.iter_signals(T0, T0 + timedelta(days=1)))
    assert len(kept) == N
    assert len(collections) <= 10, collections
    assert gc.isenabled()


def test_a_collector_the_caller_disabled_stays_disabled(tmp_path: Path) -> None:
    store = FileSystemStore(tmp_path)
    gc.disable()
    try:
        store.write_signals(_signals("s"))
        assert not gc.isenabled()
        assert len(list(store.iter_signals(T0, T0 + timedelta(days=1)))) == N
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_the_collector_is_back_after_a_batch_that_fails(tmp_path: Path) -> None:
    store = FileSystemStore(tmp_path)
    batch = _signals("s")
    batch[-1] = SignalEnvelope(signal_id="bad", timestamp=T0, source="s", payload_type="P", payload={"x": float("nan")})
    with pytest.raises(ValueError, match="bad"):
        store.write_signals(batch)
    assert gc.isenabled()
