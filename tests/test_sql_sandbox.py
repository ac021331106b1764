"""``store.sql()`` is read-only and sees only the store (issue 11, item 9).

Real DuckDB on a real workspace with compacted and hot days. Every attack (reading files outside
or inside the store, writing files, attaching databases, installing or loading extensions,
changing or resetting the settings that enforce this) raises ``QueryError`` saying that sql() is
read-only, and the store's files are byte-identical afterwards; nothing appears in the current
folder or next to the store. Analysis queries (the README's) keep working, with ``.df()``,
``.fetchall()`` and ``.to_arrow_table()``.
"""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timezone
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from metaspn_store import FileSystemStore, QueryError
from metaspn_store.sample import generate_workspace

UTC = timezone.utc
FAR_PAST = datetime(1970, 1, 1, tzinfo=UTC)
FAR_FUTURE = datetime(2100, 1, 1, tzinfo=UTC)


def tree(root: Path) -> dict[str, bytes]:
    """Every file below ``root`` with its bytes."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A store with two compacted and two hot days, run from an empty current folder."""
    store = FileSystemStore(tmp_path / "ws")
    generate_workspace(store, days=4, signals_per_day=60, start=date(2026, 2, 1), seed=5)
    store.compact(before=date(2026, 2, 3))
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    outside = tmp_path / "outside"
    outside.mkdir()
    pq.write_table(pa.table({"secret": ["s3cr3t"]}), outside / "secret.parquet")
    (outside / "secret.csv").write_text("secret\ns3cr3t\n")
    (outside / "secret.json").write_text('{"secret": "s3cr3t"}\n')
    assert store.sql("SELECT count(*) FROM signals").fetchall()[0][0] == 240  # warm: views registered
    before = tree(tmp_path)
    yield store, tmp_path, outside
    assert tree(tmp_path) == before, "a file was written, changed or removed"
    assert list(cwd.iterdir()) == []  # no ./.tmp spill folder, no COPY target


def hot_file(store: FileSystemStore) -> Path:
    path = store.signals_dir / "2026-02-04.jsonl"
    assert path.exists()
    return path


def cold_file(store: FileSystemStore) -> Path:
    files = sorted((store.workspace / "store" / "cold" / "signals").rglob("*.parquet"))
    assert files
    return files[0]


