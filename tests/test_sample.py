"""Tests for the seeded sample-data generator (metaspn_store.sample)."""

from __future__ import annotations

import json
from collections import Counter
from datetime import date, datetime, timedelta, timezone

import pytest
from metaspn_schemas import EmissionEnvelope, SignalEnvelope

from metaspn_store.sample import (
    DEFAULT_EMISSION_RATIO,
    DEFAULT_START,
    generate_workspace,
    hot_entities,
    iter_sample_days,
)

SMALL = {"days": 3, "signals_per_day": 1500, "seed": 7}


@pytest.fixture(scope="module")
def sample_days() -> list[tuple[date, list[SignalEnvelope], list[EmissionEnvelope]]]:
    return list(iter_sample_days(**SMALL))


def _all_signals(days):
    return [signal for _, signals, _ in days for signal in signals]


def _all_emissions(days):
    return [emission for _, _, emissions in days for emission in emissions]


def test_same_seed_gives_identical_envelopes(sample_days):
    again = list(iter_sample_days(**SMALL))
    assert again == sample_days
    # Equality of dataclasses could hide a type difference that serialisation shows.
    assert [s.to_dict() for s in _all_signals(again)] == [s.to_dict() for s in _all_signals(sample_days)]


def test_other_seed_gives_other_data(sample_days):
    other = list(iter_sample_days(**{**SMALL, "seed": 8}))
    assert [s.payload for s in _all_signals(other)[:50]] != [
        s.payload for s in _all_signals(sample_days)[:50]
    ]


def test_first_days_do_not_depend_on_day_count(sample_days):
    two = list(iter_sample_days(**{**SMALL, "days": 2}))
    assert two == sample_days[:2]


def test_counts_and_days(sample_days):
    assert [day for day, _, _ in sample_days] == [DEFAULT_START + timedelta(days=i) for i in range(3)]
    for _, signals, emissions in sample_days:
        assert len(signals) == SMALL["signals_per_day"]
        assert len(emissions) == round(DEFAULT_EMISSION_RATIO * len(signals))


def test_emission_ratio_and_start_are_honoured():
    days = list(iter_sample_days(days=2, signals_per_day=1000, start=date(2025, 12, 31), emission_ratio=0.25))
    assert [day for day, _, _ in days] == [date(2025, 12, 31), date(2026, 1, 1)]
    assert [len(e) for _, _, e in days] == [250, 250]
    everything = list(iter_sample_days(days=1, signals_per_day=200, emission_ratio=1.0))
    assert len(everything[0][2]) == 200
    assert list(iter_sample_days(days=1, signals_per_day=0)) == [(DEFAULT_START, [], [])]


def test_timestamps_inside_their_day_and_ordered_with_ties(sample_days):
    ties = 0
    for day, signals, emissions in sample_days:
        day_start = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
        day_end = day_start + timedelta(days=1)
        for records in (signals, emissions):
            stamps = [record.timestamp for record in records]
            assert all(stamp.tzinfo is not None and stamp.utcoffset() == timedelta(0) for stamp in stamps)
            assert all(day_start <= stamp < day_end for stamp in stamps)
            assert stamps == sorted(stamps)
        ties += sum(1 for a, b in zip(signals, signals[1:], strict=False) if a.timestamp == b.timestamp)
        # Microsecond precision is used, not whole seconds.
        assert any(signal.timestamp.microsecond for signal in signals)
    assert ties > 0


def test_ids_unique_stable_and_not_in_time_order(sample_days):
    signal_ids = [s.signal_id for s in _all_signals(sample_days)]
    emission_ids = [e.emission_id for e in _all_emissions(sample_days)]
    assert len(set(signal_ids)) == len(signal_ids)
    assert len(set(emission_ids)) == len(emission_ids)
    assert all(i.startswith("s_") for i in signal_ids)
    assert all(i.startswith("e_") for i in emission_ids)
    assert signal_ids != sorted(signal_ids)  # id tie-breaks differ from append order


