"""Inter-process (flock) plus intra-process (thread) locks on small lock files.

flock locks belong to an open file description, so each ``ProcessLock`` keeps one descriptor and
serialises the threads of its process with a thread lock first. The lock file's first bytes also
hold a small state that holders read and write while they hold it: the hot tier keeps an append
generation and the last day appended there, and a cold generation that compactions bump, so a
writer can tell what other processes changed with one read per lock hold instead of a stat of
every file (and of the cold table's log).
"""

from __future__ import annotations

import fcntl
import mmap
import os
import struct
import threading
from pathlib import Path
from types import TracebackType

from metaspn_store.errors import StoreLockedError

# (append generation, last day appended as a date ordinal, cold generation). Lock files written
# before the cold generation existed hold only the first two fields: it reads as 0 there.
_STATE = struct.Struct("<QIQ")
_STATE_V1 = struct.Struct("<QI")

# This process's id, updated in a child after fork() (os.getpid() is a system call per lock hold).
_PID = [os.getpid()]
os.register_at_fork(after_in_child=lambda: _PID.__setitem__(0, os.getpid()))


class _Held:
    """``with lock.hold():`` without a generator per call (single writes take the lock each time)."""

    __slots__ = ("_lock", "_blocking")

    def __init__(self, lock: ProcessLock, blocking: bool) -> None:
        self._lock = lock
        self._blocking = blocking

    def __enter__(self) -> None:
        self._lock._acquire(self._blocking)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._lock._release()


class ProcessLock:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._thread_lock = threading.RLock()
        self._fd: int | None = None
        self._depth = 0
        self._pid = _PID[0]
        self._state: list[int] | None = None  # read once per hold (nobody else can change it then)
        # The state's bytes mapped shared: reading and writing them is then no system call (a
        # pwrite per append also dirtied the lock file's inode, slow while the journal is busy).
        self._map: mmap.mmap | None = None
        self._holds = (_Held(self, False), _Held(self, True))

    def hold(self, *, blocking: bool = True) -> _Held:
        """Context manager holding the lock (re-entrant within a thread)."""
        return self._holds[1 if blocking else 0]

    def _acquire(self, blocking: bool) -> None:
        if not self._thread_lock.acquire(blocking):
            raise StoreLockedError(f"{self.path} is held by another thread")
        if self._depth == 0:
            try:
                if self._fd is None or self._pid != _PID[0]:
                    # A descriptor inherited through fork() shares its lock with the parent.
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                    self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
                    self._pid = _PID[0]
                    self._map = None
                try:
                    fcntl.flock(self._fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
                except BlockingIOError as exc:
                    raise StoreLockedError(f"{self.path} is held by another process") from exc
            except BaseException:
                self._thread_lock.release()
                raise
            self._state = None
        self._depth += 1

    def _release(self) -> None:
        try:
            self._depth -= 1
            if self._depth == 0 and self._fd is not None:
                self._state = None
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._thread_lock.release()

    def _mapped(self) -> mmap.mmap | None:
        """The state's bytes, mapped (None where the filesystem cannot map files). Call while
        holding the lock: a shorter lock file (new, or of an earlier version) is first extended
        with zeros, which read as the fields it did not have."""
        if self._map is None:
            assert self._fd is not None and self._depth > 0
            try:
                if os.fstat(self._fd).st_size < _STATE.size:
                    os.ftruncate(self._fd, _STATE.size)
                self._map = mmap.mmap(self._fd, _STATE.size)
            except (OSError, ValueError):
                return None
        return self._map

    def _read_state(self) -> list[int]:
        state = self._state
        if state is not None:
            return state
        assert self._fd is not None and self._depth > 0
        mapped = self._mapped()
        if mapped is not None:
            state = list(_STATE.unpack_from(mapped, 0))
        else:
            data = os.pread(self._fd, _STATE.size, 0)
            if len(data) >= _STATE.size:
                state = list(_STATE.unpack(data))
            elif len(data) >= _STATE_V1.size:
                state = [*_STATE_V1.unpack(data[: _STATE_V1.size]), 0]
            else:
                state = [0, 0, 0]
        self._state = state
        return state

    def _write_state(self, state: list[int]) -> None:
        assert self._fd is not None and self._depth > 0
        mapped = self._mapped()
        if mapped is not None:
            _STATE.pack_into(mapped, 0, *state)
        else:
            os.pwrite(self._fd, _STATE.pack(*state), 0)
        self._state = state

    def generations(self) -> tuple[int, int]:
        """(append generation, cold generation): :meth:`state` and :meth:`cold_generation` in one
        call. Call while holding the lock."""
        state = self._read_state()
        return state[0], state[2]

    def state(self) -> tuple[int, int]:
        """(generation, detail) last written by a holder; (0, 0) for a new lock file. Call while
        holding the lock (the file is read once per hold)."""
        state = self._read_state()
        return state[0], state[1]

    def set_state(self, generation: int, detail: int) -> None:
        """Record the state for the next holders. Call while holding the lock."""
        self._write_state([generation, detail, self._read_state()[2]])

    def cold_generation(self) -> int:
        """How many times holders announced a change of the cold tier (0 for a new lock file).
        Call while holding the lock."""
        return self._read_state()[2]

    def bump_cold_generation(self) -> int:
        """Announce a change of the cold tier to the next holders; returns the new generation."""
        state = self._read_state()
        new = state[2] + 1
        self._write_state([state[0], state[1], new])
        return new