# (id, SQL): {hot} / {cold} are a hot JSONL and a cold Parquet file of the store, {store} its
# store folder, {outside} a folder next to it holding secret.{parquet,csv,json}.
ATTACKS = [
    # reading outside the store
    ("read_csv passwd", "SELECT * FROM read_csv('/etc/passwd', sep = ':')"),
    ("read_text passwd", "SELECT * FROM read_text('/etc/passwd')"),
    ("read_blob passwd", "SELECT * FROM read_blob('/etc/passwd')"),
    ("read_json passwd", "SELECT * FROM read_json('/etc/passwd')"),
    ("csv file as table", "SELECT * FROM '{outside}/secret.csv'"),
    ("glob", "SELECT * FROM glob('/etc/*')"),
    ("read_parquet outside", "SELECT * FROM read_parquet('{outside}/secret.parquet')"),
    ("read_csv outside", "SELECT * FROM read_csv('{outside}/secret.csv')"),
    ("read_json outside", "SELECT * FROM read_json('{outside}/secret.json')"),
    ("parquet file as table", "SELECT * FROM '{outside}/secret.parquet'"),
    ("url", "SELECT * FROM read_parquet('https://example.invalid/x.parquet')"),
    # the store's own files are reachable only through the views
    ("read_text hot file", "SELECT * FROM read_text('{hot}')"),
    ("read_json hot file", "SELECT * FROM read_json_auto('{hot}')"),
    ("read_parquet cold file", "SELECT * FROM read_parquet('{cold}')"),
    # writing
    ("COPY TO hot file", "COPY (SELECT 'x' AS line) TO '{hot}' (FORMAT csv, HEADER false)"),
    ("COPY TO cold file", "COPY (SELECT 1 AS a) TO '{cold}' (FORMAT parquet)"),
    ("COPY TO new day file", "COPY (SELECT 1) TO '{store}/signals/2026-02-09.jsonl'"),
    ("COPY TO outside", "COPY (SELECT * FROM signals) TO '{outside}/dump.csv'"),
    ("COPY TO cwd", "COPY (SELECT * FROM signals) TO 'dump.parquet' (FORMAT parquet)"),
    ("COPY FROM", "CREATE TABLE t (secret VARCHAR); COPY t FROM '{outside}/secret.csv'"),
    ("EXPORT DATABASE", "EXPORT DATABASE '{outside}/export'"),
    ("EXPORT DATABASE in store", "EXPORT DATABASE '{store}/export'"),
    ("ATTACH outside", "ATTACH '{outside}/evil.duckdb' AS evil"),
    ("ATTACH in store", "ATTACH '{store}/evil.duckdb' AS evil"),
    ("ATTACH read-only", "ATTACH '{outside}/evil.duckdb' AS evil (READ_ONLY)"),
    ("persistent secret", "CREATE PERSISTENT SECRET s (TYPE s3, KEY_ID 'a', SECRET 'b')"),
    # extensions
    ("INSTALL", "INSTALL httpfs"),
    ("FORCE INSTALL", "FORCE INSTALL json"),
    ("LOAD", "LOAD httpfs"),
    ("LOAD file", "LOAD '{outside}/evil.duckdb_extension'"),
    # undoing the lock-down
    ("SET external access", "SET enable_external_access = true"),
    ("RESET external access", "RESET enable_external_access"),
    ("SET GLOBAL external access", "SET GLOBAL enable_external_access = true"),
    ("SET unlock", "SET lock_configuration = false"),
    ("RESET unlock", "RESET lock_configuration"),
    ("SET allowed_directories", "SET allowed_directories = ['{outside}']"),
    ("SET allowed_paths", "SET allowed_paths = ['/etc/passwd']"),
    ("SET autoinstall", "SET autoinstall_known_extensions = true"),
    ("SET autoload", "SET autoload_known_extensions = true"),
    ("SET temp_directory", "SET temp_directory = '{outside}'"),
    ("PRAGMA profiling output", "PRAGMA profiling_output = '{outside}/profile.json'"),
    ("SET memory_limit", "SET memory_limit = '100GB'"),
]


@pytest.mark.parametrize("sql", [a[1] for a in ATTACKS], ids=[a[0] for a in ATTACKS])
def test_attack_fails_with_query_error_and_changes_nothing(env, sql):
    store, tmp, outside = env
    query = sql.format(hot=hot_file(store), cold=cold_file(store), store=store.workspace / "store", outside=outside)
    with pytest.raises(QueryError) as caught:
        store.sql(query).fetchall()
    message = str(caught.value)
    # Refused by the lock-down (DuckDB's permission or locked-configuration error), not by chance
    # (a missing file, a parse error, no network), which gets the plain "SQL failed: ..." text.
    assert message.startswith("sql() is read-only and sees only the `signals` and `emissions` views"), message
    assert isinstance(caught.value.__cause__, duckdb.Error)
    assert "s3cr3t" not in message and "root:" not in message  # nothing read leaks into the error
    # the connection still answers (and the views still see the whole store)
    assert store.sql("SELECT count(*) FROM signals").fetchall() == [(240,)]


def test_path_passed_as_parameter_is_refused_too(env):
    store, _tmp, outside = env
    for path in ("/etc/passwd", str(outside / "secret.csv"), str(hot_file(store))):
        with pytest.raises(QueryError, match="read-only"):
            store.sql("SELECT * FROM read_csv($path)", params={"path": path})


def test_relation_cannot_write_files_either(env):
    store, _tmp, outside = env
    relation = store.sql("SELECT * FROM signals")
    for write, target in (
        (relation.to_csv, outside / "r.csv"),
        (relation.to_parquet, outside / "r.parquet"),
        (relation.write_csv, hot_file(store)),
    ):
        with pytest.raises(duckdb.PermissionException):
            write(str(target))


def test_lock_down_survives_many_calls_and_a_second_store(env):
    store, _tmp, _outside = env
    for _ in range(3):
        store.sql("SELECT 1").fetchall()
    other = FileSystemStore(store.workspace)
    for s in (store, other):
        with pytest.raises(QueryError, match="read-only"):
            s.sql("SELECT * FROM read_text('/etc/passwd')")
        assert s.sql("SELECT current_setting('enable_external_access')").fetchall() == [(False,)]
        assert s.sql("SELECT current_setting('lock_configuration')").fetchall() == [(True,)]


