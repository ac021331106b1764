"""Atomic replacement of checkpoints, snapshots and saved Arrow files under real faults (issue 11,
item 10).

The real write path runs in a subprocess that is killed with SIGKILL at each step of
``_ipc.replace_atomically`` (``METASPN_STORE_CRASH_AT``, see ``metaspn_store/_faults.py``): after
the temporary file is created, after the bytes are written, flushed and fsynced, and after the
rename. Afterwards the target holds the previous document byte for byte (or, after the rename, the
new one), never an empty or partial file; a stray temporary file is never read as a document; and
the next write works. A second set of tests needs no hook: the writer runs under ``RLIMIT_FSIZE``,
so writing the new document fails with EFBIG halfway, as on a full disk.

Replacing ``replace_atomically`` with a plain ``open(path, "wb").write(...)`` makes these tests fail
(checked when they were written): the kill after creation leaves an empty target, the size limit a
truncated one.
"""

from __future__ import annotations

import errno
import inspect
import os
import re
import signal
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import orjson
import pyarrow as pa
import pytest

from metaspn_store import FileSystemStore, InvalidNameError, ReplayCheckpoint, _ipc
from metaspn_store._faults import ATOMIC_STEPS, ENV_VAR, STEPS

UTC = timezone.utc
WHEN = datetime(2026, 2, 5, 12, 0, tzinfo=UTC)
TEMP_NAME = re.compile(r"^\.tmp-[0-9a-f]{12}$")
TARGETS = ["checkpoint", "snapshot", "digest", "saved-arrow"]
BIG = 20_000  # ids in a new document: ~300 KB, far more than one write buffer


def ids_of(n: int) -> list[str]:
    return [f"id-{n}-{i:06d}" for i in range(BIG if n > 1 else 3)]


def write_version(workspace: str, target: str, n: int) -> None:
    """Write version ``n`` of ``target`` through the public API (the saved Arrow file through
    ``_ipc.write_atomic``, as the id index and the parse cache do). Runs here and, from its source
    text, in the subprocess that gets killed."""
    from datetime import datetime, timezone
    from pathlib import Path

    import pyarrow as pa

    from metaspn_store import FileSystemStore, ReplayCheckpoint, _ipc

    store = FileSystemStore(workspace)
    when = datetime(2026, 2, 5, 12, 0, tzinfo=timezone.utc)
    ids = ids_of(n)
    if target == "checkpoint":
        store.write_checkpoint("worker", ReplayCheckpoint(when, tuple(ids)))
    elif target == "snapshot":
        store.write_snapshot("state", {"version": n, "ids": ids}, when)
    elif target == "digest":
        store.write_daily_digest_snapshot(day="2026-02-05", digest={"version": n, "ids": ids})
    else:
        _ipc.write_atomic(Path(workspace) / "store" / ".index" / "saved.arrow", pa.table({"id": ids}), {"version": n})


CHILD = f"""
import resource, sys
BIG = {BIG}
{inspect.getsource(ids_of)}
{inspect.getsource(write_version)}
workspace, target, versions, fsize = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
if fsize:
    resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
for n in map(int, versions.split(",")):
    try:
        write_version(workspace, target, n)
    except OSError as exc:
        print("OSError", exc.errno)
        sys.exit(0)
print("done")
"""


