"""Contract: public API surface, write path, on-disk layout and idempotency (0.1.8 semantics)."""

from __future__ import annotations

import inspect
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from metaspn_schemas import EmissionEnvelope, EntityRef, SignalEnvelope, TraceContext
from states import STATES

import metaspn_store
import metaspn_store.store
from metaspn_store import DuplicateEventError, FileSystemStore, ReplayCheckpoint

pytestmark = pytest.mark.store_states(*STATES)

UTC = timezone.utc
P = inspect.Parameter.POSITIONAL_OR_KEYWORD
K = inspect.Parameter.KEYWORD_ONLY
REQ = inspect.Parameter.empty

# Every public method of metaspn-store 0.1.8's FileSystemStore (read from its store.py):
# (name, kind, default) for each parameter after ``self``, in declaration order.
SIGNATURES_0_1_8: dict[str, list[tuple[str, object, object]]] = {
    "__init__": [("workspace", P, REQ)],
    "build_signal_checkpoint": [("processed_signals", P, REQ)],
    "get_expired_outcome_signals": [
        ("now", K, REQ),
        ("start", K, REQ),
        ("end", K, REQ),
        ("entity_ref", K, None),
        ("sources", K, None),
        ("pending_payload_types", K, None),
        ("success_emission_types", K, None),
        ("failure_emission_types", K, None),
        ("expires_at_field", K, "expires_at"),
    ],
    "get_last_posts_by_entity": [
        ("entity_ref", K, REQ),
        ("limit", K, REQ),
        ("start", K, None),
        ("end", K, None),
        ("sources", K, None),
        ("payload_types", K, None),
    ],
    "get_latest_approval_outcomes": [
        ("limit", K, REQ),
        ("start", K, REQ),
        ("end", K, REQ),
        ("entity_ref", K, None),
        ("emission_types", K, None),
    ],
    "get_latest_draft_signals": [
        ("limit", K, REQ),
        ("start", K, REQ),
        ("end", K, REQ),
        ("entity_ref", K, None),
        ("sources", K, None),
        ("payload_types", K, None),
    ],
    "get_outcome_window_buckets": [
        ("now", K, REQ),
        ("start", K, REQ),
        ("end", K, REQ),
        ("entity_ref", K, None),
        ("sources", K, None),
        ("pending_payload_types", K, None),
        ("success_emission_types", K, None),
        ("failure_emission_types", K, None),
        ("expires_at_field", K, "expires_at"),
    ],
    "get_outcomes_for_window": [
        ("start", K, REQ),
        ("end", K, REQ),
        ("entity_ref", K, None),
        ("emission_types", K, None),
    ],
    "get_promise_outcomes_for_window": [
        ("start", K, REQ),
        ("end", K, REQ),
        ("promise_id", K, None),
        ("status", K, None),
        ("entity_ref", K, None),
        ("emission_types", K, None),
    ],
    "get_promise_signals": [
        ("start", K, REQ),
        ("end", K, REQ),
        ("promise_id", K, None),
        ("status", K, None),
        ("entity_ref", K, None),
        ("sources", K, None),
        ("payload_types", K, None),
        ("limit", K, None),
    ],
    "get_ready_candidates": [
        ("start", K, REQ),
        ("end", K, REQ),
        ("limit", K, None),
        ("entity_ref", K, None),
        ("sources", K, None),
        ("ready_field", K, "status"),
        ("ready_value", K, "READY"),
        ("payload_types", K, None),
    ],
    "get_recent_signals_by_entity": [
        ("entity_ref", K, REQ),
        ("limit", K, REQ),
        ("start", K, None),
        ("end", K, None),
        ("sources", K, None),
    ],
    "get_recent_signals_by_source": [
        ("source", K, REQ),
        ("limit", K, REQ),
        ("start", K, None),
        ("end", K, None),
        ("entity_ref", K, None),
    ],
    "get_token_signals": [
        ("start", K, REQ),
        ("end", K, REQ),
        ("token_id", K, None),
        ("project_entity_id", K, None),
        ("entity_ref", K, None),
        ("sources", K, None),
        ("payload_types", K, None),
        ("limit", K, None),
    ],
    "get_top_recommendation_candidates": [
        ("start", K, REQ),
        ("end", K, REQ),
        ("limit", K, REQ),
        ("entity_ref", K, None),
        ("sources", K, None),
        ("payload_types", K, None),
        ("score_field", K, "score"),
        ("unique_by_entity", K, True),
    ],
    "get_unresolved_outcome_signals": [
        ("start", K, REQ),
        ("end", K, REQ),
        ("entity_ref", K, None),
        ("sources", K, None),
        ("pending_payload_types", K, None),
        ("success_emission_types", K, None),
        ("failure_emission_types", K, None),
    ],
    "iter_emissions": [
        ("start", P, REQ),
        ("end", P, REQ),
        ("entity_ref", P, None),
        ("emission_types", P, None),
    ],
    "iter_entity_candidate_signals": [
        ("start", K, REQ),
        ("end", K, REQ),
        ("resolved", K, None),
        ("sources", K, None),
    ],
    "iter_learning_emissions": [
        ("start", K, REQ),
        ("end", K, REQ),
        ("entity_ref", K, None),
        ("emission_types", K, None),
    ],
    "iter_learning_signals": [
        ("start", K, REQ),
        ("end", K, REQ),
        ("checkpoint", K, None),
        ("entity_ref", K, None),
        ("sources", K, None),
        ("payload_types", K, None),
    ],
    "iter_recommendation_signals": [
        ("start", K, REQ),
        ("end", K, REQ),
        ("checkpoint", K, None),
        ("entity_ref", K, None),
        ("sources", K, None),
        ("payload_types", K, None),
    ],
    "iter_signals": [
        ("start", P, REQ),
        ("end", P, REQ),
        ("entity_ref", P, None),
        ("sources", P, None),
    ],
    "iter_signals_from_checkpoint": [
        ("end", K, REQ),
        ("checkpoint", K, None),
        ("start", K, None),
        ("entity_ref", K, None),
        ("sources", K, None),
    ],
    "iter_stage_window_signals": [
        ("stage", K, REQ),
        ("start", K, REQ),
        ("end", K, REQ),
        ("checkpoint", K, None),
        ("entity_ref", K, None),
        ("sources", K, None),
        ("payload_types", K, None),
    ],
    "read_calibration_snapshot": [("day", P, REQ)],
    "read_checkpoint": [("name", P, REQ)],
    "read_credibility_snapshot": [("day", P, REQ)],
    "read_daily_digest_snapshot": [("day", P, REQ)],
    "write_calibration_snapshot": [("day", K, REQ), ("report", K, REQ)],
    "write_checkpoint": [("name", P, REQ), ("checkpoint", P, REQ)],
    "write_credibility_snapshot": [("day", K, REQ), ("report", K, REQ)],
    "write_daily_digest_snapshot": [("day", K, REQ), ("digest", K, REQ)],
    "write_emission": [("emission", P, REQ), ("on_duplicate", K, "return_existing")],
    "write_emissions": [("emissions", P, REQ), ("on_duplicate", K, "return_existing")],
    "write_signal": [("signal", P, REQ), ("on_duplicate", K, "return_existing")],
    "write_signals": [("signals", P, REQ), ("on_duplicate", K, "return_existing")],
    "write_snapshot": [("name", P, REQ), ("snapshot_state", P, REQ), ("snapshot_time", P, None)],
}

