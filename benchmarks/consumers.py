"""What a named consumer's poll costs, and what late records cost a 0.1.8 checkpoint worker.

    python benchmarks/consumers.py [--days 30] [--signals-per-day 50000] [--workspace DIR] [--repeat 200]
    python benchmarks/consumers.py --late-only --late-records 20000

The workspace comes from ``metaspn_store.sample`` (seed 0); it is reused when ``--workspace``
already holds one. It is measured all-hot, then again after compacting every day but the last.
For each state, in fresh processes (``python -c``):

* **start "now"**: creating a consumer at the end of the store (every day's sequence is counted);
* **empty poll**: a caught-up consumer polling with nothing new: the median of ``--repeat`` polls
  in one process, and the first poll of a new process (open + consumer + poll, each timed);
* **poll of N**: N new records written (half to the last day, half late to the first day), then
  one poll returning them, for N = 1 ... 10,000 (median of 5): the cost should follow N, not the
  1.5M records of history.

Then the late-arrival scenario (``tests/late_arrivals.py``): what a worker resuming from 0.1.8
checkpoints never sees, next to a consumer.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

BUILD = r"""
import sys
from metaspn_store import FileSystemStore
from metaspn_store.sample import iter_sample_days
store = FileSystemStore(sys.argv[1])
for _day, signals, emissions in iter_sample_days(days=int(sys.argv[2]), signals_per_day=int(sys.argv[3]), seed=0):
    store.write_signals(signals)
    store.write_emissions(emissions)
store.close()
"""

MEASURE = r"""
import json, statistics, sys, time
from datetime import timedelta
t0 = time.perf_counter()
from metaspn_store import FileSystemStore
from metaspn_schemas import SignalEnvelope
ws, name, repeat = sys.argv[1], sys.argv[2], int(sys.argv[3])
out = {}
store = FileSystemStore(ws)
out["open_s"] = time.perf_counter() - t0
t = time.perf_counter()
consumer = store.consumer(name, start="now")
out["consumer_s"] = time.perf_counter() - t
t = time.perf_counter()
first = consumer.poll(1000)
out["first_poll_s"] = time.perf_counter() - t
out["first_poll_records"] = len(first)
times = []
for _ in range(repeat):
    t = time.perf_counter()
    got = consumer.poll(1000)
    times.append(time.perf_counter() - t)
    assert not got
out["empty_poll_ms"] = statistics.median(times) * 1000
consumer.commit()
if len(sys.argv) > 4:
    from datetime import datetime, timezone
    first_day = datetime.fromisoformat(sys.argv[5]).replace(tzinfo=timezone.utc)
    last_day = datetime.fromisoformat(sys.argv[6]).replace(tzinfo=timezone.utc)
    n_serial = 0
    polls = {}
    for n in [int(x) for x in sys.argv[4].split(",")]:
        samples = []
        for _ in range(5):
            batch = []
            for i in range(n):
                n_serial += 1
                day = last_day if i % 2 == 0 else first_day
                batch.append(SignalEnvelope(signal_id=f"bench-{name}-{n_serial}", timestamp=day + timedelta(seconds=n_serial % 80000),
                                            source="bench", payload_type="Observation", payload={"i": n_serial}))
            store.write_signals(batch)
            t = time.perf_counter()
            got = []
            while len(got) < n:
                more = consumer.poll(n)
                if not more:
                    break
                got.extend(more)
            samples.append(time.perf_counter() - t)
            assert len(got) == n, (len(got), n)
            consumer.commit()
        polls[n] = statistics.median(samples) * 1000
    out["poll_ms_by_n"] = polls
consumer.close()
print(json.dumps(out))
"""


def _python(code: str, *args: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(done.stderr)
    lines = done.stdout.strip().splitlines()
    return json.loads(lines[-1]) if lines else {}


def measure_state(ws: Path, label: str, repeat: int, sizes: str, days: list[str]) -> dict[str, Any]:
    # 1st process: creates the consumer at "now" (counts every day), measures empty polls and
    # polls of N; 2nd process: the same consumer reopened, a caught-up first poll.
    created = _python(MEASURE, str(ws), f"bench-{label}", str(repeat), sizes, days[0], days[-1])
    reopened = _python(MEASURE, str(ws), f"bench-{label}", str(repeat))
    return {"created": created, "reopened": reopened}


def late(records: int) -> dict[str, int]:
    sys.path.insert(0, str(ROOT / "tests"))
    from late_arrivals import late_arrival_scenario

    with tempfile.TemporaryDirectory() as tmp:
        return late_arrival_scenario(Path(tmp), records=records, seed=1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--signals-per-day", type=int, default=50_000)
    parser.add_argument("--workspace", type=Path)
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--sizes", default="1,10,100,1000,10000")
    parser.add_argument("--late-records", type=int, default=20_000)
    parser.add_argument("--late-only", action="store_true")
    parser.add_argument("--out", type=Path, help="write the JSON results here too")
    args = parser.parse_args()
    results: dict[str, Any] = {}
    if not args.late_only:
        tmp = None
        ws = args.workspace
        if ws is None:
            tmp = tempfile.TemporaryDirectory()
            ws = Path(tmp.name) / "ws"
        if not (ws / "store" / "signals").is_dir() or not any((ws / "store" / "signals").iterdir()):
            t = time.perf_counter()
            subprocess.run([sys.executable, "-c", BUILD, str(ws), str(args.days), str(args.signals_per_day)], cwd=ROOT,
                           check=True)
            print(f"built {args.days} x {args.signals_per_day} signals in {time.perf_counter() - t:.0f}s", file=sys.stderr)
        days = sorted(p.name[:10] for p in (ws / "store" / "signals").glob("*.jsonl"))
        results["hot"] = measure_state(ws, "hot", args.repeat, args.sizes, days)
        print(json.dumps({"hot": results["hot"]}, indent=1), file=sys.stderr)
        subprocess.run([sys.executable, "-m", "metaspn_store", "compact", str(ws), "--before", days[-1]], cwd=ROOT,
                       check=True, capture_output=True)
        results["compacted"] = measure_state(ws, "compacted", args.repeat, args.sizes, days)
    results["late_arrivals"] = late(args.late_records)
    text = json.dumps(results, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    summary = results["late_arrivals"]
    print(f"late arrivals: {summary['records']} records, {summary['late']} late; 0.1.8 checkpoints never saw "
          f"{summary['missed_checkpoint']} ({100 * summary['missed_checkpoint'] / summary['records']:.1f}%; "
          f"{100 * summary['missed_checkpoint_late'] / max(summary['late'], 1):.0f}% of the late ones); "
          f"the consumer missed {summary['missed_consumer']}, re-delivered {summary['redelivered_consumer']} after a commit "
          f"({summary['consumer_crashes']} crashes, hourly compactions)",
          file=sys.stderr)
    for state in ("hot", "compacted"):
        if state in results:
            r = results[state]
            print(f"{state}: start-now {r['created']['consumer_s']:.2f}s; empty poll {r['created']['empty_poll_ms']:.2f} ms "
                  f"(reopened: open {r['reopened']['open_s']:.2f}s, consumer {r['reopened']['consumer_s'] * 1000:.1f} ms, "
                  f"first poll {r['reopened']['first_poll_s'] * 1000:.1f} ms, then {r['reopened']['empty_poll_ms']:.2f} ms); "
                  f"poll of N ms: {r['created'].get('poll_ms_by_n')}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
