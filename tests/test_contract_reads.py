"""Contract: windows, filters, replay order, checkpoints and the signal/emission read models."""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone

import pytest
from metaspn_schemas import EntityRef
from states import (
    BULK_THRESHOLD,
    COMPACTED,
    COMPACTED_LARGE,
    HOT_LARGE,
    HOT_SMALL,
    MIXED,
    REOPENED_SAVED,
    STATES,
    StateStore,
)

from metaspn_store import ReplayCheckpoint

pytestmark = pytest.mark.store_states(*STATES)

UTC = timezone.utc
T0 = datetime(2026, 2, 5, 12, 0, 0, tzinfo=UTC)
US = timedelta(microseconds=1)
WIDE = {"start": datetime(2020, 1, 1, tzinfo=UTC), "end": datetime(2030, 1, 1, tzinfo=UTC)}

ALICE = EntityRef("person", "alice", platform="twitter")
ALICE_OTHER_PLATFORM = EntityRef("person", "alice", platform="github")
ALICE_OTHER_LABEL = EntityRef("person", "alice", platform="twitter", label="Alice")
ALICE_OTHER_VERSION = EntityRef("person", "alice", platform="twitter", schema_version="0.1")
ALICE_NO_PLATFORM = EntityRef("person", "alice")
BOB = EntityRef("person", "bob", platform="twitter")


def ids(rows) -> list[str]:
    out = []
    for row in rows:
        out.append(row.signal_id if hasattr(row, "signal_id") else row.emission_id)
    return out


def at(seconds: float = 0, *, days: int = 0, micros: int = 0) -> datetime:
    return T0 + timedelta(days=days, seconds=seconds, microseconds=micros)


# --------------------------------------------------------------------------- windows


def test_window_is_inclusive_at_microsecond_precision(store, make_signal, make_emission):
    start, end = at(0), at(60)
    for name, ts in [
        ("before", start - US),
        ("start", start),
        ("mid", at(30)),
        ("end", end),
        ("after", end + US),
    ]:
        store.write_signal(make_signal(name, timestamp=ts))
        store.write_emission(make_emission(name, timestamp=ts))
    assert ids(store.iter_signals(start, end)) == ["start", "mid", "end"]
    assert ids(store.iter_emissions(start, end)) == ["start", "mid", "end"]
    assert ids(store.iter_signals(start, start)) == ["start"]
    assert ids(store.iter_signals(start + US, end - US)) == ["mid"]


def test_window_at_day_boundaries(store, make_signal):
    midnight = datetime(2026, 2, 6, tzinfo=UTC)
    for name, ts in [
        ("last_us_of_5th", midnight - US),
        ("midnight", midnight),
        ("first_us_of_6th", midnight + US),
    ]:
        store.write_signal(make_signal(name, timestamp=ts))
    assert ids(store.iter_signals(midnight - US, midnight - US)) == ["last_us_of_5th"]
    assert ids(store.iter_signals(midnight, midnight + US)) == ["midnight", "first_us_of_6th"]
    assert ids(store.iter_signals(midnight - US, midnight + US)) == [
        "last_us_of_5th",
        "midnight",
        "first_us_of_6th",
    ]


def test_naive_window_bounds_are_utc(store, make_signal):
    store.write_signal(make_signal("x", timestamp=at(0)))
    naive = at(0).replace(tzinfo=None)
    assert ids(store.iter_signals(naive, naive)) == ["x"]
    assert ids(store.iter_signals(naive + US, naive + timedelta(hours=1))) == []
    assert ids(store.get_ready_candidates(start=naive, end=naive, ready_value=None)) == [
        "x"
    ]  # payload {} lacks status
    assert ids(store.get_latest_draft_signals(limit=5, start=naive, end=naive)) == ["x"]


def test_aware_non_utc_window_bounds_are_converted(store, make_signal):
    store.write_signal(make_signal("x", timestamp=datetime(2026, 2, 6, 1, 0, tzinfo=UTC)))
    minus5 = timezone(timedelta(hours=-5))
    # 2026-02-05 20:00-05:00 == 2026-02-06 01:00Z, the window is a single instant on the UTC day after.
    local = datetime(2026, 2, 5, 20, 0, tzinfo=minus5)
    assert ids(store.iter_signals(local, local)) == ["x"]
    assert ids(store.iter_signals(local - timedelta(hours=2), local - US)) == []


def test_multi_day_window(store, make_signal, make_emission):
    for day in range(0, 6):
        ts = datetime(2026, 2, 1 + day, 6, tzinfo=UTC)
        store.write_signal(make_signal(f"d{day}", timestamp=ts))
        store.write_emission(make_emission(f"d{day}", timestamp=ts))
    start, end = datetime(2026, 2, 2, 6, tzinfo=UTC), datetime(2026, 2, 5, 5, 59, tzinfo=UTC)
    assert ids(store.iter_signals(start, end)) == ["d1", "d2", "d3"]
    assert ids(store.iter_emissions(start, end)) == ["d1", "d2", "d3"]


def _call_all_windowed(store, start, end):
    """Every read method that takes a window, with the given bounds (drained)."""
    calls = {
        "iter_signals": lambda: store.iter_signals(start, end),
        "iter_emissions": lambda: store.iter_emissions(start, end),
        "iter_signals_from_checkpoint": lambda: store.iter_signals_from_checkpoint(start=start, end=end),
        "get_recent_signals_by_entity": lambda: store.get_recent_signals_by_entity(
            entity_ref=ALICE, limit=3, start=start, end=end
        ),
        "get_last_posts_by_entity": lambda: store.get_last_posts_by_entity(
            entity_ref=ALICE, limit=3, start=start, end=end
        ),
        "get_recent_signals_by_source": lambda: store.get_recent_signals_by_source(
            source="s", limit=3, start=start, end=end
        ),
        "iter_entity_candidate_signals": lambda: store.iter_entity_candidate_signals(start=start, end=end),
        "iter_stage_window_signals": lambda: store.iter_stage_window_signals(stage="s", start=start, end=end),
        "iter_recommendation_signals": lambda: store.iter_recommendation_signals(start=start, end=end),
        "iter_learning_signals": lambda: store.iter_learning_signals(start=start, end=end),
        "iter_learning_emissions": lambda: store.iter_learning_emissions(start=start, end=end),
        "get_top_recommendation_candidates": lambda: store.get_top_recommendation_candidates(
            start=start, end=end, limit=3
        ),
        "get_ready_candidates": lambda: store.get_ready_candidates(start=start, end=end),
        "get_outcomes_for_window": lambda: store.get_outcomes_for_window(start=start, end=end),
        "get_token_signals": lambda: store.get_token_signals(start=start, end=end),
        "get_promise_signals": lambda: store.get_promise_signals(start=start, end=end),
        "get_promise_outcomes_for_window": lambda: store.get_promise_outcomes_for_window(
            start=start, end=end
        ),
        "get_latest_draft_signals": lambda: store.get_latest_draft_signals(limit=3, start=start, end=end),
        "get_latest_approval_outcomes": lambda: store.get_latest_approval_outcomes(
            limit=3, start=start, end=end
        ),
        "get_unresolved_outcome_signals": lambda: store.get_unresolved_outcome_signals(start=start, end=end),
        "get_expired_outcome_signals": lambda: store.get_expired_outcome_signals(
            now=end, start=start, end=end
        ),
        "get_outcome_window_buckets": lambda: store.get_outcome_window_buckets(now=end, start=start, end=end),
    }
    return calls


