"""Reads over a cold tier on S3 (a local moto server) against the same on local disk.

Usage: ``python benchmarks/cold_s3.py WORKSPACE [--repeat 5]`` (WORKSPACE: a JSONL-only workspace
such as ``benchmarks/.cache/workspaces/small/pristine``; it is copied twice, never changed).

Compacts every day of one copy into ``store/cold`` and of the other into ``s3://bench/cold`` on a
``moto_server`` started on a free loopback port, then prints, for each: the compaction time, the
median time of top candidates and outcome buckets over the whole window, and of a one-day
read; and the S3 requests (from the server's request log) that the one-day read made, to show that
only that day's files are read. Needs ``moto[server]`` (a dev dependency).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

UTC = timezone.utc


def _moto(log: Path) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = Path(sys.executable).with_name("moto_server")
    proc = subprocess.Popen([str(server), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                            stderr=open(log, "wb"))  # noqa: SIM115 - the server owns it until it exits
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/data.json", timeout=1).close()
            return proc, endpoint
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("moto_server did not start")


def _median(fn: Any, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def _requests(log: Path, since: int) -> tuple[Counter[str], int]:
    lines = log.read_text(errors="replace").splitlines()[since:]
    kinds: Counter[str] = Counter()
    for line in lines:
        if '"' in line:
            request = line.split('"')[1]
            method, _, rest = request.partition(" ")
            path = rest.split(" ")[0]
            where = "log" if "_delta_log" in path else ("data" if ".parquet" in path else "other")
            kinds[f"{method} {where}"] += 1
    return kinds, len(log.read_text(errors="replace").splitlines())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workspace", type=Path)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_REGION="us-east-1")
    from metaspn_store import FileSystemStore

    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        log = scratch / "moto.log"
        server, endpoint = _moto(log)
        try:
            import boto3

            boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket="bench")
            options = {"AWS_ENDPOINT_URL": endpoint, "AWS_REGION": "us-east-1", "AWS_ALLOW_HTTP": "true"}
            stores = {}
            for name, cold in (("local", None), ("s3", "s3://bench/cold")):
                copy = scratch / name
                shutil.copytree(args.workspace, copy)
                (copy / "store" / "cold.json").unlink(missing_ok=True)
                store = FileSystemStore(copy, cold=cold, storage_options=options if cold else None)
                began = time.perf_counter()
                report = store.compact(before=date(9999, 1, 1))
                seconds = time.perf_counter() - began
                records = sum(d.records_in for d in report.days)
                print(f"{name:5} compaction: {records:,} records in {seconds:.2f} s = {records / seconds:,.0f} records/s")
                stores[name] = FileSystemStore(copy)
            days = sorted(stores["local"]._cold["signals"].files(date.min, date.max))
            start = datetime.combine(days[0], datetime.min.time(), UTC)
            end = datetime.combine(days[-1], datetime.min.time(), UTC) + timedelta(days=1) - timedelta(microseconds=1)
            one = datetime.combine(days[len(days) // 2], datetime.min.time(), UTC)
            results: dict[str, dict[str, float]] = {}
            for name, store in stores.items():
                ops = {
                    "top candidates": lambda s=store: s.get_top_recommendation_candidates(start=start, end=end, limit=25),
                    "outcome buckets": lambda s=store: s.get_outcome_window_buckets(now=end, start=start, end=end),
                    "one-day read": lambda s=store: s.read_signals(one, one + timedelta(days=1) - timedelta(microseconds=1)),
                }
                answers = {op: repr(fn()) for op, fn in ops.items()}
                results[name] = {op: _median(fn, args.repeat) for op, fn in ops.items()}
                results[name]["answers"] = hash(tuple(answers.values()))
            assert results["local"]["answers"] == results["s3"]["answers"], "S3 and local answers differ"
            print(f"\nmedians of {args.repeat} (same answers on both):")
            for op in ("top candidates", "outcome buckets", "one-day read"):
                local, s3 = results["local"][op], results["s3"][op]
                print(f"  {op:16} local {local * 1000:8.1f} ms   s3 {s3 * 1000:8.1f} ms   s3/local {s3 / local:5.2f}x")
            _, mark = _requests(log, 0)
            fresh = FileSystemStore(scratch / "s3")
            fresh.read_signals(one, one + timedelta(days=1) - timedelta(microseconds=1))
            kinds, _ = _requests(log, mark)
            print(f"\nS3 requests of a one-day read in a fresh store ({len(days)} days in the table): "
                  + ", ".join(f"{k}: {v}" for k, v in sorted(kinds.items())))
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
