"""``python -m metaspn_store`` as a user runs it: real subprocesses, exit codes, exact stdout/stderr.

Exit codes: 0 success, 1 failure (one ``metaspn-store CMD: error: ...`` line), 2 usage errors.
Piped output never holds progress bars; a terminal (a pty here) gets them on stderr.

The only parts of an output that are masked before comparing are Parquet byte counts (they depend
on the pyarrow version) and the time of the last compaction.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import select
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import metaspn_store
from metaspn_store import FileSystemStore, QueryError

ENV = {**os.environ, "COLUMNS": "80", "TERM": "xterm"}  # argparse wraps usage lines at COLUMNS


def run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "metaspn_store", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
        env=env or ENV,
    )


def _mask(text: str) -> str:
    text = re.sub(r"-> [\d.]+ [KMG]?B of Parquet \([\d.]+x smaller\)", "-> <size> of Parquet (<ratio>x smaller)", text)
    text = re.sub(r"last compaction \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", "last compaction <time>", text)
    return re.sub(r"(cold \(Parquet\) .*?) +[\d.]+ [KMG]?B$", r"\1  <size>", text, flags=re.M)


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".locks" not in p.parts
    }


DEMO_FIRST_RUN = """\
demo workspace ws: 2 UTC day(s) of sample MetaSPN data, 2026-02-01 .. 2026-02-02, 200 signals a day (seed 0)
writing (an id already in the store is a duplicate: the first record wins, nothing is written again)
  2026-02-01  signals     200 new       0 duplicate   emissions     20 new      0 duplicate
  2026-02-02  signals     200 new       0 duplicate   emissions     20 new      0 duplicate
wrote 400 new signals and 40 new emissions

compaction: writes append to one JSONL file per UTC day (the hot tier). Once a day is over,
`compact` rewrites it as compressed, column-wise Parquet (the cold tier): smaller, faster to scan.
Every read covers both tiers, so no answer changes.
  closed days before 2026-02-02 moved to Parquet; 2026-02-02 stays hot, as today would:
  signals    2026-02-01: 200 records, 101.9 KB of JSONL -> <size> of Parquet (<ratio>x smaller)
  emissions  2026-02-01: 20 records, 8.6 KB of JSONL -> <size> of Parquet (<ratio>x smaller)

reads over the whole window, 2026-02-01T00:00:00Z .. 2026-02-02T23:59:59.999999Z:
top 5 recommendation candidates (source score.worker, payload type RecommendationCandidate, by payload.score):
  s_20260202_0000023  score 0.6850  project proj_00005
  s_20260201_0000154  score 0.6590  person p_000024 (farcaster)
  s_20260201_0000183  score 0.6490  project proj_00001
  s_20260202_0000057  score 0.5850  person p_000025 (farcaster)
  s_20260201_0000062  score 0.5470  person p_000000 (twitter)
outcome buckets with now = window end (get_outcome_window_buckets):
  pending      20  pending outcome signals no emission resolved yet, not expired
  expired       1  unresolved, and their payload.expires_at is before now
  success      22  OutcomeSuccess / DraftApproved emissions
  failure      10  OutcomeFailure / DraftRejected emissions
latest 3 signals about a popular person p_000000 (twitter): s_20260202_0000156, s_20260202_0000155, s_20260202_0000133

next, try:
  metaspn-store info ws
  metaspn-store sql ws 'SELECT day, tier, count(*) AS signals FROM signals GROUP BY ALL ORDER BY ALL'
  metaspn-store sql ws 'SELECT source, count(*) AS n FROM signals WHERE day = $day GROUP BY ALL ORDER BY n DESC' --param day=2026-02-02
  metaspn-store compact ws --before 2026-02-03 --dry-run
  METASPN_WORKSPACE=ws jupyter execute notebooks/analysis.ipynb   # after pip install -e '.[notebooks]'
"""

DEMO_SECOND_RUN_HEAD = """\
demo workspace ws: 2 UTC day(s) of sample MetaSPN data, 2026-02-01 .. 2026-02-02, 200 signals a day (seed 0)
writing (an id already in the store is a duplicate: the first record wins, nothing is written again)
  2026-02-01  signals       0 new     200 duplicate   emissions      0 new     20 duplicate
  2026-02-02  signals       0 new     200 duplicate   emissions      0 new     20 duplicate