WINDOWED = sorted(_call_all_windowed(None, T0, T0))


@pytest.mark.parametrize("method", WINDOWED)
def test_end_before_start_raises_value_error(store, make_signal, make_emission, method):
    store.write_signal(make_signal("x", timestamp=at(0), entity_refs=[ALICE]))
    store.write_emission(make_emission("y", timestamp=at(0)))
    call = _call_all_windowed(store, at(0), at(0) - US)[method]
    with pytest.raises(ValueError):
        result = call()
        if not isinstance(result, dict):
            list(result)


@pytest.mark.parametrize("method", WINDOWED)
def test_empty_store_reads_are_empty(store, method):
    result = _call_all_windowed(store, WIDE["start"], WIDE["end"])[method]()
    if isinstance(result, dict):
        assert result == {"pending": [], "expired": [], "success": [], "failure": []}
    else:
        assert list(result) == []


# --------------------------------------------------------------------------- replay order


def test_replay_order_is_timestamp_then_append_order(store, make_signal, make_emission):
    """Appended in time order (as 0.1.8 expects): ties keep append order, not id order."""
    rows = [
        ("m", at(0)),
        ("b", at(10)),
        ("a", at(10)),
        ("z", at(10)),
        ("c", at(20)),
        ("next_day", at(0, days=1)),
    ]
    for name, ts in rows:
        store.write_signal(make_signal(name, timestamp=ts))
        store.write_emission(make_emission(name, timestamp=ts))
    expected = ["m", "b", "a", "z", "c", "next_day"]
    assert ids(store.iter_signals(**WIDE)) == expected
    assert ids(store.iter_emissions(**WIDE)) == expected
    assert ids(store.iter_signals_from_checkpoint(end=WIDE["end"])) == expected
    assert ids(store.iter_learning_emissions(**WIDE)) == expected


def test_replay_order_with_out_of_order_appends(store, make_signal, make_emission):
    """Replay order is (timestamp, append order) even when a day's records arrived late.

    Fails against 0.1.8 by design: it replays in (day, line) order.
    """
    rows = [("t30", at(30)), ("t10_first", at(10)), ("t20", at(20)), ("t10_second", at(10)), ("t0", at(0))]
    for name, ts in rows:
        store.write_signal(make_signal(name, timestamp=ts))
        store.write_emission(make_emission(name, timestamp=ts))
    expected = ["t0", "t10_first", "t10_second", "t20", "t30"]
    assert ids(store.iter_signals(**WIDE)) == expected
    assert ids(store.iter_emissions(**WIDE)) == expected
    replay = list(store.iter_signals(**WIDE))
    checkpoint = store.build_signal_checkpoint(replay[:2])
    assert ids(store.iter_signals_from_checkpoint(end=WIDE["end"], checkpoint=checkpoint)) == expected[2:]


def test_reads_a_workspace_written_in_0_1_8_format(tmp_path, store_state, make_signal, make_emission):
    """Hand-written 0.1.8 partitions (json.dumps sort_keys, compact) open unchanged; blank lines are
    skipped; a record repeated on disk is yielded once (first occurrence)."""
    ws = tmp_path / "legacy"
    signals_dir = ws / "store" / "signals"
    emissions_dir = ws / "store" / "emissions"
    signals_dir.mkdir(parents=True)
    emissions_dir.mkdir(parents=True)
    a = make_signal("a", timestamp=at(0), payload={"n": 1}, entity_refs=[ALICE])
    b = make_signal("b", timestamp=at(5), payload=["x"])
    a_later = make_signal("a", timestamp=at(0, days=1), payload={"n": 2})
    e = make_emission("e", timestamp=at(1), caused_by="a")

    def line(envelope) -> str:
        return json.dumps(envelope.to_dict(), sort_keys=True, separators=(",", ":")) + "\n"

    (signals_dir / "2026-02-05.jsonl").write_text(line(a) + "\n" + line(b) + line(a), encoding="utf-8")
    (signals_dir / "2026-02-06.jsonl").write_text(line(a_later), encoding="utf-8")
    (emissions_dir / "2026-02-05.jsonl").write_text(line(e) + line(e), encoding="utf-8")

    store = StateStore(ws, store_state)
    assert list(store.iter_signals(**WIDE)) == [a, b]
    assert list(store.iter_emissions(**WIDE)) == [e]
    # A duplicate's location: the first record's hot day file, or its Parquet day folder once compacted.
    cold = ws / "store" / "cold"
    assert store.write_signal(make_signal("a", timestamp=at(0, days=3))) == (
        cold / "signals" / "day=2026-02-05"
        if ("signals", "2026-02-05") in store.compacted
        else signals_dir / "2026-02-05.jsonl"
    )
    assert store.write_emission(make_emission("e", timestamp=at(0, days=3))) == (
        cold / "emissions" / "day=2026-02-05"
        if ("emissions", "2026-02-05") in store.compacted
        else emissions_dir / "2026-02-05.jsonl"
    )
    store.write_signal(make_signal("c", timestamp=at(6)))
    assert ids(store.iter_signals(**WIDE)) == ["a", "b", "c"]


# --------------------------------------------------------------------------- filters


def test_source_filter_and_empty_list_means_no_filter(store, make_signal):
    for name, source in [("1", "ingest"), ("2", "ingest.x"), ("3", "other"), ("4", "o'ther; DROP")]:
        store.write_signal(make_signal(name, source=source, seconds=int(name)))
    assert ids(store.iter_signals(**WIDE, sources=None)) == ["1", "2", "3", "4"]
    assert ids(store.iter_signals(**WIDE, sources=[])) == ["1", "2", "3", "4"]
    assert ids(store.iter_signals(**WIDE, sources=["ingest"])) == ["1"]
    assert ids(store.iter_signals(**WIDE, sources=["o'ther; DROP", "ingest.x"])) == ["2", "4"]
    assert ids(store.iter_signals(**WIDE, sources=["nope"])) == []
    assert ids(store.iter_signals(**WIDE, sources=["ingest%"])) == []


def test_emission_type_filter_and_empty_list(store, make_emission):
    for name, kind in [("1", "OutcomeSuccess"), ("2", "DraftRejected"), ("3", "Other")]:
        store.write_emission(make_emission(name, emission_type=kind, seconds=int(name)))
    assert ids(store.iter_emissions(**WIDE, emission_types=[])) == ["1", "2", "3"]
    assert ids(store.iter_emissions(**WIDE, emission_types=["Other", "OutcomeSuccess"])) == ["1", "3"]
    assert ids(store.get_outcomes_for_window(**WIDE, emission_types=[])) == ["1", "2", "3"]


