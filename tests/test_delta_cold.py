"""The cold tier as a Delta Lake table, on local disk and on S3 (a moto server): compaction,
kills at every step, lost commit races, several hosts on one table, the previous layout's
conversion, as_of, vacuum and the remembered location.

Every check compares a store's answers with those of an uncompacted copy of the same workspace
(the copy keeps all its days hot, so it answers from JSONL alone)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import warnings
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pytest
from deltalake import DeltaTable
from legacy_layout import compact_the_old_way, legacy_files
from metaspn_schemas import SignalEnvelope

from metaspn_store import BadLineWarning, FileSystemStore
from metaspn_store._faults import COMPACTION_STEPS, CONVERSION_STEPS, ENV_VAR
from metaspn_store._layout import SIGNALS
from metaspn_store.sample import generate_workspace

UTC = timezone.utc
START = date(2026, 2, 1)
W_START = datetime(2026, 1, 1, tzinfo=UTC)
W_END = datetime(2026, 3, 1, tzinfo=UTC)
CUTOFF = date(2026, 2, 4)
ROOT = Path(__file__).resolve().parents[1]


def _open(ws: Path, cold: str | None = None) -> FileSystemStore:
    s3_options = None
    if cold is not None and cold.startswith("s3://"):
        s3_options = _S3_OPTIONS[0]
    return FileSystemStore(ws, cold=cold, storage_options=s3_options)


_S3_OPTIONS: list[dict[str, str] | None] = [None]


@pytest.fixture(autouse=True)
def _s3_options(request: pytest.FixtureRequest) -> None:
    if "cold_uri" in request.fixturenames and request.getfixturevalue("cold_uri"):
        _S3_OPTIONS[0] = request.getfixturevalue("s3").options


def _signal(sid: str, day: int, minute: int, score: float = 1.0, source: str = "host") -> SignalEnvelope:
    return SignalEnvelope(
        signal_id=sid, timestamp=datetime(2026, 2, day, 8, minute, tzinfo=UTC), source=source,
        payload_type="Observation", payload={"score": score},
    )


def _answers(store: FileSystemStore) -> dict[str, Any]:
    """Every kind of read, in a form that compares across tiers (``tier`` itself differs)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BadLineWarning)
        one_day = (datetime(2026, 2, 2, tzinfo=UTC), datetime(2026, 2, 2, 23, 59, 59, tzinfo=UTC))
        return {
            "signals": [s.to_dict() for s in store.iter_signals(W_START, W_END)],
            "emissions": [e.to_dict() for e in store.iter_emissions(W_START, W_END)],
            "one_day": [s.signal_id for s in store.iter_signals(*one_day)],
            "read": store.read_signals(W_START, W_END).drop_columns(["tier", "seq"]).to_pylist(),
            "top": [s.signal_id for s in store.get_top_recommendation_candidates(start=W_START, end=W_END, limit=25)],
            "buckets": {k: [x.to_dict() for x in v] for k, v in store.get_outcome_window_buckets(
                now=datetime(2026, 2, 3, tzinfo=UTC), start=W_START, end=W_END).items()},
            "sql": store.sql("SELECT count(*), count(DISTINCT signal_id) FROM signals").fetchall(),
        }


def _raw_rows(store: FileSystemStore) -> int:
    """Rows of both tiers before the id rule resolves copies: the table's rows plus the hot lines
    the table does not claim. Equal to an uncompacted copy's hot rows exactly when no record is
    held twice (a hot line the table already holds would count twice)."""
    total = 0
    for kind in ("signals", "emissions"):
        snap = store._engines[kind]._snapshot(date.min, date.max)
        total += snap.hot.num_rows if snap.hot is not None else 0
        if snap.files:
            total += store._cold[kind].dataset(snap.files).count_rows()
    return total