wrote nothing new: all 400 signals and 40 emissions were already in the store (same ids)

compaction: writes append to one JSONL file per UTC day (the hot tier). Once a day is over,
`compact` rewrites it as compressed, column-wise Parquet (the cold tier): smaller, faster to scan.
Every read covers both tiers, so no answer changes.
  nothing to compact: the days before 2026-02-02 are already in Parquet

reads over the whole window, 2026-02-01T00:00:00Z .. 2026-02-02T23:59:59.999999Z:
"""


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """A 2-day demo workspace ``ws`` (2026-02-01 compacted, 2026-02-02 hot), and its first run."""
    cwd = tmp_path_factory.mktemp("cli")
    first = run("demo", "ws", "--days", "2", "--signals-per-day", "200", cwd=cwd)
    return cwd, first


# ------------------------------------------------------------------------------------------ demo


def test_demo_explains_what_it_did_and_a_second_run_writes_nothing(demo) -> None:
    cwd, first = demo
    assert first.returncode == 0 and first.stderr == ""
    assert _mask(first.stdout) == DEMO_FIRST_RUN
    again = run("demo", "ws", "--days", "2", "--signals-per-day", "200", cwd=cwd)
    assert again.returncode == 0 and again.stderr == ""
    assert again.stdout.startswith(DEMO_SECOND_RUN_HEAD)
    # the reads after it are the same answers as the first run's
    assert again.stdout.split("reads over the whole window")[1] == first.stdout.split("reads over the whole window")[1]


def test_demo_json_is_one_document_with_new_and_duplicate_counts(tmp_path: Path) -> None:
    res = run("demo", "ws", "--days", "3", "--signals-per-day", "300", "--json", cwd=tmp_path)
    assert res.returncode == 0 and res.stderr == ""
    doc = json.loads(res.stdout)  # the whole stdout is the JSON document
    assert doc["window"] == {
        "start": "2026-02-01T00:00:00Z",
        "end": "2026-02-03T23:59:59.999999Z",
        "first_day": "2026-02-01",
        "last_day": "2026-02-03",
    }
    assert doc["written"]["signals"] == {"new": 900, "duplicates": 0}
    assert doc["written"]["emissions"] == {"new": 90, "duplicates": 0}
    assert doc["written"]["days"][0] == {
        "day": "2026-02-01",
        "signals_new": 300,
        "signals_duplicates": 0,
        "emissions_new": 30,
        "emissions_duplicates": 0,
    }
    assert {(d["kind"], d["day"]) for d in doc["compaction"]["days"]} == {
        (kind, day) for kind in ("signals", "emissions") for day in ("2026-02-01", "2026-02-02")
    }
    assert doc["top_candidates"] and all(not c["entity"].startswith("project:None") for c in doc["top_candidates"])
    again = json.loads(run("demo", "ws", "--days", "3", "--signals-per-day", "300", "--json", cwd=tmp_path).stdout)
    assert again["written"]["signals"] == {"new": 0, "duplicates": 900}
    assert again["written"]["emissions"] == {"new": 0, "duplicates": 90}
    assert again["compaction"]["days"] == []
    assert again["outcome_buckets"] == doc["outcome_buckets"]


def test_demo_one_day_has_nothing_to_compact(tmp_path: Path) -> None:
    res = run("demo", "ws", "--days", "1", "--signals-per-day", "50", cwd=tmp_path)
    assert res.returncode == 0
    assert "  nothing to compact: 2026-02-01, the only day, stays hot, as today would\n" in res.stdout


@pytest.mark.parametrize(
    ("args", "usage", "message"),
    [
        (
            ["--days", "0"],
            "demo",
            "metaspn-store demo: error: argument --days: must be >= 1, got 0",
        ),
        (
            ["--signals-per-day", "many"],
            "demo",
            "metaspn-store demo: error: argument --signals-per-day: expected a whole number, got 'many'",
        ),
    ],
)
def test_demo_usage_errors_exit_2(tmp_path: Path, args: list[str], usage: str, message: str) -> None:
    res = run("demo", "ws", *args, cwd=tmp_path)
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr == (
        "usage: metaspn-store demo [-h] [--days DAYS]\n"
        "                          [--signals-per-day SIGNALS_PER_DAY] [--seed SEED]\n"
        "                          [--json]\n"
        "                          [workspace]\n"
        f"{message}\n"
    )
    assert not (tmp_path / "ws").exists()


# ------------------------------------------------------------------------------------------ compact


def test_compact_dry_run_then_compact_then_nothing(demo, tmp_path: Path) -> None:
    src, _ = demo
    ws = tmp_path / "ws"
    subprocess.run(["cp", "-a", str(src / "ws"), str(ws)], check=True)
    before = _tree(ws)
    dry = run("compact", "ws", "--before", "2026-02-03", "--dry-run", cwd=tmp_path)
    assert (dry.returncode, dry.stderr) == (0, "")
    assert dry.stdout == (
        "dry run, nothing changed; compacting days before 2026-02-03 would move:\n"
        "  signals    2026-02-02: 200 records, 101.9 KB of JSONL\n"
        "  emissions  2026-02-02: 20 records, 8.7 KB of JSONL\n"
    )
    assert _tree(ws) == before
    done = run("compact", "ws", "--before", "2026-02-03", cwd=tmp_path)
    assert (done.returncode, done.stderr) == (0, "")
    assert _mask(done.stdout) == (
        "compacted days before 2026-02-03 from JSONL (hot tier) into Parquet (cold tier):\n"
        "  signals    2026-02-02: 200 records, 101.9 KB of JSONL -> <size> of Parquet (<ratio>x smaller)\n"
        "  emissions  2026-02-02: 20 records, 8.7 KB of JSONL -> <size> of Parquet (<ratio>x smaller)\n"
    )
    again = run("compact", "ws", "--before", "2026-02-03", cwd=tmp_path)
    assert (again.returncode, again.stdout, again.stderr) == (
        0,
        "nothing to compact before 2026-02-03: every closed day is already in Parquet\n",
        "",
    )


def test_compact_json_reports_days(tmp_path: Path) -> None:
    assert run("demo", "ws", "--days", "3", "--signals-per-day", "100", "--json", cwd=tmp_path).returncode == 0
    res = run("compact", "ws", "--before", "2026-02-03", "--json", cwd=tmp_path)
    assert res.returncode == 0 and res.stderr == ""
    assert json.loads(res.stdout)["days"] == []  # 2026-02-01 and 02 were compacted by demo
    res = run("compact", "ws", "--before", "2026-02-05", "--json", cwd=tmp_path)
    doc = json.loads(res.stdout)
    assert [(d["kind"], d["day"], d["records_out"]) for d in doc["days"]] == [
        ("signals", "2026-02-03", 100),
        ("emissions", "2026-02-03", 10),
    ]
    assert doc["records_out"] == 110 and doc["before"] == "2026-02-05" and doc["skipped"] is None


def test_compact_dry_run_json_changes_nothing(tmp_path: Path) -> None:
    assert run("demo", "ws", "--days", "3", "--signals-per-day", "100", cwd=tmp_path).returncode == 0
    before = _tree(tmp_path / "ws")
    res = run("compact", "ws", "--before", "2026-02-05", "--dry-run", "--json", cwd=tmp_path)
    assert res.returncode == 0
    doc = json.loads(res.stdout)
    assert doc["dry_run"] is True and [d["day"] for d in doc["days"]] == ["2026-02-03", "2026-02-03"]
    assert doc["bytes_out"] == 0
    assert _tree(tmp_path / "ws") == before


def test_compact_bad_date_is_a_usage_error(tmp_path: Path) -> None:
    res = run("compact", "ws", "--before", "not-a-date", cwd=tmp_path)
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr == (
        "usage: metaspn-store compact [-h] [--before YYYY-MM-DD] [--dry-run]\n"
        "                             [--no-wait] [--json] [--cold URI]\n"
        "                             workspace\n"
        "metaspn-store compact: error: argument --before: expected a day as YYYY-MM-DD, got 'not-a-date'\n"
    )


@pytest.mark.parametrize("command", ["compact", "verify", "info", "sql"])
def test_commands_refuse_a_folder_that_is_not_a_workspace(tmp_path: Path, command: str) -> None:
    args = ["SELECT 1"] if command == "sql" else []
    res = run(command, "nowhere", *args, cwd=tmp_path)
    assert (res.returncode, res.stdout) == (1, "")
    assert res.stderr == (
        f"metaspn-store {command}: error: nowhere is not a metaspn-store workspace (no store/ folder); "
        "`metaspn-store demo nowhere` creates a sample one\n"
    )
    assert not (tmp_path / "nowhere").exists()


# ------------------------------------------------------------------------------------------ verify / info


def test_verify_clean_then_garbage(tmp_path: Path) -> None:
    assert run("demo", "ws", "--days", "2", "--signals-per-day", "100", cwd=tmp_path).returncode == 0
    ok = run("verify", "ws", cwd=tmp_path)
    assert (ok.returncode, ok.stdout, ok.stderr) == (0, "no problems found\n", "")
    hot = tmp_path / "ws" / "store" / "signals" / "2026-02-02.jsonl"
    n_lines = len(hot.read_bytes().splitlines())
    with open(hot, "a", encoding="utf-8") as fh:
        fh.write("garbage, not json\n")
    bad = run("verify", "ws", cwd=tmp_path)
    assert bad.returncode == 1
    assert bad.stdout.startswith(f"ws/store/signals/2026-02-02.jsonl:{n_lines + 1}: ")
    assert json.loads(run("verify", "ws", "--json", cwd=tmp_path).stdout)["count"] == 1
    # info counts it, and counts it again once the compactor has set it aside
    info = json.loads(run("info", "ws", "--json", cwd=tmp_path).stdout)
    assert info["kinds"]["signals"]["unreadable_hot_lines"] == 1
    assert info["kinds"]["signals"]["quarantined_lines"] == 0
    assert run("compact", "ws", "--before", "2026-02-03", cwd=tmp_path).returncode == 0
    info = json.loads(run("info", "ws", "--json", cwd=tmp_path).stdout)
    assert info["kinds"]["signals"]["unreadable_hot_lines"] == 0
    assert info["kinds"]["signals"]["quarantined_lines"] == 1


def test_info_table(demo) -> None:
    cwd, _ = demo
    res = run("info", "ws", cwd=cwd)
    assert (res.returncode, res.stderr) == (0, "")
    assert _mask(res.stdout) == (
        "workspace ws\n"
        "\n"
        "kind       tier            days  first day   last day    records     bytes\n"
        "---------  --------------  ----  ----------  ----------  -------  --------\n"
        "signals    hot (JSONL)        1  2026-02-02  2026-02-02      200  101.9 KB\n"
        "signals    cold (Parquet)     1  2026-02-01  2026-02-01      200  <size>\n"
        "emissions  hot (JSONL)        1  2026-02-02  2026-02-02       20    8.7 KB\n"
        "emissions  cold (Parquet)     1  2026-02-01  2026-02-01       20  <size>\n"
        "\n"
        "signals: 400 records; last compaction <time>; 0 unreadable hot lines (see `verify`); 0 lines in quarantine\n"
        "emissions: 40 records; last compaction <time>; 0 unreadable hot lines (see `verify`); 0 lines in quarantine\n"
        "checkpoints: none saved (store.write_checkpoint)\n"
    )


def test_info_json_and_checkpoint_lag(tmp_path: Path) -> None:
    assert run("demo", "ws", "--days", "2", "--signals-per-day", "100", cwd=tmp_path).returncode == 0
    script = (
        "from datetime import datetime, timezone\n"
        "from metaspn_store import FileSystemStore\n"
        "store = FileSystemStore('ws')\n"
        "t = datetime(2026, 2, 2, tzinfo=timezone.utc)\n"
        "done = list(store.iter_signals(datetime(2026, 2, 1, tzinfo=timezone.utc), t))\n"
        "store.write_checkpoint('route_worker', store.build_signal_checkpoint(done))\n"
    )
    subprocess.run([sys.executable, "-c", script], cwd=tmp_path, check=True)
    res = run("info", "ws", "--json", cwd=tmp_path)
    assert (res.returncode, res.stderr) == (0, "")
    doc = json.loads(res.stdout)
    signals = doc["kinds"]["signals"]
    assert signals["hot"] == {"days": ["2026-02-02"], "records": 100, "bytes": signals["hot"]["bytes"]}
    assert signals["hot"]["bytes"] == (tmp_path / "ws/store/signals/2026-02-02.jsonl").stat().st_size
    assert signals["cold"]["days"] == ["2026-02-01"] and signals["cold"]["records"] == 100
    assert signals["records"] == 200 and doc["kinds"]["emissions"]["records"] == 20
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", signals["last_compaction"])
    [checkpoint] = doc["checkpoints"]
    assert checkpoint["name"] == "route_worker" and checkpoint["signals_behind"] == 100  # all of 2026-02-02
    human = run("info", "ws", cwd=tmp_path).stdout
    assert human.endswith(
        "checkpoints (signals stored after each, i.e. what a replay from it yields):\n"
        f"  route_worker  at {checkpoint['last_timestamp']}  100 signals behind\n"
    )


# ------------------------------------------------------------------------------------------ sql


def test_sql_table_with_a_parameter(demo) -> None:
    cwd, _ = demo
    res = run(
        "sql", "ws", "SELECT day, tier, count(*) AS n FROM signals WHERE day >= $first GROUP BY ALL ORDER BY ALL",
        "--param", "first=2026-02-01",
        cwd=cwd,
    )  # fmt: skip
    assert (res.returncode, res.stderr) == (0, "")
    assert res.stdout == (
        "day         tier  n\n"
        "----------  ----  ---\n"
        "2026-02-01  cold  200\n"
        "2026-02-02  hot   200\n"
        "(2 rows)\n"
    )


QUERY = (
    "SELECT emission_id, timestamp, caused_by, payload, entity_refs, NULL AS nothing FROM emissions "
    "WHERE emission_id IN ('e_20260201_0000000', 'e_20260202_0000000') ORDER BY emission_id"
)


def test_sql_csv_and_json(demo) -> None:
    cwd, _ = demo
    as_csv = run("sql", "ws", QUERY, "--format", "csv", cwd=cwd)
    as_json = run("sql", "ws", QUERY, "-f", "json", cwd=cwd)
    assert as_csv.returncode == 0 and as_json.returncode == 0 and as_csv.stderr == as_json.stderr == ""
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    records = json.loads(as_json.stdout)
    assert [r["emission_id"] for r in rows] == [r["emission_id"] for r in records] == [
        "e_20260201_0000000",
        "e_20260202_0000000",
    ]
    assert as_json.stdout.count("\n") == 4  # "[", one line per row, "]"
    # JSON columns nest as JSON; timestamps are UTC ISO strings; NULL is null (csv: empty)
    assert isinstance(records[0]["payload"], dict) and json.loads(rows[0]["payload"]) == records[0]["payload"]
    assert records[0]["timestamp"].startswith("2026-02-01T") and records[0]["timestamp"].endswith("Z")
    assert rows[0]["timestamp"] == records[0]["timestamp"]
    assert records[0]["nothing"] is None and rows[0]["nothing"] == ""
    assert json.loads(rows[0]["entity_refs"]) == records[0]["entity_refs"]
    assert run("sql", "ws", "SELECT 1 AS x WHERE false", "-f", "json", cwd=cwd).stdout == "[]\n"


def test_sql_to_files(demo, tmp_path: Path) -> None:
    cwd, _ = demo
    target = tmp_path / "out.parquet"
    res = run("sql", "ws", "SELECT signal_id, day FROM signals", "-f", "parquet", "-o", str(target), cwd=cwd)
    assert (res.returncode, res.stdout, res.stderr) == (0, f"wrote 400 rows to {target}\n", "")
    table = pq.read_table(target)
    assert table.num_rows == 400 and table.column_names == ["signal_id", "day"]
    text = tmp_path / "out.csv"
    res = run("sql", "ws", "SELECT signal_id FROM signals ORDER BY signal_id LIMIT 3", "-o", str(text), "-f", "csv", cwd=cwd)
    assert res.stdout == f"wrote 3 rows to {text}\n"
    assert text.read_text() == "signal_id\ns_20260201_0000000\ns_20260201_0000001\ns_20260201_0000002\n"


def test_sql_usage_and_query_errors(demo) -> None:
    cwd, _ = demo
    usage = (
        "usage: metaspn-store sql [-h] [--param NAME=VALUE]\n"
        "                         [--format {table,csv,json,parquet}] [--output FILE]\n"
        "                         workspace query\n"
    )
    parquet = run("sql", "ws", "SELECT 1", "--format", "parquet", cwd=cwd)
    assert (parquet.returncode, parquet.stdout) == (2, "")
    assert parquet.stderr == usage + "metaspn-store sql: error: --format parquet writes a binary file: give --output FILE\n"
    param = run("sql", "ws", "SELECT 1", "--param", "oops", cwd=cwd)
    assert (param.returncode, param.stdout) == (2, "")
    assert param.stderr == usage + (
        "metaspn-store sql: error: argument --param/-p: expected NAME=VALUE (used as $NAME in the query), got 'oops'\n"
    )
    bad = run("sql", "ws", "SELEC 1", cwd=cwd)
    assert (bad.returncode, bad.stdout) == (1, "")
    # the command adds its prefix to the library's QueryError, whose wording is the library's
    with pytest.raises(QueryError) as library:
        FileSystemStore(cwd / "ws").sql("SELEC 1")
    assert bad.stderr == f"metaspn-store sql: error: {library.value}\n"
    assert 'syntax error at or near "SELEC"' in bad.stderr


# ------------------------------------------------------------------------------------------ all commands


def test_version(tmp_path: Path) -> None:
    res = run("--version", cwd=tmp_path)
    assert (res.returncode, res.stdout, res.stderr) == (0, f"metaspn-store {metaspn_store.__version__}\n", "")


def test_no_command_is_a_usage_error(tmp_path: Path) -> None:
    res = run(cwd=tmp_path)
    assert res.returncode == 2
    assert res.stderr.endswith("metaspn-store: error: the following arguments are required: COMMAND\n")


@pytest.mark.parametrize("command", ["demo", "compact", "verify", "info", "sql"])
def test_help_has_example(command: str, tmp_path: Path) -> None:
    res = run(command, "--help", cwd=tmp_path)
    assert res.returncode == 0
    assert "Example: metaspn-store " + command in " ".join(res.stdout.split())


def _run_on_a_terminal(args: list[str], cwd: Path) -> tuple[int, str, str]:
    """Run with stderr on a pseudo-terminal (80x24); stdout stays a pipe."""
    import fcntl
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    env = {**ENV, "TERM": "xterm"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "metaspn_store", *args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=slave
    )
    os.close(slave)
    chunks = []
    while True:
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    assert proc.stdout is not None
    out = proc.stdout.read().decode()
    proc.stdout.close()
    os.close(master)
    return proc.wait(), out, b"".join(chunks).decode()


def test_progress_bars_on_a_terminal_only(tmp_path: Path) -> None:
    code, out, terminal = _run_on_a_terminal(["demo", "ws", "--days", "2", "--signals-per-day", "200"], tmp_path)
    assert code == 0
    assert "writing 2026-02-0" in terminal and "records" in terminal
    assert "compacting 2026-02-01" in terminal and "day" in terminal
    assert "\r" not in out and out.startswith("demo workspace ws:")  # stdout stays plain
    code, out, terminal = _run_on_a_terminal(["info", "ws"], tmp_path)
    assert code == 0 and "counting signals" in terminal and out.startswith("workspace ws\n")
    _, _, quiet = _run_on_a_terminal(["demo", "ws2", "--days", "2", "--signals-per-day", "200", "--json"], tmp_path)
    assert quiet == ""


def test_second_compactor_skips_with_a_message_when_told_not_to_wait(tmp_path: Path) -> None:
    """A compactor holding the lock (here: a process sitting on it) makes --no-wait skip cleanly."""
    ws = tmp_path / "ws"
    assert run("demo", "ws", "--days", "3", "--signals-per-day", "200", "--json", cwd=tmp_path).returncode == 0
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time\n"
            "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "print('locked', flush=True)\n"
            "time.sleep(30)\n",
            str(ws / "store" / ".locks" / "compact.lock"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        before = _tree(ws / "store")
        result = run("compact", "ws", "--no-wait", "--before", "2026-02-04", cwd=tmp_path)
        assert (result.returncode, result.stderr) == (0, "")
        assert result.stdout == "compaction skipped: another compaction is running on this workspace\n"
        assert _tree(ws / "store") == before
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()
    again = run("compact", "ws", "--before", "2026-02-04", "--json", cwd=tmp_path)
    assert again.returncode == 0 and json.loads(again.stdout)["days"]
