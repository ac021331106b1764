"""Contract: snapshots (generic, digest, calibration, credibility), checkpoints and ReplayCheckpoint."""

from __future__ import annotations

import dataclasses
import json
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from states import REOPEN_STATES

from metaspn_store import FileSystemStore, ReplayCheckpoint

# Checkpoints and snapshots are small JSON files outside the tiers: compaction and large hot
# files do not touch them, so only the states that open a new store on the workspace apply.
pytestmark = pytest.mark.store_states(*REOPEN_STATES)

UTC = timezone.utc
STATE = {"b": [1, 2, {"c": None}], "a": "héllo ☃", "n": 1.5, "t": True}


def _json(path: Path):
    text = path.read_text(encoding="utf-8")
    return json.loads(text)


# --------------------------------------------------------------------------- write_snapshot


def test_write_snapshot_name_and_content(store):
    when = datetime(2026, 2, 5, 12, 30, 45, 987654, tzinfo=UTC)
    path = store.write_snapshot("system_state", STATE, when)
    assert path == store.snapshots_dir / "system_state__2026-02-05T123045Z.json"
    assert _json(path) == STATE


def test_write_snapshot_keyword_arguments_and_time_conversion(store):
    minus8 = timezone(timedelta(hours=-8))
    path = store.write_snapshot(
        name="worker.state", snapshot_state={}, snapshot_time=datetime(2026, 2, 5, 20, 0, 1, tzinfo=minus8)
    )
    assert path == store.snapshots_dir / "worker.state__2026-02-06T040001Z.json"
    assert _json(path) == {}
    naive = store.write_snapshot("naive", {"x": 1}, datetime(2026, 2, 5, 1, 2, 3))
    assert naive.name == "naive__2026-02-05T010203Z.json"


def test_write_snapshot_default_time_is_now_utc(store):
    before = datetime.now(UTC).replace(microsecond=0)
    path = store.write_snapshot("auto", {"k": "v"})
    after = datetime.now(UTC)
    assert path.parent == store.snapshots_dir
    prefix, token = path.name[: -len(".json")].split("__")
    assert prefix == "auto"
    stamped = datetime.strptime(token, "%Y-%m-%dT%H%M%SZ").replace(tzinfo=UTC)
    assert before <= stamped <= after
    assert _json(path) == {"k": "v"}


def test_write_snapshot_same_name_and_second_replaces(store):
    when = datetime(2026, 2, 5, 12, 0, 0, tzinfo=UTC)
    first = store.write_snapshot("s", {"v": 1}, when)
    second = store.write_snapshot("s", {"v": 2}, when + timedelta(microseconds=500))
    assert first == second
    assert _json(second) == {"v": 2}
    later = store.write_snapshot("s", {"v": 3}, when + timedelta(seconds=1))
    assert later != first
    assert sorted(p.name for p in store.snapshots_dir.iterdir()) == [
        "s__2026-02-05T120000Z.json",
        "s__2026-02-05T120001Z.json",
    ]


@pytest.mark.parametrize("name", ["simple", "with-dash_and.dot", "ünïcode", "UPPER", "a b"])
def test_snapshot_and_checkpoint_names_that_stay_in_folder_work(store, name):
    when = datetime(2026, 2, 5, tzinfo=UTC)
    path = store.write_snapshot(name, {"n": name}, when)
    assert path == store.snapshots_dir / f"{name}__2026-02-05T000000Z.json"
    assert _json(path) == {"n": name}
    cp = ReplayCheckpoint(last_timestamp=when, seen_ids_at_timestamp=("x",))
    assert store.write_checkpoint(name, cp) == store.checkpoints_dir / f"{name}.json"
    assert store.read_checkpoint(name) == cp


# --------------------------------------------------------------------------- dated report snapshots

KINDS = [
    ("write_daily_digest_snapshot", "read_daily_digest_snapshot", "digest", "digest"),
    ("write_calibration_snapshot", "read_calibration_snapshot", "calibration", "report"),
    ("write_credibility_snapshot", "read_credibility_snapshot", "credibility", "report"),
]