def _workspace(tmp_path: Path, cold: str | None, name: str = "ws", seed: int = 1) -> tuple[Path, Path]:
    """A small sample workspace (4 days, duplicates across days) and its uncompacted copy."""
    ws, ref = tmp_path / name, tmp_path / f"{name}-ref"
    store = _open(ws, cold)
    generate_workspace(store, days=4, signals_per_day=300, start=START, seed=seed)
    # the same id on two days, and again on a third day after compaction (late)
    store.write_signals([_signal("dup-a", 1, 5, 9.0), _signal("dup-b", 3, 6, 7.0)])
    store.close()
    # copies another tool appended: the same ids on later days (reads keep the first day's)
    for sid, day in (("dup-a", 2), ("dup-b", 4), ("dup-a", 4)):
        line = orjson.dumps(_signal(sid, day, 9, 1.0).to_dict()) + b"\n"
        with open(ws / "store" / "signals" / f"2026-02-0{day}.jsonl", "ab") as handle:
            handle.write(line)
    shutil.copytree(ws, ref)
    (ref / "store" / "cold.json").unlink()  # the copy keeps its own (empty) local cold tier
    return ws, ref


def _table_uri(ws: Path, kind: str = "signals") -> tuple[str, dict[str, str] | None]:
    config = orjson.loads((ws / "store" / "cold.json").read_bytes())
    return f"{config['uri'] or ws / 'store' / 'cold'}/{kind}", (config["storage_options"] or None)


def _check_table(ws: Path) -> None:
    """Each day of the table holds an id once, and only closed days are in it."""
    for kind, idc in (("signals", "signal_id"), ("emissions", "emission_id")):
        uri, options = _table_uri(ws, kind)
        if not DeltaTable.is_deltatable(uri, storage_options=options):
            continue
        table = DeltaTable(uri, storage_options=options).to_pyarrow_table(columns=[idc, "day"])
        pairs = list(zip(table.column(idc).to_pylist(), table.column("day").to_pylist(), strict=True))
        assert len(pairs) == len(set(pairs)), f"{kind}: an id twice in one day"


# ---------------------------------------------------------------------------- one host


def test_compaction_keeps_every_answer(tmp_path: Path, cold_uri: str | None) -> None:
    ws, ref = _workspace(tmp_path, cold_uri)
    expected = _answers(FileSystemStore(ref))
    store = FileSystemStore(ws)  # the location is remembered
    report = store.compact(before=CUTOFF)
    assert [d.day for d in report.days if d.kind == "signals"] == ["2026-02-01", "2026-02-02", "2026-02-03"]
    assert not any((ws / "store" / "signals").glob("2026-02-0[123].jsonl"))
    assert _answers(FileSystemStore(ws)) == expected
    assert store.compact(before=CUTOFF).days == []  # idempotent
    # late data and duplicates into compacted days, on both stores
    late = [_signal("late-1", 1, 50), _signal("dup-a", 3, 7), _signal("s-late", 2, 51, 99.0)]
    for target in (ws, ref):
        FileSystemStore(target).write_signals(late)
    expected = _answers(FileSystemStore(ref))
    assert _answers(store) == expected
    store.compact(before=CUTOFF)
    assert _answers(FileSystemStore(ws)) == expected
    _check_table(ws)
    # any Delta reader sees the compacted rows without this package
    uri, options = _table_uri(ws)
    table = DeltaTable(uri, storage_options=options).to_pyarrow_table()
    cold_ids = FileSystemStore(ws).sql("SELECT count(*) FROM signals WHERE tier = 'cold'").fetchall()[0][0]
    # the table keeps an id's copies on other days (reads keep the first day's)
    assert len(set(table.column("signal_id").to_pylist())) == cold_ids < table.num_rows
    assert {"signal_id", "timestamp", "day", "shared", "seq"} <= set(table.column_names)
    assert "late-1" in table.column("signal_id").to_pylist()


def test_polars_reads_the_table(tmp_path: Path, cold_uri: str | None) -> None:
    polars = pytest.importorskip("polars")
    ws, _ = _workspace(tmp_path, cold_uri)
    FileSystemStore(ws).compact(before=CUTOFF)
    uri, options = _table_uri(ws)
    frame = polars.scan_delta(uri, storage_options=options).select("signal_id", "day").collect()
    stored = FileSystemStore(ws).sql("SELECT count(*) FROM signals WHERE tier = 'cold'").fetchall()
    assert frame["signal_id"].n_unique() == stored[0][0]


