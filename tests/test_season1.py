"""Season 1 read models (issue 13 item 2) against the plain-Python statement of the reference in
``season1_oracle.py``, on random workspaces in three states: hot only, compacted, and mixed (closed
days compacted, then late writes and duplicates into them).

Payloads mix what the reference's helpers treat differently: ints (also beyond 2**53), floats
(also -0.0 and magnitudes whose sum depends on the order of addition), bools, numeric strings,
None, nested values, missing keys, non-dict payloads; ids repeat (the first write wins). Results
are compared strictly: every float by its bits (``float.hex``), so totals must be the reference's
exact values, not merely close.
"""

from __future__ import annotations

import json
import math
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import season1_oracle as ref
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from metaspn_schemas import EmissionEnvelope, EntityRef, SignalEnvelope
from oracle import Oracle
from states import COMPACTED, HOT_SMALL, MIXED, StateStore

from metaspn_store import FileSystemStore, ReplayCheckpoint

UTC = timezone.utc
DAY0 = datetime(2026, 3, 1, tzinfo=UTC)
WIDE = {"start": datetime(2026, 1, 1, tzinfo=UTC), "end": datetime(2026, 6, 1, tzinfo=UTC)}

SIGNAL_IDS = [f"s{i}" for i in range(12)] + ["s'q", "ü☃"]
EMISSION_IDS = [f"e{i}" for i in range(8)] + ["s1", "e;--"]  # "s1" also names a signal
SOURCES = ["s1.play", "s1.play.live", "season1.play", "s1.playoff", "s1.score", "other", "season1"]
REFS = [EntityRef("person", "p1", platform="x"), EntityRef("person", "p1"), EntityRef("team", "t'1")]
GAME_KEY = "game/~id"  # a key a JSON pointer must escape

NUMBERS = st.one_of(
    st.sampled_from([1e16, -1e16, 1.0, 3.0, -0.0]),  # sums that depend on the order of addition
    st.sampled_from([0, 1, -3, 2**53 + 1, 2**63 - 1, -(2**63)]),
    st.sampled_from([0.1, 0.2, 0.3, -0.0, 1.5, 1e16, -1e16, 1.0, 2.5e-7, 1e300, -1e300]),
    st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
)
VALUES = st.one_of(
    NUMBERS,
    NUMBERS,
    st.booleans(),
    st.sampled_from(["3", "1.5", "", "x", "0"]),
    st.none(),
    st.just([1]),
    st.just({"x": 1}),
)
TEXTS = st.one_of(
    st.sampled_from(["g1", "g2", "G1", "ü☃", "a'b", "", "g\x00z"]),
    st.sampled_from([None, 1, True, ["g1"]]),
)
SEASONS = st.sampled_from(["S1", "S1", "S1", "S2", "", 1, 1.0, True, None, ["S1"]])

OPTIONAL_FIELDS = {
    "game_id": TEXTS,
    GAME_KEY: TEXTS,
    "founder_id": st.sampled_from(["f1", "f1", "f2", "", None, 7]),
    "reward_projection": VALUES,
    "reward_amount": VALUES,
    "score": VALUES,
    "points": VALUES,
    "founder_stake_delta": VALUES,
    "founder_stake_value": VALUES,
}
# Most payloads are in season S1, active, with a player, so the groups and ranks have members.
SEASON_PAYLOADS = st.fixed_dictionaries(
    {
        "season_id": st.one_of(st.just("S1"), st.just("S1"), st.just("S1"), SEASONS),
        "player_id": st.one_of(st.sampled_from(["p1", "p2", "p3", "Ü"]), TEXTS),
        "window_status": st.sampled_from(["ACTIVE", "ACTIVE", "ACTIVE", "active", None, 1]),
    },
    optional=OPTIONAL_FIELDS,
)
DICT_PAYLOADS = st.fixed_dictionaries(
    {}, optional={"season_id": SEASONS, "player_id": TEXTS, "window_status": st.just("ACTIVE"), **OPTIONAL_FIELDS}
)
PAYLOADS = st.one_of(
    SEASON_PAYLOADS,
    SEASON_PAYLOADS,
    SEASON_PAYLOADS,
    SEASON_PAYLOADS,
    DICT_PAYLOADS,
    st.none(),
    st.just([{"season_id": "S1"}]),
    st.just("S1"),
    st.integers(-2, 2),
)