PUBLIC_NAMES = ("DuplicateEventError", "FileSystemStore", "ReplayCheckpoint", "RESOLVED_ENTITY_PAYLOAD_TYPES")


# --------------------------------------------------------------------------- API surface


@pytest.mark.parametrize("name", PUBLIC_NAMES)
def test_public_names_importable_from_both_paths(name):
    assert name in metaspn_store.__all__
    assert getattr(metaspn_store, name) is getattr(metaspn_store.store, name)


def test_duplicate_event_error_is_value_error():
    assert issubclass(DuplicateEventError, ValueError)


def test_resolved_entity_payload_types():
    value = metaspn_store.RESOLVED_ENTITY_PAYLOAD_TYPES
    assert isinstance(value, frozenset)
    assert value == frozenset({"EntityResolved", "EntityMerged", "EntityAliasAdded"})


@pytest.mark.parametrize("method", sorted(SIGNATURES_0_1_8))
def test_method_signature_matches_0_1_8(method):
    func = getattr(FileSystemStore, method, None)
    assert func is not None and callable(func), f"FileSystemStore.{method} is missing"
    params = list(inspect.signature(func).parameters.values())
    assert params and params[0].name == "self"
    params = params[1:]
    expected = SIGNATURES_0_1_8[method]

    expected_positional = [(n, d) for n, k, d in expected if k is P]
    actual_positional = [
        (p.name, p.default) for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    assert actual_positional == expected_positional, f"{method}: positional parameters differ"
    assert all(p.kind is not p.POSITIONAL_ONLY for p in params)

    actual_kw = {p.name: p for p in params if p.kind is K}
    for name, kind, default in expected:
        if kind is not K:
            continue
        assert name in actual_kw, f"{method}: keyword-only parameter {name!r} missing"
        assert actual_kw[name].default == default or actual_kw[name].default is default, (
            f"{method}: default of {name!r} is {actual_kw[name].default!r}, expected {default!r}"
        )
    # Additions are allowed only as optional keyword-only parameters (existing calls keep working).
    known = {n for n, _, _ in expected}
    for p in params:
        if p.name not in known:
            assert p.kind is K and p.default is not REQ, (
                f"{method}: new parameter {p.name!r} must be optional kw-only"
            )


def test_expected_keyword_only_defaults_are_exact_types():
    """``unique_by_entity=True`` must be the bool True, not 1; string defaults must be str."""
    sig = inspect.signature(FileSystemStore.get_top_recommendation_candidates)
    assert sig.parameters["unique_by_entity"].default is True
    sig = inspect.signature(FileSystemStore.get_ready_candidates)
    assert sig.parameters["ready_value"].default == "READY"
    assert sig.parameters["ready_field"].default == "status"


def test_replay_checkpoint_constructor():
    sig = inspect.signature(ReplayCheckpoint)
    assert list(sig.parameters) == ["last_timestamp", "seen_ids_at_timestamp", "schema_version"]
    assert sig.parameters["schema_version"].default == "0.1"
    assert sig.parameters["last_timestamp"].default is REQ
    cp = ReplayCheckpoint(datetime(2026, 2, 5, tzinfo=UTC))
    assert cp.seen_ids_at_timestamp == ()
    assert cp.schema_version == "0.1"


def test_workspace_attributes_and_folders(tmp_path):
    ws = tmp_path / "fresh"
    store = FileSystemStore(ws)
    assert store.workspace == ws
    assert store.store_root == ws / "store"
    assert store.signals_dir == ws / "store" / "signals"
    assert store.emissions_dir == ws / "store" / "emissions"
    assert store.snapshots_dir == ws / "store" / "snapshots"
    assert store.checkpoints_dir == ws / "store" / "checkpoints"
    for folder in ("signals", "emissions", "snapshots", "checkpoints"):
        assert (ws / "store" / folder).is_dir()


def test_workspace_accepts_str(tmp_path):
    store = FileSystemStore(str(tmp_path / "w"))
    assert isinstance(store.workspace, Path)
    assert store.signals_dir == tmp_path / "w" / "store" / "signals"


# --------------------------------------------------------------------------- layout


def first_record_location(store, kind: str, day: str) -> Path:
    """What write_* returns for a duplicate whose first record was stored on ``day``: its hot day
    file, or its Parquet day folder once the store state compacted that day (README, M0)."""
    if (kind, day) in getattr(store, "compacted", ()):
        return store.store_root / "cold" / kind / f"day={day}"
    return store.store_root / kind / f"{day}.jsonl"


def _lines(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n")
    lines = text.split("\n")[:-1]
    assert all(line.strip() for line in lines), "no blank lines in a partition"
    return lines


def test_write_signal_appends_one_json_object_per_line(store, make_signal, day_file):
    a = make_signal("a", seconds=0, payload={"score": 1})
    b = make_signal("b", seconds=5, payload=[1, "two"])
    path_a = store.write_signal(a)
    path_b = store.write_signal(b)
    expected = day_file(store.signals_dir, a.timestamp)
    assert path_a == expected and path_b == expected
    assert store.signals_dir / "2026-02-05.jsonl" == expected
    lines = _lines(expected)
    assert [json.loads(line) for line in lines] == [a.to_dict(), b.to_dict()]
    assert all("\n" not in line for line in lines)


def test_write_emission_layout(store, make_emission):
    e = make_emission("e1", seconds=0, caused_by="a")
    path = store.write_emission(e)
    assert path == store.emissions_dir / "2026-02-05.jsonl"
    assert [json.loads(line) for line in _lines(path)] == [e.to_dict()]
    assert list(store.signals_dir.iterdir()) == []


def test_partition_is_the_utc_day_of_the_timestamp(store, make_signal):
    tz_minus5 = timezone(timedelta(hours=-5))
    late_local = make_signal(
        "late", timestamp=datetime(2026, 2, 5, 21, 30, tzinfo=tz_minus5)
    )  # 02:30Z on the 6th
    naive = make_signal("naive", timestamp=datetime(2026, 2, 5, 23, 59, 59, 999999))  # naive = UTC
    tz_plus9 = timezone(timedelta(hours=9))
    early_local = make_signal(
        "early", timestamp=datetime(2026, 2, 6, 8, 0, tzinfo=tz_plus9)
    )  # 23:00Z on the 5th
    assert store.write_signal(late_local) == store.signals_dir / "2026-02-06.jsonl"
    assert store.write_signal(naive) == store.signals_dir / "2026-02-05.jsonl"
    assert store.write_signal(early_local) == store.signals_dir / "2026-02-05.jsonl"
    on_5th = [json.loads(line)["signal_id"] for line in _lines(store.signals_dir / "2026-02-05.jsonl")]
    assert on_5th == ["naive", "early"]
    record = json.loads(_lines(store.signals_dir / "2026-02-06.jsonl")[0])
    assert record["timestamp"] == "2026-02-06T02:30:00Z"


def test_write_returns_a_path(store, make_signal, make_emission):
    assert isinstance(store.write_signal(make_signal()), Path)
    assert isinstance(store.write_emission(make_emission()), Path)


# --------------------------------------------------------------------------- round trip


def _rich_signal(signal_id: str = "rich") -> SignalEnvelope:
    return SignalEnvelope(
        signal_id=signal_id,
        timestamp=datetime(2026, 2, 5, 10, 11, 12, 345678, tzinfo=timezone(timedelta(hours=2))),
        source="ingest.twitter",
        payload_type="SocialPostSeen",
        payload={
            "text": "héllo \"quoted\" 'single' ; DROP TABLE x; -- \n newline \t tab \x00 nul ☃ 🚀",
            "score": 0.1,
            "count": 3,
            "big": 2**53 + 1,
            "neg": -7,
            "flag": True,
            "nothing": None,
            "nested": {"list": [1, 2.5, "x", None, {"deep": [False]}], "empty": {}},
            "empty_list": [],
        },
        entity_refs=(
            EntityRef("person", "alice", platform="twitter", label="Alice", schema_version="0.7"),
            EntityRef("org", "acme"),
        ),
        trace=TraceContext(
            trace_id="t-1",
            caused_by=("x", "y"),
            provenance="unit",
            redactions=("email",),
            metadata={"k": "v"},
            privacy_mode=True,
        ),
        raw={"html": "<p>hi</p>", "n": [1, 2]},
    )


def test_signal_round_trip_is_equal(store, window):
    signal = _rich_signal()
    store.write_signal(signal)
    (back,) = list(store.iter_signals(window["start"], window["end"]))
    assert back == signal
    assert back.timestamp.tzinfo is not None and back.timestamp.utcoffset() == timedelta(0)
    assert isinstance(back.entity_refs, tuple)


def test_signal_round_trip_after_reopen(store, reopen, window):
    signal = _rich_signal()
    store.write_signal(signal)
    (back,) = list(reopen().iter_signals(window["start"], window["end"]))
    assert back == signal


@pytest.mark.parametrize(
    "payload",
    [None, 0, -1, 1.5, True, False, "text", "", [], [1, "a", None], {}, {"a": {"b": {"c": [1.25, -0.5]}}}],
    ids=repr,
)
def test_any_json_payload_round_trips(store, make_signal, make_emission, window, payload):
    signal = SignalEnvelope(
        signal_id="p",
        timestamp=datetime(2026, 2, 5, tzinfo=UTC),
        source="s",
        payload_type="T",
        payload=payload,
    )
    emission = make_emission("e", payload=payload, caused_by="p")
    store.write_signal(signal)
    store.write_emission(emission)
    assert list(store.iter_signals(window["start"], window["end"])) == [signal]
    assert list(store.iter_emissions(window["start"], window["end"])) == [emission]


def test_emission_round_trip_is_equal(store, window):
    emission = EmissionEnvelope(
        emission_id="em",
        timestamp=datetime(2026, 2, 5, 23, 59, 59, 999999),
        emission_type="DraftApproved",
        payload={"promise_id": "p-1", "status": "ok", "score": 2},
        caused_by="sig-1",
        trace=TraceContext(trace_id="t", metadata={"a": "b"}),
        entity_refs=(EntityRef("person", "bob", platform="x"),),
    )
    store.write_emission(emission)
    assert list(store.iter_emissions(window["start"], window["end"])) == [emission]


def test_unusual_strings_round_trip_or_are_rejected_cleanly(store, make_signal, window):
    """A lone surrogate either round-trips exactly (0.1.8) or is refused with a ValueError and nothing written."""
    signal = make_signal("sur", payload={"s": "\ud800"})
    try:
        store.write_signal(signal)
    except ValueError:
        assert list(store.iter_signals(window["start"], window["end"])) == []
        assert [p for p in store.signals_dir.iterdir() if p.stat().st_size] == []
    else:
        assert list(store.iter_signals(window["start"], window["end"])) == [signal]


# --------------------------------------------------------------------------- required fields


def test_signal_without_id_is_rejected(store, make_signal):
    with pytest.raises(ValueError):
        store.write_signal(make_signal(""))
    with pytest.raises(ValueError):
        store.write_signal(make_signal("x", schema_version=""))
    assert all(p.stat().st_size == 0 for p in store.signals_dir.iterdir())


def test_emission_without_id_is_rejected(store, make_emission):
    with pytest.raises(ValueError):
        store.write_emission(make_emission(""))
    with pytest.raises(ValueError):
        store.write_emission(make_emission("x", schema_version=""))
    assert all(p.stat().st_size == 0 for p in store.emissions_dir.iterdir())


# --------------------------------------------------------------------------- idempotency


def test_duplicate_signal_first_write_wins_across_days(store, make_signal, window):
    first = make_signal("dup", timestamp=datetime(2026, 2, 5, 9, tzinfo=UTC), payload={"v": 1})
    second = make_signal("dup", timestamp=datetime(2026, 2, 7, 9, tzinfo=UTC), payload={"v": 2})
    p1 = store.write_signal(first)
    p2 = store.write_signal(second)
    assert p1 == p2 == store.signals_dir / "2026-02-05.jsonl"
    assert (
        not (store.signals_dir / "2026-02-07.jsonl").exists()
        or (store.signals_dir / "2026-02-07.jsonl").read_text() == ""
    )
    assert len(_lines(p1)) == 1  # before the read below, which may compact the day (states.py)
    assert list(store.iter_signals(window["start"], window["end"])) == [first]


def test_duplicate_detected_after_reopen(store, reopen, make_signal, make_emission, window):
    store.write_signal(make_signal("s", seconds=0))
    store.write_emission(make_emission("e", seconds=0))
    again = reopen()
    assert again.write_signal(make_signal("s", seconds=86400 * 3)) == first_record_location(
        store, "signals", "2026-02-05"
    )
    assert again.write_emission(make_emission("e", seconds=-86400)) == first_record_location(
        store, "emissions", "2026-02-05"
    )
    assert [s.signal_id for s in again.iter_signals(window["start"], window["end"])] == ["s"]
    assert [e.emission_id for e in again.iter_emissions(window["start"], window["end"])] == ["e"]
    with pytest.raises(DuplicateEventError):
        again.write_signal(make_signal("s"), on_duplicate="raise")


def test_duplicate_detected_across_store_instances_without_reopen(store, reopen, make_signal, window):
    other = reopen()
    list(other.iter_signals(window["start"], window["end"]))  # warm whatever the other instance caches
    store.write_signal(make_signal("shared", seconds=1, payload={"who": "first"}))
    assert other.write_signal(make_signal("shared", seconds=2, payload={"who": "second"})) == (
        store.signals_dir / "2026-02-05.jsonl"
    )
    rows = list(other.iter_signals(window["start"], window["end"]))
    assert [r.payload for r in rows] == [{"who": "first"}]


def test_duplicate_detected_when_another_instance_wrote_after_our_index_was_built(
    store, reopen, make_signal, window
):
    """First write wins across processes: an instance that already wrote (and so knows the ids it saw
    then) must still notice an id another instance wrote since. 0.1.8 fails this (stale per-instance index)."""
    other = reopen()
    other.write_signal(make_signal("warm", seconds=0))
    store.write_signal(make_signal("shared", seconds=1, payload={"who": "first"}))
    other.write_signal(make_signal("shared", seconds=2, payload={"who": "second"}))
    # The file before the reads: reopen() applies the store state, which may compact the day.
    lines = _lines(store.signals_dir / "2026-02-05.jsonl")
    assert sum(json.loads(line)["signal_id"] == "shared" for line in lines) == 1
    rows = [s for s in reopen().iter_signals(window["start"], window["end"]) if s.signal_id == "shared"]
    assert [r.payload for r in rows] == [{"who": "first"}]


@pytest.mark.parametrize("policy", ["return_existing", "ignore"])
def test_duplicate_policies_returning_existing(store, make_signal, make_emission, policy, window):
    sig = make_signal("s", seconds=0)
    em = make_emission("e", seconds=0)
    sp = store.write_signal(sig, on_duplicate=policy)
    ep = store.write_emission(em, on_duplicate=policy)
    before_s, before_e = sp.read_bytes(), ep.read_bytes()
    assert store.write_signal(make_signal("s", seconds=60), on_duplicate=policy) == sp
    assert store.write_emission(make_emission("e", seconds=60), on_duplicate=policy) == ep
    assert sp.read_bytes() == before_s and ep.read_bytes() == before_e


def test_duplicate_policy_raise(store, make_signal, make_emission):
    sp = store.write_signal(make_signal("s"))
    ep = store.write_emission(make_emission("e"))
    before_s, before_e = sp.read_bytes(), ep.read_bytes()
    with pytest.raises(DuplicateEventError):
        store.write_signal(make_signal("s", seconds=3600 * 30), on_duplicate="raise")
    with pytest.raises(DuplicateEventError):
        store.write_emission(make_emission("e", seconds=1), on_duplicate="raise")
    assert sp.read_bytes() == before_s and ep.read_bytes() == before_e
    assert sorted(p.name for p in store.signals_dir.iterdir() if p.stat().st_size) == [sp.name]


def test_raise_policy_writes_new_ids(store, make_signal):
    assert (
        store.write_signal(make_signal("new"), on_duplicate="raise") == store.signals_dir / "2026-02-05.jsonl"
    )


def test_unknown_policy_with_duplicate_raises_value_error(store, make_signal, make_emission):
    sp = store.write_signal(make_signal("s"))
    ep = store.write_emission(make_emission("e"))
    before = sp.read_bytes(), ep.read_bytes()
    with pytest.raises(ValueError) as info:
        store.write_signal(make_signal("s", seconds=1), on_duplicate="bogus")
    assert not isinstance(info.value, DuplicateEventError)
    with pytest.raises(ValueError) as info:
        store.write_emission(make_emission("e", seconds=1), on_duplicate="bogus")
    assert not isinstance(info.value, DuplicateEventError)
    assert (sp.read_bytes(), ep.read_bytes()) == before


def test_signal_and_emission_ids_are_separate_namespaces(store, make_signal, make_emission, window):
    store.write_signal(make_signal("same"))
    store.write_emission(make_emission("same"))
    assert [s.signal_id for s in store.iter_signals(window["start"], window["end"])] == ["same"]
    assert [e.emission_id for e in store.iter_emissions(window["start"], window["end"])] == ["same"]


# --------------------------------------------------------------------------- batches


def test_write_signals_batch_returns_paths_and_dedups(store, make_signal, window):
    a = make_signal("a", timestamp=datetime(2026, 2, 4, 1, tzinfo=UTC))
    b = make_signal("b", timestamp=datetime(2026, 2, 5, 1, tzinfo=UTC))
    a_again = make_signal("a", timestamp=datetime(2026, 2, 6, 1, tzinfo=UTC))
    paths = store.write_signals(iter([a, b, a_again]))  # any iterable, including a generator
    assert paths == [
        store.signals_dir / "2026-02-04.jsonl",
        store.signals_dir / "2026-02-05.jsonl",
        store.signals_dir / "2026-02-04.jsonl",
    ]
    assert list(store.iter_signals(window["start"], window["end"])) == [a, b]
    assert store.write_signals([]) == []


def test_write_emissions_batch_returns_paths_and_dedups(store, make_emission, window):
    a = make_emission("a", timestamp=datetime(2026, 2, 4, 1, tzinfo=UTC))
    b = make_emission("b", timestamp=datetime(2026, 2, 5, 1, tzinfo=UTC))
    store.write_emission(b)
    paths = store.write_emissions([a, b, a], on_duplicate="ignore")
    assert paths == [
        store.emissions_dir / "2026-02-04.jsonl",
        store.emissions_dir / "2026-02-05.jsonl",
        store.emissions_dir / "2026-02-04.jsonl",
    ]
    assert list(store.iter_emissions(window["start"], window["end"])) == [a, b]
    assert store.write_emissions(iter(())) == []


def test_write_signals_raise_policy_on_duplicate(store, make_signal):
    store.write_signal(make_signal("a"))
    with pytest.raises(DuplicateEventError):
        store.write_signals([make_signal("b"), make_signal("a", seconds=9)], on_duplicate="raise")


def test_batch_with_in_batch_duplicate_and_raise_policy(store, make_emission):
    with pytest.raises(DuplicateEventError):
        store.write_emissions([make_emission("x"), make_emission("x", seconds=1)], on_duplicate="raise")


def test_a_batch_repeating_ids_returns_where_each_first_copy_lives_now(tmp_path, make_signal):
    # The writer's index saw every first copy in the hot tier, and keeps its codes through its
    # own compaction of their days; then a late record goes into a compacted day's new hot file.
    writer = FileSystemStore(tmp_path)
    d4, d5 = datetime(2026, 2, 4, 1, tzinfo=UTC), datetime(2026, 2, 5, 1, tzinfo=UTC)
    writer.write_signals([make_signal("c4", timestamp=d4), make_signal("c5", timestamp=d5)])
    writer.compact(before=datetime(2026, 2, 6).date())
    late = writer.write_signal(make_signal("late5", timestamp=d5 + timedelta(hours=1)))
    assert late == writer.signals_dir / "2026-02-05.jsonl"
    cold = writer.store_root / "cold" / "signals"
    paths = writer.write_signals([
        make_signal("c5", seconds=1),  # in the table, its day has a hot file again
        make_signal("late5", timestamp=d4),  # in that hot file
        make_signal("c4", seconds=2),  # in the table, no hot file
        make_signal("new", timestamp=d4),
        make_signal("new", timestamp=d5),  # repeated within the batch
    ])
    assert paths == [cold / "day=2026-02-05", late, cold / "day=2026-02-04", writer.signals_dir / "2026-02-04.jsonl",
                     writer.signals_dir / "2026-02-04.jsonl"]
    # one id at a time gives the same answers
    assert [writer.write_signal(make_signal(i)) for i in ("c5", "late5", "c4", "new")] == paths[:4]
