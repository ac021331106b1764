"""How fast could compaction be on this machine? Times the parts against a no-checks floor.

Usage: ``python benchmarks/compaction_floor.py WORKSPACE [--repeat 3]`` (WORKSPACE: a JSONL-only
workspace such as ``benchmarks/.cache/workspaces/small/pristine``; it is copied, never changed).

Prints records/s for:

* ``floor``: DuckDB alone turning the same JSONL files into zstd Parquet with no validation, no
  dedup and no commit protocol (``COPY (SELECT ... FROM read_json(...)) TO ... (FORMAT parquet)``),
  the fastest this machine turns these bytes into Parquet with the engine the store uses;
* ``parse only``: the store's strict bulk parse of every file (what reads and compaction share);
* ``compact()``: the real thing on a fresh copy (index, strict parse, dedup, Parquet, fsyncs,
  Delta commits, deleting the hot files).

Each also with the CPU seconds of the process (all threads): on a shared, loaded machine the wall
times of one run still compare (they alternate), and CPU shows the work itself.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path

from metaspn_store import FileSystemStore
from metaspn_store._codec import KNOWN_KEYS
from metaspn_store._layout import EMISSIONS, SIGNALS
from metaspn_store._parse import new_connection, parse_chunk


def _cpu() -> float:
    """CPU seconds of this process, every thread (DuckDB's included)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _files(workspace: Path, kind: str) -> list[str]:
    return sorted(str(p) for p in (workspace / "store" / kind).glob("*.jsonl"))


def floor(workspace: Path, out: Path) -> float:
    con = new_connection()
    began = time.perf_counter()
    for kind in ("signals", "emissions"):
        cols = {name: "JSON" for name in sorted(KNOWN_KEYS[kind])}
        select = ", ".join(
            f"{name}::VARCHAR AS {name}" if name in ("payload", "trace", "raw", "entity_refs") else f"{name}->>'$' AS {name}"
            for name in cols
        )
        con.execute(
            f"COPY (SELECT {select} FROM read_json($files, format = 'newline_delimited', records = true, "  # noqa: S608
            f"columns = $columns)) TO '{out / (kind + '.parquet')}' (FORMAT parquet, COMPRESSION zstd)",
            {"files": _files(workspace, kind), "columns": cols},
        )
    return time.perf_counter() - began


def parse_only(workspace: Path) -> float:
    con = new_connection()
    began = time.perf_counter()
    for kind in (SIGNALS, EMISSIONS):
        for name in _files(workspace, kind.name):
            path = Path(name)
            data = path.read_bytes()
            parse_chunk(kind, con, data, 0, name, whole_file=path)
    return time.perf_counter() - began


def compact(workspace: Path, scratch: Path) -> tuple[float, int]:
    copy = scratch / "ws"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(workspace, copy)
    store = FileSystemStore(copy)
    began = time.perf_counter()
    report = store.compact(before=date(9999, 1, 1))
    seconds = time.perf_counter() - began
    return seconds, sum(d.records_in for d in report.days)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workspace", type=Path)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        records = 0
        times: dict[str, list[float]] = {"floor": [], "parse only": [], "compact()": []}
        cpu: dict[str, list[float]] = {name: [] for name in times}
        for _ in range(args.repeat):
            began = _cpu()
            seconds, records = compact(args.workspace, scratch)
            times["compact()"].append(seconds)
            cpu["compact()"].append(_cpu() - began)
            began = _cpu()
            times["floor"].append(floor(args.workspace, scratch))
            cpu["floor"].append(_cpu() - began)
            began = _cpu()
            times["parse only"].append(parse_only(args.workspace))
            cpu["parse only"].append(_cpu() - began)
    size = sum(Path(f).stat().st_size for k in ("signals", "emissions") for f in _files(args.workspace, k))
    print(f"{records:,} records, {size / 1e6:,.0f} MB of JSONL; medians of {args.repeat} (wall; CPU of all threads)")
    for name, values in times.items():
        median = statistics.median(values)
        print(
            f"  {name:<11} {median:7.3f} s  {records / median:>10,.0f} records/s  {size / median / 1e6:6.0f} MB/s"
            f"   cpu {statistics.median(cpu[name]):7.3f} s"
        )
    ratio = statistics.median(times["compact()"]) / statistics.median(times["floor"])
    print(f"  compact() / floor: {ratio:.2f}x (same run)")


if __name__ == "__main__":
    main()
