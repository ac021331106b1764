"""``metaspn-store`` command: a thin shell over public methods.

Every command prints a human summary by default and one JSON document with ``--json``;
errors become one line on stderr and exit code 1 (2 for usage errors, from argparse).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from metaspn_store.errors import StoreError


def _emit(args: argparse.Namespace, document: dict[str, Any], human: list[str]) -> None:
    if getattr(args, "json", False):
        print(json.dumps(document, sort_keys=True, default=str))
    else:
        print("\n".join(human))


def cmd_demo(args: argparse.Namespace) -> int:
    """Write a few days of sample data, compact the closed days, run the main read models."""
    from metaspn_store import FileSystemStore
    from metaspn_store.sample import generate_workspace, hot_entities

    workspace = Path(args.workspace)
    start = date(2026, 2, 1)
    store = FileSystemStore(workspace)
    t0 = time.perf_counter()
    counts = generate_workspace(store, days=args.days, signals_per_day=args.signals_per_day, start=start, seed=args.seed)
    write_s = time.perf_counter() - t0
    report = None
    if hasattr(store, "compact"):
        report = store.compact(before=start + timedelta(days=args.days - 1))
    window_start = datetime(start.year, start.month, start.day, tzinfo=timezone.utc)
    window_end = window_start + timedelta(days=args.days) - timedelta(microseconds=1)
    t1 = time.perf_counter()
    top = store.get_top_recommendation_candidates(
        start=window_start,
        end=window_end,
        limit=5,
        sources=["score.worker"],
        payload_types=["RecommendationCandidate"],
    )
    buckets = store.get_outcome_window_buckets(now=window_end, start=window_start, end=window_end)
    hot = hot_entities(signals_per_day=args.signals_per_day, seed=args.seed, top=1)
    recent = store.get_recent_signals_by_entity(entity_ref=hot[0], limit=3, end=window_end) if hot else []
    read_s = time.perf_counter() - t1
    document = {
        "workspace": str(workspace),
        "written": counts,
        "write_seconds": round(write_s, 3),
        "compaction": None if report is None else report.to_dict(),
        "top_candidates": [
            {"signal_id": s.signal_id, "score": s.payload.get("score"), "entity": _entity(s)} for s in top
        ],
        "outcome_buckets": {name: len(items) for name, items in buckets.items()},
        "recent_for_hottest_entity": [s.signal_id for s in recent],
        "read_seconds": round(read_s, 3),
    }
    human = [
        f"workspace {workspace}: wrote {counts['signals']} signals and {counts['emissions']} emissions "
        f"over {counts['days']} days in {write_s:.2f}s",
    ]
    if report is not None:
        human.append(report.summary())
    human.append("top recommendation candidates (score.worker / RecommendationCandidate):")
    human += [f"  {s.signal_id}  score={s.payload.get('score'):.4f}  {_entity(s)}" for s in top]
    human.append(
        "outcome buckets: " + ", ".join(f"{name}={len(items)}" for name, items in buckets.items())
    )
    human.append(f"reads answered in {read_s:.3f}s")
    _emit(args, document, human)
    return 0


def cmd_compact(args: argparse.Namespace) -> int:
    """Compact closed days into Parquet; safe to run from cron."""
    from metaspn_store import FileSystemStore

    workspace = Path(args.workspace)
    if not (workspace / "store").is_dir():
        raise ValueError(f"{workspace} is not a metaspn-store workspace (no store/ folder)")
    before = date.fromisoformat(args.before) if args.before else None
    store = FileSystemStore(workspace)
    report = store.compact(before=before, dry_run=args.dry_run, wait=not args.no_wait)
    _emit(args, report.to_dict(), [report.summary()])
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """List unreadable lines per hot file; exit 1 when there are any."""
    from metaspn_store import FileSystemStore

    workspace = Path(args.workspace)
    if not (workspace / "store").is_dir():
        raise ValueError(f"{workspace} is not a metaspn-store workspace (no store/ folder)")
    problems = FileSystemStore(workspace).verify()
    document = {"problems": [p.__dict__ for p in problems], "count": len(problems)}
    human = [f"{p.path}:{p.line}: {p.reason}" for p in problems] or ["no problems found"]
    _emit(args, document, human)
    return 1 if problems else 0


def _entity(signal: Any) -> str | None:
    if not signal.entity_refs:
        return None
    ref = signal.entity_refs[0]
    return f"{ref.ref_type}:{ref.platform}:{ref.value}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="metaspn-store",
        description="Columnar event store for MetaSPN signals and emissions.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo",
        help="write sample data into a workspace, compact closed days, query it",
        description="Example: metaspn-store demo ./demo-workspace --days 3 --signals-per-day 2000",
    )
    demo.add_argument("workspace", nargs="?", default="demo-workspace", help="folder to create (default: %(default)s)")
    demo.add_argument("--days", type=int, default=3, help="UTC days to generate (default: %(default)s)")
    demo.add_argument("--signals-per-day", type=int, default=2000, help="signals per day (default: %(default)s)")
    demo.add_argument("--seed", type=int, default=0, help="sample generator seed (default: %(default)s)")
    demo.add_argument("--json", action="store_true", help="print one JSON document")
    demo.set_defaults(func=cmd_demo)
    compact = sub.add_parser(
        "compact",
        help="turn closed days into Parquet (cron-safe, idempotent)",
        description="Example: metaspn-store compact /srv/workspace --json",
    )
    compact.add_argument("workspace", help="workspace folder (the one holding store/)")
    compact.add_argument("--before", help="compact days strictly before YYYY-MM-DD (default: yesterday, UTC)")
    compact.add_argument("--dry-run", action="store_true", help="report what would be compacted, change nothing")
    compact.add_argument("--no-wait", action="store_true", help="exit at once if another compaction is running")
    compact.add_argument("--json", action="store_true", help="print one JSON report (for cron logs)")
    compact.set_defaults(func=cmd_compact)
    verify = sub.add_parser(
        "verify",
        help="list lines of the hot tier that are not readable records",
        description="Example: metaspn-store verify /srv/workspace",
    )
    verify.add_argument("workspace", help="workspace folder (the one holding store/)")
    verify.add_argument("--json", action="store_true", help="print one JSON document")
    verify.set_defaults(func=cmd_verify)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except (StoreError, ValueError, OSError) as exc:
        print(f"metaspn-store {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