# ---------------------------------------------------------------------------- kills at every step

COMPACT_CHILD = r"""
import sys
from datetime import date
from metaspn_store import FileSystemStore
FileSystemStore(sys.argv[1]).compact(before=date(2026, 2, 4))
"""


@pytest.mark.parametrize("step", [*COMPACTION_STEPS, "compaction.committed@2", "compaction.merged@4"])
def test_kill_at_every_compaction_step(tmp_path: Path, cold_uri: str | None, step: str) -> None:
    ws, ref = _workspace(tmp_path, cold_uri)
    expected = _answers(FileSystemStore(ref))
    env = {**os.environ, ENV_VAR: step}
    proc = subprocess.run([sys.executable, "-c", COMPACT_CHILD, str(ws)], env=env, cwd=ROOT, capture_output=True, timeout=300)
    assert proc.returncode == -9, proc.stderr.decode()
    # right after the kill: every record exactly once, also before the id rule hides copies
    assert _answers(FileSystemStore(ws)) == expected
    assert _raw_rows(FileSystemStore(ws)) == _raw_rows(FileSystemStore(ref))
    # the next run finishes the job
    subprocess.run([sys.executable, "-c", COMPACT_CHILD, str(ws)], cwd=ROOT, check=True, timeout=300)
    assert _answers(FileSystemStore(ws)) == expected
    assert not any((ws / "store" / "signals").glob("2026-02-0[123].jsonl"))
    _check_table(ws)


# ---------------------------------------------------------------------------- lost races


def test_a_lost_commit_race_is_retried(tmp_path: Path, cold_uri: str | None) -> None:
    """Host B merges day 2 on a table version, host A commits day 2 before B does: B's commit
    fails, B merges again on A's version and lands; both hosts' records are in the table, the
    id both stored is kept once (A's copy: first committed)."""
    cold = cold_uri or str(tmp_path / "shared")
    a, b = _open(tmp_path / "a", cold), _open(tmp_path / "b", cold)
    a.write_signals([_signal("a-day-1", 1, 1)])
    a.compact(before=date(2026, 2, 2))  # the table exists: B's version below is a real one
    a.write_signals([_signal("only-a", 2, 1), _signal("both", 2, 2, source="a")])
    b.write_signals([_signal("only-b", 2, 3), _signal("both", 2, 4, source="b")])
    cold_b = b._cold["signals"]
    real_state = cold_b.state
    calls = []

    def stale_state() -> Any:
        version, dt = real_state()
        if not calls:
            calls.append(version)
            a.compact(before=CUTOFF)  # A commits while B holds the old version
        return version, dt

    cold_b.state = stale_state  # type: ignore[method-assign]
    report = b.compact(before=CUTOFF)
    assert len(calls) == 1 and calls[0] >= 0 and report.days[0].base_version > calls[0]  # merged again, on A's commit
    for store in (a, b):
        rows = store.read_signals(W_START, W_END)
        assert sorted(rows.column("signal_id").to_pylist()) == ["a-day-1", "both", "only-a", "only-b"]
        assert rows.filter(pa.compute.equal(rows.column("signal_id"), "both")).column("source").to_pylist() == ["a"]


def test_racing_commits_of_different_days_still_flag_a_shared_id(tmp_path: Path, cold_uri: str | None) -> None:
    """Host A stores id X on day 1, host B on day 2; B merges day 2 on a version without A's day 1,
    then A commits day 1. Compaction commits of a kind conflict even on different days, so B merges
    again knowing A's X and flags it: a read over both days returns X once, A's copy (day 1)."""
    cold = cold_uri or str(tmp_path / "shared")
    a, b = _open(tmp_path / "a", cold), _open(tmp_path / "b", cold)
    a.write_signals([_signal("warm-up", 3, 1)])
    a.compact(before=date(2026, 2, 4))  # the table exists
    a.write_signals([_signal("x", 1, 1, source="a")])
    b.write_signals([_signal("x", 2, 1, source="b"), _signal("only-b", 2, 2)])
    cold_b = b._cold["signals"]
    real_state = cold_b.state
    calls = []

    def stale_state() -> Any:
        version, dt = real_state()
        if not calls:
            calls.append(version)
            a.compact(before=date(2026, 2, 2))  # A commits day 1 while B holds the old version
        return version, dt

    cold_b.state = stale_state  # type: ignore[method-assign]
    b.compact(before=date(2026, 2, 3))
    for store in (a, b, _open(tmp_path / "analyst", cold)):
        rows = store.read_signals(W_START, W_END)
        assert sorted(rows.column("signal_id").to_pylist()) == ["only-b", "warm-up", "x"]
        assert rows.filter(pa.compute.equal(rows.column("signal_id"), "x")).column("source").to_pylist() == ["a"]


