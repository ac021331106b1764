"""Contract: unresolved / expired outcome signals and the learning-window buckets."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from metaspn_schemas import EntityRef
from oracle import parse_expiry
from states import STATES

pytestmark = pytest.mark.store_states(*STATES)

UTC = timezone.utc
T0 = datetime(2026, 2, 5, 12, 0, 0, tzinfo=UTC)
NOW = T0
WIDE = {"start": datetime(2026, 1, 1, tzinfo=UTC), "end": datetime(2026, 3, 1, tzinfo=UTC)}
ALICE = EntityRef("person", "alice", platform="twitter")
ALICE_LABELLED = EntityRef("person", "alice", platform="twitter", label="A")

BUCKET_KEYS = {"pending", "expired", "success", "failure"}


def ids(rows) -> list[str]:
    return [r.signal_id if hasattr(r, "signal_id") else r.emission_id for r in rows]


def at(seconds: float = 0, *, days: int = 0) -> datetime:
    return T0 + timedelta(days=days, seconds=seconds)


# --------------------------------------------------------------------------- unresolved


def test_default_pending_types_and_resolution(store, make_signal, make_emission):
    store.write_signal(make_signal("pending", seconds=1, payload_type="OutcomePending"))
    store.write_signal(make_signal("eval", seconds=2, payload_type="EvaluationRequested"))
    store.write_signal(make_signal("attempt", seconds=3, payload_type="RecommendationAttempted"))
    store.write_signal(make_signal("other", seconds=4, payload_type="SocialPostSeen"))
    store.write_signal(make_signal("ok", seconds=5, payload_type="OutcomePending"))
    store.write_signal(make_signal("no", seconds=6, payload_type="OutcomePending"))
    store.write_signal(make_signal("approved", seconds=7, payload_type="EvaluationRequested"))
    store.write_signal(make_signal("rejected", seconds=8, payload_type="RecommendationAttempted"))
    store.write_signal(make_signal("noise", seconds=9, payload_type="OutcomePending"))
    store.write_emission(make_emission("e1", seconds=10, emission_type="OutcomeSuccess", caused_by="ok"))
    store.write_emission(make_emission("e2", seconds=10, emission_type="OutcomeFailure", caused_by="no"))
    store.write_emission(make_emission("e3", seconds=10, emission_type="DraftApproved", caused_by="approved"))
    store.write_emission(make_emission("e4", seconds=10, emission_type="DraftRejected", caused_by="rejected"))
    store.write_emission(make_emission("e5", seconds=10, emission_type="SomethingElse", caused_by="noise"))
    store.write_emission(make_emission("e6", seconds=10, emission_type="OutcomeSuccess", caused_by="Pending"))
    store.write_emission(make_emission("e7", seconds=10, emission_type="OutcomeSuccess", caused_by="eva"))
    assert ids(store.get_unresolved_outcome_signals(**WIDE)) == ["pending", "eval", "attempt", "noise"]


def test_unresolved_sorted_by_timestamp_then_id(store, make_signal):
    for name in ["c", "a", "b"]:
        store.write_signal(make_signal(name, timestamp=at(5), payload_type="OutcomePending"))
    store.write_signal(make_signal("z", timestamp=at(1), payload_type="OutcomePending"))
    assert ids(store.get_unresolved_outcome_signals(**WIDE)) == ["z", "a", "b", "c"]


def test_resolution_only_counts_emissions_inside_the_window(store, make_signal, make_emission):
    store.write_signal(make_signal("p_late_res", timestamp=at(0), payload_type="OutcomePending"))
    store.write_signal(make_signal("p_early_res", timestamp=at(10), payload_type="OutcomePending"))
    store.write_emission(
        make_emission("late", timestamp=at(100), emission_type="OutcomeSuccess", caused_by="p_late_res")
    )
    # An emission before its signal still resolves it when both are in the window.
    store.write_emission(
        make_emission("early", timestamp=at(-1), emission_type="OutcomeFailure", caused_by="p_early_res")
    )
    assert ids(store.get_unresolved_outcome_signals(start=at(-1), end=at(99))) == ["p_late_res"]
    assert ids(store.get_unresolved_outcome_signals(start=at(-1), end=at(100))) == []
    assert ids(store.get_unresolved_outcome_signals(start=at(0), end=at(100))) == ["p_early_res"]
    assert ids(store.get_unresolved_outcome_signals(start=at(5), end=at(100))) == ["p_early_res"]


def test_entity_filter_applies_to_resolving_emissions(store, make_signal, make_emission):
    store.write_signal(make_signal("p1", seconds=1, payload_type="OutcomePending", entity_refs=[ALICE]))
    store.write_signal(make_signal("p2", seconds=2, payload_type="OutcomePending", entity_refs=[ALICE]))
    store.write_signal(make_signal("p3", seconds=3, payload_type="OutcomePending"))
    store.write_emission(make_emission("e1", seconds=4, caused_by="p1", entity_refs=[ALICE]))
    store.write_emission(make_emission("e2", seconds=4, caused_by="p2", entity_refs=[ALICE_LABELLED]))
    assert ids(store.get_unresolved_outcome_signals(**WIDE)) == ["p3"]
    # With an entity filter, only emissions carrying that exact ref resolve.
    assert ids(store.get_unresolved_outcome_signals(**WIDE, entity_ref=ALICE)) == ["p2"]
    assert ids(store.get_unresolved_outcome_signals(**WIDE, entity_ref=ALICE_LABELLED)) == []


def test_sources_filter_applies_to_signals_only(store, make_signal, make_emission):
    store.write_signal(make_signal("a", seconds=1, payload_type="OutcomePending", source="x"))
    store.write_signal(make_signal("b", seconds=2, payload_type="OutcomePending", source="y"))
    store.write_signal(make_signal("c", seconds=3, payload_type="OutcomePending", source="x"))
    store.write_emission(make_emission("e", seconds=4, caused_by="c"))
    assert ids(store.get_unresolved_outcome_signals(**WIDE, sources=["x"])) == ["a"]
    assert ids(store.get_unresolved_outcome_signals(**WIDE, sources=[])) == ["a", "b"]


def test_custom_type_lists_replace_defaults_and_empty_lists_mean_defaults(store, make_signal, make_emission):
    store.write_signal(make_signal("p", seconds=1, payload_type="OutcomePending"))
    store.write_signal(make_signal("q", seconds=2, payload_type="Ask"))
    store.write_signal(make_signal("r", seconds=3, payload_type="Ask"))
    store.write_emission(make_emission("e1", seconds=4, emission_type="OutcomeSuccess", caused_by="p"))
    store.write_emission(make_emission("e2", seconds=4, emission_type="Yes", caused_by="q"))
    store.write_emission(make_emission("e3", seconds=4, emission_type="No", caused_by="r"))
    assert ids(store.get_unresolved_outcome_signals(**WIDE)) == []
    assert ids(store.get_unresolved_outcome_signals(**WIDE, pending_payload_types=["Ask"])) == ["q", "r"]
    assert ids(
        store.get_unresolved_outcome_signals(
            **WIDE, pending_payload_types=["Ask"], success_emission_types=["Yes"]
        )
    ) == ["r"]
    assert ids(
        store.get_unresolved_outcome_signals(
            **WIDE, pending_payload_types=["Ask", "OutcomePending"], success_emission_types=["Yes"]
        )
    ) == ["p", "r"]
    assert ids(
        store.get_unresolved_outcome_signals(
            **WIDE,
            pending_payload_types=["Ask"],
            success_emission_types=["Nope"],
            failure_emission_types=["No"],
        )
    ) == ["q"]
    assert (
        ids(
            store.get_unresolved_outcome_signals(
                **WIDE, pending_payload_types=[], success_emission_types=[], failure_emission_types=[]
            )
        )
        == []
    )


# --------------------------------------------------------------------------- expiry


EXPIRY_TEXTS = [
    "2026-02-05T11:59:59Z",
    "2026-02-05T11:59:59.999999Z",
    "2026-02-05T12:00:00Z",
    "2026-02-05T12:00:00.000001Z",
    "2026-02-05T12:00:00+00:00",
    "2026-02-05T13:30:00+02:00",
    "2026-02-05T07:00:00-05:00",
    "2026-02-05T06:59:59-05:00",
    "2026-02-05T11:00:00",
    "2026-02-05T12:30:00",
    "2026-02-05",
    "2026-02-06",
    "2026-02-05 11:00:00Z",
    "2026-02-05T11:00Z",
    "2026-02-05T11Z",
    "2026-02-05T11:00:00.5Z",
    "2026-02-05T11:59:59,9999999Z",
    "2026-02-05T12:00:00.0000009Z",
    "20260205T115959Z",
    "2026-W06-4T11:00:00Z",
    "2026-02-05T13:00:00+0200",
    "2026-02-05T11:00:00z",
    "2026-02-05T11:00:00ZZ",
    " 2026-02-05T11:00:00Z",
    "2026-02-05T11:00:00Z ",
    "2026-02-30T00:00:00Z",
    "2026-02-05T24:00:00Z",
    "1970-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
    "soon",
    "",
    "Z",
    "NULL",
    "'; DROP TABLE signals; --",
]


@pytest.mark.parametrize("text", EXPIRY_TEXTS)
def test_expires_at_parsing(store, make_signal, text):
    store.write_signal(
        make_signal("p", timestamp=at(-60), payload_type="OutcomePending", payload={"expires_at": text})
    )
    parsed = parse_expiry(text)
    expected_expired = parsed is not None and parsed < NOW
    got = ids(store.get_expired_outcome_signals(now=NOW, **WIDE))
    assert got == (["p"] if expected_expired else [])
    buckets = store.get_outcome_window_buckets(now=NOW, **WIDE)
    assert ids(buckets["expired"]) == (["p"] if expected_expired else [])
    assert ids(buckets["pending"]) == ([] if expected_expired else ["p"])


def test_expiry_parsing_samples_are_meaningful():
    """Guard against the parametrised list silently testing only one outcome."""
    results = [parse_expiry(t) for t in EXPIRY_TEXTS]
    assert sum(r is not None and r < NOW for r in results) >= 10
    assert sum(r is not None and r >= NOW for r in results) >= 5
    assert sum(r is None for r in results) >= 8


@pytest.mark.parametrize(
    "value", [1770292800, 1770292800.0, None, True, ["2026-01-01T00:00:00Z"], {"at": "2026-01-01"}]
)
def test_non_string_expires_at_never_expires(store, make_signal, value):
    store.write_signal(
        make_signal("p", seconds=-60, payload_type="OutcomePending", payload={"expires_at": value})
    )
    assert store.get_expired_outcome_signals(now=NOW, **WIDE) == []
    assert ids(store.get_outcome_window_buckets(now=NOW, **WIDE)["pending"]) == ["p"]


def test_missing_expiry_and_non_dict_payload_stay_pending(store, make_signal):
    store.write_signal(make_signal("missing", seconds=-3, payload_type="OutcomePending", payload={"x": 1}))
    store.write_signal(
        make_signal("list", seconds=-2, payload_type="OutcomePending", payload=["2020-01-01T00:00:00Z"])
    )
    store.write_signal(
        make_signal("str", seconds=-1, payload_type="OutcomePending", payload="2020-01-01T00:00:00Z")
    )
    assert store.get_expired_outcome_signals(now=NOW, **WIDE) == []
    assert ids(store.get_outcome_window_buckets(now=NOW, **WIDE)["pending"]) == ["missing", "list", "str"]


def test_now_is_naive_utc_and_aware_converted(store, make_signal):
    store.write_signal(
        make_signal(
            "p", seconds=-60, payload_type="OutcomePending", payload={"expires_at": "2026-02-05T12:00:00Z"}
        )
    )
    assert store.get_expired_outcome_signals(now=NOW.replace(tzinfo=None), **WIDE) == []
    naive_later = (NOW + timedelta(microseconds=1)).replace(tzinfo=None)
    assert ids(store.get_expired_outcome_signals(now=naive_later, **WIDE)) == ["p"]
    plus1 = timezone(timedelta(hours=1))
    assert ids(
        store.get_expired_outcome_signals(now=datetime(2026, 2, 5, 13, 0, 1, tzinfo=plus1), **WIDE)
    ) == ["p"]
    assert store.get_expired_outcome_signals(now=datetime(2026, 2, 5, 13, 0, 0, tzinfo=plus1), **WIDE) == []


def test_custom_expires_at_field(store, make_signal):
    store.write_signal(
        make_signal(
            "p",
            seconds=-60,
            payload_type="OutcomePending",
            payload={"deadline": "2026-01-01T00:00:00Z", "expires_at": "2027-01-01T00:00:00Z"},
        )
    )
    assert ids(store.get_expired_outcome_signals(now=NOW, **WIDE, expires_at_field="deadline")) == ["p"]
    assert store.get_expired_outcome_signals(now=NOW, **WIDE) == []
    assert store.get_expired_outcome_signals(now=NOW, **WIDE, expires_at_field="nope") == []
    buckets = store.get_outcome_window_buckets(now=NOW, **WIDE, expires_at_field="deadline")
    assert ids(buckets["expired"]) == ["p"] and buckets["pending"] == []


def test_expired_excludes_resolved_and_sorts(store, make_signal, make_emission):
    old = {"expires_at": "2026-01-01T00:00:00Z"}
    for name in ["c", "a", "b"]:
        store.write_signal(
            make_signal(name, timestamp=at(-5), payload_type="EvaluationRequested", payload=old)
        )
    store.write_signal(make_signal("first", timestamp=at(-9), payload_type="OutcomePending", payload=old))
    store.write_signal(make_signal("done", timestamp=at(-9), payload_type="OutcomePending", payload=old))
    store.write_signal(make_signal("not_pending", timestamp=at(-9), payload_type="Other", payload=old))
    store.write_emission(
        make_emission("e", timestamp=at(-1), emission_type="DraftRejected", caused_by="done")
    )
    assert ids(store.get_expired_outcome_signals(now=NOW, **WIDE)) == ["first", "a", "b", "c"]
    assert ids(store.get_expired_outcome_signals(now=NOW, **WIDE, pending_payload_types=["Other"])) == [
        "not_pending"
    ]


# --------------------------------------------------------------------------- buckets


def test_outcome_window_buckets(store, make_signal, make_emission):
    expired_payload = {"expires_at": "2026-02-01T00:00:00Z"}
    future_payload = {"expires_at": "2026-03-01T00:00:00Z"}
    store.write_signal(
        make_signal("p_future", timestamp=at(1), payload_type="OutcomePending", payload=future_payload)
    )
    store.write_signal(
        make_signal("p_expired", timestamp=at(2), payload_type="OutcomePending", payload=expired_payload)
    )
    store.write_signal(
        make_signal("p_done", timestamp=at(3), payload_type="OutcomePending", payload=expired_payload)
    )
    store.write_signal(make_signal("p_fail", timestamp=at(3), payload_type="EvaluationRequested"))
    store.write_signal(make_signal("x_other", timestamp=at(4), payload_type="Other", payload=expired_payload))
    store.write_emission(
        make_emission("s2", timestamp=at(6), emission_type="OutcomeSuccess", caused_by="p_done")
    )
    store.write_emission(
        make_emission("s1", timestamp=at(6), emission_type="DraftApproved", caused_by="unrelated")
    )
    store.write_emission(
        make_emission("f1", timestamp=at(5), emission_type="OutcomeFailure", caused_by="p_fail")
    )
    store.write_emission(make_emission("f0", timestamp=at(7), emission_type="DraftRejected", caused_by="zzz"))
    store.write_emission(make_emission("o1", timestamp=at(5), emission_type="Other", caused_by="p_future"))

    buckets = store.get_outcome_window_buckets(now=NOW, **WIDE)
    assert set(buckets) == BUCKET_KEYS
    assert ids(buckets["pending"]) == ["p_future"]
    assert ids(buckets["expired"]) == ["p_expired"]
    assert ids(buckets["success"]) == ["s1", "s2"]
    assert ids(buckets["failure"]) == ["f1", "f0"]
    assert all(isinstance(v, list) for v in buckets.values())

    narrow = store.get_outcome_window_buckets(now=NOW, start=at(1), end=at(5))
    assert ids(narrow["pending"]) == ["p_future"]  # f1 (at 5) resolves p_fail, s2 (at 6) is outside
    assert ids(narrow["expired"]) == ["p_expired", "p_done"]
    assert ids(narrow["success"]) == []
    assert ids(narrow["failure"]) == ["f1"]

    custom = store.get_outcome_window_buckets(
        now=NOW, **WIDE, success_emission_types=["Other"], failure_emission_types=["DraftRejected"]
    )
    assert ids(custom["pending"]) == ["p_fail"]
    assert ids(custom["expired"]) == ["p_expired", "p_done"]
    assert ids(custom["success"]) == ["o1"]
    assert ids(custom["failure"]) == ["f0"]

    defaults = store.get_outcome_window_buckets(
        now=NOW, **WIDE, pending_payload_types=[], success_emission_types=[], failure_emission_types=[]
    )
    assert defaults == buckets


def test_buckets_with_entity_and_source_filters(store, make_signal, make_emission):
    store.write_signal(
        make_signal("a", seconds=1, payload_type="OutcomePending", entity_refs=[ALICE], source="x")
    )
    store.write_signal(
        make_signal("b", seconds=2, payload_type="OutcomePending", entity_refs=[ALICE], source="y")
    )
    store.write_signal(make_signal("c", seconds=3, payload_type="OutcomePending", source="x"))
    store.write_emission(make_emission("ea", seconds=4, caused_by="a"))
    store.write_emission(make_emission("eb", seconds=4, caused_by="b", entity_refs=[ALICE]))
    store.write_emission(make_emission("ec", seconds=4, caused_by="c", emission_type="DraftRejected"))
    by_alice = store.get_outcome_window_buckets(now=NOW, **WIDE, entity_ref=ALICE)
    assert ids(by_alice["pending"]) == ["a"]
    assert ids(by_alice["success"]) == ["eb"]
    assert by_alice["failure"] == []
    by_source = store.get_outcome_window_buckets(now=NOW, **WIDE, sources=["x"])
    assert by_source["pending"] == []
    assert ids(by_source["success"]) == ["ea", "eb"]  # sources never filter emissions
    assert ids(by_source["failure"]) == ["ec"]


def test_overlapping_success_and_failure_types(store, make_signal, make_emission):
    store.write_emission(make_emission("e", seconds=1, emission_type="Both", caused_by="x"))
    buckets = store.get_outcome_window_buckets(
        now=NOW, **WIDE, success_emission_types=["Both"], failure_emission_types=["Both"]
    )
    assert ids(buckets["success"]) == ["e"] and ids(buckets["failure"]) == ["e"]


def test_bucket_envelopes_equal_written(store, make_signal, make_emission):
    sig = make_signal(
        "p", seconds=1, payload_type="OutcomePending", payload={"expires_at": "2026-01-01", "n": [1]}
    )
    pend = make_signal("q", seconds=2, payload_type="OutcomePending", payload={"k": {"v": None}})
    em = make_emission("e", seconds=3, payload={"ok": True}, caused_by="zz", entity_refs=[ALICE])
    store.write_signals([sig, pend])
    store.write_emission(em)
    buckets = store.get_outcome_window_buckets(now=NOW, **WIDE)
    assert buckets == {"pending": [pend], "expired": [sig], "success": [em], "failure": []}
