"""Property tests: random workspaces written through the public API, every read method compared
with the in-Python model in ``oracle.py``.

Workspaces are small (<= 60 records) but adversarial: duplicate ids with other timestamps, records
written out of time order, ties on timestamps, refs differing only in platform/label/schema_version,
non-dict payloads, bool/int/float/str/missing scores, filter values with quotes, semicolons, SQL
fragments and unicode, and windows whose bounds sit exactly on record timestamps.

Every property runs in every store state (tests/states.py): the script is written in two rounds
with a read in between, so the second round writes into the state the first read left (late
writes and duplicates into compacted days, appends after saved parses and bulk-parsed files).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from metaspn_schemas import EmissionEnvelope, EntityRef, SignalEnvelope, TraceContext
from oracle import Oracle
from states import ORACLE_EXAMPLES, STATES, StateStore

from metaspn_store import ReplayCheckpoint

UTC = timezone.utc
DAY0 = datetime(2026, 2, 4, tzinfo=UTC)
EPOCH_WIDE = {"start": datetime(2000, 1, 1, tzinfo=UTC), "end": datetime(2030, 1, 1, tzinfo=UTC)}

pytestmark = pytest.mark.store_states(*STATES)

SETTINGS = settings(
    max_examples=45,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# --------------------------------------------------------------------------- pools

SIGNAL_IDS = [f"s{i}" for i in range(10)] + ["s'q", 's"dq', "s;--", "ü☃"]
EMISSION_IDS = [f"e{i}" for i in range(8)] + ["e'1", "e;DROP"]
SOURCES = [
    "ingest",
    "ingest.web",
    "ingestion",
    "rec",
    "rec.v2.deep",
    "o'brien",
    'say "hi"',
    "a;b",
    "'; DROP TABLE signals; --",
    "ünï☃",
    "%",
    "_",
    "",
]
STAGES = ["ingest", "rec", "a;b", "ingest.web", "", "%"]
PAYLOAD_TYPES = [
    "OutcomePending",
    "EvaluationRequested",
    "RecommendationAttempted",
    "SocialPostSeen",
    "EntityResolved",
    "EntityMerged",
    "EntityAliasAdded",
    "Candidate",
    "x' OR '1'='1",
    "Ünï",
]
EMISSION_TYPES = ["OutcomeSuccess", "OutcomeFailure", "DraftApproved", "DraftRejected", "Other", 'x"; --']
REFS = [
    EntityRef("person", "alice", platform="twitter"),
    EntityRef("person", "alice", platform="github"),
    EntityRef("person", "alice", platform="twitter", label="A"),
    EntityRef("person", "alice", platform="twitter", schema_version="0.1"),
    EntityRef("person", "alice"),
    EntityRef("person", "alice", platform="None"),  # same unique key text as platform=None
    EntityRef("person", "o'neil;--", platform="twitter"),
    EntityRef("org", "alice", platform="twitter"),
    EntityRef("a:b", "c", platform="d"),  # key "a:b:d:c"
    EntityRef("a", "c", platform="b:d"),  # key "a:b:d:c" too
]
FILTER_VALUES: list[Any] = [
    "t1",
    "t2",
    "",
    "it's",
    'q"uote',
    "; DROP TABLE x; --",
    "ü",
    1,
    1.0,
    True,
    False,
    0,
    None,
]
STATUS_VALUES: list[Any] = ["READY", "ready", "open", "kept", 1, True, None, "x';--", 0.0]

SECONDS = [0, 1, 59, 3600, 43200, 86399]
MICROS = [0, 1, 500000, 999999]
ZONES = [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8)), None]


@st.composite
def instants(draw) -> datetime:
    """A UTC instant from a small grid (so ties and exact window bounds are common)."""
    return DAY0 + timedelta(
        days=draw(st.integers(0, 3)),
        seconds=draw(st.sampled_from(SECONDS)),
        microseconds=draw(st.sampled_from(MICROS)),
    )


@st.composite
def written_times(draw) -> datetime:
    """An instant expressed in some zone (or naive = UTC), as a caller might pass it."""
    when = draw(instants())
    zone = draw(st.sampled_from(ZONES))
    return when.replace(tzinfo=None) if zone is None else when.astimezone(zone)


@st.composite
def expiry_values(draw) -> Any:
    choice = draw(st.integers(0, 3))
    if choice == 0:
        return draw(
            st.sampled_from(
                [
                    "2026-02-04T00:00:00Z",
                    "2026-02-06",
                    "20260205T120000Z",
                    "2026-02-05T12:00:00z",
                    "2026-W06-4T11:00:00Z",
                    "2026-02-05T11:59:59,9999999Z",
                    "nope",
                    "",
                    "2026-02-30T00:00:00Z",
                    123,
                    None,
                    True,
                ]
            )
        )
    when = draw(instants())
    style = draw(st.sampled_from(["Z", "+00:00", "naive", "offset", "space"]))
    if style == "Z":
        return when.isoformat().replace("+00:00", "Z")
    if style == "+00:00":
        return when.isoformat()
    if style == "naive":
        return when.replace(tzinfo=None).isoformat()
    if style == "offset":
        return when.astimezone(timezone(timedelta(hours=-3))).isoformat()
    return when.isoformat(sep=" ").replace("+00:00", "Z")


SCORES = st.one_of(
    st.booleans(),
    st.integers(-3, 3),
    st.sampled_from([0.0, -0.0, 1.0, 2.0, 2.5, -1.5]),
    st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
    st.sampled_from(["1", "", "NaN", "3.5"]),
    st.none(),
    st.just([1]),
)

JSONISH = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**31), 2**31), st.text(max_size=6)),
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(st.text(max_size=4), children, max_size=3)
    ),
    max_leaves=6,
)

DICT_PAYLOADS = st.fixed_dictionaries(
    {},
    optional={
        "score": SCORES,
        "status": st.one_of(st.just("READY"), st.sampled_from(STATUS_VALUES)),
        "token_id": st.sampled_from(FILTER_VALUES),
        "project_entity_id": st.sampled_from(FILTER_VALUES),
        "promise_id": st.sampled_from(FILTER_VALUES),
        "expires_at": expiry_values(),
        "extra": JSONISH,
    },
)

OUTCOME_PAYLOADS = st.fixed_dictionaries(
    {"expires_at": expiry_values()},
    optional={"status": st.sampled_from(STATUS_VALUES), "score": SCORES},
)

PAYLOADS = st.one_of(
    DICT_PAYLOADS,
    DICT_PAYLOADS,
    DICT_PAYLOADS,
    OUTCOME_PAYLOADS,
    OUTCOME_PAYLOADS,
    st.none(),
    st.integers(-5, 5),
    st.text(max_size=5),
    st.lists(st.integers(0, 3), max_size=3),
    st.floats(-10, 10, allow_nan=False),
)

TRACES = st.one_of(
    st.none(),
    st.builds(
        TraceContext,
        trace_id=st.sampled_from(["t1", "t'2"]),
        caused_by=st.lists(st.sampled_from(SIGNAL_IDS), max_size=2).map(tuple),
        metadata=st.dictionaries(st.sampled_from(["k", "k;2"]), st.text(max_size=3), max_size=2),
    ),
)


@st.composite
def signals(draw) -> SignalEnvelope:
    return SignalEnvelope(
        signal_id=draw(st.sampled_from(SIGNAL_IDS)),
        timestamp=draw(written_times()),
        source=draw(st.sampled_from(SOURCES)),
        payload_type=draw(st.one_of(st.sampled_from(PAYLOAD_TYPES), st.sampled_from(PAYLOAD_TYPES[:4]))),
        payload=draw(PAYLOADS),
        entity_refs=tuple(draw(st.lists(st.sampled_from(REFS), max_size=2))),
        trace=draw(TRACES),
        raw=draw(st.one_of(st.none(), st.dictionaries(st.sampled_from(["html", "n"]), JSONISH, max_size=2))),
    )


@st.composite
def emissions(draw) -> EmissionEnvelope:
    payload = draw(
        st.one_of(
            st.fixed_dictionaries(
                {},
                optional={
                    "promise_id": st.sampled_from(FILTER_VALUES),
                    "status": st.sampled_from(STATUS_VALUES),
                    "extra": JSONISH,
                },
            ),
            st.none(),
            st.lists(st.integers(0, 2), max_size=2),
            st.text(max_size=3),
        )
    )
    return EmissionEnvelope(
        emission_id=draw(st.sampled_from(EMISSION_IDS)),
        timestamp=draw(written_times()),
        emission_type=draw(st.sampled_from(EMISSION_TYPES)),
        payload=payload,
        caused_by=draw(st.sampled_from(SIGNAL_IDS + ["", "nobody"])),
        entity_refs=tuple(draw(st.lists(st.sampled_from(REFS), max_size=2))),
        trace=draw(TRACES),
    )


@st.composite
def workspaces(draw) -> dict[str, Any]:
    """The write script: records in write order, how they are grouped into batch calls."""
    sigs = draw(st.lists(signals(), min_size=5, max_size=40))
    ems = draw(st.lists(emissions(), max_size=20))
    batch_sizes = draw(st.lists(st.integers(1, 8), min_size=1, max_size=8))
    return {
        "signals": sigs,
        "emissions": ems,
        "batch_sizes": batch_sizes,
        "reopen": draw(st.booleans()),
        # How many of the last records of each kind are written after a first read.
        "late_signals": draw(st.integers(0, min(len(sigs), 10))),
        "late_emissions": draw(st.integers(0, min(len(ems), 5))),
    }


@st.composite
def optional_list(draw, pool: list[Any]) -> list[Any] | None:
    """Mostly no filter (None), sometimes an empty list (also no filter), sometimes a real list."""
    roll = draw(st.integers(0, 9))
    if roll < 7:
        return None
    if roll == 7:
        return []
    return draw(st.lists(st.sampled_from(pool), min_size=1, max_size=4))


@st.composite
def maybe(draw, strategy: st.SearchStrategy, none_weight: int = 5) -> Any:
    """None (no filter) with probability none_weight/10, else a value from strategy."""
    if draw(st.integers(0, 9)) < none_weight:
        return None
    return draw(strategy)


@st.composite
def windows(draw) -> tuple[datetime, datetime]:
    if draw(st.integers(0, 4)) == 0:
        return EPOCH_WIDE["start"], EPOCH_WIDE["end"]
    a, b = draw(instants()), draw(instants())
    if a > b:
        a, b = b, a
    # Shift a bound by one microsecond now and then, to sit just inside/outside a record.
    a = a + timedelta(microseconds=draw(st.sampled_from([0, 0, 0, 1, -1])))
    b = b + timedelta(microseconds=draw(st.sampled_from([0, 0, 0, 1, -1])))
    if b < a:
        a, b = b, a
    zone = draw(st.sampled_from(ZONES))
    if zone is None:
        return a.replace(tzinfo=None), b.replace(tzinfo=None)
    return a.astimezone(zone), b.astimezone(zone)


# --------------------------------------------------------------------------- harness


def write_all(
    store: StateStore,
    oracle: Oracle,
    sigs: list[SignalEnvelope],
    ems: list[EmissionEnvelope],
    sizes: list[int],
) -> None:
    """Write records through the public API (single and batch calls) and check returned paths."""

    def rel(path: Path) -> PurePosixPath:
        return PurePosixPath(Path(path).relative_to(store.store_root).as_posix())

    for records, one, many, model in (
        (sigs, store.write_signal, store.write_signals, oracle.write_signal),
        (ems, store.write_emission, store.write_emissions, oracle.write_emission),
    ):
        i = 0
        turn = 0
        while i < len(records):
            size = sizes[turn % len(sizes)]
            turn += 1
            chunk = records[i : i + size]
            i += size
            expected = [model(r) for r in chunk]
            if size == 1:
                got = [one(chunk[0])]
            else:
                got = many(chunk)
            assert [rel(p) for p in got] == expected


def outcome(fn, *args: Any, **kwargs: Any) -> Any:
    try:
        result = fn(*args, **kwargs)
        if isinstance(result, dict):
            return ("ok", {k: list(v) for k, v in result.items()})
        if result is None or isinstance(result, ReplayCheckpoint):
            return ("ok", result)
        return ("ok", list(result))
    except ValueError:
        return ("ValueError",)


def describe(result: Any) -> Any:
    if result[0] != "ok":
        return result
    value = result[1]
    if isinstance(value, dict):
        return {
            k: [getattr(r, "signal_id", None) or getattr(r, "emission_id", None) for r in v]
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [
            (getattr(r, "signal_id", None) or getattr(r, "emission_id", None), str(r.timestamp))
            for r in value
        ]
    return value


def same(store: StateStore, oracle: Oracle, name: str, *args: Any, **kwargs: Any) -> None:
    expected = outcome(getattr(oracle, name), *args, **kwargs)
    actual = outcome(getattr(store, name), *args, **kwargs)
    assert actual == expected, (
        f"{name}({args}, {kwargs}):\n  store:  {describe(actual)}\n  oracle: {describe(expected)}"
    )


def build(script: dict[str, Any], root: str, store_state: str) -> tuple[StateStore, Oracle]:
    store = StateStore(Path(root) / "ws", store_state)
    oracle = Oracle()
    sigs, ems, sizes = script["signals"], script["emissions"], script["batch_sizes"]
    n_sigs, n_ems = len(sigs) - script["late_signals"], len(ems) - script["late_emissions"]
    write_all(store, oracle, sigs[:n_sigs], ems[:n_ems], sizes)
    if n_sigs < len(sigs) or n_ems < len(ems):
        # A first read applies the state; the second round is written into that state.
        same(store, oracle, "iter_signals", EPOCH_WIDE["start"], EPOCH_WIDE["end"])
        same(store, oracle, "iter_emissions", EPOCH_WIDE["start"], EPOCH_WIDE["end"])
        for kind, day in store.compacted:
            oracle.compacted(kind, date.fromisoformat(day))
        write_all(store, oracle, sigs[n_sigs:], ems[n_ems:], sizes)
    if script["reopen"]:
        store.reopen_now()
    return store, oracle


def check_property(store_state: str, body: Callable[..., None], **strategies: Any) -> None:
    """Run ``body(store_state, **drawn)`` as a hypothesis test with the state's example budget."""

    def run(**drawn: Any) -> None:
        body(store_state, **drawn)

    # Its own name per property and state: hypothesis keys its example database on it.
    run.__name__ = run.__qualname__ = f"{body.__name__}__{store_state.replace('-', '_')}"
    settings(SETTINGS, max_examples=ORACLE_EXAMPLES[store_state])(given(**strategies)(run))()