def test_entity_ref_filter_is_full_equality(store, make_signal, make_emission):
    variants = {
        "exact": (ALICE,),
        "platform": (ALICE_OTHER_PLATFORM,),
        "label": (ALICE_OTHER_LABEL,),
        "version": (ALICE_OTHER_VERSION,),
        "no_platform": (ALICE_NO_PLATFORM,),
        "second_position": (BOB, ALICE),
        "none": (),
    }
    for i, (name, refs) in enumerate(variants.items()):
        store.write_signal(make_signal(name, seconds=i, entity_refs=refs))
        store.write_emission(make_emission(name, seconds=i, entity_refs=refs))
    assert ids(store.iter_signals(**WIDE, entity_ref=ALICE)) == ["exact", "second_position"]
    assert ids(store.iter_emissions(**WIDE, entity_ref=ALICE)) == ["exact", "second_position"]
    assert ids(store.iter_signals(**WIDE, entity_ref=ALICE_OTHER_LABEL)) == ["label"]
    assert ids(store.iter_signals(**WIDE, entity_ref=ALICE_OTHER_VERSION)) == ["version"]
    assert ids(store.iter_signals(**WIDE, entity_ref=ALICE_NO_PLATFORM)) == ["no_platform"]
    assert ids(store.get_recent_signals_by_entity(entity_ref=ALICE, limit=10, **WIDE)) == [
        "second_position",
        "exact",
    ]
    assert ids(store.get_outcomes_for_window(**WIDE, entity_ref=ALICE_OTHER_PLATFORM)) == ["platform"]
    assert ids(store.iter_signals(**WIDE, entity_ref=EntityRef("person", "carol"))) == []


def test_entity_ref_and_source_filters_combine(store, make_signal):
    store.write_signal(make_signal("a", source="x", entity_refs=[ALICE], seconds=1))
    store.write_signal(make_signal("b", source="y", entity_refs=[ALICE], seconds=2))
    store.write_signal(make_signal("c", source="x", entity_refs=[BOB], seconds=3))
    assert ids(store.iter_signals(WIDE["start"], WIDE["end"], ALICE, ["x"])) == ["a"]


# --------------------------------------------------------------------------- recent / last posts


def test_recent_signals_by_entity(store, make_signal):
    store.write_signal(make_signal("old", timestamp=at(0), entity_refs=[ALICE]))
    store.write_signal(make_signal("tie_b", timestamp=at(10), entity_refs=[ALICE]))
    store.write_signal(make_signal("tie_a", timestamp=at(10), entity_refs=[ALICE], source="other"))
    store.write_signal(make_signal("new", timestamp=at(20), entity_refs=[ALICE]))
    store.write_signal(make_signal("bob", timestamp=at(30), entity_refs=[BOB]))
    assert ids(store.get_recent_signals_by_entity(entity_ref=ALICE, limit=10)) == [
        "new",
        "tie_b",
        "tie_a",
        "old",
    ]
    assert ids(store.get_recent_signals_by_entity(entity_ref=ALICE, limit=2)) == ["new", "tie_b"]
    assert store.get_recent_signals_by_entity(entity_ref=ALICE, limit=0) == []
    assert store.get_recent_signals_by_entity(entity_ref=ALICE, limit=-3) == []
    assert ids(store.get_recent_signals_by_entity(entity_ref=ALICE, limit=9, sources=["other"])) == ["tie_a"]
    assert ids(store.get_recent_signals_by_entity(entity_ref=ALICE, limit=9, sources=[])) == [
        "new",
        "tie_b",
        "tie_a",
        "old",
    ]
    assert ids(store.get_recent_signals_by_entity(entity_ref=ALICE, limit=9, start=at(10), end=at(10))) == [
        "tie_b",
        "tie_a",
    ]
    assert isinstance(store.get_recent_signals_by_entity(entity_ref=ALICE, limit=1), list)


def test_recent_defaults_are_epoch_to_now(store, make_signal):
    store.write_signal(
        make_signal("ancient", timestamp=datetime(1971, 1, 1, tzinfo=UTC), entity_refs=[ALICE])
    )
    store.write_signal(make_signal("future", timestamp=datetime(2100, 1, 1, tzinfo=UTC), entity_refs=[ALICE]))
    store.write_signal(make_signal("recent", timestamp=at(0), entity_refs=[ALICE]))
    assert ids(store.get_recent_signals_by_entity(entity_ref=ALICE, limit=5)) == ["recent", "ancient"]
    assert ids(store.get_recent_signals_by_source(source="ingest.worker", limit=5)) == ["recent", "ancient"]
    assert ids(store.get_last_posts_by_entity(entity_ref=ALICE, limit=5, payload_types=["Observation"])) == [
        "recent",
        "ancient",
    ]
    far = datetime(2200, 1, 1, tzinfo=UTC)
    assert ids(store.get_recent_signals_by_entity(entity_ref=ALICE, limit=5, end=far)) == [
        "future",
        "recent",
        "ancient",
    ]
    assert ids(store.get_recent_signals_by_source(source="ingest.worker", limit=1, start=at(0), end=far)) == [
        "future"
    ]


def test_recent_signals_by_source(store, make_signal):
    store.write_signal(make_signal("a", source="route.worker", seconds=1, entity_refs=[ALICE]))
    store.write_signal(make_signal("b", source="route.worker", seconds=2))
    store.write_signal(make_signal("c", source="route.worker.sub", seconds=3))
    store.write_signal(make_signal("d", source="route.worker", seconds=2))
    assert ids(store.get_recent_signals_by_source(source="route.worker", limit=10)) == ["d", "b", "a"]
    assert ids(store.get_recent_signals_by_source(source="route.worker", limit=10, entity_ref=ALICE)) == ["a"]
    assert ids(store.get_recent_signals_by_source(source="route.worker", limit=1, **WIDE)) == ["d"]
    assert store.get_recent_signals_by_source(source="route.worker", limit=0) == []
    assert store.get_recent_signals_by_source(source="", limit=5) == []


def test_last_posts_by_entity_basics(store, make_signal):
    store.write_signal(make_signal("p1", seconds=1, payload_type="SocialPostSeen", entity_refs=[ALICE]))
    store.write_signal(make_signal("x", seconds=2, payload_type="ProfileSnapshotSeen", entity_refs=[ALICE]))
    store.write_signal(
        make_signal("p2", seconds=3, payload_type="SocialPostSeen", entity_refs=[ALICE], source="s2")
    )
    store.write_signal(make_signal("pb", seconds=4, payload_type="SocialPostSeen", entity_refs=[BOB]))
    assert ids(store.get_last_posts_by_entity(entity_ref=ALICE, limit=5)) == ["p2", "p1"]
    assert ids(store.get_last_posts_by_entity(entity_ref=ALICE, limit=5, payload_types=[])) == ["p2", "p1"]
    assert ids(store.get_last_posts_by_entity(entity_ref=ALICE, limit=1)) == ["p2"]
    assert ids(
        store.get_last_posts_by_entity(entity_ref=ALICE, limit=5, payload_types=["ProfileSnapshotSeen"])
    ) == ["x"]
    assert ids(store.get_last_posts_by_entity(entity_ref=ALICE, limit=5, sources=["s2"])) == ["p2"]
    assert ids(store.get_last_posts_by_entity(entity_ref=ALICE, limit=5, start=at(2), end=at(2))) == []
    assert store.get_last_posts_by_entity(entity_ref=ALICE, limit=0) == []


