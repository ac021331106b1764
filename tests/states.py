"""Store states for the contract and oracle suites (STYLE.md habit 2; issue 10, item 6).

The contract tests are written once, against the public API, and run against every state a
workspace can be in when a read arrives, in the style of eventsourcing's abstract test case that
is subclassed per backend. :class:`StateStore` wraps a ``FileSystemStore``: writes pass through and
mark the store dirty; the first read after a write (or after opening) applies the state's
transition once, then reads pass through. So a test that writes, reads, writes again and reads again sees its state at every
read, and its second round of writes lands on a store already in that state (in "compacted" and
"mixed" that means late writes into compacted days).

States (the test id carries the name, e.g. ``test_window_at_day_boundaries[compacted]``):

* ``hot-small``: small hot JSONL files, parsed line by line (what the suite always checked).
* ``hot-large``: every hot day file at least ``BULK_THRESHOLD`` bytes, so reads take DuckDB's bulk
  parse path, and a new process builds its id index with the bulk id scan.
* ``compacted``: every day compacted into Parquet before each read (later writes are late writes,
  merged by the next compaction).
* ``compacted-large``: the same, but each hot file is first grown as in ``hot-large``, so the
  compactor reads it through the bulk parse path.
* ``mixed``: at the first read, the days before the newest written day are compacted and the newest
  stays hot; later writes stay hot, including late writes into compacted days.
* ``reopened-saved``: before each read, the store parses every hot file (which saves the parses),
  is closed (which saves the id index) and a new ``FileSystemStore`` opens the workspace: reads
  and writes go through the saved files. conftest's autouse fixture makes the package save both
  at any size.
* ``reopened-fresh``: the same, with ``store/.index`` and ``store/.cache`` deleted before reopening.

``KNOWN_BUGS`` lists (test, state) pairs that fail because of open product bugs; conftest marks
them ``xfail(strict=True)``, so a fix makes them fail loudly until their entry is removed here.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from metaspn_store import FileSystemStore

try:
    from metaspn_store._parse import BULK_THRESHOLD
except ImportError:  # metaspn-store 0.1.8 (no bulk parse, no compaction): only today's state exists
    BULK_THRESHOLD = None

HOT_SMALL = "hot-small"
HOT_LARGE = "hot-large"
COMPACTED = "compacted"
COMPACTED_LARGE = "compacted-large"
MIXED = "mixed"
REOPENED_SAVED = "reopened-saved"
REOPENED_FRESH = "reopened-fresh"

STATES: tuple[str, ...] = (
    (HOT_SMALL, HOT_LARGE, COMPACTED, COMPACTED_LARGE, MIXED, REOPENED_SAVED, REOPENED_FRESH)
    if BULK_THRESHOLD is not None
    else (HOT_SMALL,)
)
# States that change nothing for checkpoint and snapshot files (only opening a new store can).
REOPEN_STATES: tuple[str, ...] = tuple(s for s in STATES if s in (HOT_SMALL, REOPENED_SAVED, REOPENED_FRESH))

# Hypothesis examples per property test and state: today's 45 on hot-small; fewer where every
# example pays for a compaction, a reopen or 256 KiB files, to keep the default suite short.
# (Measured on 2 shared cores: an example costs about 0.25 s hot-small and 0.5-1 s elsewhere.)
ORACLE_EXAMPLES: dict[str, int] = {
    HOT_SMALL: 45,
    HOT_LARGE: 8,
    COMPACTED: 8,
    COMPACTED_LARGE: 6,
    MIXED: 8,
    REOPENED_SAVED: 8,
    REOPENED_FRESH: 8,
}

# (test function name, state) -> "issue 10: <diagnosis>". A test name may carry its other
# parameters ("test_x[iter_signals]") to mark only that case. Remove an entry once its fix lands.
KNOWN_BUGS: dict[tuple[str, str], str] = {}


# Calls that neither read records nor write them: pass through without a transition.
_PURE = frozenset({"build_signal_checkpoint", "to_pandas", "to_polars", "compact", "close"})


class StateStore:
    """A ``FileSystemStore`` that puts itself into ``state`` before every read that follows a write.

    Attribute access passes through, so tests use it exactly like the store it wraps.
    """

    def __init__(self, workspace: Path, state: str, **options: Any) -> None:
        if state not in STATES:
            raise ValueError(f"unknown store state {state!r}; known: {STATES}")
        self.state = state
        self._workspace = workspace
        self._options = options
        self._inner = FileSystemStore(workspace, **options)
        # Dirty from the start: the workspace may already hold files (a test can write JSONL by
        # hand), and the first read must see them in the state too.
        self._dirty = True
        self._mixed_done = False
        self.transitions = 0  # how many times the state was (re)applied (for the self-checks)
        # (kind, ISO day) of every day a transition compacted: the first record of an id stored
        # on such a day before then now lives in the day's Parquet folder.
        self.compacted: set[tuple[str, str]] = set()

    def __repr__(self) -> str:
        return f"StateStore({self._workspace}, state={self.state!r})"

    # ------------------------------------------------------------------ pass-through

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        if not callable(value) or name.startswith("_") or name in _PURE:
            return value
        if name.startswith("write_"):
            return self._writer(name)
        return self._reader(name)

    def _writer(self, name: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return getattr(self._inner, name)(*args, **kwargs)
            finally:
                self._dirty = True  # also after a refused write: it must have changed nothing

        return call

    def _reader(self, name: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            self.settle()
            return getattr(self._inner, name)(*args, **kwargs)

        return call

    @property
    def inner(self) -> FileSystemStore:
        """The store currently wrapped (a reopening state replaces it)."""
        return self._inner

    # ------------------------------------------------------------------ transitions

    def settle(self) -> None:
        """Apply the pending transition now (conftest's ``reopen`` fixture calls this too)."""
        if not self._dirty:
            return
        self._dirty = False
        self.transitions += 1
        if self.state == HOT_LARGE:
            self._reopen(pad=True, drop_saved=True)
        elif self.state == COMPACTED:
            newest = self._newest_hot_day()
            if newest is not None:
                self._compact(before=newest + timedelta(days=1))
        elif self.state == COMPACTED_LARGE:
            newest = self._newest_hot_day()
            if newest is not None:
                self._reopen(pad=True, drop_saved=True)
                self._compact(before=newest + timedelta(days=1))
        elif self.state == MIXED:
            newest = self._newest_hot_day()
            if not self._mixed_done and newest is not None:
                # Once a day is cold, stop: later writes stay hot, some of them late writes into
                # a compacted day, which is the other half of a mixed store.
                self._mixed_done = self._compact(before=newest)
        elif self.state == REOPENED_SAVED:
            self._inner.verify()  # parses every hot file, which saves each parse
            self._reopen(pad=False, drop_saved=False)
        elif self.state == REOPENED_FRESH:
            self._reopen(pad=False, drop_saved=True)

    def _compact(self, *, before: date) -> bool:
        report = self._inner.compact(before=before)
        assert report.skipped is None, report.skipped
        self.compacted.update((day.kind, day.day) for day in report.days)
        return bool(report.days)

    def reopen_now(self) -> None:
        """Close the wrapped store and open a new one on the workspace (keeps the pending state)."""
        self._inner.close()
        self._inner = FileSystemStore(self._workspace, **self._options)

    def _reopen(self, *, pad: bool, drop_saved: bool) -> None:
        self._inner.close()
        root = self._inner.store_root
        if pad:
            for folder in (self._inner.signals_dir, self._inner.emissions_dir):
                for path in sorted(folder.glob("*.jsonl")):
                    pad_to_bulk_size(path)
        if drop_saved:
            shutil.rmtree(root / ".index", ignore_errors=True)
            shutil.rmtree(root / ".cache", ignore_errors=True)
        self._inner = FileSystemStore(self._workspace, **self._options)

    def _newest_hot_day(self) -> date | None:
        days = [
            date.fromisoformat(path.stem)
            for folder in (self._inner.signals_dir, self._inner.emissions_dir)
            for path in folder.glob("*.jsonl")
            if path.stat().st_size > 0
        ]
        return max(days, default=None)


def pad_to_bulk_size(path: Path) -> None:
    """Grow a hot day file to ``BULK_THRESHOLD`` bytes without changing what it holds.

    The padding is whitespace after the JSON object of the file's last line: JSON allows it
    (RFC 8259 insignificant whitespace), 0.1.8's ``json.loads`` and this package's line parser
    accept it, and the file keeps one line per record. A blank padding line would be simpler (it
    could be appended), but it does not reach the bulk path: DuckDB yields no row for a blank line,
    so the row positions no longer match the line numbers and ``_parse.parse_chunk`` re-reads the
    whole chunk line by line (checked on commit 373ba1e: a 256 KiB file with a blank padding line
    calls the exact parser, one with trailing whitespace does not). Editing the last line is not an
    append, so the caller closes the store first, drops the saved parses and reopens.
    """
    assert BULK_THRESHOLD is not None
    data = path.read_bytes()
    if not data or len(data) >= BULK_THRESHOLD:
        return
    assert data.endswith(b"\n"), f"{path}: a torn last line; the states only pad files written by the API"
    path.write_bytes(data[:-1] + b" " * (BULK_THRESHOLD - len(data)) + b"\n")
    assert path.stat().st_size >= BULK_THRESHOLD, path