@st.composite
def checkpoints(draw, replay: list[SignalEnvelope]) -> ReplayCheckpoint | None:
    """None, an arbitrary checkpoint, or one a worker would build after a prefix of the replay."""
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return None
    if kind == 1 or not replay:
        return ReplayCheckpoint(
            last_timestamp=draw(instants()),
            seen_ids_at_timestamp=tuple(draw(st.lists(st.sampled_from(SIGNAL_IDS), max_size=4))),
        )
    k = draw(st.integers(1, len(replay)))
    return Oracle().build_signal_checkpoint(replay[:k])


# --------------------------------------------------------------------------- properties


def test_replay_views_match_oracle(store_state):
    check_property(
        store_state, _replay_views_match_oracle, script=workspaces(), window=windows(), data=st.data()
    )


def _replay_views_match_oracle(store_state, script, window, data):
    with tempfile.TemporaryDirectory() as root:
        store, oracle = build(script, root, store_state)
        start, end = window
        ref = data.draw(maybe(st.sampled_from(REFS), 7), label="entity_ref")
        sources = data.draw(optional_list(SOURCES), label="sources")
        payload_types = data.draw(optional_list(PAYLOAD_TYPES), label="payload_types")
        emission_types = data.draw(optional_list(EMISSION_TYPES), label="emission_types")
        checkpoint = data.draw(checkpoints(oracle.iter_signals(**EPOCH_WIDE)), label="checkpoint")

        # Round trip: everything written (first write wins) reads back equal, in replay order.
        same(store, oracle, "iter_signals", EPOCH_WIDE["start"], EPOCH_WIDE["end"])
        same(store, oracle, "iter_emissions", EPOCH_WIDE["start"], EPOCH_WIDE["end"])

        same(store, oracle, "iter_signals", start, end, ref, sources)
        same(store, oracle, "iter_signals", start, end, entity_ref=ref, sources=sources)
        same(store, oracle, "iter_emissions", start, end, ref, emission_types)
        same(
            store,
            oracle,
            "iter_learning_emissions",
            start=start,
            end=end,
            entity_ref=ref,
            emission_types=emission_types,
        )
        same(
            store,
            oracle,
            "iter_signals_from_checkpoint",
            end=end,
            checkpoint=checkpoint,
            start=data.draw(st.sampled_from([None, start]), label="cp_start"),
            entity_ref=ref,
            sources=sources,
        )
        same(
            store,
            oracle,
            "iter_entity_candidate_signals",
            start=start,
            end=end,
            resolved=data.draw(st.sampled_from([None, True, False]), label="resolved"),
            sources=sources,
        )
        same(
            store,
            oracle,
            "iter_stage_window_signals",
            stage=data.draw(st.sampled_from(STAGES), label="stage"),
            start=start,
            end=end,
            checkpoint=checkpoint,
            entity_ref=ref,
            sources=sources,
            payload_types=payload_types,
        )
        for name in ("iter_recommendation_signals", "iter_learning_signals"):
            same(
                store,
                oracle,
                name,
                start=start,
                end=end,
                checkpoint=checkpoint,
                entity_ref=ref,
                sources=sources,
                payload_types=payload_types,
            )


