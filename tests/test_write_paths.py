"""The write path's shortcuts (issue 15) keep the guarantees of the general path.

* a batch whose first day fits and whose second day hits a full disk stores nothing (the
  all-new shortcut appends every day in one ``append_all``);
* batch id lookups (bucketed) answer exactly like one-by-one lookups;
* lock files of the previous format (12 bytes of state) keep their append generation and read a
  cold generation of 0; the state is shared through the mapping with other holders at once.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from metaspn_store._index import IdIndex, digest
from metaspn_store._locks import ProcessLock

WRITER = """
import json, resource, signal, sys
from datetime import datetime, timedelta, timezone
from metaspn_schemas import SignalEnvelope
from metaspn_store import FileSystemStore, StoreError
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
ws = sys.argv[1]
T0 = datetime(2026, 2, 5, 12, tzinfo=timezone.utc)
store = FileSystemStore(ws)
store.write_signal(SignalEnvelope(signal_id="warm", timestamp=T0, source="w", payload_type="p", payload={}))
# 02-05 first: 3 records (about 1 KB, fits under the limit); then 02-06: 30 records (about 9 KB, does not).
batch = [SignalEnvelope(signal_id=f"a{k}", timestamp=T0 + timedelta(seconds=k), source="w", payload_type="p",
                        payload={"pad": "x" * 200}) for k in range(3)]
batch += [SignalEnvelope(signal_id=f"b{k}", timestamp=T0 + timedelta(days=1, seconds=k), source="w",
                         payload_type="p", payload={"pad": "x" * 200}) for k in range(30)]
resource.setrlimit(resource.RLIMIT_FSIZE, (4000, resource.RLIM_INFINITY))
out = {}
try:
    store.write_signals(batch)
    out["error"] = None
except StoreError as exc:
    out["error"] = type(exc).__name__
resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
print(json.dumps(out))
"""


def test_a_batch_whose_second_day_hits_a_full_disk_stores_nothing(tmp_path):
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(WRITER), str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["error"] == "StoreIOError"
    signals = tmp_path / "store" / "signals"
    assert sorted(p.name for p in signals.glob("*.jsonl")) == ["2026-02-05.jsonl"]
    lines = (signals / "2026-02-05.jsonl").read_bytes().splitlines()
    assert [json.loads(line)["signal_id"] for line in lines] == ["warm"]


def test_batch_lookups_answer_like_single_lookups():
    index = IdIndex()
    for i in range(3000):
        index.add_new(digest(f"old-{i}"), 7)
    index.compact()  # into the sorted arrays
    for i in range(50):
        index.add_new(digest(f"recent-{i}"), 9)  # still in the recent dict
    keys = [digest(f"{prefix}-{i}") for i in range(0, 3100, 3) for prefix in ("old", "recent", "new")]
    expected = [i for i, key in enumerate(keys) if index.get(key) is not None]
    assert len(keys) >= 256  # the bucketed path
    assert index.known(keys) == expected
    assert index.known(keys[:20]) == [i for i in expected if i < 20]  # the plain path
    assert expected  # both kinds of hits are in there
    assert any(keys[i] == digest("recent-3") for i in expected)


def test_a_lock_file_of_the_previous_format_keeps_its_generation(tmp_path):
    path = tmp_path / "signals.lock"
    path.write_bytes((41).to_bytes(8, "little") + (738000).to_bytes(4, "little"))  # (generation, day)
    lock, other = ProcessLock(path), ProcessLock(path)
    with lock.hold():
        assert lock.state() == (41, 738000)
        assert lock.cold_generation() == 0
        lock.set_state(42, 738001)
        assert lock.bump_cold_generation() == 1
    with other.hold():
        assert other.state() == (42, 738001)
        assert other.cold_generation() == 1
    with lock.hold():  # read again at every hold: the other holder's state
        assert lock.state() == (42, 738001)
    assert path.read_bytes()[:12] == (42).to_bytes(8, "little") + (738001).to_bytes(4, "little")



def test_a_big_batch_leaves_the_cyclic_collector_as_it_found_it(tmp_path):
    import gc
    from datetime import datetime, timedelta, timezone

    import pytest
    from metaspn_schemas import SignalEnvelope

    from metaspn_store import FileSystemStore, InvalidRecordError

    t0 = datetime(2026, 2, 5, tzinfo=timezone.utc)
    batch = [SignalEnvelope(signal_id=f"g{k}", timestamp=t0 + timedelta(seconds=k), source="w", payload_type="p",
                            payload={"k": k}) for k in range(1500)]
    store = FileSystemStore(tmp_path)
    assert gc.isenabled()
    store.write_signals(batch)
    assert gc.isenabled()
    bad = [*batch[:1200], SignalEnvelope(signal_id="nan", timestamp=t0, source="w", payload_type="p",
                                         payload={"x": float("nan")})]
    with pytest.raises(InvalidRecordError):
        store.write_signals(bad)
    assert gc.isenabled()
    gc.disable()
    try:
        store.write_signals([*batch, *[SignalEnvelope(signal_id=f"h{k}", timestamp=t0, source="w", payload_type="p",
                                                      payload={}) for k in range(1000)]])
        assert not gc.isenabled()  # the caller's choice stands
    finally:
        gc.enable()
