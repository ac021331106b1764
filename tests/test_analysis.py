"""Analysis API: SQL views, read_signals / read_emissions and pandas/polars conversion, on a
store with compacted (Parquet) and hot (JSONL) days."""

from __future__ import annotations

import importlib.util
import json
from collections import Counter
from datetime import date, datetime, timezone
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from metaspn_store import FileSystemStore
from metaspn_store.sample import generate_workspace, hot_entities

UTC = timezone.utc
FAR_PAST = datetime(1970, 1, 1, tzinfo=UTC)
FAR_FUTURE = datetime(2100, 1, 1, tzinfo=UTC)
SPD = 400


@pytest.fixture
def mixed(tmp_path: Path) -> FileSystemStore:
    """Days 2026-02-01/02 compacted into Parquet, 2026-02-03/04 hot."""
    store = FileSystemStore(tmp_path / "ws")
    generate_workspace(store, days=4, signals_per_day=SPD, start=date(2026, 2, 1), seed=3)
    report = store.compact(before=date(2026, 2, 3))
    assert {d.day for d in report.days} == {"2026-02-01", "2026-02-02"}
    return store


def _tiers(store: FileSystemStore, view: str) -> set[str]:
    return {row[0] for row in store.sql(f"SELECT DISTINCT tier FROM {view}").fetchall()}


def test_signal_volume_by_source_equals_full_replay(mixed: FileSystemStore) -> None:
    assert _tiers(mixed, "signals") == {"hot", "cold"}
    got = dict(mixed.sql("select source, count(*) from signals group by all").fetchall())
    expected = Counter(s.source for s in mixed.iter_signals(FAR_PAST, FAR_FUTURE))
    assert got == dict(expected)
    assert sum(got.values()) == 4 * SPD


def test_emission_volume_by_type_equals_full_replay(mixed: FileSystemStore) -> None:
    assert _tiers(mixed, "emissions") == {"hot", "cold"}
    got = dict(mixed.sql("select emission_type, count(*) from emissions group by all").fetchall())
    expected = Counter(e.emission_type for e in mixed.iter_emissions(FAR_PAST, FAR_FUTURE))
    assert got == dict(expected)


def test_views_deduplicate_hot_lines(mixed: FileSystemStore) -> None:
    signals_dir = mixed.signals_dir
    before = dict(mixed.sql("select source, count(*) from signals group by all").fetchall())
    ids_before = [s.signal_id for s in mixed.iter_signals(FAR_PAST, FAR_FUTURE)]

    cold_id = mixed.sql("select signal_id from signals where day = DATE '2026-02-02' order by seq limit 1").fetchall()[0][0]
    hot_file = signals_dir / "2026-02-03.jsonl"
    hot_lines = hot_file.read_bytes().splitlines()
    hot_record = json.loads(hot_lines[0])
    # the cold record, re-rendered with another source: a duplicate id whose first write is in Parquet
    cold_signal = next(s for s in mixed.iter_signals(FAR_PAST, FAR_FUTURE) if s.signal_id == cold_id)
    cold_record = dict(hot_record)
    cold_record.update(
        signal_id=cold_id,
        timestamp=cold_signal.timestamp.isoformat().replace("+00:00", "Z"),
        source="dup.source",
    )
    late_file = signals_dir / "2026-02-02.jsonl"  # late hot file for the compacted day
    late_file.write_bytes(json.dumps(cold_record).encode() + b"\n")
    # and a duplicate inside the hot file of 2026-02-03
    hot_dup = dict(hot_record, source="dup.source")
    with hot_file.open("ab") as handle:
        handle.write(json.dumps(hot_dup).encode() + b"\n")

    assert mixed.verify() == []  # both lines are readable records, not skipped as malformed
    after = dict(mixed.sql("select source, count(*) from signals group by all").fetchall())
    assert after == before
    n, distinct = mixed.sql("select count(*), count(distinct signal_id) from signals").fetchall()[0]
    assert n == distinct == len(ids_before)
    for signal_id in (cold_id, hot_record["signal_id"]):
        assert mixed.sql("select count(*) from signals where signal_id = $id", params={"id": signal_id}).fetchall() == [(1,)]
    replay = list(mixed.iter_signals(FAR_PAST, FAR_FUTURE))
    assert [s.signal_id for s in replay] == ids_before
    assert "dup.source" not in {s.source for s in replay}