def test_read_models_match_oracle(store_state):
    check_property(
        store_state, _read_models_match_oracle, script=workspaces(), window=windows(), data=st.data()
    )


def _read_models_match_oracle(store_state, script, window, data):
    with tempfile.TemporaryDirectory() as root:
        store, oracle = build(script, root, store_state)
        start, end = window
        ref = data.draw(maybe(st.sampled_from(REFS), 7), label="entity_ref")
        sources = data.draw(optional_list(SOURCES), label="sources")
        payload_types = data.draw(optional_list(PAYLOAD_TYPES), label="payload_types")
        emission_types = data.draw(optional_list(EMISSION_TYPES), label="emission_types")
        limit = data.draw(st.sampled_from([-1, 0, 1, 2, 3, 7, 100, 100, 100]), label="limit")
        opt_limit = data.draw(st.sampled_from([None, None, None, -1, 0, 1, 3, 100]), label="opt_limit")
        some_start = data.draw(st.sampled_from([None, start]), label="maybe_start")
        some_end = data.draw(st.sampled_from([None, end]), label="maybe_end")

        required_ref = data.draw(st.sampled_from(REFS), label="required_ref")
        same(
            store,
            oracle,
            "get_recent_signals_by_entity",
            entity_ref=required_ref,
            limit=limit,
            start=some_start,
            end=some_end,
            sources=sources,
        )
        same(
            store,
            oracle,
            "get_last_posts_by_entity",
            entity_ref=required_ref,
            limit=limit,
            start=some_start,
            end=some_end,
            sources=sources,
            payload_types=payload_types,
        )
        same(
            store,
            oracle,
            "get_recent_signals_by_source",
            source=data.draw(st.sampled_from(SOURCES), label="source"),
            limit=limit,
            start=some_start,
            end=some_end,
            entity_ref=ref,
        )
        same(
            store,
            oracle,
            "get_top_recommendation_candidates",
            start=start,
            end=end,
            limit=limit,
            entity_ref=ref,
            sources=sources,
            payload_types=payload_types,
            score_field=data.draw(
                st.sampled_from(["score", "score", "status", "extra", "nope"]), label="score_field"
            ),
            unique_by_entity=data.draw(st.booleans(), label="unique"),
        )
        same(
            store,
            oracle,
            "get_ready_candidates",
            start=start,
            end=end,
            limit=opt_limit,
            entity_ref=ref,
            sources=sources,
            ready_field=data.draw(
                st.sampled_from(["status", "status", "token_id", "score", "nope"]), label="ready_field"
            ),
            ready_value=data.draw(
                st.one_of(st.just("READY"), st.sampled_from(STATUS_VALUES + FILTER_VALUES)),
                label="ready_value",
            ),
            payload_types=payload_types,
        )
        same(
            store,
            oracle,
            "get_token_signals",
            start=start,
            end=end,
            token_id=data.draw(maybe(st.sampled_from(FILTER_VALUES)), label="token_id"),
            project_entity_id=data.draw(maybe(st.sampled_from(FILTER_VALUES), 7), label="project_entity_id"),
            entity_ref=ref,
            sources=sources,
            payload_types=payload_types,
            limit=opt_limit,
        )
        same(
            store,
            oracle,
            "get_promise_signals",
            start=start,
            end=end,
            promise_id=data.draw(maybe(st.sampled_from(FILTER_VALUES)), label="promise_id"),
            status=data.draw(maybe(st.sampled_from(STATUS_VALUES)), label="status"),
            entity_ref=ref,
            sources=sources,
            payload_types=payload_types,
            limit=opt_limit,
        )
        same(
            store,
            oracle,
            "get_promise_outcomes_for_window",
            start=start,
            end=end,
            promise_id=data.draw(maybe(st.sampled_from(FILTER_VALUES)), label="e_promise_id"),
            status=data.draw(maybe(st.sampled_from(STATUS_VALUES)), label="e_status"),
            entity_ref=ref,
            emission_types=emission_types,
        )
        same(
            store,
            oracle,
            "get_outcomes_for_window",
            start=start,
            end=end,
            entity_ref=ref,
            emission_types=emission_types,
        )
        same(
            store,
            oracle,
            "get_latest_draft_signals",
            limit=limit,
            start=start,
            end=end,
            entity_ref=ref,
            sources=sources,
            payload_types=payload_types,
        )
        same(
            store,
            oracle,
            "get_latest_approval_outcomes",
            limit=limit,
            start=start,
            end=end,
            entity_ref=ref,
            emission_types=emission_types,
        )

        # The same read models with no filters over the whole workspace, so that every example
        # compares non-trivial answers (ranking, ties, uniqueness, Python == on payload values).
        whole = dict(EPOCH_WIDE)
        same(
            store,
            oracle,
            "get_top_recommendation_candidates",
            **whole,
            limit=100,
            score_field=data.draw(st.sampled_from(["score", "score", "status"]), label="whole_score_field"),
            unique_by_entity=data.draw(st.booleans(), label="whole_unique"),
        )
        same(
            store,
            oracle,
            "get_ready_candidates",
            **whole,
            ready_value=data.draw(st.sampled_from(["READY", 1, None, True]), label="whole_ready_value"),
        )
        same(
            store,
            oracle,
            "get_token_signals",
            **whole,
            token_id=data.draw(st.sampled_from(FILTER_VALUES), label="tok"),
        )
        same(
            store,
            oracle,
            "get_promise_signals",
            **whole,
            status=data.draw(st.sampled_from(STATUS_VALUES), label="st"),
        )
        same(store, oracle, "get_last_posts_by_entity", entity_ref=required_ref, limit=3, **whole)
        same(store, oracle, "get_recent_signals_by_entity", entity_ref=required_ref, limit=3)
        same(store, oracle, "get_latest_draft_signals", limit=4, **whole)


