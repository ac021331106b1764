"""The Season 1 read models against upstream's own code running on metaspn-store 0.1.8.

    python benchmarks/season1_upstream.py [--days 7] [--signals-per-day 20000] [--repeat 3]

``benchmarks/season1.py`` compares with the reference's loops over *this* store's replay (about
30x faster than 0.1.8's). This script measures the baseline a user switching from upstream has:
upstream's unreleased 0.1.9 methods (``../shared/reference/metaspn-store-0.1.9-season1.py``, run
as they are, attached to 0.1.8's ``FileSystemStore`` in the 0.1.8 virtualenv, never imported into
this package) over 0.1.8's storage, on the same generated Season 1 workspace (all hot: 0.1.8
cannot read the cold tier). The answers of both are compared (JSON, keys sorted). This package is
then timed on the same workspace all hot, and again after compacting every day but the last.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
EXCERPT = ROOT.parent / "shared" / "reference" / "metaspn-store-0.1.9-season1.py"
sys.path.insert(0, str(Path(__file__).parent))

METHODS = [
    "get_s1_season_summary_metrics",
    "get_s1_per_game_aggregates",
    "get_s1_per_player_dashboard_aggregates",
    "get_s1_founder_stake_heartbeat",
    "get_s1_active_reward_projections",
    "get_s1_active_reward_projections:25",  # with limit=25, as a dashboard asks
    "get_s1_active_reward_projection_totals",
]

# Runs in the 0.1.8 virtualenv: upstream's methods on 0.1.8's store; prints seconds and answers.
UPSTREAM = r"""
import json, sys, time, typing
from datetime import datetime, timedelta, timezone
from pathlib import Path
import metaspn_store.store as old
from metaspn_schemas import EntityRef, SignalEnvelope, EmissionEnvelope
excerpt, ws, start, days, methods = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5].split(",")
namespace = dict(vars(old))
namespace.update(Any=typing.Any, EntityRef=EntityRef, Path=Path, json=json)
exec(compile(open(excerpt).read(), excerpt, "exec"), namespace)
for name in {m.split(":")[0] for m in methods}:
    setattr(old.FileSystemStore, name, namespace["FileSystemStore"].__dict__[name])
store = old.FileSystemStore(ws)
t0 = datetime.fromisoformat(start)
window = dict(start=t0, end=t0 + timedelta(days=days) - timedelta(microseconds=1), season_id="S1")
out = {}
for name in methods:
    method, _, limit = name.partition(":")
    t = time.perf_counter()
    result = getattr(store, method)(**window, **({"limit": int(limit)} if limit else {}))
    seconds = time.perf_counter() - t
    if method == "get_s1_active_reward_projections":
        result = [s.signal_id for s in result]
    out[name] = {"seconds": seconds, "answer": json.dumps(result, sort_keys=True, default=str)}
print(json.dumps(out))
"""

OURS = r"""
import json, statistics, sys, time
from datetime import datetime, timedelta
from metaspn_store import FileSystemStore
ws, start, days, methods, repeat = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4].split(","), int(sys.argv[5])
store = FileSystemStore(ws)
t0 = datetime.fromisoformat(start)
window = dict(start=t0, end=t0 + timedelta(days=days) - timedelta(microseconds=1), season_id="S1")
out = {}
for name in methods:
    method, _, limit = name.partition(":")
    times = []
    for _ in range(repeat + 1):
        t = time.perf_counter()
        result = getattr(store, method)(**window, **({"limit": int(limit)} if limit else {}))
        times.append(time.perf_counter() - t)
    if method == "get_s1_active_reward_projections":
        result = [s.signal_id for s in result]
    out[name] = {"first": times[0], "seconds": statistics.median(times[1:]), "answer": json.dumps(result, sort_keys=True, default=str)}
print(json.dumps(out))
"""


def _run(python: str, code: str, *args: str) -> dict[str, Any]:
    # From a neutral folder: ``python -c`` puts the working directory first on sys.path, and in the
    # repository that would make 0.1.8's interpreter import this package instead of its own.
    done = subprocess.run([python, "-c", code, *args], cwd=tempfile.gettempdir(), capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--signals-per-day", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3, help="warm calls of ours (median; the first call is shown apart)")
    parser.add_argument("--reference-python", default=os.environ.get("METASPN_REFERENCE_PYTHON", str(ROOT / ".ref-venv/bin/python")))
    parser.add_argument("--only", help="comma-separated: only the methods whose name contains one of these")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    import season1  # the generator of the Season 1 workspace (benchmarks/season1.py)

    from metaspn_store.sample import DEFAULT_START

    start = f"{DEFAULT_START.isoformat()}T00:00:00+00:00"
    chosen = [m for m in METHODS if not args.only or any(part in m for part in args.only.split(","))]
    methods = ",".join(chosen)
    with tempfile.TemporaryDirectory() as tmp:
        ws = Path(tmp) / "ws"
        t = time.perf_counter()
        season1.build(ws, args.days, args.signals_per_day, compact=False)
        print(f"built {args.days} x {args.signals_per_day} in {time.perf_counter() - t:.0f}s", file=sys.stderr)
        upstream = _run(args.reference_python, UPSTREAM, str(EXCERPT), str(ws), start, str(args.days), methods)
        print("upstream done", file=sys.stderr)
        hot = _run(sys.executable, OURS, str(ws), start, str(args.days), methods, str(args.repeat))
        from metaspn_store import FileSystemStore

        FileSystemStore(ws).compact(before=DEFAULT_START + timedelta(days=args.days - 1))
        cold = _run(sys.executable, OURS, str(ws), start, str(args.days), methods, str(args.repeat))
    rows = []
    for name in chosen:
        ref_s = upstream[name]["seconds"]
        same = upstream[name]["answer"] == hot[name]["answer"] == cold[name]["answer"]
        rows.append({"method": name, "upstream_on_0_1_8_s": ref_s, "hot_first_s": hot[name]["first"],
                     "hot_s": hot[name]["seconds"], "compacted_first_s": cold[name]["first"],
                     "compacted_s": cold[name]["seconds"], "ratio_hot": ref_s / hot[name]["seconds"],
                     "ratio_compacted": ref_s / cold[name]["seconds"],
                     "ratio_first_call_compacted": ref_s / cold[name]["first"], "same_answer": same})
    print("| method | upstream 0.1.9 on 0.1.8 | ours hot (first call) | ours compacted (first call) | ratio hot / compacted / compacted first call | same answer |")
    print("|---|---:|---:|---:|---:|---|")
    for r in rows:
        print(f"| `{r['method']}` | {r['upstream_on_0_1_8_s']:.2f} s | {r['hot_s'] * 1000:.0f} ms ({r['hot_first_s']:.2f} s) | "
              f"{r['compacted_s'] * 1000:.0f} ms ({r['compacted_first_s']:.2f} s) | "
              f"{r['ratio_hot']:.0f}x / {r['ratio_compacted']:.0f}x / {r['ratio_first_call_compacted']:.0f}x | {r['same_answer']} |")
    if args.out:
        args.out.write_text(json.dumps({"rows": rows, "load": os.getloadavg()}, indent=1) + "\n")
    return 0 if all(r["same_answer"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