def test_caused_by_names_an_earlier_signal(sample_days):
    seen: dict[str, SignalEnvelope] = {}
    kinds = Counter()
    for _, signals, emissions in sample_days:
        seen.update((s.signal_id, s) for s in signals)
        for emission in emissions:
            cause = seen[emission.caused_by]
            assert cause.timestamp < emission.timestamp
            assert emission.entity_refs == cause.entity_refs
            kinds[(emission.emission_type, cause.payload_type)] += 1
    pending = {"OutcomePending", "EvaluationRequested", "RecommendationAttempted"}
    for (emission_type, payload_type), _count in kinds.items():
        if emission_type in ("OutcomeSuccess", "OutcomeFailure"):
            assert payload_type in pending
        elif emission_type in ("DraftApproved", "DraftRejected"):
            assert payload_type == "DraftCreated"
        elif emission_type == "SignalAcknowledged":
            assert payload_type not in pending | {"DraftCreated", "PromiseCreated"}
        else:
            assert emission_type in ("PromiseKept", "PromiseBroken")
            assert payload_type in ("PromiseCreated", "PromiseUpdated")
    # Each cause is resolved at most once, and only a share of the pendings is resolved.
    causes = [e.caused_by for e in _all_emissions(sample_days)]
    assert len(causes) == len(set(causes))
    pendings = [s for s in seen.values() if s.payload_type in pending]
    resolved = set(causes)
    assert 0 < sum(1 for s in pendings if s.signal_id in resolved) < len(pendings)
    # Some emissions resolve a signal of an earlier day.
    assert any(e.caused_by[2:10] != e.emission_id[2:10] for e in _all_emissions(sample_days))


def test_json_round_trip(sample_days):
    for record in [*_all_signals(sample_days), *_all_emissions(sample_days)]:
        line = json.dumps(record.to_dict(), sort_keys=True, separators=(",", ":"), allow_nan=False)
        back = type(record).from_dict(json.loads(line))
        assert back == record


def test_distribution_sanity(sample_days):
    signals = _all_signals(sample_days)
    sources = Counter(s.source for s in signals)
    types = Counter(s.payload_type for s in signals)
    emission_types = Counter(e.emission_type for e in _all_emissions(sample_days))
    for source in (
        "ingest.twitter",
        "ingest.farcaster",
        "route.worker",
        "score.worker",
        "recommend.worker",
        "draft.worker",
        "learning.worker",
        "token.worker",
        "promise.worker",
    ):
        assert sources[source] > 0, source
    for payload_type in (
        "SocialPostSeen",
        "ProfileSnapshotSeen",
        "RouteInput",
        "RecommendationCandidate",
        "OutcomePending",
        "EvaluationRequested",
        "RecommendationAttempted",
        "DraftCreated",
        "EntityResolved",
        "PromiseCreated",
    ):
        assert types[payload_type] > 0, payload_type
    for emission_type in ("OutcomeSuccess", "OutcomeFailure", "DraftApproved", "DraftRejected"):
        assert emission_types[emission_type] > 0, emission_type
    # Ingest is the widest stage of the funnel.
    assert types["SocialPostSeen"] > types["RouteInput"] > types["DraftCreated"]
    assert any(s.trace is not None for s in signals)
    assert any(s.raw is not None for s in signals)
    assert any(e.trace is not None for e in _all_emissions(sample_days))
    assert any(not isinstance(s.payload, dict) for s in signals)