@pytest.mark.parametrize(
    "value", ["x' OR '1'='1", "'; DROP VIEW signals; --", 'a"b\'c', "$1 ? $source", "score.worker' --"]
)
def test_sql_params_are_bound(mixed: FileSystemStore, value: str) -> None:
    rows = mixed.sql("select count(*) from signals where source = $source", params={"source": value}).fetchall()
    assert rows == [(0,)]
    rows = mixed.sql("select count(*) from signals where source = ?", params=[value]).fetchall()
    assert rows == [(0,)]
    assert mixed.sql("select count(*) from signals").fetchall() == [(4 * SPD,)]


@pytest.mark.parametrize("filters", [{}, {"sources": ["score.worker", "learning.worker"]}, {"entity": True}])
def test_read_signals_matches_iter_signals(mixed: FileSystemStore, filters: dict) -> None:
    kwargs: dict = {}
    if filters.get("sources"):
        kwargs["sources"] = filters["sources"]
    if filters.get("entity"):
        kwargs["entity_ref"] = hot_entities(signals_per_day=SPD, seed=3, top=1)[0]
    start, end = datetime(2026, 2, 1, 12, tzinfo=UTC), datetime(2026, 2, 4, 12, tzinfo=UTC)
    table = mixed.read_signals(start, end, **kwargs)
    assert isinstance(table, pa.Table)
    expected = [s.signal_id for s in mixed.iter_signals(start, end, **kwargs)]
    assert expected
    assert table.column("signal_id").to_pylist() == expected
    timestamps = table.column("timestamp").to_pylist()
    assert timestamps == sorted(timestamps)
    assert table.schema.field("day").type == pa.date32()
    assert pa.types.is_string(table.schema.field("entity_key").type) or pa.types.is_large_string(
        table.schema.field("entity_key").type
    )
    assert set(table.column("tier").to_pylist()) <= {"hot", "cold"}
    assert all(k for k in table.column("entity_key").to_pylist())
    con = duckdb.connect()
    con.register("t", table)
    statuses = con.sql(
        "select json_extract_string(payload, '$.status') from t where payload_type = 'RecommendationCandidate'"
    ).fetchall()
    by_id = {s.signal_id: s for s in mixed.iter_signals(start, end, **kwargs)}
    candidates = [i for i in expected if by_id[i].payload_type == "RecommendationCandidate"]
    assert [r[0] for r in statuses] == [by_id[i].payload.get("status") for i in candidates]


def test_read_signals_payload_type_filter_and_tiers(mixed: FileSystemStore) -> None:
    table = mixed.read_signals(FAR_PAST, FAR_FUTURE, payload_types=["RecommendationCandidate"])
    assert set(table.column("payload_type").to_pylist()) == {"RecommendationCandidate"}
    assert set(table.column("tier").to_pylist()) == {"hot", "cold"}
    expected = [
        s.signal_id for s in mixed.iter_signals(FAR_PAST, FAR_FUTURE) if s.payload_type == "RecommendationCandidate"
    ]
    assert table.column("signal_id").to_pylist() == expected
    days = {d.isoformat(): t for d, t in zip(table.column("day").to_pylist(), table.column("tier").to_pylist(), strict=True)}
    assert days == {"2026-02-01": "cold", "2026-02-02": "cold", "2026-02-03": "hot", "2026-02-04": "hot"}


def test_read_emissions_matches_iter_emissions(mixed: FileSystemStore) -> None:
    types = ["OutcomeSuccess", "OutcomeFailure"]
    table = mixed.read_emissions(FAR_PAST, FAR_FUTURE, emission_types=types)
    assert table.column("emission_id").to_pylist() == [
        e.emission_id for e in mixed.iter_emissions(FAR_PAST, FAR_FUTURE, emission_types=types)
    ]
    assert table.schema.field("day").type == pa.date32()


def test_to_pandas(mixed: FileSystemStore) -> None:
    pytest.importorskip("pandas")
    table = mixed.read_signals(FAR_PAST, FAR_FUTURE, sources=["score.worker"])
    frame = mixed.to_pandas(table)
    assert len(frame) == table.num_rows > 0
    assert list(frame.columns) == table.column_names
    assert frame["signal_id"].tolist() == table.column("signal_id").to_pylist()


def test_to_polars_or_install_hint(mixed: FileSystemStore) -> None:
    table = mixed.read_signals(FAR_PAST, FAR_FUTURE, sources=["score.worker"])
    if importlib.util.find_spec("polars") is None:
        with pytest.raises(ImportError, match=r"metaspn-store\[polars\]"):
            mixed.to_polars(table)
    else:
        frame = mixed.to_polars(table)
        assert frame.height == table.num_rows
        assert frame["signal_id"].to_list() == table.column("signal_id").to_pylist()