def test_outcome_queries_match_oracle(store_state):
    check_property(
        store_state,
        _outcome_queries_match_oracle,
        script=workspaces(),
        window=windows(),
        now=st.one_of(
            instants(),
            st.just(datetime(2026, 3, 1, tzinfo=UTC)),
            st.just(datetime(2026, 2, 6, 12, tzinfo=UTC)),
        ),
        data=st.data(),
    )


def _outcome_queries_match_oracle(store_state, script, window, now, data):
    with tempfile.TemporaryDirectory() as root:
        store, oracle = build(script, root, store_state)
        start, end = window
        kwargs = {
            "start": start,
            "end": end,
            "entity_ref": data.draw(maybe(st.sampled_from(REFS), 7), label="entity_ref"),
            "sources": data.draw(optional_list(SOURCES), label="sources"),
            "pending_payload_types": data.draw(
                optional_list(PAYLOAD_TYPES[:4] + PAYLOAD_TYPES[7:8]),
                label="pending",
            ),
            "success_emission_types": data.draw(optional_list(EMISSION_TYPES), label="success"),
            "failure_emission_types": data.draw(optional_list(EMISSION_TYPES), label="failure"),
        }
        if data.draw(st.booleans(), label="naive_now"):
            now = now.replace(tzinfo=None)
        now = now + timedelta(microseconds=data.draw(st.sampled_from([0, 0, 1, -1]), label="now_shift"))
        field = data.draw(st.sampled_from(["expires_at", "expires_at", "status", "nope"]), label="field")
        same(store, oracle, "get_unresolved_outcome_signals", **kwargs)
        same(store, oracle, "get_expired_outcome_signals", now=now, expires_at_field=field, **kwargs)
        same(store, oracle, "get_outcome_window_buckets", now=now, expires_at_field=field, **kwargs)