@pytest.mark.parametrize(("writer", "reader", "prefix", "key"), KINDS)
def test_dated_snapshot_round_trip(store, reopen, writer, reader, prefix, key):
    body = {"items": [{"id": "x", "score": 0.5}], "count": 1, "note": '‘quotes’ "and" ;'}
    path = getattr(store, writer)(day=date(2026, 2, 5), **{key: body})
    assert path == store.snapshots_dir / f"{prefix}__2026-02-05.json"
    expected = {"day": "2026-02-05", key: body, "schema_version": "0.1"}
    assert _json(path) == expected
    assert getattr(store, reader)(date(2026, 2, 5)) == expected
    assert getattr(reopen(), reader)("2026-02-05") == expected
    assert getattr(store, reader)(day=datetime(2026, 2, 5, 23, 59, tzinfo=UTC)) == expected


@pytest.mark.parametrize(("writer", "reader", "prefix", "key"), KINDS)
def test_dated_snapshot_day_normalisation(store, writer, reader, prefix, key):
    minus5 = timezone(timedelta(hours=-5))
    # An aware datetime uses its UTC date; a naive one is UTC; a string is used as given.
    p1 = getattr(store, writer)(day=datetime(2026, 2, 5, 21, 0, tzinfo=minus5), **{key: {"v": 1}})
    assert p1.name == f"{prefix}__2026-02-06.json"
    p2 = getattr(store, writer)(day=datetime(2026, 2, 7, 23, 0), **{key: {"v": 2}})
    assert p2.name == f"{prefix}__2026-02-07.json"
    p3 = getattr(store, writer)(day="weekly-2026-06", **{key: {"v": 3}})
    assert p3.name == f"{prefix}__weekly-2026-06.json"
    assert getattr(store, reader)("weekly-2026-06") == {
        "day": "weekly-2026-06",
        key: {"v": 3},
        "schema_version": "0.1",
    }
    assert getattr(store, reader)(date(2026, 2, 6))[key] == {"v": 1}


@pytest.mark.parametrize(("writer", "reader", "prefix", "key"), KINDS)
def test_dated_snapshot_overwrite_and_missing(store, writer, reader, prefix, key):
    assert getattr(store, reader)(date(2026, 2, 5)) is None
    assert getattr(store, reader)("2030-01-01") is None
    getattr(store, writer)(day="2026-02-05", **{key: {"v": 1}})
    getattr(store, writer)(day="2026-02-05", **{key: {"v": 2}})
    assert getattr(store, reader)("2026-02-05")[key] == {"v": 2}
    assert [p.name for p in store.snapshots_dir.iterdir()] == [f"{prefix}__2026-02-05.json"]


def test_dated_snapshot_kinds_do_not_collide(store):
    store.write_daily_digest_snapshot(day="2026-02-05", digest={"k": "digest"})
    store.write_calibration_snapshot(day="2026-02-05", report={"k": "cal"})
    store.write_credibility_snapshot(day="2026-02-05", report={"k": "cred"})
    assert store.read_daily_digest_snapshot("2026-02-05")["digest"] == {"k": "digest"}
    assert store.read_calibration_snapshot("2026-02-05")["report"] == {"k": "cal"}
    assert store.read_credibility_snapshot("2026-02-05")["report"] == {"k": "cred"}


def test_dated_snapshot_reads_a_0_1_8_file(tmp_path):
    ws = tmp_path / "legacy"
    snapshots = ws / "store" / "snapshots"
    snapshots.mkdir(parents=True)
    doc = {"day": "2026-02-05", "digest": {"top": ["a", "b"]}, "schema_version": "0.1"}
    (snapshots / "digest__2026-02-05.json").write_text(
        json.dumps(doc, sort_keys=True, separators=(",", ":")) + "\n", encoding="utf-8"
    )
    assert FileSystemStore(ws).read_daily_digest_snapshot("2026-02-05") == doc


# --------------------------------------------------------------------------- checkpoints