def test_last_posts_by_entity_returns_limit_posts_despite_interleaved_signals(store, make_signal):
    """The contract (DESIGN.md): the last ``limit`` posts. 0.1.8 only looks at the newest
    ``4 * limit`` signals and returns fewer (here none): that is its bug."""
    for i in range(5):
        store.write_signal(
            make_signal(f"post{i}", seconds=i, payload_type="SocialPostSeen", entity_refs=[ALICE])
        )
    for i in range(40):
        store.write_signal(
            make_signal(f"noise{i:02d}", seconds=100 + i, payload_type="Other", entity_refs=[ALICE])
        )
    assert ids(store.get_last_posts_by_entity(entity_ref=ALICE, limit=3)) == ["post4", "post3", "post2"]
    assert ids(store.get_last_posts_by_entity(entity_ref=ALICE, limit=10)) == [
        f"post{i}" for i in range(4, -1, -1)
    ]


# --------------------------------------------------------------------------- candidate / stage views


def test_entity_candidate_signals(store, make_signal):
    store.write_signal(make_signal("refs", seconds=1, entity_refs=[ALICE]))
    store.write_signal(make_signal("resolver", seconds=2, payload_type="EntityMerged"))
    store.write_signal(make_signal("alias", seconds=3, payload_type="EntityAliasAdded", source="other"))
    store.write_signal(make_signal("plain", seconds=4))
    store.write_signal(make_signal("resolved_t", seconds=5, payload_type="EntityResolved"))
    store.write_signal(make_signal("lookalike", seconds=6, payload_type="entityresolved"))
    assert ids(store.iter_entity_candidate_signals(**WIDE)) == [
        "refs",
        "resolver",
        "alias",
        "plain",
        "resolved_t",
        "lookalike",
    ]
    assert ids(store.iter_entity_candidate_signals(**WIDE, resolved=True)) == [
        "refs",
        "resolver",
        "alias",
        "resolved_t",
    ]
    assert ids(store.iter_entity_candidate_signals(**WIDE, resolved=False)) == ["plain", "lookalike"]
    assert ids(store.iter_entity_candidate_signals(**WIDE, resolved=True, sources=["other"])) == ["alias"]
    assert ids(store.iter_entity_candidate_signals(**WIDE, resolved=None, sources=[])) == [
        "refs",
        "resolver",
        "alias",
        "plain",
        "resolved_t",
        "lookalike",
    ]


def test_stage_window_signals_prefix_and_explicit_sources(store, make_signal):
    names = ["route", "route.a", "route.b.c", "router", "x.route", "Route.a", "route."]
    for i, source in enumerate(names):
        store.write_signal(make_signal(f"s{i}", source=source, seconds=i, payload_type="A" if i % 2 else "B"))
    assert ids(store.iter_stage_window_signals(stage="route", **WIDE)) == ["s0", "s1", "s2", "s6"]
    assert ids(store.iter_stage_window_signals(stage="route", **WIDE, sources=[])) == ["s0", "s1", "s2", "s6"]
    # Explicit sources replace the stage prefix rule.
    assert ids(store.iter_stage_window_signals(stage="route", **WIDE, sources=["router", "x.route"])) == [
        "s3",
        "s4",
    ]
    assert ids(store.iter_stage_window_signals(stage="route", **WIDE, payload_types=["A"])) == ["s1"]
    assert ids(store.iter_stage_window_signals(stage="route", **WIDE, payload_types=[])) == [
        "s0",
        "s1",
        "s2",
        "s6",
    ]
    assert ids(store.iter_stage_window_signals(stage="rout", **WIDE)) == []


def test_stage_window_signals_with_checkpoint_and_entity(store, make_signal):
    store.write_signal(make_signal("a", source="route.x", timestamp=at(0), entity_refs=[ALICE]))
    store.write_signal(make_signal("b", source="route.x", timestamp=at(0), entity_refs=[ALICE]))
    store.write_signal(make_signal("c", source="route.x", timestamp=at(1)))
    store.write_signal(make_signal("d", source="route.x", timestamp=at(1), entity_refs=[ALICE]))
    cp = ReplayCheckpoint(last_timestamp=at(0), seen_ids_at_timestamp=("a",))
    assert ids(store.iter_stage_window_signals(stage="route", **WIDE, checkpoint=cp)) == ["b", "c", "d"]
    assert ids(store.iter_stage_window_signals(stage="route", **WIDE, checkpoint=cp, entity_ref=ALICE)) == [
        "b",
        "d",
    ]


@pytest.mark.parametrize("method", ["iter_recommendation_signals", "iter_learning_signals"])
def test_recommendation_and_learning_signals(store, make_signal, method):
    store.write_signal(make_signal("a", timestamp=at(0), payload_type="Rec", source="x", entity_refs=[ALICE]))
    store.write_signal(make_signal("b", timestamp=at(0), payload_type="Other", source="x"))
    store.write_signal(make_signal("c", timestamp=at(0), payload_type="Rec", source="y"))
    store.write_signal(make_signal("d", timestamp=at(9), payload_type="Rec", source="x", entity_refs=[ALICE]))
    fn = getattr(store, method)
    assert ids(fn(**WIDE)) == ["a", "b", "c", "d"]
    assert ids(fn(**WIDE, payload_types=["Rec"])) == ["a", "c", "d"]
    assert ids(fn(**WIDE, payload_types=[], sources=[])) == ["a", "b", "c", "d"]
    assert ids(fn(**WIDE, sources=["x"], payload_types=["Rec"])) == ["a", "d"]
    assert ids(fn(**WIDE, entity_ref=ALICE)) == ["a", "d"]
    cp = ReplayCheckpoint(last_timestamp=at(0), seen_ids_at_timestamp=("a", "b"))
    assert ids(fn(**WIDE, checkpoint=cp)) == ["c", "d"]
    assert ids(fn(**WIDE, checkpoint=cp, payload_types=["Rec"])) == ["c", "d"]
    assert ids(fn(start=at(1), end=at(9))) == ["d"]