def run_child(workspace: Path, target: str, versions: str, *, crash_at: str | None = None, fsize: int = 0):
    env = {k: v for k, v in os.environ.items() if k != ENV_VAR}
    if crash_at is not None:
        env[ENV_VAR] = crash_at
    return subprocess.run(
        [sys.executable, "-c", CHILD, str(workspace), target, versions, str(fsize)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def folder_of(store: FileSystemStore, target: str) -> Path:
    if target == "checkpoint":
        return store.checkpoints_dir
    if target == "saved-arrow":
        return store.workspace / "store" / ".index"
    return store.snapshots_dir


def target_path(store: FileSystemStore, target: str) -> Path:
    names = {
        "checkpoint": "worker.json",
        "snapshot": "state__2026-02-05T120000Z.json",
        "digest": "digest__2026-02-05.json",
        "saved-arrow": "saved.arrow",
    }
    return folder_of(store, target) / names[target]


def read_version(store: FileSystemStore, target: str) -> int | None:
    """The version a fresh reader sees through the public API (None: no document), checking that
    the whole document is there."""
    fresh = FileSystemStore(store.workspace)
    if target == "checkpoint":
        cp = fresh.read_checkpoint("worker")
        if cp is None:
            return None
        ids = cp.seen_ids_at_timestamp
        n = int(ids[0].split("-")[1])
        assert list(ids) == ids_of(n)
        return n
    if target == "saved-arrow":
        found = _ipc.read(target_path(store, target))
        if found is None:
            assert not target_path(store, target).exists(), "saved file exists but is unreadable"
            return None
        table, meta = found
        n = meta["version"]
        assert table.column("id").to_pylist() == ids_of(n)
        return n
    if target == "digest":
        doc = fresh.read_daily_digest_snapshot("2026-02-05")
        body = None if doc is None else doc["digest"]
    else:
        path = target_path(store, target)
        body = orjson.loads(path.read_bytes()) if path.exists() else None
    if body is None:
        return None
    n = body["version"]
    assert body["ids"] == ids_of(n)
    return n


def non_temp_files(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir() if not TEMP_NAME.match(p.name)}


def temp_files(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if TEMP_NAME.match(p.name)]


@pytest.fixture
def store(tmp_path: Path) -> FileSystemStore:
    return FileSystemStore(tmp_path / "ws")


def write_first_version(store: FileSystemStore, target: str) -> bytes:
    write_version(str(store.workspace), target, 1)
    assert read_version(store, target) == 1
    return target_path(store, target).read_bytes()


# --------------------------------------------------------------------------- SIGKILL at each step


def test_every_atomic_step_has_a_crash_point():
    assert set(ATOMIC_STEPS) <= set(STEPS)
    assert ATOMIC_STEPS[-1] == "atomic.renamed"


@pytest.mark.parametrize("step", ATOMIC_STEPS)
@pytest.mark.parametrize("target", TARGETS)
def test_kill_during_replacement_leaves_old_or_new_document(store, target, step):
    old_bytes = write_first_version(store, target)
    folder = folder_of(store, target)
    files_before = non_temp_files(folder)

    result = run_child(store.workspace, target, "2", crash_at=step)
    assert result.returncode == -signal.SIGKILL, f"not killed at {step}: {result.stdout} {result.stderr}"

    renamed = step == "atomic.renamed"
    assert read_version(store, target) == (2 if renamed else 1)
    if not renamed:
        assert target_path(store, target).read_bytes() == old_bytes  # byte for byte
    assert non_temp_files(folder) == files_before  # nothing new that looks like a document
    assert len(temp_files(folder)) == (0 if renamed else 1)  # the killed writer's temp file, if any

    # The stray temporary file is no document and does not get in the way of the next write.
    for tmp in temp_files(folder):
        with pytest.raises(InvalidNameError):
            store.read_checkpoint(tmp.name)
    write_version(str(store.workspace), target, 3)
    assert read_version(store, target) == 3


@pytest.mark.parametrize("step", ATOMIC_STEPS)
def test_kill_during_first_write_leaves_no_document_or_the_new_one(store, step):
    result = run_child(store.workspace, "checkpoint", "2", crash_at=step)
    assert result.returncode == -signal.SIGKILL, result.stderr
    expected = 2 if step == "atomic.renamed" else None
    assert read_version(store, "checkpoint") == expected
    assert non_temp_files(store.checkpoints_dir) == ({"worker.json"} if expected else set())


def test_crash_point_counts_occurrences(store):
    # "@2": the second replacement in the process is killed after its rename; the first completed.
    result = run_child(store.workspace, "checkpoint", "2,3,4", crash_at="atomic.renamed@2")
    assert result.returncode == -signal.SIGKILL
    assert read_version(store, "checkpoint") == 3


def test_unknown_crash_point_is_an_error_not_a_silent_pass(store):
    result = run_child(store.workspace, "checkpoint", "2", crash_at="atomic.no-such-step")
    assert result.returncode == 1
    assert "unknown step 'atomic.no-such-step'" in result.stderr and "atomic.renamed" in result.stderr
    assert read_version(store, "checkpoint") is None


# --------------------------------------------------------------------------- file size limit (EFBIG)


@pytest.mark.parametrize("target", TARGETS)
def test_write_failing_halfway_keeps_previous_document(store, target):
    old_bytes = write_first_version(store, target)
    folder = folder_of(store, target)
    files_before = {p.name for p in folder.iterdir()}
    limit = 64 * 1024  # the old document fits, the new one (~300 KB) does not
    assert len(old_bytes) < limit

    result = run_child(store.workspace, target, "2", fsize=limit)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["OSError", str(errno.EFBIG)]  # the write did fail

    assert target_path(store, target).read_bytes() == old_bytes
    assert read_version(store, target) == 1
    assert {p.name for p in folder.iterdir()} == files_before  # the temporary file was removed


def test_new_documents_are_readable_by_other_users_like_0_1_8(store):
    # 0.1.8 creates documents with open(): mode 0o666 less the umask. A 0600 temp file renamed into
    # place would hide checkpoints from the other users of a shared workspace.
    umask = os.umask(0o022)
    os.umask(umask)
    path = store.write_checkpoint("worker", ReplayCheckpoint(WHEN, ("a",)))
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    saved = store.workspace / "store" / ".index" / "x.arrow"
    _ipc.write_atomic(saved, pa.table({"a": [1]}), {})
    assert saved.stat().st_mode & 0o777 == 0o644
