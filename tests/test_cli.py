"""``python -m metaspn_store`` as a user runs it: real subprocesses, exit codes, stdout/stderr."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "metaspn_store", *args], capture_output=True, text=True, cwd=ROOT, timeout=120
    )


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".locks" not in p.parts
    }


@pytest.fixture(scope="module")
def demo_ws(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    ws = tmp_path_factory.mktemp("cli") / "ws"
    res = run("demo", str(ws), "--days", "3", "--signals-per-day", "300", "--json")
    assert res.returncode == 0, res.stderr
    return ws, json.loads(res.stdout)


def test_demo_json_counts(demo_ws: tuple[Path, dict]) -> None:
    ws, doc = demo_ws
    assert doc["written"] == {"signals": 900, "emissions": 90, "days": 3}
    assert doc["top_candidates"] and all("signal_id" in c for c in doc["top_candidates"])
    assert (ws / "store").is_dir()


def test_demo_human_output_mentions_top_candidates(tmp_path: Path) -> None:
    res = run("demo", str(tmp_path / "ws"), "--days", "2", "--signals-per-day", "200")
    assert res.returncode == 0, res.stderr
    assert "top recommendation candidates" in res.stdout


def test_compact_then_again_reports_nothing(demo_ws: tuple[Path, dict]) -> None:
    ws, _ = demo_ws
    res = run("compact", str(ws), "--before", "2026-02-04", "--json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert [d["day"] for d in doc["days"] if d["kind"] == "signals"] == ["2026-02-03"]
    again = run("compact", str(ws), "--before", "2026-02-04", "--json")
    assert again.returncode == 0 and json.loads(again.stdout)["days"] == []
    human = run("compact", str(ws), "--before", "2026-02-04")
    assert human.returncode == 0 and "nothing to compact" in human.stdout


def test_compact_json_reports_days(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    assert run("demo", str(ws), "--days", "3", "--signals-per-day", "100", "--json").returncode == 0
    # demo already compacted days before the last one; add nothing and compact the last
    res = run("compact", str(ws), "--before", "2026-02-03", "--json")
    assert res.returncode == 0
    assert json.loads(res.stdout)["days"] == []  # 2026-02-01 and 02 were compacted by demo
    res = run("compact", str(ws), "--before", "2026-02-05", "--json")
    doc = json.loads(res.stdout)
    assert {(d["kind"], d["day"]) for d in doc["days"]} == {
        ("signals", "2026-02-03"),
        ("emissions", "2026-02-03"),
    }
    assert doc["records_out"] == 100 + 10


def test_compact_without_store_folder_fails_cleanly(tmp_path: Path) -> None:
    res = run("compact", str(tmp_path))
    assert res.returncode == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("metaspn-store compact: error:")
    assert not (tmp_path / "store").exists()


def test_dry_run_changes_nothing(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    assert run("demo", str(ws), "--days", "3", "--signals-per-day", "100").returncode == 0
    before = _tree(ws)
    res = run("compact", str(ws), "--before", "2026-02-05", "--dry-run", "--json")
    assert res.returncode == 0
    doc = json.loads(res.stdout)
    assert doc["dry_run"] is True and doc["days"]
    assert _tree(ws) == before


def test_verify_clean_then_garbage(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    assert run("demo", str(ws), "--days", "2", "--signals-per-day", "100").returncode == 0
    ok = run("verify", str(ws))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    hot = sorted((ws / "store" / "signals").glob("*.jsonl"))[-1]
    n_lines = len(hot.read_bytes().splitlines())
    with open(hot, "a", encoding="utf-8") as fh:
        fh.write("garbage, not json\n")
    bad = run("verify", str(ws))
    assert bad.returncode == 1
    assert f"{hot.name}:{n_lines + 1}" in bad.stdout
    doc = json.loads(run("verify", str(ws), "--json").stdout)
    assert doc["count"] == 1


@pytest.mark.parametrize("command", ["demo", "compact", "verify"])
def test_help_has_example(command: str) -> None:
    res = run(command, "--help")
    assert res.returncode == 0
    assert "Example:" in res.stdout


def test_second_compactor_skips_with_a_message_when_told_not_to_wait(tmp_path: Path) -> None:
    """A compactor holding the lock (here: a process sitting on it) makes --no-wait skip cleanly."""
    ws = tmp_path / "ws"
    assert run("demo", str(ws), "--days", "3", "--signals-per-day", "200", "--json").returncode == 0
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
        result = run("compact", str(ws), "--no-wait", "--before", "2026-02-04")
        assert result.returncode == 0
        assert result.stdout.strip() == "compaction skipped: another compaction is running on this workspace"
        assert _tree(ws / "store") == before
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()
    again = run("compact", str(ws), "--before", "2026-02-04", "--json")
    assert again.returncode == 0 and json.loads(again.stdout)["days"]