def test_learning_emissions_equal_iter_emissions(store, make_emission):
    store.write_emission(make_emission("a", seconds=1, emission_type="X", entity_refs=[ALICE]))
    store.write_emission(make_emission("b", seconds=0, emission_type="Y"))
    store.write_emission(make_emission("c", seconds=2, emission_type="X"))
    assert list(store.iter_learning_emissions(**WIDE)) == list(store.iter_emissions(**WIDE))
    assert ids(store.iter_learning_emissions(**WIDE, emission_types=["X"])) == ["a", "c"]
    assert ids(store.iter_learning_emissions(**WIDE, entity_ref=ALICE)) == ["a"]


# --------------------------------------------------------------------------- checkpoint resume


def _tied_store(store, make_signal):
    rows = [
        ("z", at(-5)),
        ("a", at(0)),
        ("b", at(0)),
        ("c", at(0)),
        ("d", at(3)),
        ("e", at(3)),
        ("f", at(0, days=1)),
    ]
    for name, ts in rows:
        store.write_signal(make_signal(name, timestamp=ts, source="src" if name != "e" else "other"))
    return [name for name, _ in rows]


def test_resume_from_every_prefix(store, make_signal, reopen):
    order = _tied_store(store, make_signal)
    replay = list(store.iter_signals_from_checkpoint(end=WIDE["end"]))
    assert ids(replay) == order
    for k in range(1, len(replay) + 1):
        cp = store.build_signal_checkpoint(replay[:k])
        store.write_checkpoint("worker", cp)
        loaded = reopen().read_checkpoint("worker")
        assert loaded == cp
        assert ids(store.iter_signals_from_checkpoint(end=WIDE["end"], checkpoint=loaded)) == order[k:], k


def test_resume_with_ties_on_the_checkpoint_timestamp(store, make_signal):
    _tied_store(store, make_signal)
    replay = list(store.iter_signals(**WIDE))
    cp = store.build_signal_checkpoint(replay[:3])  # z, a, b -> last ts at(0), seen (a, b)
    assert cp.last_timestamp == at(0)
    assert cp.seen_ids_at_timestamp == ("a", "b")
    assert ids(store.iter_signals_from_checkpoint(end=WIDE["end"], checkpoint=cp)) == ["c", "d", "e", "f"]
    # A start before the checkpoint does not rewind it; a start after it wins.
    assert ids(store.iter_signals_from_checkpoint(end=WIDE["end"], checkpoint=cp, start=at(-100))) == [
        "c",
        "d",
        "e",
        "f",
    ]
    assert ids(store.iter_signals_from_checkpoint(end=WIDE["end"], checkpoint=cp, start=at(3))) == [
        "d",
        "e",
        "f",
    ]
    assert ids(store.iter_signals_from_checkpoint(end=at(3), checkpoint=cp, sources=["src"])) == ["c", "d"]
    assert ids(store.iter_signals_from_checkpoint(end=at(3), checkpoint=cp, sources=[])) == ["c", "d", "e"]


def test_checkpoint_seen_ids_only_apply_at_its_timestamp(store, make_signal):
    _tied_store(store, make_signal)
    cp = ReplayCheckpoint(last_timestamp=at(0), seen_ids_at_timestamp=("d", "z", "b"))
    assert ids(store.iter_signals_from_checkpoint(end=WIDE["end"], checkpoint=cp)) == [
        "a",
        "c",
        "d",
        "e",
        "f",
    ]


def test_checkpoint_between_records_and_naive_checkpoint(store, make_signal):
    _tied_store(store, make_signal)
    cp = ReplayCheckpoint(last_timestamp=(at(1)).replace(tzinfo=None))
    assert cp.last_timestamp == at(1)
    assert ids(store.iter_signals_from_checkpoint(end=WIDE["end"], checkpoint=cp)) == ["d", "e", "f"]


def test_no_checkpoint_and_no_start_replays_from_epoch(store, make_signal):
    store.write_signal(make_signal("old", timestamp=datetime(1970, 1, 1, tzinfo=UTC)))
    store.write_signal(make_signal("new", timestamp=at(0)))
    assert ids(store.iter_signals_from_checkpoint(end=at(0))) == ["old", "new"]
    assert ids(store.iter_signals_from_checkpoint(end=at(0), start=at(0))) == ["new"]
    assert ids(store.iter_signals_from_checkpoint(end=at(0), checkpoint=None, entity_ref=ALICE)) == []


def test_checkpoint_after_end_raises_like_0_1_8(store, make_signal):
    """The checkpoint moves the effective start; past ``end`` that is an ``end < start`` window."""
    store.write_signal(make_signal("x", timestamp=at(0)))
    cp = ReplayCheckpoint(last_timestamp=at(10))
    with pytest.raises(ValueError):
        list(store.iter_signals_from_checkpoint(end=at(5), checkpoint=cp))


def test_build_signal_checkpoint(store, make_signal):
    assert store.build_signal_checkpoint([]) is None
    assert store.build_signal_checkpoint(iter(())) is None
    a = make_signal("a", timestamp=at(0))
    b = make_signal("b", timestamp=at(0))
    c = make_signal("c", timestamp=at(1))
    cp = store.build_signal_checkpoint(iter([a, b, c, c]))
    assert cp == ReplayCheckpoint(last_timestamp=at(1), seen_ids_at_timestamp=("c",))
    cp = store.build_signal_checkpoint([a, b, a])
    assert cp.last_timestamp == at(0)
    assert cp.seen_ids_at_timestamp == ("a", "b")
    assert cp.schema_version == "0.1"
    with pytest.raises(ValueError):
        store.build_signal_checkpoint([c, a])
    # Works on envelopes that were never written and on non-UTC timestamps.
    local = make_signal("l", timestamp=datetime(2026, 2, 5, 13, 0, tzinfo=timezone(timedelta(hours=1))))
    cp = store.build_signal_checkpoint([local, b])
    assert cp.last_timestamp == at(0) and cp.seen_ids_at_timestamp == ("l", "b")


# --------------------------------------------------------------------------- top candidates


def test_top_candidates_score_semantics(store, make_signal):
    scores = {
        "int3": 3,
        "float2_5": 2.5,
        "true": True,
        "false": False,
        "missing": None,  # key absent -> 0.0
        "neg": -1,
        "string": "9",
        "null": "NULL",  # explicit JSON null -> excluded
        "dict": {"v": 9},
        "list": [9],
    }
    for i, (name, score) in enumerate(scores.items()):
        if name == "missing":
            payload = {"other": 1}
        elif name == "null":
            payload = {"score": None}
        else:
            payload = {"score": score}
        store.write_signal(make_signal(name, seconds=i, payload=payload))
    store.write_signal(make_signal("not_dict", seconds=50, payload=[{"score": 100}]))
    store.write_signal(make_signal("str_payload", seconds=51, payload="score"))
    store.write_signal(make_signal("none_payload", seconds=52, payload=None))
    got = store.get_top_recommendation_candidates(**WIDE, limit=20, unique_by_entity=False)
    assert ids(got) == ["int3", "float2_5", "true", "missing", "false", "neg"]
    got = store.get_top_recommendation_candidates(**WIDE, limit=2, unique_by_entity=False)
    assert ids(got) == ["int3", "float2_5"]
    assert store.get_top_recommendation_candidates(**WIDE, limit=0) == []
    assert store.get_top_recommendation_candidates(**WIDE, limit=-1) == []


