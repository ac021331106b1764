"""How fast could a batch write be on this machine? ``write_signals`` against two floors.

Usage: ``python benchmarks/write_floor.py [--records 20000] [--repeat 7]``

The batch is the one ``benchmarks/run.py`` writes (``metaspn_store.sample``, one day, seed 1001).
Each figure is per record, the median of ``--repeat`` runs, each on a fresh folder:

* ``write_signals``: this package, fresh workspace (validation, encoding, the id index, the
  lock, the append);
* ``floor: encode + write``: the same envelopes rendered with ``to_dict()`` and ``orjson.dumps``
  (no validation, no id check, no lock), joined, and appended with one ``os.write``: the least
  any writer of these lines does;
* ``this package's encoder alone`` (and ``... and the id hashes``): the part of
  ``write_signals`` that renders (and hashes) each record, to split its time;
* ``floor: dumps + write``: the same, with the dicts made before the timer: JSON encoding and
  the append alone;
* ``floor: write only``: the bytes ``write_signals`` produced, appended to a new file with one
  ``os.write`` (the kernel's share: on this VM, copying fresh pages into the page cache).

Every row runs with the cyclic collector paused (``write_signals`` pauses it for a batch).
Also prints CPU seconds of this process for each, less disturbed by other load than wall time.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import orjson

from metaspn_store import FileSystemStore

ROOT = Path(__file__).resolve().parents[1]


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _batch(n: int) -> list[Any]:
    spec = importlib.util.spec_from_file_location("metaspn_bench_sample", ROOT / "metaspn_store" / "sample.py")
    assert spec is not None and spec.loader is not None
    sample = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = sample
    spec.loader.exec_module(sample)
    out: list[Any] = []
    for _, signals, _ in sample.iter_sample_days(days=1, signals_per_day=n, start=date(2026, 3, 1), seed=1001):
        out.extend(signals)
    return out[:n]


def _timed(make: Callable[[Path], Callable[[], Any]], repeat: int) -> tuple[float, float]:
    """Median wall and CPU seconds of the call ``make(folder)`` returns, on a fresh folder each run."""
    walls, cpus = [], []
    for _ in range(repeat):
        folder = Path(tempfile.mkdtemp(prefix="write-floor-"))
        try:
            call = make(folder)
            gc.collect()
            gc.disable()  # as write_signals does for a batch, so every row runs without it
            try:
                cpu, wall = _cpu(), time.perf_counter()
                call()
                walls.append(time.perf_counter() - wall)
                cpus.append(_cpu() - cpu)
            finally:
                gc.enable()
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    return statistics.median(walls), statistics.median(cpus)


def _append(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    batch = _batch(args.records)
    n = len(batch)

    probe = Path(tempfile.mkdtemp(prefix="write-floor-"))
    FileSystemStore(probe).write_signals(batch)
    written = b"".join(p.read_bytes() for p in sorted((probe / "store" / "signals").glob("*.jsonl")))
    shutil.rmtree(probe)

    def store(folder: Path) -> Callable[[], Any]:
        target = FileSystemStore(folder)
        return lambda: target.write_signals(batch)

    def encode_and_write(folder: Path) -> Callable[[], Any]:
        dumps, sort = orjson.dumps, orjson.OPT_SORT_KEYS
        return lambda: _append(folder / "day.jsonl", b"".join([dumps(e.to_dict(), option=sort) + b"\n" for e in batch]))

    dicts = [e.to_dict() for e in batch]

    def dumps_and_write(folder: Path) -> Callable[[], Any]:
        dumps, sort = orjson.dumps, orjson.OPT_SORT_KEYS
        return lambda: _append(folder / "day.jsonl", b"".join([dumps(d, option=sort) + b"\n" for d in dicts]))

    def own_encoder(folder: Path) -> Callable[[], Any]:
        from metaspn_store._codec import fast_encoder
        from metaspn_store._layout import SIGNALS

        encode = fast_encoder(SIGNALS)
        return lambda: _append(folder / "day.jsonl", b"".join([encode(e)[2] for e in batch]))

    def own_encoder_and_ids(folder: Path) -> Callable[[], Any]:
        from metaspn_store._codec import fast_encoder
        from metaspn_store._index import digest_many
        from metaspn_store._layout import SIGNALS

        encode = fast_encoder(SIGNALS)

        def run() -> None:
            rendered = [encode(e) for e in batch]
            digest_many([r[0] for r in rendered])
            _append(folder / "day.jsonl", b"".join([r[2] for r in rendered]))

        return run

    def write_only(folder: Path) -> Callable[[], Any]:
        return lambda: _append(folder / "day.jsonl", written)

    rows = {
        "write_signals (this package)": _timed(store, args.repeat),
        "floor: encode + write (orjson of to_dict, one os.write)": _timed(encode_and_write, args.repeat),
        "this package's encoder alone (checks + line per record, one os.write)": _timed(own_encoder, args.repeat),
        "... and the id hashes": _timed(own_encoder_and_ids, args.repeat),
        "floor: dumps + write (orjson of dicts built before the timer, one os.write)": _timed(dumps_and_write, args.repeat),
        "floor: write only (the same bytes, one os.write)": _timed(write_only, args.repeat),
    }
    mine = rows["write_signals (this package)"][0]
    print(f"{n:,} signals, {len(written) / 1e6:.1f} MB of JSONL; medians of {args.repeat}; load {os.getloadavg()[0]:.1f}")
    print("| | µs per record (wall) | µs per record (CPU) | write_signals / this |")
    print("| --- | ---: | ---: | ---: |")
    for name, (wall, cpu) in rows.items():
        print(f"| {name} | {wall / n * 1e6:.2f} | {cpu / n * 1e6:.2f} | {mine / wall:.2f}x |")


if __name__ == "__main__":
    main()
