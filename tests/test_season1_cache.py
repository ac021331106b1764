"""The payload fields Season 1 keeps between calls (``_query.PayloadFields``) follow the store:
appends to a hot day, compaction, and a hot file that replaces a compacted day's (same line
numbers, other records) all show in the next call, with and without a filter that makes the
query join the kept fields to the rows (``entity_ref``)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import season1_oracle as ref
from metaspn_schemas import EmissionEnvelope, EntityRef, SignalEnvelope

from metaspn_store import FileSystemStore

UTC = timezone.utc
DAY0 = datetime(2026, 3, 1, tzinfo=UTC)
PLAYER = EntityRef("person", "p1")
WINDOW = {"start": DAY0, "end": DAY0 + timedelta(days=3), "season_id": "S1"}


def strict(value: Any) -> Any:
    if isinstance(value, float):
        return value.hex()
    if isinstance(value, dict):
        return [(k, strict(v)) for k, v in value.items()]
    if isinstance(value, (list, tuple)):
        return [strict(v) for v in value]
    return value


def plays(prefix: str, n: int, day: int, reward: float) -> list[SignalEnvelope]:
    return [
        SignalEnvelope(
            signal_id=f"{prefix}{i}",
            timestamp=DAY0 + timedelta(days=day, seconds=60 * i + 1),
            source="s1.play",
            payload_type="Play",
            payload={"season_id": "S1", "game_id": f"{prefix}g{i % 3}", "player_id": f"{prefix}p{i % 4}",
                     "reward_projection": reward * (i + 1), "points": i, "window_status": "ACTIVE",
                     "founder_id": "f1", "founder_stake_delta": reward},
            entity_refs=(PLAYER,) if i % 2 else (),
        )
        for i in range(n)
    ]


def check(store: FileSystemStore) -> None:
    for extra in ({}, {"entity_ref": PLAYER}):
        w = {**WINDOW, **extra}
        assert strict(store.get_s1_season_summary_metrics(**w)) == strict(ref.season_summary(store, **w))
        assert strict(store.get_s1_per_game_aggregates(**w)) == strict(ref.per_game(store, **w))
        assert strict(store.get_s1_per_player_dashboard_aggregates(**w)) == strict(ref.per_player(store, **w))
        assert strict(store.get_s1_founder_stake_heartbeat(**w)) == strict(ref.heartbeat(store, **w))
        assert strict(store.get_s1_active_reward_projection_totals(**w)) == strict(ref.projection_totals(store, **w))
        got = [s.signal_id for s in store.get_s1_active_reward_projections(**w, limit=5)]
        assert got == [s.signal_id for s in ref.active_projections(store, **w, limit=5)]


def test_kept_fields_follow_appends_compaction_and_a_new_hot_file(tmp_path: Path) -> None:
    store = FileSystemStore(tmp_path)
    store.write_signals(plays("a", 6, 0, 1.0) + plays("b", 4, 1, 2.0))
    store.write_emission(EmissionEnvelope(emission_id="e1", timestamp=DAY0 + timedelta(hours=2), emission_type="R",
                                          payload={"season_id": "S1", "game_id": "ag0", "reward_amount": 4},
                                          caused_by="a1"))
    check(store)
    store.write_signals(plays("c", 5, 0, 0.5))  # appended to day 0's hot file
    check(store)
    store.compact(before=(DAY0 + timedelta(days=1)).date())  # day 0 goes cold
    check(store)
    # Late writes into the compacted day: a new hot file for it, line numbers from 0 again, with
    # more records than the old file had (other ids, other values at the same line numbers).
    store.write_signals(plays("d", 13, 0, 3.0))
    check(store)
    store.write_signals(plays("e", 2, 1, 5.0))  # and day 1 grows
    check(store)