def test_top_candidates_ties_break_on_timestamp_then_id_descending(store, make_signal):
    store.write_signal(make_signal("a", timestamp=at(0), payload={"score": 1}))
    store.write_signal(make_signal("c", timestamp=at(5), payload={"score": 1.0}))
    store.write_signal(make_signal("b", timestamp=at(5), payload={"score": True}))
    store.write_signal(make_signal("d", timestamp=at(5, micros=-1), payload={"score": 1}))
    store.write_signal(make_signal("e", timestamp=at(0), payload={"score": 1.0000001}))
    got = store.get_top_recommendation_candidates(**WIDE, limit=10)
    assert ids(got) == ["e", "c", "b", "d", "a"]


def test_top_candidates_filters_and_score_field(store, make_signal):
    store.write_signal(
        make_signal("a", seconds=1, payload={"rank": 5, "score": 0}, payload_type="Cand", source="x")
    )
    store.write_signal(make_signal("b", seconds=2, payload={"rank": 7}, payload_type="Other", source="x"))
    store.write_signal(make_signal("c", seconds=3, payload={"rank": "9"}, payload_type="Cand", source="y"))
    store.write_signal(
        make_signal(
            "d", seconds=4, payload={"score": 3}, payload_type="Cand", source="y", entity_refs=[ALICE]
        )
    )
    assert ids(store.get_top_recommendation_candidates(**WIDE, limit=5, score_field="rank")) == [
        "b",
        "a",
        "d",
    ]
    assert ids(store.get_top_recommendation_candidates(**WIDE, limit=5, payload_types=["Cand"])) == [
        "d",
        "c",
        "a",
    ]
    assert ids(store.get_top_recommendation_candidates(**WIDE, limit=5, payload_types=[], sources=[])) == [
        "d",
        "c",
        "b",
        "a",
    ]
    assert ids(
        store.get_top_recommendation_candidates(**WIDE, limit=5, sources=["x"], score_field="rank")
    ) == [
        "b",
        "a",
    ]
    assert ids(store.get_top_recommendation_candidates(**WIDE, limit=5, entity_ref=ALICE)) == ["d"]
    assert ids(store.get_top_recommendation_candidates(start=at(2), end=at(3), limit=5)) == ["c", "b"]


def test_top_candidates_unique_by_entity(store, make_signal):
    rows = [
        ("alice_tw", 9, (ALICE,)),
        ("alice_tw_label", 8, (ALICE_OTHER_LABEL,)),  # same key person:twitter:alice
        ("alice_tw_version", 7.5, (ALICE_OTHER_VERSION,)),  # same key
        ("alice_gh", 7, (ALICE_OTHER_PLATFORM,)),  # person:github:alice
        ("alice_noplat", 6, (ALICE_NO_PLATFORM,)),  # person:None:alice
        ("bob_then_alice", 5, (BOB, ALICE)),  # first ref is the key
        ("bob_again", 4, (BOB,)),
        ("org_alice", 3.5, (EntityRef("org", "alice", platform="twitter"),)),
        ("anon1", 3, ()),
        ("anon2", 3, ()),
        ("alice_low", 1, (ALICE,)),
    ]
    for i, (name, score, refs) in enumerate(rows):
        store.write_signal(make_signal(name, seconds=i, payload={"score": score}, entity_refs=refs))
    got = store.get_top_recommendation_candidates(**WIDE, limit=20)
    assert ids(got) == [
        "alice_tw",
        "alice_gh",
        "alice_noplat",
        "bob_then_alice",
        "org_alice",
        "anon2",
        "anon1",
    ]
    assert ids(store.get_top_recommendation_candidates(**WIDE, limit=2)) == ["alice_tw", "alice_gh"]
    assert ids(store.get_top_recommendation_candidates(**WIDE, limit=3, unique_by_entity=False)) == [
        "alice_tw",
        "alice_tw_label",
        "alice_tw_version",
    ]
    # The entity filter applies before uniqueness; uniqueness keys on the first ref only.
    assert ids(store.get_top_recommendation_candidates(**WIDE, limit=5, entity_ref=ALICE)) == [
        "alice_tw",
        "bob_then_alice",
    ]


# --------------------------------------------------------------------------- ready / token / promise


def test_ready_candidates(store, make_signal):
    rows = [
        ("r1", {"status": "READY"}, "Cand"),
        ("lower", {"status": "ready"}, "Cand"),
        ("r2", {"status": "READY", "x": 1}, "Other"),
        ("missing", {}, "Cand"),
        ("null", {"status": None}, "Cand"),
        ("list", ["READY"], "Cand"),
        ("r3", {"status": "READY"}, "Cand"),
    ]
    for i, (name, payload, ptype) in enumerate(rows):
        store.write_signal(
            make_signal(name, timestamp=at(i if name != "r3" else 2), payload=payload, payload_type=ptype)
        )
    assert ids(store.get_ready_candidates(**WIDE)) == ["r3", "r2", "r1"]
    assert ids(store.get_ready_candidates(**WIDE, limit=None)) == ["r3", "r2", "r1"]
    assert ids(store.get_ready_candidates(**WIDE, limit=2)) == ["r3", "r2"]
    assert store.get_ready_candidates(**WIDE, limit=0) == []
    assert ids(store.get_ready_candidates(**WIDE, limit=-1)) == ["r3", "r2", "r1"]
    assert ids(store.get_ready_candidates(**WIDE, payload_types=["Cand"])) == ["r3", "r1"]
    assert ids(store.get_ready_candidates(**WIDE, payload_types=[])) == ["r3", "r2", "r1"]
    assert ids(store.get_ready_candidates(**WIDE, ready_value="ready")) == ["lower"]
    # ready_value=None is compared with == like any value: a missing key or a null status matches.
    assert ids(store.get_ready_candidates(**WIDE, ready_value=None)) == ["null", "missing"]
    assert ids(store.get_ready_candidates(**WIDE, ready_field="x", ready_value=1)) == ["r2"]


def test_ready_value_uses_python_equality(store, make_signal):
    rows = [
        ("int1", 1),
        ("float1", 1.0),
        ("true", True),
        ("str1", "1"),
        ("int2", 2),
        ("false", False),
        ("zero", 0),
    ]
    for i, (name, value) in enumerate(rows):
        store.write_signal(make_signal(name, seconds=i, payload={"flag": value}))
    assert ids(store.get_ready_candidates(**WIDE, ready_field="flag", ready_value=1)) == [
        "true",
        "float1",
        "int1",
    ]
    assert ids(store.get_ready_candidates(**WIDE, ready_field="flag", ready_value=True)) == [
        "true",
        "float1",
        "int1",
    ]
    assert ids(store.get_ready_candidates(**WIDE, ready_field="flag", ready_value="1")) == ["str1"]
    assert ids(store.get_ready_candidates(**WIDE, ready_field="flag", ready_value=0.0)) == ["zero", "false"]


