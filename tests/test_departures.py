"""Deliberate departures from metaspn-store 0.1.8 (DESIGN.md). Every test here fails against 0.1.8 by design.

1. Values JSON cannot hold exactly (non-finite floats, non-str keys, sets, bytes, objects) are
   refused at write time with a ValueError naming the record id and the field path; nothing is written.
2. A batch write validates the whole batch before appending anything.
3. Checkpoint / snapshot names and day strings cannot escape their folder.
4. Checkpoint / snapshot files are replaced atomically.
5. Any ``on_duplicate`` other than the three policies raises ValueError, also for a new id
   (0.1.8 only looked at the policy when the id already existed).
"""

from __future__ import annotations

import json
from datetime import date, datetime, timezone
from pathlib import Path

import pytest
from metaspn_schemas import TraceContext

from metaspn_store import ReplayCheckpoint

UTC = timezone.utc
WIDE = {"start": datetime(2026, 1, 1, tzinfo=UTC), "end": datetime(2026, 3, 1, tzinfo=UTC)}


class Opaque:
    def __repr__(self) -> str:
        return "Opaque()"


def tree(root: Path) -> dict[str, bytes]:
    """Every file under root with its bytes (to prove nothing changed)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def assert_names(message: str, record_id: str, parts: list[str]) -> None:
    """The message names the record id and each field path component, in order."""
    assert record_id in message, f"record id {record_id!r} not in {message!r}"
    pos = 0
    for part in parts:
        found = message.find(part, pos)
        assert found >= 0, f"field path part {part!r} not found (in order) in {message!r}"
        pos = found + len(part)


# (case id, factory kwargs, expected path parts)
BAD_SIGNAL_VALUES = [
    ("nan_top", {"payload": {"score_x": float("nan")}}, ["payload", "score_x"]),
    (
        "inf_nested",
        {"payload": {"outer_k": {"inner_k": [1, float("inf")]}}},
        ["payload", "outer_k", "inner_k"],
    ),
    ("neg_inf_list", {"payload": [0, 1, float("-inf")]}, ["payload"]),
    ("nan_scalar_payload", {"payload": float("nan")}, ["payload"]),
    ("nan_raw", {"raw": {"raw_k": float("nan")}}, ["raw", "raw_k"]),
    ("inf_raw_deep", {"raw": {"raw_a": [{"raw_b": float("inf")}]}}, ["raw", "raw_a", "raw_b"]),
    (
        "nan_trace_meta",
        {"trace": TraceContext(trace_id="t", metadata={"meta_k": float("nan")})},  # type: ignore[dict-item]
        ["trace", "metadata", "meta_k"],
    ),
    ("int_key", {"payload": {"ok": {7: "seven"}}}, ["payload", "ok"]),
    ("tuple_key", {"payload": {(1, 2): "x"}}, ["payload"]),
    ("set_value", {"payload": {"tags_k": {"a", "b"}}}, ["payload", "tags_k"]),
    ("bytes_value", {"payload": {"blob_k": b"\x00\x01"}}, ["payload", "blob_k"]),
    ("object_value", {"payload": {"obj_k": Opaque()}}, ["payload", "obj_k"]),
    ("object_in_raw", {"raw": {"raw_obj": Opaque()}}, ["raw", "raw_obj"]),
    ("frozenset_payload", {"payload": frozenset({1})}, ["payload"]),
]


@pytest.mark.parametrize(
    ("case", "kwargs", "parts"), BAD_SIGNAL_VALUES, ids=[c[0] for c in BAD_SIGNAL_VALUES]
)
def test_bad_signal_value_rejected_and_nothing_written(store, make_signal, workspace, case, kwargs, parts):
    store.write_signal(make_signal("good-before", seconds=0, payload={"v": 1}))
    before = tree(workspace)
    record_id = f"bad-{case}"
    with pytest.raises(ValueError) as info:
        store.write_signal(make_signal(record_id, seconds=1, **kwargs))
    assert_names(str(info.value), record_id, parts)
    assert tree(workspace) == before
    assert [s.signal_id for s in store.iter_signals(**WIDE)] == ["good-before"]


@pytest.mark.parametrize(
    ("case", "kwargs", "parts"),
    [
        ("nan", {"payload": {"p_k": float("nan")}}, ["payload", "p_k"]),
        ("inf_list", {"payload": [float("inf")]}, ["payload"]),
        ("set", {"payload": {"s_k": {1}}}, ["payload", "s_k"]),
        ("bytes", {"payload": b"x"}, ["payload"]),
        ("int_key", {"payload": {1: 2}}, ["payload"]),
        (
            "trace",
            {"trace": TraceContext(trace_id="t", metadata={"m_k": float("inf")})},
            ["trace", "metadata", "m_k"],
        ),  # type: ignore[dict-item]
        ("object", {"payload": {"o_k": object()}}, ["payload", "o_k"]),
    ],
    ids=["nan", "inf_list", "set", "bytes", "int_key", "trace", "object"],
)
def test_bad_emission_value_rejected_and_nothing_written(
    store, make_emission, workspace, case, kwargs, parts
):
    store.write_emission(make_emission("good-before", seconds=0))
    before = tree(workspace)
    record_id = f"bad-{case}"
    with pytest.raises(ValueError) as info:
        store.write_emission(make_emission(record_id, seconds=1, **kwargs))
    assert_names(str(info.value), record_id, parts)
    assert tree(workspace) == before
    assert [e.emission_id for e in store.iter_emissions(**WIDE)] == ["good-before"]


def test_rejected_record_does_not_claim_its_id(store, make_signal, make_emission):
    with pytest.raises(ValueError):
        store.write_signal(make_signal("x", payload={"v": float("nan")}))
    with pytest.raises(ValueError):
        store.write_emission(make_emission("y", payload={"v": {1, 2}}))
    good = make_signal("x", payload={"v": 1.0})
    good_e = make_emission("y", payload={"v": [1, 2]})
    assert store.write_signal(good, on_duplicate="raise") == store.signals_dir / "2026-02-05.jsonl"
    assert store.write_emission(good_e, on_duplicate="raise") == store.emissions_dir / "2026-02-05.jsonl"
    assert list(store.iter_signals(**WIDE)) == [good]
    assert list(store.iter_emissions(**WIDE)) == [good_e]


def test_rejected_value_into_a_new_day_creates_no_partition(store, make_signal, workspace):
    before = tree(workspace)
    with pytest.raises(ValueError):
        store.write_signal(
            make_signal("z", timestamp=datetime(2026, 2, 20, tzinfo=UTC), payload={"k": float("inf")})
        )
    assert tree(workspace) == before
    assert not (store.signals_dir / "2026-02-20.jsonl").exists()


# --------------------------------------------------------------------------- batches


def test_signal_batch_with_one_bad_record_writes_nothing(store, make_signal, workspace):
    store.write_signal(make_signal("existing", seconds=0))
    before = tree(workspace)
    batch = [
        make_signal("g1", seconds=1),
        make_signal("g2", timestamp=datetime(2026, 2, 9, tzinfo=UTC)),
        make_signal("bad-in-batch", seconds=2, payload={"deep_k": [float("nan")]}),
        make_signal("g3", seconds=3),
    ]
    with pytest.raises(ValueError) as info:
        store.write_signals(batch)
    assert_names(str(info.value), "bad-in-batch", ["payload", "deep_k"])
    assert tree(workspace) == before
    assert [s.signal_id for s in store.iter_signals(**WIDE)] == ["existing"]
    # None of the good ids were claimed.
    assert store.write_signals([batch[0], batch[1], batch[3]], on_duplicate="raise") == [
        store.signals_dir / "2026-02-05.jsonl",
        store.signals_dir / "2026-02-09.jsonl",
        store.signals_dir / "2026-02-05.jsonl",
    ]


def test_emission_batch_with_one_bad_record_writes_nothing(store, make_emission, workspace):
    before = tree(workspace)
    batch = [make_emission("g1", seconds=1), make_emission("bad-e", seconds=2, payload={"bin_k": b"x"})]
    with pytest.raises(ValueError) as info:
        store.write_emissions(iter(batch))
    assert_names(str(info.value), "bad-e", ["payload", "bin_k"])
    assert tree(workspace) == before
    assert list(store.iter_emissions(**WIDE)) == []
    assert store.write_emission(batch[0], on_duplicate="raise") == store.emissions_dir / "2026-02-05.jsonl"


def test_batch_bad_record_last_writes_nothing(store, make_signal, workspace):
    before = tree(workspace)
    batch = [make_signal(f"ok{i}", seconds=i) for i in range(20)] + [make_signal("last", payload={1: 1})]
    with pytest.raises(ValueError):
        store.write_signals(batch)
    assert tree(workspace) == before


# --------------------------------------------------------------------------- duplicate policy


def test_unknown_policy_with_new_id_raises_value_error(store, make_signal, make_emission, workspace):
    """0.1.8 only consulted the policy for existing ids and wrote new ones; here any policy other
    than the three raises ValueError before anything is written."""
    before = tree(workspace)
    with pytest.raises(ValueError, match="Unsupported duplicate policy"):
        store.write_signal(make_signal("fresh"), on_duplicate="bogus")
    with pytest.raises(ValueError, match="Unsupported duplicate policy"):
        store.write_emission(make_emission("fresh-e"), on_duplicate="bogus")
    with pytest.raises(ValueError, match="Unsupported duplicate policy"):
        store.write_signals([make_signal("fresh-2")], on_duplicate="Raise")
    with pytest.raises(ValueError, match="Unsupported duplicate policy"):
        store.write_emissions([make_emission("fresh-e2")], on_duplicate="")
    assert tree(workspace) == before
    assert list(store.iter_signals(**WIDE)) == []
    assert list(store.iter_emissions(**WIDE)) == []


# --------------------------------------------------------------------------- names

ABSOLUTE = "<absolute path outside the workspace>"
BAD_NAMES = [
    "../x",
    "../../escape",
    "a/b",
    ABSOLUTE,
    "",
    "nul\x00byte",
    "..",
    "sub/../../x",
    "a\\b",
    ".hidden",
]


def _resolve_name(name: str, workspace: Path) -> str:
    return str(workspace.parent / "outside" / "abs") if name == ABSOLUTE else name


@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
def test_checkpoint_name_cannot_escape(store, workspace, name):
    name = _resolve_name(name, workspace)
    (workspace.parent / "outside").mkdir()
    before = tree(workspace.parent)
    cp = ReplayCheckpoint(datetime(2026, 2, 5, tzinfo=UTC), ("a",))
    with pytest.raises(ValueError):
        store.write_checkpoint(name, cp)
    with pytest.raises(ValueError):
        store.read_checkpoint(name)
    assert tree(workspace.parent) == before


@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
def test_snapshot_name_cannot_escape(store, workspace, name):
    name = _resolve_name(name, workspace)
    (workspace.parent / "outside").mkdir()
    before = tree(workspace.parent)
    with pytest.raises(ValueError):
        store.write_snapshot(name, {"x": 1}, datetime(2026, 2, 5, tzinfo=UTC))
    assert tree(workspace.parent) == before


BAD_DAYS = ["../../etc", "../x", "a/b", "/abs/day", "x\x00y", "..\\x", ".hidden", ""]
DATED = [
    ("write_daily_digest_snapshot", "read_daily_digest_snapshot", "digest"),
    ("write_calibration_snapshot", "read_calibration_snapshot", "report"),
    ("write_credibility_snapshot", "read_credibility_snapshot", "report"),
]


@pytest.mark.parametrize("day", BAD_DAYS, ids=repr)
@pytest.mark.parametrize(("writer", "reader", "key"), DATED, ids=[d[0] for d in DATED])
def test_day_string_cannot_escape(store, workspace, writer, reader, key, day):
    before = tree(workspace.parent)
    with pytest.raises(ValueError):
        getattr(store, writer)(day=day, **{key: {"x": 1}})
    with pytest.raises(ValueError):
        getattr(store, reader)(day)
    assert tree(workspace.parent) == before


def test_day_objects_are_still_fine(store):
    assert (
        store.write_daily_digest_snapshot(day=date(2026, 2, 5), digest={}).name == "digest__2026-02-05.json"
    )


# --------------------------------------------------------------------------- atomic replacement


def _no_temp_leftovers(folder: Path, expected: set[str]) -> None:
    assert {p.name for p in folder.iterdir()} == expected


def test_checkpoint_replaced_atomically_without_leftovers(store):
    t = datetime(2026, 2, 5, tzinfo=UTC)
    for i in range(5):
        store.write_checkpoint("w", ReplayCheckpoint(t, (f"id{i}",)))
    _no_temp_leftovers(store.checkpoints_dir, {"w.json"})
    assert store.read_checkpoint("w") == ReplayCheckpoint(t, ("id4",))


def test_failed_checkpoint_write_keeps_previous_file(store):
    t = datetime(2026, 2, 5, tzinfo=UTC)
    good = ReplayCheckpoint(t, ("a", "b"))
    path = store.write_checkpoint("w", good)
    before = path.read_bytes()
    bad = ReplayCheckpoint(t, ("c", Opaque()))  # type: ignore[arg-type]
    with pytest.raises((TypeError, ValueError)):
        store.write_checkpoint("w", bad)
    assert path.read_bytes() == before
    assert store.read_checkpoint("w") == good
    _no_temp_leftovers(store.checkpoints_dir, {"w.json"})


def test_snapshot_replaced_atomically_without_leftovers(store):
    when = datetime(2026, 2, 5, tzinfo=UTC)
    for i in range(5):
        path = store.write_snapshot("state", {"i": i}, when)
    _no_temp_leftovers(store.snapshots_dir, {path.name})
    assert json.loads(path.read_text(encoding="utf-8")) == {"i": 4}


def test_failed_snapshot_write_keeps_previous_file(store):
    when = datetime(2026, 2, 5, tzinfo=UTC)
    path = store.write_snapshot("state", {"a": 1, "b": [1, 2, 3]}, when)
    before = path.read_bytes()
    with pytest.raises((TypeError, ValueError)):
        store.write_snapshot("state", {"a": 2, "big": list(range(10000)), "z": Opaque()}, when)
    assert path.read_bytes() == before
    assert json.loads(path.read_text(encoding="utf-8")) == {"a": 1, "b": [1, 2, 3]}
    _no_temp_leftovers(store.snapshots_dir, {path.name})


@pytest.mark.parametrize(("writer", "reader", "key"), DATED, ids=[d[0] for d in DATED])
def test_failed_dated_snapshot_write_keeps_previous_file(store, writer, reader, key):
    path = getattr(store, writer)(day="2026-02-05", **{key: {"v": 1}})
    before = path.read_bytes()
    with pytest.raises((TypeError, ValueError)):
        getattr(store, writer)(day="2026-02-05", **{key: {"v": 2, "z": Opaque()}})
    assert path.read_bytes() == before
    assert getattr(store, reader)("2026-02-05") == {
        "day": "2026-02-05",
        key: {"v": 1},
        "schema_version": "0.1",
    }
    _no_temp_leftovers(store.snapshots_dir, {path.name})