@st.composite
def instants(draw: Any) -> datetime:
    """A UTC instant on a coarse grid over three days (ties and exact window bounds are common)."""
    return DAY0 + timedelta(
        days=draw(st.integers(0, 2)),
        seconds=draw(st.sampled_from([0, 1, 3600, 86399])),
        microseconds=draw(st.sampled_from([0, 1, 999999])),
    )


@st.composite
def signals(draw: Any) -> SignalEnvelope:
    return SignalEnvelope(
        signal_id=draw(st.sampled_from(SIGNAL_IDS)),
        timestamp=draw(instants()),
        source=draw(st.sampled_from(SOURCES)),
        payload_type=draw(st.sampled_from(["Play", "Stake", "Other"])),
        payload=draw(PAYLOADS),
        entity_refs=tuple(draw(st.lists(st.sampled_from(REFS), max_size=2))),
    )


@st.composite
def emissions(draw: Any) -> EmissionEnvelope:
    return EmissionEnvelope(
        emission_id=draw(st.sampled_from(EMISSION_IDS)),
        timestamp=draw(instants()),
        emission_type=draw(st.sampled_from(["Reward", "Penalty"])),
        payload=draw(PAYLOADS),
        caused_by=draw(st.sampled_from(SIGNAL_IDS[:3])),
        entity_refs=tuple(draw(st.lists(st.sampled_from(REFS), max_size=2))),
    )


@st.composite
def scripts(draw: Any) -> tuple[list[Any], list[Any]]:
    """Two rounds of writes: the state's transition runs between them (late writes follow)."""
    first = draw(st.lists(st.one_of(signals(), emissions()), min_size=1, max_size=24))
    second = draw(st.lists(st.one_of(signals(), emissions()), max_size=8))
    return first, second


@st.composite
def queries(draw: Any) -> dict[str, Any]:
    """Common arguments: a window (often on record timestamps), a season and the filters."""
    if draw(st.booleans()):
        args = dict(WIDE)
    else:
        a, b = draw(instants()), draw(instants())
        args = {"start": min(a, b), "end": max(a, b)}
    args["season_id"] = draw(st.sampled_from(["S1", "S1", "S1", "S2", 1, None, ["S1"]]))
    if draw(st.integers(0, 4)) == 0:
        args["entity_ref"] = draw(st.sampled_from(REFS))
    if draw(st.integers(0, 3)) == 0:
        args["sources"] = draw(st.lists(st.sampled_from(SOURCES), max_size=2))
    if draw(st.integers(0, 3)) == 0:
        args["payload_types"] = draw(st.lists(st.sampled_from(["Play", "Stake"]), max_size=2))
    if draw(st.integers(0, 3)) == 0:
        args["emission_types"] = draw(st.lists(st.sampled_from(["Reward", "Penalty"]), max_size=2))
    return args


def strict(value: Any) -> Any:
    """``value`` with every float replaced by its exact bits, so comparisons are bit-for-bit."""
    if isinstance(value, float):
        return ("float", value.hex())
    if isinstance(value, dict):
        return ("dict", [(k, strict(v)) for k, v in value.items()])  # key order counts too
    if isinstance(value, (list, tuple)):
        return [strict(v) for v in value]
    return value


def _only(args: dict[str, Any], *names: str) -> dict[str, Any]:
    return {k: v for k, v in args.items() if k in names}


COMMON = ("start", "end", "season_id", "entity_ref", "sources", "payload_types")


def write(store: Any, oracle: Oracle, records: list[Any]) -> None:
    for record in records:
        if isinstance(record, SignalEnvelope):
            store.write_signal(record)
            oracle.write_signal(record)
        else:
            store.write_emission(record)
            oracle.write_emission(record)