def test_ready_candidates_filters(store, make_signal):
    store.write_signal(
        make_signal("a", seconds=1, payload={"status": "READY"}, source="x", entity_refs=[ALICE])
    )
    store.write_signal(make_signal("b", seconds=2, payload={"status": "READY"}, source="y"))
    assert ids(store.get_ready_candidates(**WIDE, sources=["x"])) == ["a"]
    assert ids(store.get_ready_candidates(**WIDE, entity_ref=ALICE)) == ["a"]
    assert ids(store.get_ready_candidates(start=at(2), end=at(2))) == ["b"]


def test_token_signals(store, make_signal):
    rows = [
        ("t1", {"token_id": "tok", "project_entity_id": "p1"}, "Tok"),
        ("t2", {"token_id": "tok", "project_entity_id": "p2"}, "Other"),
        ("empty", {"token_id": ""}, "Tok"),
        ("other_tok", {"token_id": "tok2", "project_entity_id": "p1"}, "Tok"),
        ("not_dict", ["tok"], "Tok"),
        ("quote", {"token_id": 'it\'s "q"; --'}, "Tok"),
        ("num", {"token_id": 5}, "Tok"),
    ]
    for i, (name, payload, ptype) in enumerate(rows):
        store.write_signal(make_signal(name, seconds=i, payload=payload, payload_type=ptype))
    everything = [name for name, _, _ in rows]
    assert (
        ids(store.get_token_signals(**WIDE)) == everything
    )  # no payload filter -> non-dict payloads included
    assert ids(store.get_token_signals(**WIDE, token_id="tok")) == ["t1", "t2"]
    assert ids(store.get_token_signals(**WIDE, token_id="")) == ["empty"]
    assert ids(store.get_token_signals(**WIDE, token_id='it\'s "q"; --')) == ["quote"]
    assert ids(store.get_token_signals(**WIDE, token_id=5.0)) == ["num"]
    assert ids(store.get_token_signals(**WIDE, project_entity_id="p1")) == ["t1", "other_tok"]
    assert ids(store.get_token_signals(**WIDE, token_id="tok", project_entity_id="p2")) == ["t2"]
    assert ids(store.get_token_signals(**WIDE, payload_types=["Tok"], token_id="tok")) == ["t1"]
    assert ids(store.get_token_signals(**WIDE, limit=2)) == ["t1", "t2"]
    assert store.get_token_signals(**WIDE, limit=0) == []
    assert ids(store.get_token_signals(**WIDE, limit=-5)) == everything


def test_token_and_promise_signals_order_by_timestamp_then_id(store, make_signal):
    """Ascending (timestamp, id): unlike replay, ties sort by id, not by append order."""
    store.write_signal(make_signal("early", timestamp=at(-1), payload={"token_id": "t", "promise_id": "p"}))
    for name in ["b", "c", "a"]:
        store.write_signal(make_signal(name, timestamp=at(0), payload={"token_id": "t", "promise_id": "p"}))
    assert ids(store.get_token_signals(**WIDE, token_id="t")) == ["early", "a", "b", "c"]
    assert ids(store.get_promise_signals(**WIDE, promise_id="p")) == ["early", "a", "b", "c"]
    assert ids(store.iter_signals(**WIDE)) == ["early", "b", "c", "a"]


def test_promise_signals(store, make_signal):
    rows = [
        ("p1_open", {"promise_id": "p1", "status": "open"}, "x"),
        ("p1_kept", {"promise_id": "p1", "status": "kept"}, "y"),
        ("p2_open", {"promise_id": "p2", "status": "open"}, "x"),
        ("nostatus", {"promise_id": "p1"}, "x"),
        ("scalar", "p1", "x"),
    ]
    for i, (name, payload, source) in enumerate(rows):
        store.write_signal(
            make_signal(name, seconds=i, payload=payload, source=source, payload_type="Promise")
        )
    assert ids(store.get_promise_signals(**WIDE)) == [name for name, _, _ in rows]
    assert ids(store.get_promise_signals(**WIDE, promise_id="p1")) == ["p1_open", "p1_kept", "nostatus"]
    assert ids(store.get_promise_signals(**WIDE, status="open")) == ["p1_open", "p2_open"]
    assert ids(store.get_promise_signals(**WIDE, promise_id="p1", status="kept")) == ["p1_kept"]
    assert ids(store.get_promise_signals(**WIDE, promise_id="p1", sources=["x"], limit=1)) == ["p1_open"]
    assert ids(store.get_promise_signals(**WIDE, payload_types=["Nope"])) == []


def test_promise_outcomes_for_window(store, make_emission):
    rows = [
        ("b", at(1), {"promise_id": "p1", "status": "kept"}, "PromiseKept"),
        ("a", at(1), {"promise_id": "p1", "status": "broken"}, "PromiseBroken"),
        ("c", at(0), {"promise_id": "p2", "status": "kept"}, "PromiseKept"),
        ("d", at(2), ["p1"], "PromiseKept"),
    ]
    for name, ts, payload, kind in rows:
        store.write_emission(make_emission(name, timestamp=ts, payload=payload, emission_type=kind))
    assert ids(store.get_promise_outcomes_for_window(**WIDE)) == ["c", "a", "b", "d"]
    assert ids(store.get_promise_outcomes_for_window(**WIDE, promise_id="p1")) == ["a", "b"]
    assert ids(store.get_promise_outcomes_for_window(**WIDE, status="kept")) == ["c", "b"]
    assert ids(
        store.get_promise_outcomes_for_window(**WIDE, emission_types=["PromiseKept"], promise_id="p1")
    ) == ["b"]


# --------------------------------------------------------------------------- outcomes / latest


def test_outcomes_for_window_sorted_by_timestamp_then_id(store, make_emission):
    store.write_emission(make_emission("z", timestamp=at(0), emission_type="A", entity_refs=[ALICE]))
    store.write_emission(make_emission("y", timestamp=at(0), emission_type="B"))
    store.write_emission(make_emission("x", timestamp=at(-1), emission_type="A"))
    assert ids(store.get_outcomes_for_window(**WIDE)) == ["x", "y", "z"]
    assert ids(store.get_outcomes_for_window(**WIDE, emission_types=["A"])) == ["x", "z"]
    assert ids(store.get_outcomes_for_window(**WIDE, entity_ref=ALICE)) == ["z"]
    assert ids(store.get_outcomes_for_window(start=at(0), end=at(0))) == ["y", "z"]


