"""Inter-process (flock) plus intra-process (thread) locks on small lock files.

flock locks belong to an open file description, so each ``ProcessLock`` keeps one descriptor and
serialises the threads of its process with a thread lock first. The lock file's first bytes also
hold a small state that holders read and write while they hold it (the hot tier keeps an append
generation there, so a writer can tell what other writers changed without a stat of every file).
"""

from __future__ import annotations

import fcntl
import os
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from metaspn_store.errors import StoreLockedError


class ProcessLock:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._thread_lock = threading.RLock()
        self._fd: int | None = None
        self._depth = 0
        self._pid = os.getpid()

    @contextmanager
    def hold(self, *, blocking: bool = True) -> Iterator[None]:
        if not self._thread_lock.acquire(blocking=blocking):
            raise StoreLockedError(f"{self.path} is held by another thread")
        try:
            if self._depth == 0:
                if self._fd is None or self._pid != os.getpid():
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                    self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
                    self._pid = os.getpid()
                try:
                    fcntl.flock(self._fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
                except BlockingIOError as exc:
                    raise StoreLockedError(f"{self.path} is held by another process") from exc
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0 and self._fd is not None:
                    fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._thread_lock.release()

    _STATE = struct.Struct("<QI")

    def state(self) -> tuple[int, int]:
        """(generation, detail) last written by a holder; (0, 0) for a new lock file. Call while
        holding the lock."""
        assert self._fd is not None and self._depth > 0
        data = os.pread(self._fd, self._STATE.size, 0)
        if len(data) < self._STATE.size:
            return 0, 0
        generation, detail = self._STATE.unpack(data)
        return generation, detail

    def set_state(self, generation: int, detail: int) -> None:
        """Record the state for the next holders. Call while holding the lock."""
        assert self._fd is not None and self._depth > 0
        os.pwrite(self._fd, self._STATE.pack(generation, detail), 0)
