"""Replay against the envelope-construction floor, and a full replay's peak memory.

    python benchmarks/replay.py WORKSPACE [--repeat 3] [--floor-records 200000] [--kind signals]
    python benchmarks/replay.py WORKSPACE --rss [--repeat 3]

**Replay vs floor.** ``iter_signals(start, end)`` (or ``iter_emissions``) over the workspace's
whole range, every envelope consumed, against the *floor*: the same envelopes built from
in-memory Python values, a list of dicts already parsed (ids, UTC datetimes, payload/raw dicts,
tuples of shared ``EntityRef``, ``TraceContext``), so the floor is the envelope construction alone
(no storage, no SQL, no JSON). Two floors: the dataclass constructor ``cls(**fields)`` (what any
caller would write) and filling ``__dict__`` directly (what the store's builder does; the cheapest
way to make the same object). The floor is timed on the first ``--floor-records`` envelopes of
the replay (a list of parsed dicts for 1.5M records would not fit the memory being measured);
both sides are reported per record, medians of ``--repeat`` runs in this process, and the replay's
envelopes are checked equal to the floor's.

**Peak memory** (``--rss``): each run is a fresh process that opens the store and consumes a full
replay; its ``ru_maxrss`` is printed (medians over ``--repeat`` processes, and the first process
on its own: on a workspace never opened by this package it parses the JSONL first). With a local
cold table, a floor follows: the table read day by day with ``pyarrow.dataset`` and built into
envelopes by the same builder, with no SQL and no deduplication.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from metaspn_store import FileSystemStore

RSS_CODE = """
import json, resource, sys, time
from datetime import datetime, timezone
from metaspn_store import FileSystemStore
store = FileSystemStore(sys.argv[1])
start, end = datetime.fromisoformat(sys.argv[2]), datetime.fromisoformat(sys.argv[3])
t = time.perf_counter()
n = sum(1 for _ in getattr(store, sys.argv[4])(start, end))
seconds = time.perf_counter() - t
print(json.dumps({"records": n, "seconds": seconds,
                  "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def window(store: FileSystemStore) -> tuple[datetime, datetime]:
    """The whole workspace: the first to the last day file of either tier, inclusive."""
    days = sorted(set(store._hot["signals"].days()) | set(store._cold["signals"].files(datetime.min.date(),
                                                                                          datetime.max.date())))
    start = datetime.combine(days[0], datetime.min.time(), tzinfo=timezone.utc)
    end = datetime.combine(days[-1], datetime.max.time(), tzinfo=timezone.utc)
    return start, end


def parsed_values(envelopes: list[Any]) -> list[dict[str, Any]]:
    """Each envelope's fields as Python values (shared objects kept shared, copies of dicts)."""
    out = []
    for envelope in envelopes:
        fields = {f.name: getattr(envelope, f.name) for f in dataclasses.fields(envelope)}
        fields["payload"] = json.loads(json.dumps(fields["payload"]))  # a fresh parse, not the same object
        if fields.get("raw") is not None:
            fields["raw"] = json.loads(json.dumps(fields["raw"]))
        out.append(fields)
    return out


def build_constructor(cls: type, values: list[dict[str, Any]]) -> list[Any]:
    return [cls(**fields) for fields in values]


def build_dict(cls: type, values: list[dict[str, Any]]) -> list[Any]:
    new = object.__new__
    set_attr = object.__setattr__
    out = []
    for fields in values:
        obj = new(cls)
        set_attr(obj, "__dict__", dict(fields))
        out.append(obj)
    return out


def timed(call: Any, repeat: int, *, collector: bool = False) -> tuple[float, Any]:
    """Median seconds of ``call``; the cyclic garbage collector is off while timing (as
    ``timeit`` does), so neither side pays for collections caused by the other's live objects.
    ``collector=True`` leaves it on, as a caller runs."""
    times, result = [], None
    for _ in range(repeat):
        result = None
        gc.collect()
        if not collector:
            gc.disable()
        try:
            t = time.perf_counter()
            result = call()
            times.append(time.perf_counter() - t)
        finally:
            gc.enable()
    return statistics.median(times), result


def floor_main(args: argparse.Namespace) -> int:
    store = FileSystemStore(args.workspace)
    start, end = window(store)
    replay = getattr(store, f"iter_{args.kind}")
    seconds, count = timed(lambda: sum(1 for _ in replay(start, end)), args.repeat)
    # As callers run it: the collector on, envelopes streamed or all kept in a list.
    on_seconds, _ = timed(lambda: sum(1 for _ in replay(start, end)), args.repeat, collector=True)
    kept_seconds, _ = timed(lambda: len(list(replay(start, end))), args.repeat, collector=True)
    head = []
    for envelope in replay(start, end):
        head.append(envelope)
        if len(head) >= args.floor_records:
            break
    head_seconds, _ = timed(lambda: [e for _, e in zip(range(len(head)), replay(start, end), strict=False)], args.repeat)
    cls = type(head[0])
    values = parsed_values(head)
    ctor_seconds, built = timed(lambda: build_constructor(cls, values), args.repeat)
    dict_seconds, built_dict = timed(lambda: build_dict(cls, values), args.repeat)
    assert built == head and built_dict == head, "floor envelopes differ from the replay's"
    n = len(head)
    per = {
        "replay (whole workspace)": seconds / count,
        "replay, collector on (as callers run it)": on_seconds / count,
        "replay into a list, collector on": kept_seconds / count,
        f"replay (first {n:,})": head_seconds / n,
        "floor: cls(**fields)": ctor_seconds / n,
        "floor: __dict__ fill": dict_seconds / n,
    }
    print(f"| {args.kind}, {Path(args.workspace).name} ({count:,} records) | µs per record | replay / this |")
    print("| --- | ---: | ---: |")
    for name, value in per.items():
        print(f"| {name} | {value * 1e6:.2f} | {per['replay (whole workspace)'] / value:.2f}x |")
    print(f"\nreplay of {count:,} records: {seconds:.2f} s (median of {args.repeat})")
    return 0


# The memory floor of a replay from the cold tier: the same table read day by day with
# pyarrow.dataset (each day sorted, as a replay orders it) and built into envelopes with the
# store's own builder, in batches; no SQL, no deduplication.
RSS_FLOOR_CODE = """
import datetime, json, resource, sys
import deltalake, pyarrow as pa, pyarrow.dataset as ds
from metaspn_store._codec import EnvelopeBuilder, schema_for
from metaspn_store._layout import EMISSIONS, SIGNALS
kind = SIGNALS if sys.argv[2] == "signals" else EMISSIONS
table = deltalake.DeltaTable(sys.argv[1])
dataset, builder, names = table.to_pyarrow_dataset(), EnvelopeBuilder(kind), schema_for(kind).names
days = sorted({uri.split("day=")[1].split("/")[0] for uri in table.file_uris()})
n = 0
for day in days:
    rows = dataset.to_table(columns=names, filter=ds.field("day") == pa.scalar(datetime.date.fromisoformat(day)))
    for batch in rows.sort_by([("timestamp", "ascending"), ("seq", "ascending")]).to_batches(max_chunksize=10_000):
        n += len(builder.build(batch))
print(json.dumps({"records": n, "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def rss_main(args: argparse.Namespace) -> int:
    store = FileSystemStore(args.workspace)
    start, end = window(store)
    store.close()
    runs = []
    for _ in range(args.repeat + 1):
        done = subprocess.run([sys.executable, "-c", RSS_CODE, args.workspace, start.isoformat(), end.isoformat(),
                               f"iter_{args.kind}"], check=True, capture_output=True, text=True)
        runs.append(json.loads(done.stdout.splitlines()[-1]))
        print(runs[-1], file=sys.stderr)
    later = runs[1:]
    print(f"| {args.kind}, {Path(args.workspace).name} | records | replay s | peak RSS (ru_maxrss) |")
    print("| --- | ---: | ---: | ---: |")
    print(f"| first process | {runs[0]['records']:,} | {runs[0]['seconds']:.2f} | {runs[0]['maxrss_mb']:.0f} MB |")
    print(f"| later processes (median of {len(later)}) | {later[0]['records']:,} | "
          f"{statistics.median(r['seconds'] for r in later):.2f} | "
          f"{statistics.median(r['maxrss_mb'] for r in later):.0f} MB (max {max(r['maxrss_mb'] for r in later):.0f}) |")
    table = store._cold[args.kind].uri  # the floor is measured on a local table
    if "://" not in table and (Path(table) / "_delta_log").is_dir():
        done = subprocess.run([sys.executable, "-c", RSS_FLOOR_CODE, table, args.kind], check=True,
                              capture_output=True, text=True)
        floor = json.loads(done.stdout.splitlines()[-1])
        print(f"| floor: the cold table day by day with pyarrow.dataset, same envelope builder | {floor['records']:,} "
              f"| | {floor['maxrss_mb']:.0f} MB |")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workspace")
    parser.add_argument("--kind", choices=["signals", "emissions"], default="signals")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--floor-records", type=int, default=200_000)
    parser.add_argument("--rss", action="store_true", help="peak memory of a full replay in fresh processes")
    args = parser.parse_args()
    return rss_main(args) if args.rss else floor_main(args)


if __name__ == "__main__":
    raise SystemExit(main())
