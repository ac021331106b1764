"""Cost of a single write and of a replay against the number of hot day files (issue 11 case 5).

Runs with either implementation's interpreter (the API is 0.1.8's), so the two are compared on
the same workspaces in the same run::

    .venv/bin/python benchmarks/many_files.py --days 1 30 600
    .ref-venv/bin/python benchmarks/many_files.py --days 1 30 600

Each size: a workspace of DAYS hot day files x 50 signals is generated once (by the running
implementation, in a temporary folder), then a fresh store replays everything twice and writes
200 single signals into the last day. Medians of --repeat runs.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from metaspn_schemas import SignalEnvelope

from metaspn_store import FileSystemStore

UTC = timezone.utc
T0 = datetime(2024, 1, 1, tzinfo=UTC)
PER_DAY = 50


def signal(signal_id: str, when: datetime) -> SignalEnvelope:
    return SignalEnvelope(signal_id=signal_id, timestamp=when, source="w", payload_type="p", payload={"n": 1})


def one_run(days: int, root: Path, run: int) -> tuple[float, float]:
    workspace = root / f"ws-{days}-{run}"
    store = FileSystemStore(workspace)
    store.write_signals(
        signal(f"s{d}-{k}", T0 + timedelta(days=d, seconds=k)) for d in range(days) for k in range(PER_DAY)
    )
    fresh = FileSystemStore(workspace)
    end = T0 + timedelta(days=days + 1)
    began = time.perf_counter()
    count = sum(1 for _ in fresh.iter_signals(T0, end))
    replay = time.perf_counter() - began
    assert count == days * PER_DAY
    fresh.write_signal(signal("warm", T0 + timedelta(days=days - 1)))
    began = time.perf_counter()
    for k in range(200):
        fresh.write_signal(signal(f"w{k}", T0 + timedelta(days=days - 1, seconds=k)))
    write = (time.perf_counter() - began) / 200
    return replay, write


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, nargs="+", default=[1, 30, 600])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    import metaspn_store

    print(f"metaspn-store {getattr(metaspn_store, '__version__', '0.1.8')}")
    with tempfile.TemporaryDirectory() as tmp:
        for days in args.days:
            runs = [one_run(days, Path(tmp), run) for run in range(args.repeat)]
            replay = statistics.median(r for r, _ in runs)
            write = statistics.median(w for _, w in runs)
            print(f"{days:5d} hot day files, {days * PER_DAY:7,d} signals: replay {replay * 1000:8.1f} ms, "
                  f"single write {write * 1e6:7.1f} us")


if __name__ == "__main__":
    main()