def test_checkpoint_write_read_round_trip(store, reopen):
    cp = ReplayCheckpoint(
        last_timestamp=datetime(2026, 2, 5, 12, 0, 0, 123456, tzinfo=UTC), seen_ids_at_timestamp=("a", "b")
    )
    path = store.write_checkpoint("ingestion_worker", cp)
    assert path == store.checkpoints_dir / "ingestion_worker.json"
    assert _json(path) == {
        "last_timestamp": "2026-02-05T12:00:00.123456Z",
        "seen_ids_at_timestamp": ["a", "b"],
        "schema_version": "0.1",
    }
    assert store.read_checkpoint("ingestion_worker") == cp
    assert reopen().read_checkpoint("ingestion_worker") == cp


def test_checkpoint_overwrite_and_missing(store):
    assert store.read_checkpoint("nope") is None
    t = datetime(2026, 2, 5, tzinfo=UTC)
    store.write_checkpoint("w", ReplayCheckpoint(t, ("a",)))
    store.write_checkpoint("w", ReplayCheckpoint(t + timedelta(seconds=1), ("b",), schema_version="9"))
    loaded = store.read_checkpoint("w")
    assert loaded == ReplayCheckpoint(t + timedelta(seconds=1), ("b",), schema_version="9")
    assert [p.name for p in store.checkpoints_dir.iterdir()] == ["w.json"]


def test_checkpoint_reads_a_0_1_8_file(tmp_path):
    ws = tmp_path / "legacy"
    folder = ws / "store" / "checkpoints"
    folder.mkdir(parents=True)
    (folder / "route_worker.json").write_text(
        '{"last_timestamp":"2026-02-05T12:00:00Z","schema_version":"0.1","seen_ids_at_timestamp":["x","y"]}\n',
        encoding="utf-8",
    )
    cp = FileSystemStore(ws).read_checkpoint("route_worker")
    assert cp == ReplayCheckpoint(datetime(2026, 2, 5, 12, tzinfo=UTC), ("x", "y"))


# --------------------------------------------------------------------------- ReplayCheckpoint


def test_replay_checkpoint_normalises_time_and_dedups_ids():
    plus2 = timezone(timedelta(hours=2))
    cp = ReplayCheckpoint(datetime(2026, 2, 5, 14, 0, tzinfo=plus2), ("b", "a", "b", "c", "a"))
    assert cp.last_timestamp == datetime(2026, 2, 5, 12, 0, tzinfo=UTC)
    assert cp.last_timestamp.utcoffset() == timedelta(0)
    assert cp.seen_ids_at_timestamp == ("b", "a", "c")
    naive = ReplayCheckpoint(datetime(2026, 2, 5, 12, 0))
    assert naive.last_timestamp == datetime(2026, 2, 5, 12, 0, tzinfo=UTC)
    assert naive.last_timestamp.tzinfo is not None


def test_replay_checkpoint_is_frozen_and_hashable_value():
    cp = ReplayCheckpoint(datetime(2026, 2, 5, tzinfo=UTC), ("a",))
    with pytest.raises(dataclasses.FrozenInstanceError):
        cp.last_timestamp = datetime(2027, 1, 1, tzinfo=UTC)  # type: ignore[misc]
    assert cp == ReplayCheckpoint(datetime(2026, 2, 5, tzinfo=UTC), ["a"])
    assert hash(cp) == hash(ReplayCheckpoint(datetime(2026, 2, 5, tzinfo=UTC), ("a",)))


def test_replay_checkpoint_to_dict_and_from_dict():
    cp = ReplayCheckpoint(datetime(2026, 2, 5, 12, 0, 0, tzinfo=UTC), ("a",), schema_version="0.2")
    assert cp.to_dict() == {
        "last_timestamp": "2026-02-05T12:00:00Z",
        "seen_ids_at_timestamp": ["a"],
        "schema_version": "0.2",
    }
    assert ReplayCheckpoint.from_dict(cp.to_dict()) == cp
    assert ReplayCheckpoint.from_dict({"last_timestamp": "2026-02-05T14:00:00+02:00"}) == ReplayCheckpoint(
        datetime(2026, 2, 5, 12, tzinfo=UTC)
    )
    loaded = ReplayCheckpoint.from_dict({"last_timestamp": "2026-02-05T12:00:00", "schema_version": 3})
    assert loaded.last_timestamp == datetime(2026, 2, 5, 12, tzinfo=UTC)
    assert loaded.schema_version == "3"
    assert loaded.seen_ids_at_timestamp == ()