def check_all(store: Any, oracle: Oracle, args: dict[str, Any], extra: dict[str, Any], folder: Path) -> None:
    both = dict(args, **_only(extra, "game_id_field", "reward_projection_field", "reward_amount_field"))
    assert strict(store.get_s1_season_summary_metrics(**both)) == strict(ref.season_summary(oracle, **both))
    assert strict(store.get_s1_per_game_aggregates(**both)) == strict(ref.per_game(oracle, **both))

    signal_args = _only(args, *COMMON)
    players = dict(signal_args, **_only(extra, "metric_fields", "game_id_field"))
    assert strict(store.get_s1_per_player_dashboard_aggregates(**players)) == strict(ref.per_player(oracle, **players))

    beat = dict(signal_args, **_only(extra, "founder_id"))
    assert strict(store.get_s1_founder_stake_heartbeat(**beat)) == strict(ref.heartbeat(oracle, **beat))

    ranked = dict(signal_args, **_only(extra, "limit", "projection_field", "active_status"))
    got = store.get_s1_active_reward_projections(**ranked)
    assert [s.signal_id for s in got] == [s.signal_id for s in ref.active_projections(oracle, **ranked)]
    assert got == ref.active_projections(oracle, **ranked)

    totals = dict(signal_args, **_only(extra, "group_by_field", "projection_field"))
    assert strict(store.get_s1_active_reward_projection_totals(**totals)) == strict(ref.projection_totals(oracle, **totals))

    stage = dict(_only(args, "start", "end", "entity_ref", "sources", "payload_types"), **_only(extra, "stage", "checkpoint"))
    stage["season_id"] = args["season_id"]
    # A checkpoint after ``end`` makes both raise ValueError (lazily, at the first next()).
    assert outcome(lambda: list(store.iter_s1_stage_window_signals(**stage))) == outcome(
        lambda: ref.stage_window(oracle, **stage)
    )

    export = dict(args, **_only(extra, "include_signals", "include_emissions"))
    got_path = store.export_s1_postseason_research_dataset(**export, destination=folder / "out" / "s1.ndjson")
    assert got_path == folder / "out" / "s1.ndjson"
    assert got_path.read_bytes() == ref.research_ndjson(oracle, **export)
    parquet = store.export_s1_postseason_research_dataset(**export, destination=folder / "out" / "s1.parquet")
    expected = [dict(row, payload=sorted_keys(row["payload"])) for row in ref.research_rows(oracle, **export)]
    assert parquet_rows(parquet, args["season_id"]) == strict(expected)


def sorted_keys(value: Any) -> Any:
    """``value`` with its dicts' keys in sorted order (as JSON text with sorted keys reads back)."""
    return json.loads(json.dumps(value, sort_keys=True))


def outcome(call: Any) -> Any:
    try:
        return "returned", call()
    except ValueError:
        return "raised ValueError", None


def parquet_rows(path: Path, season_id: Any) -> Any:
    """The Parquet export's rows in the NDJSON rows' shape (absent kind-specific keys dropped)."""
    rows = []
    for row in pq.read_table(path).to_pylist():
        out: dict[str, Any] = {}
        for key in ("record_kind", "record_id", "timestamp", "source", "payload_type", "emission_type", "caused_by",
                    "payload", "season_id", "entity_refs"):
            value = row[key]
            if key in ("source", "payload_type") and row["record_kind"] != "signal":
                continue
            if key in ("emission_type", "caused_by") and row["record_kind"] != "emission":
                continue
            if key == "timestamp":
                value = ref.iso(value)
            elif key == "payload":
                value = json.loads(value)
            elif key == "season_id" and season_id is not None and not isinstance(season_id, str):
                value = json.loads(value)
            out[key] = value
        rows.append(out)
    # Compare as the NDJSON rows (key order of the reference's dicts).
    order = {
        "signal": ["record_kind", "record_id", "timestamp", "source", "payload_type", "payload", "season_id", "entity_refs"],
        "emission": ["record_kind", "record_id", "timestamp", "emission_type", "caused_by", "payload", "season_id",
                     "entity_refs"],
    }
    return strict([{k: r[k] for k in order[r["record_kind"]]} for r in rows])


