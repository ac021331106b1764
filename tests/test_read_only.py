"""Read-only access (issue 11 case 4): analysts often cannot write to the workspace.

* ``read_only=True`` never writes anything, even where it could;
* a workspace on a read-only mount opens read-only by itself, answers every read, and refuses
  writes and compaction with ``ReadOnlyStoreError`` (a real read-only bind mount in a private
  mount namespace, so the test also holds when it runs as root).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from metaspn_schemas import SignalEnvelope

from metaspn_store import FileSystemStore, ReadOnlyStoreError, StoreError

UTC = timezone.utc
T0 = datetime(2026, 2, 5, 12, tzinfo=UTC)
WINDOW = (datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 2, 9, tzinfo=UTC))


def signal(k: int, day: int = 0) -> SignalEnvelope:
    return SignalEnvelope(signal_id=f"s{k}", timestamp=T0 + timedelta(days=day, seconds=k), source="w",
                          payload_type="RecommendationCandidate", payload={"score": k / 10})


def make_workspace(root: Path, *, compacted: bool) -> Path:
    """A workspace with hot files only (as 0.1.8 leaves it) or with compacted days too."""
    ws = root / ("compacted" if compacted else "hot")
    with FileSystemStore(ws) as store:
        store.write_signals([signal(k, day=k % 3) for k in range(30)])
        if compacted:
            store.compact(before=date(2026, 2, 7))
    for derived in (".cache", ".index", ".locks"):
        shutil.rmtree(ws / "store" / derived, ignore_errors=True)
    return ws


def tree(ws: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(ws)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(ws.rglob("*"))}


READS = """
import json, sys
from datetime import datetime, timezone
from metaspn_store import FileSystemStore
UTC = timezone.utc
store = FileSystemStore(sys.argv[1], **json.loads(sys.argv[2]))
w = (datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 2, 9, tzinfo=UTC))
out = {
    "read_only": store.read_only,
    "replay": [s.signal_id for s in store.iter_signals(*w)],
    "top": [s.signal_id for s in store.get_top_recommendation_candidates(start=w[0], end=w[1], limit=5)],
    "sql": store.sql("SELECT count(*) FROM signals").fetchall()[0][0],
    "table": store.read_signals(*w).num_rows,
    "verify": len(store.verify()),
    "checkpoint": store.read_checkpoint("none"),
}
errors = {}
from metaspn_schemas import SignalEnvelope
new = SignalEnvelope(signal_id="new", timestamp=w[0], source="w", payload_type="p", payload={})
for name, call in {
    "write_signal": lambda: store.write_signal(new),
    "write_checkpoint": lambda: store.write_checkpoint("c", store.build_signal_checkpoint([new])),
    "write_snapshot": lambda: store.write_snapshot("s", {}),
    "compact": lambda: store.compact(before=datetime(2026, 3, 1).date()),
}.items():
    try:
        call()
        errors[name] = None
    except Exception as exc:
        errors[name] = type(exc).__name__
out["errors"] = errors
store.close()
print(json.dumps(out))
"""


def run_reads(ws: Path, options: dict, *, read_only_mount: bool) -> dict:
    script = [sys.executable, "-c", textwrap.dedent(READS), str(ws), json.dumps(options)]
    if read_only_mount:
        command = ["unshare", "-m", "sh", "-c", 'mount --bind -o ro "$0" "$0" && exec "$@"', str(ws), *script]
    else:
        command = script
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # no stray AttributeError from a cleanup hook
    return json.loads(done.stdout)


def can_mount_read_only(tmp_path: Path) -> bool:
    probe = tmp_path / "probe"
    probe.mkdir()
    if shutil.which("unshare") is None:
        return False
    done = subprocess.run(
        ["unshare", "-m", "sh", "-c", f'mount --bind -o ro "{probe}" "{probe}" && ! touch "{probe}/x"'],
        capture_output=True,
    )
    return done.returncode == 0 and not (probe / "x").exists()


@pytest.mark.parametrize("compacted", [False, True])
def test_explicit_read_only_writes_nothing(tmp_path, compacted):
    ws = make_workspace(tmp_path, compacted=compacted)
    copy = tmp_path / "copy"
    shutil.copytree(ws, copy)
    expected = run_reads(copy, {}, read_only_mount=False)  # a writable open of a copy, for the answers
    before = tree(ws)
    seen = run_reads(ws, {"read_only": True}, read_only_mount=False)
    assert tree(ws) == before
    assert seen["read_only"] is True
    assert {k: v for k, v in seen.items() if k not in ("read_only", "errors")} == {
        k: v for k, v in expected.items() if k not in ("read_only", "errors")
    }
    assert seen["errors"] == dict.fromkeys(("write_signal", "write_checkpoint", "write_snapshot", "compact"),
                                           "ReadOnlyStoreError")


@pytest.mark.parametrize("compacted", [False, True])
def test_a_read_only_mount_opens_read_only_by_itself(tmp_path, compacted):
    if not can_mount_read_only(tmp_path):
        pytest.skip("cannot make a read-only bind mount here (needs unshare -m)")
    ws = make_workspace(tmp_path, compacted=compacted)
    expected = run_reads(ws, {"read_only": True}, read_only_mount=False)
    before = tree(ws)
    seen = run_reads(ws, {}, read_only_mount=True)
    assert tree(ws) == before
    assert seen == expected


def test_read_only_errors_are_store_errors_and_permission_errors(tmp_path):
    ws = make_workspace(tmp_path, compacted=False)
    store = FileSystemStore(ws, read_only=True)
    with pytest.raises(ReadOnlyStoreError, match="read-only") as caught:
        store.write_signal(signal(99))
    assert isinstance(caught.value, StoreError) and isinstance(caught.value, PermissionError)
    assert not (ws / "store" / ".locks").exists()


def test_read_only_needs_an_existing_store(tmp_path):
    with pytest.raises(FileNotFoundError):
        FileSystemStore(tmp_path / "nothing", read_only=True)
    assert not (tmp_path / "nothing").exists()