def test_latest_draft_signals(store, make_signal):
    store.write_signal(make_signal("d1", timestamp=at(0), payload_type="DraftMessage", source="draft"))
    store.write_signal(make_signal("d3", timestamp=at(5), payload_type="DraftMessage", entity_refs=[ALICE]))
    store.write_signal(make_signal("d2", timestamp=at(5), payload_type="Other"))
    assert ids(store.get_latest_draft_signals(limit=10, **WIDE)) == ["d3", "d2", "d1"]
    assert ids(store.get_latest_draft_signals(limit=1, **WIDE)) == ["d3"]
    assert ids(store.get_latest_draft_signals(limit=10, **WIDE, payload_types=["DraftMessage"])) == [
        "d3",
        "d1",
    ]
    assert ids(store.get_latest_draft_signals(limit=10, **WIDE, payload_types=[])) == ["d3", "d2", "d1"]
    assert ids(store.get_latest_draft_signals(limit=10, **WIDE, sources=["draft"])) == ["d1"]
    assert ids(store.get_latest_draft_signals(limit=10, **WIDE, entity_ref=ALICE)) == ["d3"]
    assert store.get_latest_draft_signals(limit=0, **WIDE) == []


def test_latest_approval_outcomes(store, make_emission):
    store.write_emission(make_emission("a", timestamp=at(0), emission_type="DraftApproved"))
    store.write_emission(
        make_emission("c", timestamp=at(3), emission_type="DraftRejected", entity_refs=[ALICE])
    )
    store.write_emission(make_emission("b", timestamp=at(3), emission_type="DraftApproved"))
    assert ids(store.get_latest_approval_outcomes(limit=10, **WIDE)) == ["c", "b", "a"]
    assert ids(store.get_latest_approval_outcomes(limit=2, **WIDE, emission_types=["DraftApproved"])) == [
        "b",
        "a",
    ]
    assert ids(store.get_latest_approval_outcomes(limit=10, **WIDE, entity_ref=ALICE)) == ["c"]
    assert store.get_latest_approval_outcomes(limit=0, **WIDE) == []
    assert store.get_latest_approval_outcomes(limit=-2, **WIDE) == []


def test_returned_envelopes_equal_written(store, make_signal, make_emission):
    sig = make_signal(
        "s", payload={"score": 2, "status": "READY", "token_id": "t", "promise_id": "p"}, entity_refs=[ALICE]
    )
    em = make_emission("e", payload={"promise_id": "p"}, caused_by="s", entity_refs=[ALICE])
    store.write_signal(sig)
    store.write_emission(em)
    for rows in (
        store.get_top_recommendation_candidates(**WIDE, limit=1),
        store.get_ready_candidates(**WIDE),
        store.get_token_signals(**WIDE, token_id="t"),
        store.get_promise_signals(**WIDE, promise_id="p"),
        store.get_recent_signals_by_entity(entity_ref=ALICE, limit=1),
        store.get_latest_draft_signals(limit=1, **WIDE),
        list(store.iter_recommendation_signals(**WIDE)),
    ):
        assert rows == [sig]
    for rows in (
        store.get_outcomes_for_window(**WIDE),
        store.get_promise_outcomes_for_window(**WIDE, promise_id="p"),
        store.get_latest_approval_outcomes(limit=1, **WIDE),
    ):
        assert rows == [em]


# --------------------------------------------------------------------------- the store states themselves
# Self-checks of tests/states.py: each state really is what its name says when a read arrives.


def _hot_days(store) -> dict[str, list[str]]:
    return {
        kind: sorted(p.stem for p in (store.store_root / kind).glob("*.jsonl") if p.stat().st_size)
        for kind in ("signals", "emissions")
    }


def test_store_state_is_reached(store, store_state, make_signal, make_emission):
    days = ["2026-02-05", "2026-02-06", "2026-02-07"]
    sigs = [make_signal(f"s{d}{i}", timestamp=at(i, days=d)) for d in range(3) for i in range(2)]
    ems = [
        make_emission(f"e{d}{i}", timestamp=at(i, days=d), caused_by=f"s{d}{i}")
        for d in range(3)
        for i in range(2)
    ]
    store.write_signals(sigs)
    store.write_emissions(ems)
    first = getattr(store, "inner", None)
    assert list(store.iter_signals(**WIDE)) == sigs
    assert list(store.iter_emissions(**WIDE)) == ems
    hot = _hot_days(store)
    cold = {(kind, day) for kind in ("signals", "emissions") for day in days}
    if store_state in (COMPACTED, COMPACTED_LARGE):
        assert hot == {"signals": [], "emissions": []}
        assert store.compacted == cold
    elif store_state == MIXED:
        assert hot == {"signals": days[2:], "emissions": days[2:]}
        assert store.compacted == {(kind, day) for kind, day in cold if day != days[2]}
    else:
        assert hot == {"signals": days, "emissions": days}
    if store_state == HOT_LARGE:
        sizes = [
            p.stat().st_size
            for kind in ("signals", "emissions")
            for p in (store.store_root / kind).glob("*.jsonl")
        ]
        assert len(sizes) == 6 and min(sizes) >= BULK_THRESHOLD
    if store_state not in (HOT_SMALL, COMPACTED, MIXED):
        assert store.inner is not first  # a new FileSystemStore answered
    if store_state == REOPENED_SAVED and os.environ.get("METASPN_TEST_NO_SAVED") != "1":
        assert sorted(p.name for p in (store.store_root / ".index").glob("*.arrow")) == [
            "emissions.arrow",
            "signals.arrow",
        ]
        assert len(list((store.store_root / ".cache").rglob("*.arrow"))) == 6
    # Late writes (into compacted days where the state compacted): a new id and a duplicate.
    late = make_signal("late", timestamp=at(30))
    store.write_signal(late)
    assert store.write_signal(make_signal("s00", timestamp=at(40))) == (
        store.store_root / "cold" / "signals" / "day=2026-02-05"
        if ("signals", "2026-02-05") in getattr(store, "compacted", ())
        else store.signals_dir / "2026-02-05.jsonl"
    )
    assert list(store.iter_signals(**WIDE)) == sigs[:2] + [late] + sigs[2:]


@pytest.mark.store_states(HOT_SMALL, HOT_LARGE, COMPACTED_LARGE, reason="compares the two parse paths")
def test_hot_large_state_reads_through_the_bulk_parser(store, store_state, make_signal, monkeypatch):
    """hot-large and compacted-large pad files so that reads (and the compactor) take DuckDB's
    bulk path: the line-by-line parser sees at most the padded last line of each file (hot-small:
    every line)."""
    parse = pytest.importorskip("metaspn_store._parse")
    if not hasattr(parse, "row_from_line"):
        pytest.skip("metaspn_store._parse no longer calls row_from_line: update this self-check")
    seen: list[int] = []
    exact = parse.row_from_line

    def spy(kind, line, seq):
        seen.append(seq)
        return exact(kind, line, seq)

    monkeypatch.setattr(parse, "row_from_line", spy)
    sigs = [make_signal(f"s{i}", timestamp=at(i, days=i % 2)) for i in range(40)]
    store.write_signals(sigs)
    assert sorted(ids(store.iter_signals(**WIDE))) == sorted(ids(sigs))
    if store_state == HOT_SMALL:
        assert len(seen) == 40
    else:
        assert len(seen) <= 2, seen
