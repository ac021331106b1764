"""Time the Season 1 read models against a loop like the reference's (upstream 0.1.9).

    python benchmarks/season1.py [--size small|large | --days 7 --signals-per-day 20000] [--repeat 5]
        [--reference-repeat 3] [--first-calls 1] [--workspace DIR] [--only NAME]

The workspace comes from ``metaspn_store.sample.iter_sample_days`` (the seeded generator); every
payload that is a dict gets Season 1 fields derived from the sample's own values (season S1 for
about 90% of records, a game per chain, the first entity ref as the player, the sample's score as
``reward_projection``, numbers, bools and strings mixed as the sample mixes them). The days before
the last are compacted, so reads span both tiers. Each method is timed ``--repeat`` times (median
reported) against the reference's loop: ``iter_signals`` / ``iter_emissions`` of this store plus
the per-envelope Python of the reference, and the two answers are checked equal. Each method's
first call is also timed in a fresh process (``--first-calls``): it extracts the payload fields
the read models use from every partition (later calls reuse them).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from metaspn_schemas import EmissionEnvelope, SignalEnvelope

from metaspn_store import FileSystemStore
from metaspn_store.sample import DEFAULT_START, iter_sample_days

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import season1_oracle as ref  # noqa: E402  (the reference's loops, over any object with iter_*)


def season_payload(payload: Any, n: int, record_id: str, refs: tuple[Any, ...]) -> Any:
    if not isinstance(payload, dict):
        return payload
    out = dict(payload)
    out["season_id"] = "S1" if n % 10 else "S0"
    out["game_id"] = f"g{n % 97}"
    if refs:
        out["player_id"] = refs[0].value
    out["reward_projection"] = payload.get("score", n % 5)
    out["reward_amount"] = [1, 2.5, True, "3", None][n % 5]
    out["points"] = n % 7
    out["window_status"] = "ACTIVE" if n % 3 else "CLOSED"
    out["founder_id"] = f"f{n % 13}"
    out["founder_stake_delta"] = (n % 11) / 4
    if n % 50 == 0:
        out["founder_stake_value"] = n % 1000
    return out


def build(workspace: Path, days: int, per_day: int, *, compact: bool = True) -> None:
    store = FileSystemStore(workspace)
    n = 0
    for _day, signals, emissions in iter_sample_days(days=days, signals_per_day=per_day, seed=13):
        batch_s, batch_e = [], []
        for s in signals:
            n += 1
            batch_s.append(SignalEnvelope(
                signal_id=s.signal_id, timestamp=s.timestamp, source=s.source, payload_type=s.payload_type,
                payload=season_payload(s.payload, n, s.signal_id, s.entity_refs), entity_refs=s.entity_refs,
                trace=s.trace, raw=s.raw,
            ))
        for e in emissions:
            n += 1
            batch_e.append(EmissionEnvelope(
                emission_id=e.emission_id, timestamp=e.timestamp, emission_type=e.emission_type,
                payload=season_payload(e.payload, n, e.emission_id, e.entity_refs), caused_by=e.caused_by,
                entity_refs=e.entity_refs,
            ))
        store.write_signals(batch_s)
        store.write_emissions(batch_e)
    if compact:
        store.compact(before=DEFAULT_START + timedelta(days=days - 1))
    store.close()


class ReferenceLoop:
    """What the reference runs on: this store's replays, then Python per envelope."""

    def __init__(self, store: FileSystemStore) -> None:
        self.iter_signals = store.iter_signals
        self.iter_emissions = store.iter_emissions
        self.iter_signals_from_checkpoint = store.iter_signals_from_checkpoint


def timed(call: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - t)
    return statistics.median(times), result


SIZES = {"small": (7, 20_000), "large": (30, 50_000)}  # as benchmarks/run.py (days, signals a day)


