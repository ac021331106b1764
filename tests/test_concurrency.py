"""Several processes / threads writing overlapping ids into one workspace: one line per id."""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import sys
import threading
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from metaspn_schemas import SignalEnvelope

from metaspn_store import DuplicateEventError, FileSystemStore

UTC = timezone.utc
BASE = datetime(2026, 2, 1, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[1]


def _signal(i: int, writer: int) -> SignalEnvelope:
    return SignalEnvelope(
        signal_id=f"id-{i:04d}",
        timestamp=BASE + timedelta(minutes=37 * i),  # spreads over several day files
        source=f"writer-{writer}",
        payload_type="Observation",
        payload={"i": i, "writer": writer},
    )


def _process_writer(ws: str, writer: int, barrier: object) -> None:
    store = FileSystemStore(ws)
    order = list(range(300))
    if writer % 2:
        order.reverse()
    barrier.wait()  # type: ignore[attr-defined]
    for i in order:
        store.write_signal(_signal(i, writer))


def _lines(ws: Path) -> list[dict]:
    out = []
    for f in sorted((ws / "store" / "signals").glob("*.jsonl")):
        for line in f.read_bytes().splitlines():
            out.append(json.loads(line))  # every line valid JSON
    return out


def test_four_processes_same_ids_one_line_each(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(4)
    procs = [ctx.Process(target=_process_writer, args=(str(tmp_path), w, barrier)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    counts = Counter(r["signal_id"] for r in _lines(tmp_path))
    assert len(counts) == 300 and set(counts.values()) == {1}
    ids = [s.signal_id for s in FileSystemStore(tmp_path).iter_signals(BASE, BASE + timedelta(days=30))]
    assert sorted(ids) == sorted(counts)


def test_six_threads_one_store_one_line_each(tmp_path: Path) -> None:
    store = FileSystemStore(tmp_path)
    barrier = threading.Barrier(6)
    errors: list[BaseException] = []

    def work(writer: int) -> None:
        try:
            barrier.wait()
            for i in range(writer * 20, writer * 20 + 200):
                if i % 3 == 0:
                    store.write_signals([_signal(i, writer), _signal(i + 1, writer)])
                else:
                    store.write_signal(_signal(i, writer))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    counts = Counter(r["signal_id"] for r in _lines(tmp_path))
    assert set(counts.values()) == {1}
    assert len(counts) == 300
    assert len(list(store.iter_signals(BASE, BASE + timedelta(days=30)))) == 300


SECOND = r"""
import sys
from datetime import datetime, timezone
from metaspn_schemas import SignalEnvelope
from metaspn_store import FileSystemStore, DuplicateEventError
store = FileSystemStore(sys.argv[1])
store.write_signal(SignalEnvelope(signal_id="warmup", timestamp=datetime(2026, 2, 1, tzinfo=timezone.utc),
    source="b", payload_type="Observation", payload={}))
print("OPEN", flush=True)
sys.stdin.readline()
try:
    store.write_signal(SignalEnvelope(signal_id="shared", timestamp=datetime(2026, 2, 2, tzinfo=timezone.utc),
        source="b", payload_type="Observation", payload={}), on_duplicate="raise")
except DuplicateEventError:
    print("RAISED", flush=True)
else:
    print("WROTE", flush=True)
"""


def test_raise_policy_sees_write_of_other_process_after_open(tmp_path: Path) -> None:
    with subprocess.Popen(
        [sys.executable, "-c", SECOND, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    ) as proc:
        assert proc.stdout is not None and proc.stdin is not None
        assert proc.stdout.readline().strip() == "OPEN"
        first = FileSystemStore(tmp_path)
        first.write_signal(
            SignalEnvelope(
                signal_id="shared", timestamp=BASE, source="a", payload_type="Observation", payload={}
            )
        )
        proc.stdin.write("go\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "RAISED"
        assert proc.wait(30) == 0
    with pytest.raises(DuplicateEventError):
        FileSystemStore(tmp_path).write_signal(
            SignalEnvelope(
                signal_id="shared", timestamp=BASE, source="c", payload_type="Observation", payload={}
            ),
            on_duplicate="raise",
        )