def test_payload_shapes(sample_days):
    signals = _all_signals(sample_days)
    candidates = [s for s in signals if s.payload_type == "RecommendationCandidate"]
    scores = [s.payload.get("score") for s in candidates]
    floats = [v for v in scores if isinstance(v, float)]
    assert len(floats) > 0.9 * len(candidates)
    assert all(0.0 <= v <= 1.0 for v in floats)
    assert len(set(floats)) < len(floats)  # score ties exist
    statuses = Counter(s.payload["status"] for s in candidates)
    assert statuses["READY"] > 0 and statuses["NEW"] > 0

    pending_types = {"OutcomePending", "EvaluationRequested", "RecommendationAttempted"}
    expires = [s.payload.get("expires_at", "<missing>") for s in signals if s.payload_type in pending_types]
    zulu = [v for v in expires if isinstance(v, str) and v.endswith("Z")]
    assert len(zulu) > 0.8 * len(expires)
    assert "<missing>" in expires
    for value in zulu:
        datetime.fromisoformat(value.replace("Z", "+00:00"))

    tokens = [s for s in signals if s.payload_type.startswith("Token")]
    assert all(s.payload["token_id"].startswith("tok_") for s in tokens)
    assert {ref.ref_type for s in tokens for ref in s.entity_refs} == {"token", "project"}
    promises = [s for s in signals if s.payload_type.startswith("Promise")]
    assert promises
    assert all({"promise_id", "status"} <= set(s.payload) for s in promises)
    resolved = [s for s in signals if s.payload_type == "EntityResolved"]
    assert any(not s.entity_refs for s in resolved) and any(s.entity_refs for s in resolved)
    for emission in _all_emissions(sample_days):
        if emission.emission_type in ("PromiseKept", "PromiseBroken"):
            assert emission.payload["promise_id"].startswith("pr_")
            assert emission.payload["status"] in ("KEPT", "BROKEN")


def test_entity_popularity_is_skewed_and_hot_entities_are_hottest(sample_days):
    counts = Counter(
        ref for s in _all_signals(sample_days) for ref in s.entity_refs if ref.ref_type == "person"
    )
    hot = hot_entities(signals_per_day=SMALL["signals_per_day"], seed=SMALL["seed"], top=3)
    assert len(hot) == 3
    ranked = [ref for ref, _ in counts.most_common(10)]
    assert hot[0] in ranked[:3]
    total = sum(counts.values())
    assert counts.most_common(1)[0][1] > 10 * total / len(counts)  # far above the average entity
    assert {ref.platform for ref in counts} == {"twitter", "farcaster"}


def test_invalid_arguments_are_rejected():
    with pytest.raises(ValueError, match="days"):
        list(iter_sample_days(days=-1))
    with pytest.raises(ValueError, match="signals_per_day"):
        list(iter_sample_days(signals_per_day=-5))
    with pytest.raises(ValueError, match="emission_ratio"):
        list(iter_sample_days(emission_ratio=1.5))
    with pytest.raises(ValueError, match="entities"):
        list(iter_sample_days(entities=0))


class _RecordingStore:
    def __init__(self) -> None:
        self.signal_batches: list[list[SignalEnvelope]] = []
        self.emission_batches: list[list[EmissionEnvelope]] = []

    def write_signals(self, signals):
        self.signal_batches.append(list(signals))
        return []

    def write_emissions(self, emissions):
        self.emission_batches.append(list(emissions))
        return []


def test_generate_workspace_uses_the_batch_api(sample_days):
    store = _RecordingStore()
    counts = generate_workspace(store, **SMALL)
    assert counts == {
        "signals": sum(len(s) for _, s, _ in sample_days),
        "emissions": sum(len(e) for _, _, e in sample_days),
        "days": 3,
    }
    assert store.signal_batches == [signals for _, signals, _ in sample_days]
    assert store.emission_batches == [emissions for _, _, emissions in sample_days]


def test_generate_workspace_into_filesystem_store(tmp_path):
    try:
        from metaspn_store import FileSystemStore
    except ImportError as exc:  # the package facade may be mid-rewrite
        pytest.skip(f"FileSystemStore not importable: {exc}")
    store = FileSystemStore(tmp_path)
    counts = generate_workspace(store, days=2, signals_per_day=300, seed=3)
    assert counts["days"] == 2
    start = datetime(2026, 2, 1, tzinfo=timezone.utc)
    end = datetime(2026, 2, 2, 23, 59, 59, 999999, tzinfo=timezone.utc)
    expected = list(iter_sample_days(days=2, signals_per_day=300, seed=3))
    assert list(store.iter_signals(start, end)) == [s for _, signals, _ in expected for s in signals]
    assert list(store.iter_emissions(start, end)) == [e for _, _, emissions in expected for e in emissions]
    assert sorted(p.name for p in (tmp_path / "store" / "signals").glob("*.jsonl")) == [
        "2026-02-01.jsonl",
        "2026-02-02.jsonl",
    ]