@st.composite
def extras(draw: Any) -> dict[str, Any]:
    """Per-method arguments beyond the common ones."""
    out: dict[str, Any] = {
        "stage": draw(st.sampled_from(["play", "score", "playoff", ""])),
        "limit": draw(st.sampled_from([None, None, 0, 1, 3, -1])),
        "founder_id": draw(st.sampled_from([None, None, "f1", "f2", 7])),
        "include_signals": draw(st.booleans()) or draw(st.booleans()),
        "include_emissions": draw(st.booleans()) or draw(st.booleans()),
    }
    if draw(st.integers(0, 2)) == 0:
        out["metric_fields"] = draw(
            st.lists(st.sampled_from(["score", "points", "reward_projection", "missing", "player_id"]), max_size=4)
        )
    if draw(st.integers(0, 3)) == 0:
        out["game_id_field"] = GAME_KEY
    if draw(st.integers(0, 3)) == 0:
        out["projection_field"] = out["reward_projection_field"] = "points"
    if draw(st.integers(0, 3)) == 0:
        out["reward_amount_field"] = "score"
    if draw(st.integers(0, 3)) == 0:
        out["group_by_field"] = draw(st.sampled_from(["game_id", "founder_id", "season_id"]))
    if draw(st.integers(0, 4)) == 0:
        out["active_status"] = draw(st.sampled_from(["active", None, 1]))
    if draw(st.integers(0, 2)) == 0:
        out["checkpoint"] = ReplayCheckpoint(
            last_timestamp=draw(instants()), seen_ids_at_timestamp=tuple(draw(st.lists(st.sampled_from(SIGNAL_IDS), max_size=3)))
        )
    return out


EXAMPLES = {HOT_SMALL: 30, COMPACTED: 15, MIXED: 15}