# --------------------------------------------------------------------------- what stays possible


def test_create_table_lives_in_memory_only(env):
    store, _tmp, _outside = env
    store.sql("CREATE TABLE per_source AS SELECT source, count(*) AS n FROM signals GROUP BY ALL")
    store.sql("CREATE TEMP VIEW busiest AS SELECT * FROM per_source ORDER BY n DESC LIMIT 1")
    assert store.sql("SELECT sum(n) FROM per_source").fetchall() == [(240,)]
    assert len(store.sql("SELECT * FROM busiest").fetchall()) == 1
    store.sql("ATTACH ':memory:' AS scratch")
    store.sql("CREATE TABLE scratch.t AS SELECT 1 AS a")
    assert store.sql("SELECT * FROM scratch.t").fetchall() == [(1,)]
    # the env fixture checks that no file appeared anywhere


def test_views_come_back_after_user_sql_replaces_them(env):
    store, _tmp, _outside = env
    # Views are re-created before each call, so only one multi-statement call can replace one.
    store.sql("DROP VIEW signals; CREATE TEMP TABLE signals AS SELECT 'fake' AS signal_id")
    store.sql("CREATE TABLE emissions AS SELECT 'fake' AS emission_id")
    assert store.sql("SELECT count(*) FROM signals").fetchall() == [(240,)]
    assert store.sql("SELECT count(*) FROM emissions WHERE emission_id = 'fake'").fetchall() == [(0,)]


def test_query_that_needs_more_memory_than_the_limit_fails_without_spilling_to_disk(tmp_path, monkeypatch):
    store = FileSystemStore(tmp_path / "ws", memory_limit="64MB", threads=1)
    monkeypatch.chdir(tmp_path)
    before = tree(tmp_path)
    with pytest.raises(QueryError, match="memory_limit='64MB'") as caught:
        store.sql("CREATE TABLE big AS SELECT i, md5(i::VARCHAR) AS m FROM range(5000000) t(i)")
    assert isinstance(caught.value.__cause__, duckdb.OutOfMemoryException)
    assert tree(tmp_path) == before
    assert not (tmp_path / ".tmp").exists()


def test_unknown_tables_are_answered_with_the_views_and_other_errors_stay_plain(env):
    store, _tmp, _outside = env
    with pytest.raises(QueryError, match="sees only the `signals` and `emissions` views") as caught:
        store.sql("SELECT * FROM my_dataframe")  # never a Python variable of that name either
    assert isinstance(caught.value.__cause__, duckdb.CatalogException)
    with pytest.raises(QueryError, match=r"^SQL failed: Parser Error: syntax error") as caught:
        store.sql("SELEC 1")
    assert isinstance(caught.value.__cause__, duckdb.ParserException)


def test_readme_analysis_queries_work(env):
    store, _tmp, _outside = env
    volume = store.sql("SELECT day, source, count(*) AS n FROM signals GROUP BY ALL ORDER BY ALL").df()
    expected = Counter(s.source for s in store.iter_signals(FAR_PAST, FAR_FUTURE))
    assert dict(volume.groupby("source")["n"].sum()) == dict(expected)

    scores = store.sql(
        """
        SELECT round(json_extract(payload, '$.score')::DOUBLE, 1) AS bucket, count(*) AS n
        FROM signals
        WHERE payload_type = $type AND json_type(payload, '$.score') IN ('DOUBLE', 'BIGINT', 'UBIGINT')
        GROUP BY ALL ORDER BY bucket""",
        params={"type": "RecommendationCandidate"},
    )
    rows = scores.fetchall()
    assert rows and all(isinstance(n, int) for _bucket, n in rows)

    funnel = store.sql(
        """
        SELECT s.payload_type, coalesce(e.emission_type, 'unresolved') AS outcome, count(*) AS n
        FROM signals s LEFT JOIN emissions e
          ON e.caused_by = s.signal_id AND e.emission_type IN ('OutcomeSuccess', 'OutcomeFailure')
        WHERE s.payload_type IN ('OutcomePending', 'EvaluationRequested', 'RecommendationAttempted')
        GROUP BY ALL ORDER BY ALL"""
    ).to_arrow_table()
    assert isinstance(funnel, pa.Table) and funnel.column_names == ["payload_type", "outcome", "n"]
    assert funnel.num_rows > 0