def cases(store: FileSystemStore, days: int, out: Path) -> list[tuple[str, Callable[[], Any], Callable[[], Any]]]:
    """(method, our call, the reference's loop) for every Season 1 method."""
    loop = ReferenceLoop(store)
    start = datetime.combine(DEFAULT_START, datetime.min.time(), tzinfo=timezone.utc)
    window = {"start": start, "end": start + timedelta(days=days) - timedelta(microseconds=1), "season_id": "S1"}
    stage = {"stage": "worker", "start": window["start"], "end": window["end"], "sources": ["score.worker"],
             "season_id": "S1"}
    return [
        ("get_s1_season_summary_metrics", lambda: store.get_s1_season_summary_metrics(**window),
         lambda: ref.season_summary(loop, **window)),
        ("get_s1_per_game_aggregates", lambda: store.get_s1_per_game_aggregates(**window),
         lambda: ref.per_game(loop, **window)),
        ("get_s1_per_player_dashboard_aggregates", lambda: store.get_s1_per_player_dashboard_aggregates(**window),
         lambda: ref.per_player(loop, **window)),
        ("get_s1_founder_stake_heartbeat", lambda: store.get_s1_founder_stake_heartbeat(**window),
         lambda: ref.heartbeat(loop, **window)),
        ("get_s1_active_reward_projections(limit=25)",
         lambda: [s.signal_id for s in store.get_s1_active_reward_projections(**window, limit=25)],
         lambda: [s.signal_id for s in ref.active_projections(loop, **window, limit=25)]),
        ("get_s1_active_reward_projection_totals", lambda: store.get_s1_active_reward_projection_totals(**window),
         lambda: ref.projection_totals(loop, **window)),
        ("iter_s1_stage_window_signals(stage='worker')",
         lambda: sum(1 for _ in store.iter_s1_stage_window_signals(**stage)),
         lambda: len(ref.stage_window(loop, **stage))),
        ("export_s1_postseason_research_dataset",
         lambda: store.export_s1_postseason_research_dataset(**window, destination=out / "a.ndjson").read_bytes(),
         lambda: ref.research_ndjson(loop, **window)),
    ]


def first_call(workspace: Path, days: int, index: int) -> float:
    """Seconds of method ``index``'s first call in a fresh process (nothing cached in memory)."""
    code = (
        "import sys, time, tempfile; from pathlib import Path; sys.path.insert(0, sys.argv[1]); import season1;"
        "from metaspn_store import FileSystemStore; store = FileSystemStore(sys.argv[2]);"
        "tmp = tempfile.mkdtemp(); call = season1.cases(store, int(sys.argv[3]), Path(tmp))[int(sys.argv[4])][1];"
        "t = time.perf_counter(); call(); print(time.perf_counter() - t)"
    )
    done = subprocess.run([sys.executable, "-c", code, str(Path(__file__).parent), str(workspace), str(days), str(index)],
                          check=True, capture_output=True, text=True)
    return float(done.stdout.split()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), help="days and signals a day of benchmarks/run.py's size")
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--signals-per-day", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--reference-repeat", type=int, default=3, help="0: do not run the reference's loop")
    parser.add_argument("--first-calls", type=int, default=1,
                        help="fresh processes timing each method's first call (median); 0: none")
    parser.add_argument("--workspace", help="reuse (or create) this workspace instead of a temporary one")
    parser.add_argument("--only", help="comma-separated: run only the methods whose name contains one of these")
    args = parser.parse_args()
    if args.size:
        args.days, args.signals_per_day = SIZES[args.size]
    with tempfile.TemporaryDirectory() as tmp:
        workspace = Path(args.workspace) if args.workspace else Path(tmp) / "ws"
        if not (workspace / "store").exists():
            t = time.perf_counter()
            build(workspace, args.days, args.signals_per_day)
            print(f"built {workspace} in {time.perf_counter() - t:.1f}s", file=sys.stderr)
        store = FileSystemStore(workspace)
        rows = []
        for index, (name, ours, reference) in enumerate(cases(store, args.days, Path(tmp) / "export")):
            if args.only and not any(part in name for part in args.only.split(",")):
                continue
            firsts = [first_call(workspace, args.days, index) for _ in range(args.first_calls)]
            first_s = statistics.median(firsts) if firsts else None
            ours_s, got = timed(ours, args.repeat)
            ref_s, same = None, None
            if args.reference_repeat:
                ref_s, expected = timed(reference, args.reference_repeat)
                same = json.dumps(got, sort_keys=True, default=str) == json.dumps(expected, sort_keys=True, default=str)
            rows.append((name, first_s, ours_s, ref_s, same))
            print(f"{name}: first {first_s} ours {ours_s} reference {ref_s} equal {same}", file=sys.stderr)
        print(f"| method ({args.days} days x {args.signals_per_day} signals, 2 tiers) | ours, first call "
              "(fresh process) | ours (median) | reference loop (median) | speed-up (median) | equal |")
        print("| --- | ---: | ---: | ---: | ---: | --- |")
        for name, first_s, ours_s, ref_s, same in rows:
            first = f"{first_s * 1000:.1f} ms" if first_s is not None else "-"
            reference = f"{ref_s * 1000:.0f} ms" if ref_s is not None else "-"
            ratio = f"{ref_s / ours_s:.0f}x" if ref_s is not None else "-"
            print(f"| `{name}` | {first} | {ours_s * 1000:.1f} ms | {reference} | {ratio} | {same if same is not None else '-'} |")
        return 0 if all(r[4] is not False for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