@pytest.mark.parametrize("state", [HOT_SMALL, COMPACTED, MIXED])
def test_season1_methods_equal_the_reference(state: str) -> None:
    @settings(
        max_examples=EXAMPLES[state],
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(script=scripts(), args=queries(), extra=extras())
    def run(script: tuple[list[Any], list[Any]], args: dict[str, Any], extra: dict[str, Any]) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            store = StateStore(folder / "ws", state)
            oracle = Oracle()
            try:
                first, second = script
                write(store, oracle, first)
                store.settle()  # compacted / mixed: closed days move to Parquet now
                write(store, oracle, second)  # late writes and duplicates into them
                check_all(store, oracle, args, extra, folder)
            finally:
                store.inner.close()

    run()


# --------------------------------------------------------------------------- exact cases


def _signal(signal_id: str, seconds: int, payload: Any, source: str = "s1.play", day: int = 0) -> SignalEnvelope:
    return SignalEnvelope(
        signal_id=signal_id,
        timestamp=DAY0 + timedelta(days=day, seconds=seconds),
        source=source,
        payload_type="Play",
        payload=payload,
    )


@pytest.mark.parametrize("compact", [False, True])
def test_totals_add_in_replay_order_like_the_reference(tmp_path: Path, compact: bool) -> None:
    """1e16 + 1.0 rounds back to 1e16, so the order of addition decides a total. Each day is
    written out of time order: replay order (the reference's) gives 1.0, append order 0.0 and
    the exact sum 2.0. A player whose values are all -0.0 totals 0.0, as ``0.0 + -0.0`` does."""
    store = FileSystemStore(tmp_path / "ws")
    values = [(1.0, 0, 2), (1e16, 0, 0), (-1e16, 0, 1), (1.0, 1, 2), (1e16, 1, 0), (-1e16, 1, 1)]
    written = []
    for i, (value, day, seconds) in enumerate(values):
        payload = {"season_id": "S1", "reward_projection": value, "player_id": "p", "game_id": "g",
                   "window_status": "ACTIVE"}
        written.append(_signal(f"s{i}", seconds, payload, day=day))
    written.append(_signal("z", 9, {"season_id": "S1", "reward_projection": -0.0, "player_id": "z"}))
    store.write_signals(written)
    if compact:
        store.compact(before=(DAY0 + timedelta(days=3)).date())
    oracle = Oracle(signals=written)
    replayed = [s.payload["reward_projection"] for s in oracle.iter_signals(**WIDE)]
    expected = appended = 0.0
    for value in replayed:
        expected += value
    for value, _, _ in values:
        appended += value
    assert (expected, appended, math.fsum(replayed)) == (1.0, 0.0, 2.0)

    summary = store.get_s1_season_summary_metrics(**WIDE, season_id="S1")
    assert summary["reward_projection_total"] == 1.0
    assert store.get_s1_per_game_aggregates(**WIDE, season_id="S1")[0]["reward_projection_total"] == 1.0
    twice = ["reward_projection", "score", "reward_projection"]
    players = store.get_s1_per_player_dashboard_aggregates(**WIDE, season_id="S1", metric_fields=twice)
    assert strict(players) == strict(ref.per_player(oracle, **WIDE, season_id="S1", metric_fields=twice))
    assert (players[1]["player_id"], players[1]["metrics"]["reward_projection"].hex()) == ("z", "0x0.0p+0")
    # Projection totals add in rank order: 1e16, 1e16, 1.0, 1.0, -1e16, -1e16 -> 0.0.
    totals = store.get_s1_active_reward_projection_totals(**WIDE, season_id="S1")
    assert strict(totals) == strict(ref.projection_totals(oracle, **WIDE, season_id="S1"))
    assert totals[0]["reward_projection_total"] == 0.0


def test_numbers_exclude_bools_and_strings_and_texts_need_non_empty_strings(tmp_path: Path) -> None:
    store = FileSystemStore(tmp_path / "ws")
    payloads = [
        {"season_id": "S1", "reward_projection": True, "player_id": "p1", "game_id": "g1"},
        {"season_id": "S1", "reward_projection": "5", "player_id": "", "game_id": 3},
        {"season_id": "S1", "reward_projection": None, "player_id": None},
        {"season_id": "S1", "reward_projection": 2**53 + 1, "player_id": "p2"},
        {"season_id": "S1", "reward_projection": 0.5},
        {"season_id": "S1", "reward_projection": {"n": 1}, "game_id": "g1"},
        [{"season_id": "S1", "reward_projection": 4}],
        "S1",
    ]
    for i, payload in enumerate(payloads):
        store.write_signal(_signal(f"s{i}", i, payload))
    summary = store.get_s1_season_summary_metrics(**WIDE, season_id="S1")
    assert summary["signal_count"] == 6  # non-dict payloads are never in a season
    assert summary["reward_projection_total"] == float(2**53 + 1) + 0.5
    assert (summary["game_count"], summary["player_count"]) == (1, 2)


def test_a_non_string_season_matches_with_python_equality(tmp_path: Path) -> None:
    store = FileSystemStore(tmp_path / "ws")
    seasons = [1, 1.0, True, "1", 2, [1], None]
    for i, season in enumerate(seasons):
        store.write_signal(_signal(f"s{i}", i, {"season_id": season, "reward_projection": 1}))
    assert store.get_s1_season_summary_metrics(**WIDE, season_id=1)["signal_count"] == 3
    assert store.get_s1_season_summary_metrics(**WIDE, season_id=[1.0])["signal_count"] == 1
    assert store.get_s1_season_summary_metrics(**WIDE, season_id=None)["signal_count"] == 7
    stage = store.iter_s1_stage_window_signals(stage="play", **WIDE, season_id=True)
    assert [s.signal_id for s in stage] == ["s0", "s1", "s2"]


def test_the_first_write_of_an_id_wins_also_over_raw_duplicate_lines(tmp_path: Path) -> None:
    """A line appended by another writer (0.1.8 had no id index) with a taken id is invisible."""
    store = FileSystemStore(tmp_path / "ws")
    store.write_signal(_signal("s0", 0, {"season_id": "S1", "reward_projection": 1, "game_id": "g1"}))
    day_file = store.signals_dir / f"{DAY0.date().isoformat()}.jsonl"
    line = day_file.read_bytes()
    with day_file.open("ab") as handle:
        handle.write(line.replace(b'"g1"', b'"g2"').replace(b'"reward_projection":1', b'"reward_projection":5'))
    for reader in (store, FileSystemStore(tmp_path / "ws")):
        rows = reader.get_s1_per_game_aggregates(**WIDE, season_id="S1")
        assert [(r["game_id"], r["signal_count"], r["reward_projection_total"]) for r in rows] == [("g1", 1, 1.0)]
    store.compact(before=(DAY0 + timedelta(days=1)).date())
    assert store.get_s1_season_summary_metrics(**WIDE, season_id="S1")["reward_projection_total"] == 1.0


def test_windows_are_inclusive_and_end_before_start_raises(tmp_path: Path) -> None:
    store = FileSystemStore(tmp_path / "ws")
    store.write_signal(_signal("s0", 10, {"season_id": "S1", "founder_id": "f", "founder_stake_delta": 2}))
    at = DAY0 + timedelta(seconds=10)
    assert store.get_s1_season_summary_metrics(start=at, end=at, season_id="S1")["signal_count"] == 1
    assert store.get_s1_founder_stake_heartbeat(start=at, end=at, season_id="S1")[0]["stake_value"] == 2.0
    before = {"start": at, "end": at - timedelta(microseconds=1), "season_id": "S1"}
    for method in (
        store.get_s1_season_summary_metrics,
        store.get_s1_per_game_aggregates,
        store.get_s1_per_player_dashboard_aggregates,
        store.get_s1_founder_stake_heartbeat,
        store.get_s1_active_reward_projections,
        store.get_s1_active_reward_projection_totals,
    ):
        with pytest.raises(ValueError):
            method(**before)
    with pytest.raises(ValueError):
        list(store.iter_s1_stage_window_signals(stage="play", **before))
    with pytest.raises(ValueError):
        store.export_s1_postseason_research_dataset(**before, destination=tmp_path / "x.ndjson")
    assert not (tmp_path / "x.ndjson").exists()


def test_an_empty_store_answers_empty_results(tmp_path: Path) -> None:
    store = FileSystemStore(tmp_path / "ws")
    summary = store.get_s1_season_summary_metrics(**WIDE, season_id="S1")
    assert summary == {
        "season_id": "S1",
        "start": "2026-01-01T00:00:00Z",
        "end": "2026-06-01T00:00:00Z",
        "signal_count": 0,
        "emission_count": 0,
        "game_count": 0,
        "player_count": 0,
        "reward_projection_total": 0.0,
        "reward_emitted_total": 0.0,
    }
    assert store.get_s1_per_game_aggregates(**WIDE, season_id="S1") == []
    assert store.get_s1_active_reward_projections(**WIDE, season_id="S1") == []
    path = store.export_s1_postseason_research_dataset(**WIDE, season_id="S1", destination=tmp_path / "a" / "b.ndjson")
    assert path.read_bytes() == b""
    parquet = store.export_s1_postseason_research_dataset(**WIDE, season_id="S1", destination=tmp_path / "b.parquet")
    assert pq.read_table(parquet).num_rows == 0


def test_ties_rank_by_timestamp_then_id_descending(tmp_path: Path) -> None:
    store = FileSystemStore(tmp_path / "ws")
    active = {"season_id": "S1", "window_status": "ACTIVE"}
    store.write_signals(
        [
            _signal("a", 5, dict(active, reward_projection=2, player_id="p1")),
            _signal("c", 5, dict(active, reward_projection=2.0, player_id="p2")),
            _signal("b", 5, dict(active, reward_projection=2, player_id="p3")),
            _signal("d", 6, dict(active, reward_projection=-0.0, player_id="p1")),
            _signal("e", 7, dict(active, reward_projection=True, player_id="p2")),  # a bool ranks as 0.0
            _signal("f", 6, dict(active, reward_projection=3)),
        ]
    )
    ranked = store.get_s1_active_reward_projections(**WIDE, season_id="S1")
    assert [s.signal_id for s in ranked] == ["f", "c", "b", "a", "e", "d"]
    assert [s.signal_id for s in store.get_s1_active_reward_projections(**WIDE, season_id="S1", limit=2)] == ["f", "c"]
    totals = store.get_s1_active_reward_projection_totals(**WIDE, season_id="S1")
    assert [(t["group"], t["signal_count"], t["reward_projection_total"]) for t in totals] == [
        ("p3", 1, 2.0),  # equal totals: larger group first
        ("p2", 2, 2.0),
        ("p1", 2, 2.0),
    ]
