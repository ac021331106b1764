"""Memory limits (issue 11 case 6): the store's settings reach DuckDB, and running out of memory
is a QueryError that names what to change, never a raw DuckDB or Python exception."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta, timezone

from metaspn_schemas import SignalEnvelope

from metaspn_store import FileSystemStore

UTC = timezone.utc
T0 = datetime(2026, 2, 5, tzinfo=UTC)

READ = """
import json, resource, sys
limit = int(sys.argv[2])
if limit:
    resource.setrlimit(resource.RLIMIT_AS, (limit << 20, resource.RLIM_INFINITY))
from datetime import datetime, timezone
from metaspn_store import FileSystemStore, QueryError
store = FileSystemStore(sys.argv[1], **json.loads(sys.argv[3]))
w = (datetime(2026, 2, 1, tzinfo=timezone.utc), datetime(2026, 2, 9, tzinfo=timezone.utc))
out = {}
for name, call in {
    "replay": lambda: sum(1 for _ in store.iter_signals(*w)),
    "top": lambda: len(store.get_top_recommendation_candidates(start=w[0], end=w[1], limit=25)),
}.items():
    try:
        out[name] = call()
    except QueryError as exc:
        out[name] = "QueryError: " + str(exc)
print(json.dumps(out))
"""


def workspace(tmp_path, n: int = 20_000):
    with FileSystemStore(tmp_path) as store:
        store.write_signals(
            SignalEnvelope(signal_id=f"s{k}", timestamp=T0 + timedelta(seconds=k), source="w",
                           payload_type="RecommendationCandidate", payload={"score": k % 97, "pad": "x" * 200})
            for k in range(n)
        )
    return tmp_path


def run(ws, limit_mb: int, options: dict) -> dict:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(READ), str(ws), str(limit_mb), json.dumps(options)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr  # no raw exception escaped
    return json.loads(done.stdout)


def test_settings_reach_duckdb(tmp_path):
    store = FileSystemStore(tmp_path, threads=1, memory_limit="300MB")
    con = store._connection()
    threads, limit = con.sql("SELECT current_setting('threads'), current_setting('memory_limit')").fetchall()[0]
    assert threads == 1 and limit.replace(" ", "") in ("286.1MiB", "300.0MB", "300MB")


def test_a_tiny_memory_limit_is_a_query_error_naming_the_setting(tmp_path):
    ws = workspace(tmp_path)
    out = run(ws, 0, {"memory_limit": "1MB", "threads": 1})
    for name, value in out.items():
        assert isinstance(value, int) or ("QueryError" in value and "memory_limit" in value), (name, value)
    assert any(isinstance(v, str) for v in out.values()), "1 MB must be too little for something"


def test_an_address_space_limit_is_a_query_error_naming_the_settings(tmp_path):
    """Under ``ulimit -v 1G`` the libraries' address-space reservations can exhaust the limit;
    the caller then gets a QueryError with the hint, never a raw MemoryError."""
    ws = workspace(tmp_path)
    out = run(ws, 1024, {})
    for name, value in out.items():
        assert value == 20_000 or value == 25 or ("QueryError" in value and "ulimit -v" in value), (name, value)
