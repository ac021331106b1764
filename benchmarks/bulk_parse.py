"""How fast is the strict parse of hot JSONL files? MB/s of ``_parse.parse_chunk`` over a workspace.

Usage::

    python benchmarks/bulk_parse.py WORKSPACE [--repeat 5] [--against OTHER_PYTHON]

WORKSPACE is a JSONL workspace (e.g. ``benchmarks/.cache/workspaces/small/pristine``; only read).
Every day file of both kinds is parsed as a whole chunk (what the id index build, a first read and
compaction do), in this process, ``--repeat`` times. With ``--against`` (the interpreter of
another checkout's virtualenv, e.g. ``/work/main/.venv/bin/python``) the same measurement runs
in that interpreter too, alternating with this one, so machine load hits both alike; the ratio is
taken within the run. Prints medians of wall and CPU seconds (all threads) and MB/s.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(workspace: Path) -> dict[str, float]:
    """One pass over every day file: wall and CPU seconds, bytes, rows."""
    from metaspn_store._layout import EMISSIONS, SIGNALS
    from metaspn_store._parse import new_connection, parse_chunk

    con = new_connection()
    files = [(kind, path) for kind in (SIGNALS, EMISSIONS)
             for path in sorted((workspace / "store" / kind.name).glob("*.jsonl"))]
    datas = [(kind, path, path.read_bytes()) for kind, path in files]
    rows = 0
    cpu, began = _cpu(), time.perf_counter()
    for kind, path, data in datas:
        table, _bad, _lines = parse_chunk(kind, con, data, 0, str(path), whole_file=path)
        rows += table.num_rows
    return {"wall": time.perf_counter() - began, "cpu": _cpu() - cpu,
            "bytes": sum(len(d) for _, _, d in datas), "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workspace", type=Path)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--against", help="python of another checkout, measured alternately")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # worker mode
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.workspace)))
        return
    sides = {"this": [sys.executable]}
    if args.against:
        sides["against"] = [args.against]
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in sides}
    for _ in range(args.repeat):
        for name, python in sides.items():
            done = subprocess.run([*python, __file__, str(args.workspace), "--one"],
                                  capture_output=True, text=True, check=True)
            runs[name].append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(f"strict parse of {args.workspace}: medians of {args.repeat} fresh processes (wall; CPU of all threads)")
    medians = {}
    for name, values in runs.items():
        wall = statistics.median(v["wall"] for v in values)
        cpu = statistics.median(v["cpu"] for v in values)
        size, rows = values[0]["bytes"], values[0]["rows"]
        medians[name] = wall
        print(f"  {name:<8} {sides[name][0]}: {size / 1e6:.0f} MB, {rows:,.0f} rows: wall {wall:6.3f} s "
              f"{size / wall / 1e6:6.0f} MB/s   cpu {cpu:6.3f} s {size / cpu / 1e6:6.0f} MB/cpu-s")
    if "against" in medians:
        print(f"  against / this (wall): {medians['against'] / medians['this']:.2f}x")


if __name__ == "__main__":
    main()
