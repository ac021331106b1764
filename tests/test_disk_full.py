"""Full disks and other refused writes (issue 11 case 2): a batch is stored whole or not at all.

The writer runs in a subprocess under ``RLIMIT_FSIZE``: past the limit the kernel refuses the
write with EFBIG, exactly where a full disk refuses it with ENOSPC, so the real code path fails
in the middle of a batch, with nothing simulated.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from datetime import date, datetime, timedelta, timezone

from metaspn_schemas import SignalEnvelope

from metaspn_store import FileSystemStore

UTC = timezone.utc
T0 = datetime(2026, 2, 5, 12, tzinfo=UTC)
WINDOW = (datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 2, 9, tzinfo=UTC))

WRITER = """
import json, resource, signal, sys
from datetime import datetime, timedelta, timezone
from metaspn_schemas import SignalEnvelope
from metaspn_store import FileSystemStore, StoreError, CompactionError
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
ws, limit, what = sys.argv[1], int(sys.argv[2]), sys.argv[3]
T0 = datetime(2026, 2, 5, 12, tzinfo=timezone.utc)
store = FileSystemStore(ws)
batch = [SignalEnvelope(signal_id=f"b{k}", timestamp=T0 + timedelta(days=k % 2, seconds=k), source="w",
                        payload_type="p", payload={"pad": "x" * 200}) for k in range(40)]
store.write_signal(SignalEnvelope(signal_id="warm", timestamp=T0, source="w", payload_type="p", payload={}))
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
out = {}
try:
    if what == "write":
        store.write_signals(batch, on_duplicate="raise")
    else:
        store.compact(before=datetime(2026, 3, 1).date())
    out["error"] = None
except StoreError as exc:
    out["error"] = type(exc).__name__
    out["message"] = str(exc)
    out["is_oserror"] = isinstance(exc, OSError)
resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
if what == "write" and "no-retry" not in sys.argv:
    # Same process, same in-memory index: the retry must find none of the batch stored.
    store.write_signals(batch, on_duplicate="raise")
    out["retry"] = "ok"
print(json.dumps(out))
"""


def run(ws, limit: int, what: str) -> dict:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(WRITER), str(ws), str(limit), what],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_a_batch_that_hits_a_full_disk_is_stored_not_at_all(tmp_path):
    # 02-05 exists (one small line); the batch's 02-06 half cannot fit: the 02-05 half, written
    # first, must be cut back and the new 02-06 file removed.
    result = run(tmp_path, 4000, "write")
    assert result["error"] == "StoreIOError" and result["is_oserror"]
    assert "EFBIG" in result["message"] and "nothing of this write was stored" in result["message"]
    assert result["retry"] == "ok"
    store = FileSystemStore(tmp_path)
    ids = [s.signal_id for s in store.iter_signals(*WINDOW)]
    assert sorted(ids) == sorted(["warm"] + [f"b{k}" for k in range(40)])
    assert len(ids) == 41


def test_a_failed_batch_leaves_no_partial_lines_and_no_empty_file(tmp_path):
    """Without the retry: what is on disk after the failure is exactly what was there before."""
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(WRITER), str(tmp_path), "4000", "write", "no-retry"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    files = sorted(p.name for p in (tmp_path / "store" / "signals").glob("*.jsonl"))
    assert files == ["2026-02-05.jsonl"]
    lines = (tmp_path / "store" / "signals" / "2026-02-05.jsonl").read_bytes().splitlines()
    assert [json.loads(line)["signal_id"] for line in lines] == ["warm"]


def test_compaction_on_a_full_disk_fails_clearly_and_loses_nothing(tmp_path):
    with FileSystemStore(tmp_path) as store:
        store.write_signals([SignalEnvelope(signal_id=f"c{k}", timestamp=T0 + timedelta(days=k % 3, seconds=k),
                                            source="w", payload_type="p", payload={"n": k}) for k in range(300)])
        before = [s.to_dict() for s in store.iter_signals(*WINDOW)]
    result = run(tmp_path, 2000, "compact")
    assert result["error"] == "CompactionError", result
    assert "reads exactly as before" in result["message"]
    after = FileSystemStore(tmp_path)
    replay = [s.signal_id for s in after.iter_signals(*WINDOW)]
    assert sorted(replay) == sorted([r["signal_id"] for r in before] + ["warm"])
    after.compact(before=date(2026, 3, 1))
    assert sorted(s.signal_id for s in after.iter_signals(*WINDOW)) == sorted(replay)
