"""Time the Season 1 read models against a loop like the reference's (upstream 0.1.9).

    python benchmarks/season1.py [--days 3] [--signals-per-day 20000] [--repeat 5] [--workspace DIR]

The workspace comes from ``metaspn_store.sample.iter_sample_days`` (the seeded generator); every
payload that is a dict gets Season 1 fields derived from the sample's own values (season S1 for
about 90% of records, a game per chain, the first entity ref as the player, the sample's score as
``reward_projection``, numbers, bools and strings mixed as the sample mixes them). The days before
the last are compacted, so reads span both tiers. Each method is timed ``--repeat`` times (median
reported) against the reference's loop: ``iter_signals`` / ``iter_emissions`` of this store plus
the per-envelope Python of the reference, and the two answers are checked equal.
"""

from __future__ import annotations

import argparse
import json
import statistics
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


def build(workspace: Path, days: int, per_day: int) -> None:
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--signals-per-day", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--workspace", help="reuse (or create) this workspace instead of a temporary one")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workspace = Path(args.workspace) if args.workspace else Path(tmp) / "ws"
        if not (workspace / "store").exists():
            t = time.perf_counter()
            build(workspace, args.days, args.signals_per_day)
            print(f"built {workspace} in {time.perf_counter() - t:.1f}s", file=sys.stderr)
        store = FileSystemStore(workspace)
        loop = ReferenceLoop(store)
        start = datetime.combine(DEFAULT_START, datetime.min.time(), tzinfo=timezone.utc)
        window = {"start": start, "end": start + timedelta(days=args.days) - timedelta(microseconds=1), "season_id": "S1"}
        out = Path(tmp) / "export"
        cases: list[tuple[str, Callable[[], Any], Callable[[], Any]]] = [
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
             lambda: sum(1 for _ in store.iter_s1_stage_window_signals(stage="worker", start=window["start"],
                                                                       end=window["end"], sources=["score.worker"],
                                                                       season_id="S1")),
             lambda: len(ref.stage_window(loop, stage="worker", start=window["start"], end=window["end"],
                                          sources=["score.worker"], season_id="S1"))),
            ("export_s1_postseason_research_dataset",
             lambda: store.export_s1_postseason_research_dataset(**window, destination=out / "a.ndjson").read_bytes(),
             lambda: ref.research_ndjson(loop, **window)),
        ]
        rows = []
        for name, ours, reference in cases:
            ours_s, got = timed(ours, args.repeat)
            ref_s, expected = timed(reference, max(1, min(args.repeat, 3)))
            same = json.dumps(got, sort_keys=True, default=str) == json.dumps(expected, sort_keys=True, default=str)
            rows.append((name, ours_s, ref_s, same))
        print(f"| method ({args.days} days x {args.signals_per_day} signals, 2 tiers) | ours (median) | "
              "reference loop (median) | speed-up | equal |")
        print("| --- | ---: | ---: | ---: | --- |")
        for name, ours_s, ref_s, same in rows:
            print(f"| `{name}` | {ours_s * 1000:.1f} ms | {ref_s * 1000:.0f} ms | {ref_s / ours_s:.0f}x | {same} |")
        return 0 if all(r[3] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
