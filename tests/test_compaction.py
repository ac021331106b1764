"""Compaction (hot JSONL -> cold Parquet) must be invisible to every read.

Real files, real DuckDB, real Parquet: a workspace is written through the public API, read, compacted,
read again (same instance and a fresh one), receives late writes into compacted days, is compacted
again, and every read model must return exactly (``==``) what it returned before.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import warnings
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds
import pytest
from deltalake import DeltaTable
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from metaspn_schemas import EmissionEnvelope, EntityRef, SignalEnvelope

from metaspn_store import BadLineWarning, DuplicateEventError, FileSystemStore

UTC = timezone.utc
DAY0 = date(2026, 2, 1)
W_START = datetime(2026, 1, 31, tzinfo=UTC)
W_END = datetime(2026, 2, 6, tzinfo=UTC)
NOW = datetime(2026, 2, 3, 12, tzinfo=UTC)

ENTITIES = [
    EntityRef(ref_type="person", value="alice"),
    EntityRef(ref_type="person", value="alice", platform="x"),
    EntityRef(ref_type="person", value="bob", platform="x"),
    EntityRef(ref_type="project", value="p-1"),
]
SOURCES = ["ingest.worker", "score.worker"]
PAYLOAD_TYPES = ["Observation", "RecommendationCandidate", "OutcomePending"]
EMISSION_TYPES = ["OutcomeSuccess", "OutcomeFailure", "DraftApproved", "Note"]
SIGNAL_IDS = [f"s{i:02d}" for i in range(30)]
EMISSION_IDS = [f"e{i:02d}" for i in range(15)]


def _ts(day: int, slot: int, micro: int) -> datetime:
    # Few slots per day: many exact ties across records.
    hour, minute = [(0, 0), (6, 30), (12, 0), (23, 59)][slot]
    return datetime(2026, 2, 1 + day, hour, minute, tzinfo=UTC) + timedelta(microseconds=micro)


payloads = st.fixed_dictionaries(
    {},
    optional={
        "score": st.sampled_from([0, 0.5, 1, 2.25, True, False]),
        "status": st.sampled_from(["READY", "OPEN"]),
        "token_id": st.sampled_from(["t1", "t2"]),
        "project_entity_id": st.sampled_from(["proj-1"]),
        "promise_id": st.sampled_from(["p1", "p2"]),
        "expires_at": st.sampled_from(["2026-02-02T00:00:00Z", "2026-02-09T00:00:00Z"]),
    },
)


@st.composite
def signal_st(draw: Any, days: int) -> SignalEnvelope:
    return SignalEnvelope(
        signal_id=draw(st.sampled_from(SIGNAL_IDS)),
        timestamp=_ts(
            draw(st.integers(0, days - 1)), draw(st.integers(0, 3)), draw(st.sampled_from([0, 0, 1]))
        ),
        source=draw(st.sampled_from(SOURCES)),
        payload_type=draw(st.sampled_from(PAYLOAD_TYPES)),
        payload=draw(payloads),
        entity_refs=tuple(draw(st.lists(st.sampled_from(ENTITIES), max_size=2))),
    )


@st.composite
def emission_st(draw: Any, days: int) -> EmissionEnvelope:
    return EmissionEnvelope(
        emission_id=draw(st.sampled_from(EMISSION_IDS)),
        timestamp=_ts(draw(st.integers(0, days - 1)), draw(st.integers(0, 3)), draw(st.sampled_from([0, 1]))),
        emission_type=draw(st.sampled_from(EMISSION_TYPES)),
        payload=draw(payloads),
        caused_by=draw(st.sampled_from(SIGNAL_IDS)),
        entity_refs=tuple(draw(st.lists(st.sampled_from(ENTITIES), max_size=1))),
    )


@st.composite
def workspace_st(draw: Any) -> dict[str, Any]:
    days = draw(st.integers(3, 4))
    records = draw(st.lists(st.one_of(signal_st(days), emission_st(days)), min_size=1, max_size=40))
    # Some records are written twice (same envelope, and an id reused with other content).
    doubles = draw(st.lists(st.sampled_from(records), max_size=6))
    late = draw(st.lists(st.one_of(signal_st(days), emission_st(days)), min_size=1, max_size=14))
    batch = draw(st.booleans())
    return {"days": days, "records": records + doubles, "late": late, "batch": batch}


def _write(store: FileSystemStore, records: list[Any], batch: bool) -> None:
    if batch:
        store.write_signals([r for r in records if isinstance(r, SignalEnvelope)])
        store.write_emissions([r for r in records if isinstance(r, EmissionEnvelope)])
        return
    for r in records:
        if isinstance(r, SignalEnvelope):
            store.write_signal(r)
        else:
            store.write_emission(r)


def read_all(store: FileSystemStore, checkpoint: Any) -> dict[str, Any]:
    """Every read method under test, with a few filter variants."""
    w = {"start": W_START, "end": W_END}
    out: dict[str, Any] = {
        "iter_signals": list(store.iter_signals(W_START, W_END)),
        "iter_signals_src": list(store.iter_signals(W_START, W_END, sources=["score.worker"])),
        "iter_signals_ent": list(store.iter_signals(W_START, W_END, entity_ref=ENTITIES[1])),
        "iter_signals_narrow": list(store.iter_signals(_ts(1, 1, 0), _ts(2, 2, 1))),
        "iter_emissions": list(store.iter_emissions(W_START, W_END)),
        "iter_emissions_typ": list(store.iter_emissions(W_START, W_END, emission_types=["OutcomeSuccess"])),
        "top_unique": store.get_top_recommendation_candidates(limit=5, **w),
        "top_all": store.get_top_recommendation_candidates(limit=50, unique_by_entity=False, **w),
        "top_filtered": store.get_top_recommendation_candidates(
            limit=3, sources=["score.worker"], payload_types=["RecommendationCandidate"], **w
        ),
        "buckets": store.get_outcome_window_buckets(now=NOW, **w),
        "ready": store.get_ready_candidates(**w),
        "ready_limit": store.get_ready_candidates(limit=2, **w),
        "token": store.get_token_signals(token_id="t1", **w),
        "token_any": store.get_token_signals(**w),
        "token_proj": store.get_token_signals(project_entity_id="proj-1", limit=3, **w),
        "promise": store.get_promise_signals(promise_id="p1", **w),
        "promise_status": store.get_promise_signals(status="READY", **w),
        "from_checkpoint": list(store.iter_signals_from_checkpoint(end=W_END, checkpoint=checkpoint)),
        "from_start": list(store.iter_signals_from_checkpoint(end=W_END, start=_ts(1, 2, 0))),
    }
    for i, ref in enumerate(ENTITIES):
        out[f"recent_{i}"] = store.get_recent_signals_by_entity(entity_ref=ref, limit=3, end=W_END)
        out[f"recent_all_{i}"] = store.get_recent_signals_by_entity(
            entity_ref=ref, limit=100, start=W_START, end=W_END
        )
    return out


def _checkpoint(store: FileSystemStore) -> Any:
    replay = list(store.iter_signals(W_START, W_END))
    return store.build_signal_checkpoint(replay[: max(1, len(replay) // 2)]) if replay else None


def _assert_same(expected: dict[str, Any], actual: dict[str, Any], where: str) -> None:
    for key in expected:
        assert actual[key] == expected[key], f"{where}: {key} differs"


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(spec=workspace_st())
def test_compaction_is_invisible_to_every_read(spec: dict[str, Any]) -> None:
    folder = Path(tempfile.mkdtemp(prefix="mss-compact-"))
    try:
        ws, ref_ws = folder / "ws", folder / "ref"
        store, ref = FileSystemStore(ws), FileSystemStore(ref_ws)
        _write(store, spec["records"], spec["batch"])
        _write(ref, spec["records"], spec["batch"])
        checkpoint = _checkpoint(store)
        before = read_all(store, checkpoint)
        last_day = DAY0 + timedelta(days=spec["days"] - 1)

        report = store.compact(before=last_day)  # the last day stays hot
        assert all(d.day < last_day.isoformat() for d in report.days)
        _assert_same(before, read_all(store, checkpoint), "same instance after compaction")
        _assert_same(before, read_all(FileSystemStore(ws), checkpoint), "fresh instance after compaction")
        assert store.compact(before=last_day).days == []
        assert FileSystemStore(ws).compact(before=last_day).days == []

        # Late writes (new ids and duplicates of compacted ids) into compacted days.
        _write(store, spec["late"], not spec["batch"])
        _write(ref, spec["late"], not spec["batch"])
        late = read_all(FileSystemStore(ws), checkpoint)
        _assert_same(read_all(ref, checkpoint), late, "late writes vs never-compacted reference")
        store.compact(before=last_day + timedelta(days=1))  # now everything is cold
        _assert_same(late, read_all(store, checkpoint), "same instance after second compaction")
        _assert_same(
            late, read_all(FileSystemStore(ws), checkpoint), "fresh instance after second compaction"
        )
        assert store.compact(before=last_day + timedelta(days=1)).days == []
        assert not list((ws / "store" / "signals").glob("*.jsonl"))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# --------------------------------------------------------------------------- focused behaviours


def _signal(sid: str, day: int, second: int = 0, **payload: Any) -> SignalEnvelope:
    return SignalEnvelope(
        signal_id=sid,
        timestamp=datetime(2026, 2, day, 12, 0, second, tzinfo=UTC),
        source="ingest.worker",
        payload_type="Observation",
        payload=dict(payload),
        entity_refs=(ENTITIES[0],),
    )


def _populate(store: FileSystemStore, per_day: int = 5) -> list[SignalEnvelope]:
    signals = [_signal(f"s-{d}-{i}", d, i, score=i) for d in (1, 2, 3) for i in range(per_day)]
    store.write_signals(signals)
    store.write_emissions(
        [
            EmissionEnvelope(
                emission_id=f"e-{d}",
                timestamp=datetime(2026, 2, d, 13, tzinfo=UTC),
                emission_type="OutcomeSuccess",
                payload={},
                caused_by=f"s-{d}-0",
            )
            for d in (1, 2, 3)
        ]
    )
    return signals


def _ids(store: FileSystemStore) -> list[str]:
    return [s.signal_id for s in store.iter_signals(W_START, W_END)]


def test_duplicate_write_after_compaction_returns_path_and_adds_nothing(tmp_path: Path) -> None:
    store = FileSystemStore(tmp_path)
    _populate(store)
    store.compact(before=date(2026, 2, 4))
    before = _ids(store)
    for s in (store, FileSystemStore(tmp_path)):
        path = s.write_signal(_signal("s-1-0", 1, 30, score=99))
        assert isinstance(path, Path)
        path2 = s.write_signal(_signal("s-2-1", 3, 0))  # same id, other day: still a duplicate
        assert isinstance(path2, Path)
    assert _ids(FileSystemStore(tmp_path)) == before
    assert not (tmp_path / "store" / "signals" / "2026-02-01.jsonl").exists()
    assert not (tmp_path / "store" / "signals" / "2026-02-03.jsonl").exists()
    first = next(s for s in FileSystemStore(tmp_path).iter_signals(W_START, W_END) if s.signal_id == "s-1-0")
    assert first.payload == {"score": 0}


def test_raise_policy_sees_ids_that_live_only_in_parquet(tmp_path: Path) -> None:
    store = FileSystemStore(tmp_path)
    _populate(store)
    store.compact(before=date(2026, 2, 4))
    assert not list((tmp_path / "store" / "signals").glob("*.jsonl"))
    fresh = FileSystemStore(tmp_path)
    with pytest.raises(DuplicateEventError):
        fresh.write_signal(_signal("s-2-3", 2, 3), on_duplicate="raise")
    with pytest.raises(DuplicateEventError):
        FileSystemStore(tmp_path).write_emission(
            EmissionEnvelope(
                emission_id="e-1",
                timestamp=datetime(2026, 2, 5, tzinfo=UTC),
                emission_type="OutcomeSuccess",
                payload={},
                caused_by="",
            ),
            on_duplicate="raise",
        )
    # A new id still goes through with "raise".
    fresh.write_signal(_signal("s-new", 2, 59), on_duplicate="raise")
    assert _ids(FileSystemStore(tmp_path)).count("s-new") == 1


def test_parquet_is_a_plain_hive_dataset(tmp_path: Path) -> None:
    store = FileSystemStore(tmp_path)
    signals = _populate(store, per_day=7)
    store.write_signal(signals[0])  # duplicate: must not become a row
    store.compact(before=date(2026, 2, 3))
    dataset = ds.dataset(tmp_path / "store" / "cold" / "signals", format="parquet", partitioning="hive")
    table = dataset.to_table()
    assert table.num_rows == 14  # days 1 and 2
    assert "day" in dataset.schema.names
    days = sorted({str(v) for v in table.column("day").to_pylist()})
    assert days == ["2026-02-01", "2026-02-02"]
    assert sorted(table.column("signal_id").to_pylist()) == sorted(s.signal_id for s in signals[:14])
    emissions = ds.dataset(tmp_path / "store" / "cold" / "emissions", format="parquet", partitioning="hive")
    assert emissions.to_table().num_rows == 2


def test_files_per_day_stay_bounded(tmp_path: Path) -> None:
    store = FileSystemStore(tmp_path)
    _populate(store)
    store.compact(before=date(2026, 2, 4))
    for round_ in range(5):
        store.write_signals([_signal(f"late-{round_}-{d}", d, 40 + round_) for d in (1, 2, 3)])
        store.write_signal(_signal("s-1-1", 2, 0))  # duplicate too
        store.compact(before=date(2026, 2, 4))
    cold = tmp_path / "store" / "cold" / "signals"
    # Each version of the Delta table holds one file per day; replaced files stay for readers of
    # older versions until a vacuum removes them.
    live = [p.split("/")[-2] for p in DeltaTable(str(cold)).file_uris()]
    assert sorted(live) == ["day=2026-02-01", "day=2026-02-02", "day=2026-02-03"]
    store.vacuum(retain_hours=0)
    folders = sorted(p for p in cold.iterdir() if p.is_dir() and p.name != "_delta_log")
    assert [p.name for p in folders] == ["day=2026-02-01", "day=2026-02-02", "day=2026-02-03"]
    for folder in folders:
        assert len(list(folder.glob("*.parquet"))) == 1, folder
        assert [p for p in folder.iterdir() if p.suffix != ".parquet"] == []
    ids = _ids(FileSystemStore(tmp_path))
    assert len(ids) == len(set(ids))


def test_late_writes_into_compacted_days_stay_visible_over_rounds(tmp_path: Path) -> None:
    for trial in range(10):
        ws = tmp_path / f"ws{trial}"
        store = FileSystemStore(ws)
        _populate(store)
        store.compact(before=date(2026, 2, 4))
        for round_ in range(5):
            late = [f"late-{round_}-{d}" for d in (1, 2, 3)]
            store.write_signals(
                [_signal(sid, d, 40 + round_) for sid, d in zip(late, (1, 2, 3), strict=True)]
            )
            visible = _ids(FileSystemStore(ws))
            assert [sid for sid in late if sid not in visible] == [], f"trial {trial} round {round_}: hidden"
            store.compact(before=date(2026, 2, 4))
            visible = _ids(FileSystemStore(ws))
            assert [sid for sid in late if sid not in visible] == [], f"trial {trial} round {round_}: lost"


def _disk_state(root: Path) -> dict[str, tuple[int, str]]:
    state = {}
    for p in sorted(root.rglob("*")):
        # Lock files are advisory; .cache/.index hold derived files readers save (not data).
        if p.is_file() and not {".locks", ".cache", ".index"} & set(p.parts):
            state[str(p.relative_to(root))] = (
                p.stat().st_mtime_ns,
                hashlib.sha256(p.read_bytes()).hexdigest(),
            )
    return state


def test_dry_run_changes_nothing_on_disk(tmp_path: Path) -> None:
    store = FileSystemStore(tmp_path)
    _populate(store)
    store.compact(before=date(2026, 2, 2))
    store.write_signal(_signal("late", 1, 50))
    before = _disk_state(tmp_path)
    ids = _ids(store)
    report = store.compact(before=date(2026, 2, 4), dry_run=True)
    assert report.dry_run and not report.changed
    assert {(d.kind, d.day) for d in report.days} >= {("signals", "2026-02-01"), ("signals", "2026-02-02")}
    assert _disk_state(tmp_path) == before
    assert _ids(FileSystemStore(tmp_path)) == ids
    # and a real run afterwards does the work the dry run announced
    real = store.compact(before=date(2026, 2, 4))
    assert [(d.kind, d.day, d.records_out) for d in real.days] == [
        (d.kind, d.day, d.records_out) for d in report.days
    ]


def test_malformed_hot_line_is_skipped_with_warning_then_quarantined(tmp_path: Path) -> None:
    store = FileSystemStore(tmp_path)
    _populate(store)
    hot = tmp_path / "store" / "signals" / "2026-02-02.jsonl"
    garbage = '{"signal_id": "broken", "timestamp": this is not json'
    with open(hot, "a", encoding="utf-8") as fh:
        fh.write(garbage + "\n")
    store.write_signal(_signal("after-garbage", 2, 45))
    fresh = FileSystemStore(tmp_path)
    with pytest.warns(BadLineWarning, match="2026-02-02.jsonl"):
        ids = _ids(fresh)
    assert "broken" not in ids and "after-garbage" in ids
    assert len(ids) == 16
    problems = fresh.verify()
    assert [(Path(p.path).name, p.line) for p in problems] == [("2026-02-02.jsonl", 6)]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BadLineWarning)
        report = fresh.compact(before=date(2026, 2, 4))
    assert sum(d.malformed for d in report.days) == 1
    quarantine = list((tmp_path / "store" / "quarantine" / "signals").glob("*.jsonl"))
    assert quarantine, "malformed line was not kept aside"
    entries = [json.loads(line) for q in quarantine for line in q.read_text(encoding="utf-8").splitlines()]
    assert [e["text"] for e in entries] == [garbage]
    assert entries[0]["line"] == 6
    # After compaction the bad line is gone from the read path: no warning (filterwarnings=error).
    assert _ids(FileSystemStore(tmp_path)) == ids
    assert FileSystemStore(tmp_path).verify() == []
