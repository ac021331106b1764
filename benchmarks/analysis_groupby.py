"""Time the analyst's first query: a GROUP BY over the ``signals`` view of a workspace.

    python benchmarks/analysis_groupby.py WORKSPACE [--repeat 3]

Each run is a fresh process (the first query pays for reading the files); the same query is then
repeated in that process ("warm"). Also checks the answer against counting a full replay when
``--check`` is given (slow on large workspaces). Uses only the public API.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

QUERY = "SELECT source, count(*) AS n FROM signals GROUP BY ALL ORDER BY source"

WORKER = """
import json, resource, sys, time
from metaspn_store import FileSystemStore
store = FileSystemStore(sys.argv[1])
t = time.perf_counter(); rows = store.sql(sys.argv[2]).fetchall(); first = time.perf_counter() - t
t = time.perf_counter(); store.sql(sys.argv[2]).fetchall(); warm = time.perf_counter() - t
print(json.dumps({"first": first, "warm": warm, "rows": sum(n for _, n in rows),
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workspace")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    runs = []
    for _ in range(args.repeat):
        out = subprocess.run(
            [sys.executable, "-c", WORKER, args.workspace, QUERY], capture_output=True, text=True, check=True
        )
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    first = statistics.median(r["first"] for r in runs)
    warm = statistics.median(r["warm"] for r in runs)
    print(
        f"{runs[0]['rows']:,} signals: GROUP BY source over the signals view: first query {first:.3f} s, "
        f"warm {warm:.3f} s (medians of {len(runs)} fresh processes), peak RSS {max(r['rss_mb'] for r in runs):.0f} MB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
