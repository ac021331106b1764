"""Deterministic crash points, for tests that kill the real code between two steps.

A multi-step operation whose guarantee is "a crash at any moment leaves the old state or the new
one" calls :func:`crash_point` between its steps. Normally that does nothing. A test runs the
operation in a subprocess with ``METASPN_STORE_CRASH_AT=<step>`` (or ``<step>@<n>`` for the n-th
time the step is reached, counting from 1) in its environment; that process then sends itself
SIGKILL at exactly that point: no ``finally`` blocks, no ``atexit``, no buffered bytes flushed,
as with ``kill -9`` or a power cut seen from the process. The test then opens the workspace and
checks the guarantee. See ``tests/test_atomic_files.py``.

Every step name lives in :data:`STEPS`, so a typo in a test is an error instead of a process that
never crashes. To cover a new operation (say a compaction commit), add its step names here and call
``crash_point("compaction.<step>")`` between its steps.

The variable is read once, at import: when it is unset a crash point costs one global lookup and
one comparison.
"""

from __future__ import annotations

import os
import signal

ENV_VAR = "METASPN_STORE_CRASH_AT"

# name -> the state of the files when a crash there happens
STEPS: dict[str, str] = {
    # _ipc.replace_atomically (checkpoints, snapshots, the saved index and saved parses)
    "atomic.created": "temporary file created, empty; target untouched",
    "atomic.written": "new bytes handed to the file object (maybe still in its buffer); target untouched",
    "atomic.flushed": "new bytes in the OS page cache, not yet fsynced; target untouched",
    "atomic.fsynced": "temporary file fsynced, not yet renamed; target untouched",
    "atomic.renamed": "temporary file renamed over the target; folder not yet fsynced",
    # _compactor.compact_day (one day into the Delta table)
    "compaction.merged": "day merged in memory (quarantine written); no data file, no commit",
    "compaction.committed": "day committed to the table with the claim of its hot lines; hot file still there",
    "compaction.hot_removed": "hot file and its saved parse deleted; the next day not started",
    # _compactor.convert_legacy (the previous layout into the table)
    "conversion.committed": "previous layout's days committed to the table; its manifest and files still there",
    "conversion.removed": "previous layout's manifest and files deleted",
}
ATOMIC_STEPS = ("atomic.created", "atomic.written", "atomic.flushed", "atomic.fsynced", "atomic.renamed")
COMPACTION_STEPS = ("compaction.merged", "compaction.committed", "compaction.hot_removed")
CONVERSION_STEPS = ("conversion.committed", "conversion.removed")


def _parse(value: str | None) -> tuple[str, int] | None:
    if not value:
        return None
    name, _, nth = value.partition("@")
    if name not in STEPS:
        raise ValueError(f"{ENV_VAR}={value!r}: unknown step {name!r}; known steps: {', '.join(STEPS)}")
    if nth and (not nth.isdigit() or int(nth) < 1):
        raise ValueError(f"{ENV_VAR}={value!r}: the count after '@' must be a positive integer")
    return name, int(nth or 1)


_TARGET = _parse(os.environ.get(ENV_VAR))
_seen = 0


def crash_point(name: str) -> None:
    """Kill this process with SIGKILL if ``METASPN_STORE_CRASH_AT`` names this step (and count)."""
    global _seen
    if _TARGET is None or name != _TARGET[0]:
        return
    _seen += 1
    if _seen == _TARGET[1]:
        os.kill(os.getpid(), signal.SIGKILL)


__all__ = ["ATOMIC_STEPS", "COMPACTION_STEPS", "CONVERSION_STEPS", "ENV_VAR", "STEPS", "crash_point"]
