"""Real-process crash tests: SIGKILL a compaction or a writer at random moments, then check that
a fresh store reads exactly what an uncompacted copy reads (nothing lost, nothing doubled)."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
import warnings
from datetime import date, datetime, timezone
from pathlib import Path

import pytest

from metaspn_store import BadLineWarning, FileSystemStore

UTC = timezone.utc
W_START = datetime(2026, 1, 1, tzinfo=UTC)
W_END = datetime(2026, 3, 1, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[1]

COMPACT_CHILD = r"""
import shutil, sys
from datetime import date
from pathlib import Path
from metaspn_store import FileSystemStore
from metaspn_store.sample import generate_workspace
ws, ref = Path(sys.argv[1]), Path(sys.argv[2])
store = FileSystemStore(ws)
generate_workspace(store, days=4, signals_per_day=1500, start=date(2026, 2, 1), seed=int(sys.argv[3]))
shutil.copytree(ws, ref)
print("READY", flush=True)
store.compact(before=date(2026, 2, 5))
print("DONE", flush=True)
"""

WRITER_CHILD = r"""
import sys
from datetime import datetime, timedelta, timezone
from metaspn_schemas import SignalEnvelope
from metaspn_store import FileSystemStore
store = FileSystemStore(sys.argv[1])
base = datetime(2026, 2, 1, tzinfo=timezone.utc)
for i in range(10**7):
    sid = f"w-{i:07d}"
    store.write_signal(SignalEnvelope(
        signal_id=sid, timestamp=base + timedelta(seconds=(i * 7919) % 172800),
        source="writer", payload_type="Observation", payload={"i": i, "pad": "x" * (i % 300)},
    ))
    sys.stdout.write(sid + "\n")
    sys.stdout.flush()
"""


def _replay(ws: Path) -> tuple[list, list]:
    store = FileSystemStore(ws)
    return list(store.iter_signals(W_START, W_END)), list(store.iter_emissions(W_START, W_END))


def _run_compaction_crashes(tmp_path: Path, iterations: int, seed: int) -> None:
    rng = random.Random(seed)
    for i in range(iterations):
        ws, ref = tmp_path / f"ws{i}", tmp_path / f"ref{i}"
        proc = subprocess.Popen(
            [sys.executable, "-c", COMPACT_CHILD, str(ws), str(ref), str(i % 3)],
            stdout=subprocess.PIPE,
            cwd=ROOT,
            text=True,
        )
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "READY"
            time.sleep(rng.uniform(0.05, 1.5))
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        expected = _replay(ref)
        assert len(expected[0]) == 6000 and len(expected[1]) == 600
        got = _replay(ws)
        assert [s.signal_id for s in got[0]] == [s.signal_id for s in expected[0]], f"iteration {i}"
        assert [e.emission_id for e in got[1]] == [e.emission_id for e in expected[1]], f"iteration {i}"
        assert got == expected
        report = FileSystemStore(ws).compact(before=date(2026, 2, 5))
        assert report.skipped is None
        assert _replay(ws) == expected
        assert FileSystemStore(ws).compact(before=date(2026, 2, 5)).days == []
        assert not list((ws / "store" / "signals").glob("*.jsonl"))


def test_sigkill_during_compaction_never_loses_or_doubles(tmp_path: Path) -> None:
    _run_compaction_crashes(tmp_path, iterations=6, seed=20260201)


@pytest.mark.stress
def test_sigkill_during_compaction_stress(tmp_path: Path) -> None:
    _run_compaction_crashes(tmp_path, iterations=30, seed=7)


def _run_writer_kill(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    ws = tmp_path / "ws"
    proc = subprocess.Popen([sys.executable, "-c", WRITER_CHILD, str(ws)], stdout=subprocess.PIPE, cwd=ROOT)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith(b"w-")
        time.sleep(rng.uniform(0.05, 1.0))
        proc.send_signal(signal.SIGKILL)
        rest = proc.stdout.read()
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    data = first + rest
    acked = [line.decode() for line in data.split(b"\n")[:-1]]  # only complete lines are acks
    assert acked
    ids = [s.signal_id for s in FileSystemStore(ws).iter_signals(W_START, W_END)]
    assert len(ids) == len(set(ids))
    assert set(acked) <= set(ids)
    assert len(ids) - len(acked) <= 1  # at most the one write in flight when killed

    # Simulate a torn tail (a writer killed mid-line) in the newest file, then write again.
    newest = max((ws / "store" / "signals").glob("*.jsonl"), key=lambda p: p.stat().st_mtime_ns)
    with open(newest, "ab") as fh:
        fh.write(b'{"signal_id": "torn-tail", "timestamp": "2026-02-01T00:0')
    from metaspn_schemas import SignalEnvelope

    day = date.fromisoformat(newest.stem)
    nxt = SignalEnvelope(
        signal_id="after-torn",
        timestamp=datetime(day.year, day.month, day.day, 23, 59, tzinfo=UTC),
        source="writer",
        payload_type="Observation",
        payload={"after": True},
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        store = FileSystemStore(ws)
        store.write_signal(nxt)
        replay = list(FileSystemStore(ws).iter_signals(W_START, W_END))
    assert all(issubclass(w.category, BadLineWarning) for w in caught), [str(w.message) for w in caught]
    got = [s.signal_id for s in replay]
    assert "torn-tail" not in got
    assert got.count("after-torn") == 1
    assert next(s for s in replay if s.signal_id == "after-torn") == nxt
    assert sorted(got) == sorted(ids + ["after-torn"])


def test_sigkill_writer_mid_stream_keeps_every_acknowledged_write(tmp_path: Path) -> None:
    _run_writer_kill(tmp_path, seed=1)


@pytest.mark.stress
@pytest.mark.parametrize("seed", range(10))
def test_sigkill_writer_stress(tmp_path: Path, seed: int) -> None:
    _run_writer_kill(tmp_path, seed=seed)