def test_checkpoint_resume_matches_oracle(store_state):
    check_property(store_state, _checkpoint_resume_matches_oracle, script=workspaces(), data=st.data())


def _checkpoint_resume_matches_oracle(store_state, script, data):
    """Resuming from a checkpoint built on any prefix of the replay yields exactly the rest."""
    with tempfile.TemporaryDirectory() as root:
        store, oracle = build(script, root, store_state)
        sources = data.draw(optional_list(SOURCES), label="sources")
        ref = data.draw(maybe(st.sampled_from(REFS), 7), label="entity_ref")
        end = EPOCH_WIDE["end"]
        replay = list(store.iter_signals_from_checkpoint(end=end, entity_ref=ref, sources=sources))
        assert replay == oracle.iter_signals_from_checkpoint(end=end, entity_ref=ref, sources=sources)
        k = data.draw(st.integers(0, len(replay)), label="k")
        checkpoint = store.build_signal_checkpoint(replay[:k])
        assert checkpoint == oracle.build_signal_checkpoint(replay[:k])
        if checkpoint is not None:
            store.write_checkpoint("prop-worker", checkpoint)
            checkpoint = store.read_checkpoint("prop-worker")
        rest = list(
            store.iter_signals_from_checkpoint(
                end=end, checkpoint=checkpoint, entity_ref=ref, sources=sources
            )
        )
        assert rest == replay[k:]
        same(
            store,
            oracle,
            "iter_signals_from_checkpoint",
            end=end,
            checkpoint=checkpoint,
            entity_ref=ref,
            sources=sources,
        )


def test_end_before_start_always_raises(store_state):
    check_property(
        store_state, _end_before_start_always_raises, script=workspaces(), a=instants(), b=instants()
    )


def _end_before_start_always_raises(store_state, script, a, b):
    with tempfile.TemporaryDirectory() as root:
        store, oracle = build(script, root, store_state)
        if a == b:
            b = a + timedelta(microseconds=1)
        start, end = max(a, b), min(a, b)
        same(store, oracle, "iter_signals", start, end)
        same(store, oracle, "iter_emissions", start, end)
        same(store, oracle, "get_outcome_window_buckets", now=start, start=start, end=end)
        same(store, oracle, "get_top_recommendation_candidates", start=start, end=end, limit=5)