TWO_HOSTS_CHILD = r"""
import sys
from datetime import date, datetime, timedelta, timezone
from metaspn_schemas import SignalEnvelope
from metaspn_store import FileSystemStore
ws, host = sys.argv[1], sys.argv[2]
store = FileSystemStore(ws)
base = datetime(2026, 2, 1, tzinfo=timezone.utc)
store.write_signals([
    SignalEnvelope(signal_id=(f"common-{i}" if i % 10 == 0 else f"{host}-{i}"), timestamp=base + timedelta(minutes=13 * i),
                   source=host, payload_type="Observation", payload={"score": i})
    for i in range(600)
])
print(store.compact(before=date(2026, 2, 4)).records_out, flush=True)
"""


def _two_hosts(tmp_path: Path, cold: str, *, together: bool) -> None:
    hosts = {"a": tmp_path / "host-a", "b": tmp_path / "host-b"}
    for ws in hosts.values():
        FileSystemStore(ws, cold=cold, storage_options=_S3_OPTIONS[0] if cold.startswith("s3://") else None).close()
    procs = []
    for host, ws in hosts.items():
        procs.append(subprocess.Popen([sys.executable, "-c", TWO_HOSTS_CHILD, str(ws), host], cwd=ROOT,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
        if not together:
            _, err = procs[-1].communicate(timeout=300)
            assert procs[-1].returncode == 0, err.decode()
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()
    # Both hosts' closed days are in the one table; every host reads the same records.
    seen = []
    for ws in hosts.values():
        store = FileSystemStore(ws)
        ids = store.read_signals(W_START, datetime(2026, 2, 3, 23, 59, 59, 999999, tzinfo=UTC)).column("signal_id").to_pylist()
        seen.append(sorted(ids))
        assert len(ids) == len(set(ids))
    assert seen[0] == seen[1]
    expected = {f"{h}-{i}" for h in "ab" for i in range(600) if i % 10 and i * 13 < 3 * 24 * 60}
    expected |= {f"common-{i}" for i in range(0, 600, 10) if i * 13 < 3 * 24 * 60}
    assert set(seen[0]) == expected
    _check_table(hosts["a"])
    # The common ids of the compacted days: the copy committed first wins, on every host (ids
    # still hot on both hosts are each host's own until their day is compacted).
    winners = {}
    for ws in hosts.values():
        rows = FileSystemStore(ws).sql("SELECT signal_id, source FROM signals WHERE signal_id LIKE 'common-%' AND day < DATE '2026-02-04'").fetchall()
        winners[ws.name] = sorted(rows)
    assert winners["host-a"] == winners["host-b"]


def test_two_hosts_share_one_s3_table(tmp_path: Path, s3: Any) -> None:
    _S3_OPTIONS[0] = s3.options
    # one after the other: moto's conditional PUT is not atomic under concurrent requests (the
    # concurrent case is test_a_lost_commit_race_is_retried, deterministic)
    _two_hosts(tmp_path, s3.uri("two-hosts"), together=False)


def test_two_hosts_compact_at_once_into_a_local_table(tmp_path: Path) -> None:
    _S3_OPTIONS[0] = None
    _two_hosts(tmp_path, str(tmp_path / "shared-cold"), together=True)



@pytest.mark.parametrize("where", ["local", "s3"])
def test_a_writer_asks_a_shared_table_at_most_once_a_second(tmp_path: Path, where: str,
                                                            request: pytest.FixtureRequest) -> None:
    if where == "s3":
        _S3_OPTIONS[0] = request.getfixturevalue("s3").options
        cold = request.getfixturevalue("s3").uri("rate")
    else:
        _S3_OPTIONS[0] = None
        cold = str(tmp_path / "shared-cold")
    a, b = _open(tmp_path / "host-a", cold), _open(tmp_path / "host-b", cold)
    a.write_signal(_signal("x", 2, 0, source="a"))
    a.compact(before=date(2026, 2, 3))
    asked: list[object] = []
    table = b._cold["signals"]
    real_version = table.version

    def counted() -> object:
        asked.append(None)
        return real_version()

    table.version = counted  # type: ignore[method-assign]
    began = time.monotonic()
    for i in range(150):  # each single write once asked the table (a LIST request on S3)
        b.write_signal(_signal(f"b{i}", 3, i % 60, source="b"))
    elapsed = time.monotonic() - began
    assert 1 <= len(asked) <= 2 + int(elapsed), (len(asked), elapsed)
    # another host's commit is seen within a second: its id is then a duplicate here
    a.write_signal(_signal("y", 2, 1, source="a"))
    a.compact(before=date(2026, 2, 3))
    time.sleep(1.1)
    cold_day = b.store_root / "cold" / "signals" / "day=2026-02-02"
    assert b.write_signal(_signal("y", 2, 2, source="b")) == cold_day
    assert b.write_signal(_signal("x", 2, 2, source="b")) == cold_day



def test_another_hosts_commit_adds_its_ids_to_the_index_without_building_it_again(tmp_path: Path) -> None:
    from metaspn_store._hot import HotTier
    from metaspn_store._index import IdIndex, digest

    cold = str(tmp_path / "shared-cold")
    a, b = _open(tmp_path / "host-a", cold), _open(tmp_path / "host-b", cold)
    a.write_signals([_signal(f"a{i}", 2, i) for i in range(20)] + [_signal("same-day", 2, 31)])
    a.compact(before=date(2026, 2, 3))
    b.write_signals([_signal(f"b{i}", 5, i) for i in range(5)])
    b.write_signal(_signal("b-late", 2, 50))  # b's own hot copy on a day a's commit replaces
    builds: list[None] = []
    real_build = HotTier._build_index

    def counted(self: HotTier, *args: Any) -> None:
        builds.append(None)
        real_build(self, *args)

    HotTier._build_index = counted  # type: ignore[method-assign]
    try:
        # a commits day 2 again (late records) and a new day 3
        a.write_signals([_signal(f"late{i}", 2, 40 + i) for i in range(3)] + [_signal("day3", 3, 1), _signal("b-late", 3, 2)])
        a.compact(before=date(2026, 2, 4))
        time.sleep(1.1)
        for record_id, day in (("late1", "2026-02-02"), ("day3", "2026-02-03"), ("a3", "2026-02-02")):
            assert b.write_signal(_signal(record_id, 6, 1)) == b.store_root / "cold" / "signals" / f"day={day}"
        assert not builds, "the index was built again"
    finally:
        HotTier._build_index = real_build  # type: ignore[method-assign]
    # The index now answers as one built from scratch on the same files.
    with b._hot["signals"].write_lock.hold():
        kept = b._id_index(SIGNALS)
    rebuilt = _open(tmp_path / "host-b", cold)
    with rebuilt._hot["signals"].write_lock.hold():
        fresh = rebuilt._id_index(SIGNALS)
    assert isinstance(kept, IdIndex) and len(kept) == len(fresh)
    ids = [f"a{i}" for i in range(20)] + [f"b{i}" for i in range(5)] + [f"late{i}" for i in range(3)]
    ids += ["same-day", "day3", "b-late"]
    assert {i: kept.get(digest(i)) for i in ids} == {i: fresh.get(digest(i)) for i in ids}
    # an id on two days (b's hot day 2, a's day 3) is repeated: compaction flags it shared
    assert kept.repeated == fresh.repeated == {digest("b-late")}


# ---------------------------------------------------------------------------- previous layout


def _legacy_workspace(tmp_path: Path, cold: str | None, *, claim: bool) -> tuple[Path, Path]:
    ws, ref = _workspace(tmp_path, None)
    store = FileSystemStore(ws)
    compact_the_old_way(store, CUTOFF, keep_claim_on=date(2026, 2, 2) if claim else None)
    if cold is not None:  # the old workspace moves its cold tier to S3 with its conversion
        (ws / "store" / "cold.json").unlink()
        _open(ws, cold).close()
    return ws, ref


@pytest.mark.parametrize("claim", [False, True], ids=["clean", "interrupted-old-compaction"])
def test_previous_layout_opens_unchanged_and_converts(tmp_path: Path, cold_uri: str | None, claim: bool) -> None:
    ws, ref = _legacy_workspace(tmp_path, cold_uri, claim=claim)
    expected = _answers(FileSystemStore(ref))
    assert legacy_files(ws)
    assert _answers(FileSystemStore(ws)) == expected  # read through the old manifest
    FileSystemStore(ws).compact(before=CUTOFF)
    assert not legacy_files(ws)
    assert not (ws / "store" / "cold" / "signals" / "_manifest.json").exists()
    assert _answers(FileSystemStore(ws)) == expected
    assert not any((ws / "store" / "signals").glob("2026-02-0[123].jsonl"))
    _check_table(ws)


@pytest.mark.parametrize("step", CONVERSION_STEPS)
def test_kill_during_conversion(tmp_path: Path, step: str) -> None:
    ws, ref = _legacy_workspace(tmp_path, None, claim=True)
    expected = _answers(FileSystemStore(ref))
    proc = subprocess.run([sys.executable, "-c", COMPACT_CHILD, str(ws)], env={**os.environ, ENV_VAR: step},
                          cwd=ROOT, capture_output=True, timeout=300)
    assert proc.returncode == -9, proc.stderr.decode()
    assert _answers(FileSystemStore(ws)) == expected
    subprocess.run([sys.executable, "-c", COMPACT_CHILD, str(ws)], cwd=ROOT, check=True, timeout=300)
    assert not legacy_files(ws)
    assert _answers(FileSystemStore(ws)) == expected


# ---------------------------------------------------------------------------- as_of, vacuum, location


def test_as_of_gives_the_same_answer_later(tmp_path: Path, cold_uri: str | None) -> None:
    ws, _ = _workspace(tmp_path, cold_uri)
    store = FileSystemStore(ws)
    store.compact(before=CUTOFF)
    version = store.cold_versions("signals")[0]["version"]
    query = "SELECT count(*), sum(seq) FROM signals"
    then = store.sql(query, as_of=version).fetchall()
    read_then = store.read_signals(W_START, W_END, as_of=version)
    moment = datetime.now(UTC)
    if cold_uri is not None:
        # S3 commit times are the log objects' Last-Modified, to the second: the next commit must
        # be in a later second for ``moment`` to fall between the two versions.
        time.sleep(1.1)
    store.write_signals([_signal("late-x", 1, 59), _signal("late-y", 2, 59)])
    store.compact(before=CUTOFF)
    assert store.sql(query).fetchall() != then
    assert store.sql(query, as_of=version).fetchall() == then
    assert store.sql(query, as_of=moment).fetchall() == then
    assert store.read_signals(W_START, W_END, as_of=version).equals(read_then)
    assert "late-x" not in read_then.column("signal_id").to_pylist()
    with pytest.raises(TypeError):
        store.sql(query, as_of="yesterday")  # type: ignore[arg-type]


def test_vacuum_removes_only_unused_files(tmp_path: Path) -> None:
    ws, ref = _workspace(tmp_path, None)
    store = FileSystemStore(ws)
    store.compact(before=CUTOFF)
    store.write_signals([_signal("late-v", 2, 58)])
    store.compact(before=CUTOFF)
    assert store.vacuum(retain_hours=168)["signals"] == []  # the replaced file is recent
    removable = store.vacuum(retain_hours=0, dry_run=True)["signals"]
    assert len(removable) == 1 and "day=2026-02-02" in removable[0]
    before = _answers(store)
    assert store.vacuum(retain_hours=0)["signals"] == removable
    assert _answers(FileSystemStore(ws)) == before


def test_location_is_remembered_without_credentials(tmp_path: Path, s3: Any) -> None:
    uri = s3.uri("config")
    secret = {"AWS_SECRET_ACCESS_KEY": "testing", "AWS_ACCESS_KEY_ID": "testing", **s3.options}
    store = FileSystemStore(tmp_path / "ws", cold=uri, storage_options=secret)
    store.write_signals([_signal("c-1", 1, 1)])
    store.compact(before=CUTOFF)
    text = (tmp_path / "ws" / "store" / "cold.json").read_text()
    assert "testing" not in text and uri in text
    assert FileSystemStore(tmp_path / "ws").read_signals(W_START, W_END).column("signal_id").to_pylist() == ["c-1"]
    with pytest.raises(ValueError, match="cold tier is"):
        FileSystemStore(tmp_path / "ws", cold=s3.uri("elsewhere"))
    assert not (tmp_path / "ws" / "store" / "cold" / "signals").exists()


def test_one_day_window_reads_only_that_days_files(tmp_path: Path, s3: Any) -> None:
    """Each day is its own partition: a read of one day lists one day's file (the request count
    against S3 is measured in benchmarks/cold_s3.py)."""
    _S3_OPTIONS[0] = s3.options
    ws, _ = _workspace(tmp_path, s3.uri("window"))
    store = FileSystemStore(ws)
    store.compact(before=CUTOFF)
    day = date(2026, 2, 2)
    files = store._cold["signals"].files(day, day)
    assert list(files) == [day] and len(files[day]) == 1


def test_timestamps_need_pytz_for_duckdb(tmp_path: Path) -> None:
    pytest.importorskip("pytz")
    ws, _ = _workspace(tmp_path, None)
    store = FileSystemStore(ws)
    store.compact(before=CUTOFF)
    first = store.sql("SELECT min(timestamp) FROM signals").fetchall()[0]
    assert first[0].tzinfo is not None and first[0] >= datetime(2026, 2, 1, tzinfo=UTC)
    assert first[0] < datetime(2026, 2, 1, tzinfo=UTC) + timedelta(days=1)


def test_cli_compact_cold_and_vacuum(tmp_path: Path) -> None:
    ws, ref = _workspace(tmp_path, None)
    (ws / "store" / "cold.json").unlink()  # a workspace that never chose: --cold sets it once
    FileSystemStore(ref).close()
    shared = tmp_path / "shared-cold"

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "metaspn_store", *args], cwd=ROOT, capture_output=True, text=True, timeout=300)

    res = cli("compact", str(ws), "--before", "2026-02-04", "--cold", str(shared), "--json")
    assert res.returncode == 0, res.stderr
    assert DeltaTable.is_deltatable(str(shared / "signals"))
    assert orjson.loads((ws / "store" / "cold.json").read_bytes())["uri"] == str(shared)
    assert orjson.loads((ref / "store" / "cold.json").read_bytes())["uri"] is None  # the default: not a path
    FileSystemStore(ws).write_signals([_signal("late-cli", 2, 57)])
    assert cli("compact", str(ws), "--before", "2026-02-04").returncode == 0  # remembered
    res = cli("vacuum", str(ws), "--retain", "0", "--dry-run", "--json")
    assert res.returncode == 0, res.stderr
    doc = orjson.loads(res.stdout)
    assert doc["dry_run"] is True and len(doc["files"]["signals"]) == 1
    res = cli("vacuum", str(ws), "--retain", "0")
    assert res.returncode == 0 and res.stdout.startswith("signals: removed 1 file(s); emissions: removed")
    res = cli("compact", str(ws), "--cold", str(tmp_path / "elsewhere"))
    assert res.returncode != 0 and "cold tier is" in res.stderr


def test_every_compaction_crash_point_is_killed_at_above() -> None:
    from metaspn_store._faults import STEPS

    assert {name for name in STEPS if name.startswith(("compaction.", "conversion."))} == {*COMPACTION_STEPS, *CONVERSION_STEPS}
