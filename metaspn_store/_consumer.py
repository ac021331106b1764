"""Named consumers: positions in each day's append order, so that no late record is missed.

0.1.8's ``ReplayCheckpoint`` is a timestamp: a record stored after a worker's checkpoint with an
earlier timestamp is never replayed to it. A consumer instead remembers, per day, how many records
of that day it has delivered, counted in the day's **sequence**:

    the rows the cold table holds of the day, in ``seq`` order, then the records of this host's
    hot file of the day that the table does not claim, keeping the first copy of each id within
    the day (valid lines only, ``_rules``).

That is exactly the list of rows compaction writes for the day (``_compactor``: the table's rows,
then the hot lines, first copy per id within the day), in the same order. So "k records of day D
delivered" names the same records before, during and after this host compacts D, and a record
appended to any day later (a late record, a retried ingest) lands at the end of its day's
sequence and is delivered by the next poll.

Delivery: days oldest first, each from its position on. ``poll`` advances the position in memory;
``commit`` writes it atomically to ``store/consumers/<kind>/NAME.json``. A crash re-delivers at most
what was polled since the last commit. A name is held by one open consumer at a time (an flock
on ``NAME.lock``), so two processes never share positions.

Other hosts (a cold table shared by several workspaces): their records become visible when they
compact them into the table; they are appended to the day's rows and delivered by the next poll.
Compaction commits count, per host and day, the rows they added (``ColdTier.host_rows``), so a
consumer tells its own host's compactions (its hot records moving into the table, which changes
nothing in the sequence) from other hosts'. When another host's rows land on a day of which this
consumer has already delivered hot records, the day is delivered again from the end of the rows it
had seen: at least once, never missed (README "Consumers" states this limit).

An id stored on two different days (only lines written by other tools or two hosts can do that)
is delivered once per day it occurs on: each day is one sequence.
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from metaspn_store._codec import EnvelopeBuilder, int64_scalar, no_rows, schema_for
from metaspn_store._cold import ColdTier
from metaspn_store._hot import HotTier
from metaspn_store._ipc import replace_atomically
from metaspn_store._layout import Kind, Layout, named_file, validate_name
from metaspn_store.errors import ConsumerBusyError, StoreError

FORMAT = 1
# Rows looked at per step while looking for records that match a consumer's filter.
_STEP_ROWS = 4096
# Days whose sequence a consumer keeps in memory (ids and hot row numbers) between polls.
_VIEWS = 8


@dataclass
class _DayState:
    """A consumer's position in one day (what ``commit`` writes), plus what it saw of the day."""

    k: int = 0  # records of the day's sequence delivered
    n: int = 0  # rows the table held of the day when k was last reconciled
    a: int = 0  # of those, rows this host's compactions added (``ColdTier.host_rows``)
    ident: tuple[int, str] | None = None  # (inode, first-line digest) of the hot file seen
    total: int = 0  # length of the sequence at the last poll
    stat: tuple[int, int, int] | None = None  # (inode, size, mtime_ns) of the hot file at that poll
    version: str = ""  # the table version of that poll
    limit: int = -1  # start from a checkpoint: records below this position are checked against it

    def to_json(self) -> dict[str, Any]:
        return {"k": self.k, "n": self.n, "a": self.a, "ident": list(self.ident) if self.ident else None,
                "total": self.total, "stat": list(self.stat) if self.stat else None, "version": self.version,
                "limit": self.limit}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> _DayState:
        ident = data.get("ident")
        stat = data.get("stat")
        return cls(k=int(data["k"]), n=int(data["n"]), a=int(data["a"]),
                   ident=(int(ident[0]), str(ident[1])) if ident else None, total=int(data.get("total", 0)),
                   stat=(int(stat[0]), int(stat[1]), int(stat[2])) if stat else None,
                   version=str(data.get("version", "")), limit=int(data.get("limit", -1)))


@dataclass
class _DayView:
    """One day's sequence as this process sees it (memory only; rebuilt when the table or the hot
    file changes under it)."""

    key: tuple[Any, ...]  # (table rows, claimed hot lines, hot file identity)
    n: int
    table_rows: pa.Table | None = None  # the table's rows of the day, read when first needed
    hot: pa.Table | None = None  # the hot file's parsed rows (the hot tier's cached table)
    upto: int = 0  # hot rows examined
    first: list[int] = field(default_factory=list)  # hot row numbers in the sequence
    ids: set[str] | None = None  # ids of the sequence so far (table rows' ids loaded lazily)

    @property
    def total(self) -> int:
        return self.n + len(self.first)


@dataclass(frozen=True)
class ConsumerFilter:
    """Which delivered records a consumer returns (positions advance over the others too)."""

    sources: tuple[str, ...] | None = None
    payload_types: tuple[str, ...] | None = None
    emission_types: tuple[str, ...] | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: list(v) for k, v in (("sources", self.sources), ("payload_types", self.payload_types),
                                        ("emission_types", self.emission_types)) if v is not None}

    def mask(self, rows: pa.Table) -> pa.Array | None:
        """Rows that match, or None when every row does."""
        out = None
        for column, values in (("source", self.sources), ("payload_type", self.payload_types),
                               ("emission_type", self.emission_types)):
            if values is None:
                continue
            hit = pc.fill_null(pc.is_in(rows.column(column), value_set=pa.array(values, pa.string())), False)
            out = hit if out is None else pc.and_(out, hit)
        return out


def _now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def position_path(layout: Layout, kind: Kind, name: str) -> Path:
    return named_file(layout.consumer_dir(kind), name, "consumer", suffix=".json")


class Consumer:
    """A named reader of one kind that receives every stored record once, in each day's append
    order, and resumes where it committed. Made by :meth:`FileSystemStore.consumer`.

    ``poll(max_records)`` returns the next envelopes (an empty list when nothing is new);
    ``commit()`` makes the position of the last poll durable; ``close()`` releases the name.
    ``lag()`` counts the matching records not delivered yet.
    """

    def __init__(
        self,
        *,
        name: str,
        kind: Kind,
        layout: Layout,
        hot: HotTier,
        cold: ColdTier,
        flt: ConsumerFilter,
        start: Any = "beginning",
        read_only: bool = False,
    ) -> None:
        validate_name(name, "consumer")
        self.name = name
        self.kind = kind
        self.filter = flt
        self._layout = layout
        self._hot = hot
        self._cold = cold
        self._read_only = read_only
        self._path = position_path(layout, kind, name)
        self._views: dict[date, _DayView] = {}
        self._builder = EnvelopeBuilder(kind)
        self._lock_fd: int | None = None
        self._closed = False
        if not read_only:
            self._take_name()
        try:
            saved = self._load()
            if saved is None:
                if read_only:
                    raise StoreError(f"there is no consumer {name!r} of {kind.name} in {layout.store_root}")
                self._days: dict[date, _DayState] = {}
                self._checkpoint: tuple[datetime, frozenset[str]] | None = None
                self._meta: dict[str, Any] = {"created": _now(), "committed": None, "commits": 0, "delivered": 0}
                self._start(start)
                self.commit()  # the start position is durable before anything is delivered
            else:
                self._days, self._checkpoint, self._meta = saved
        except BaseException:
            self.close()
            raise
        self._committed_delivered = int(self._meta["delivered"])

    # ------------------------------------------------------------------ the name and its file

    def _take_name(self) -> None:
        folder = self._path.parent
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ConsumerBusyError(
                f"consumer {self.name!r} of {self.kind.name} is open elsewhere (another process, or another "
                "Consumer object in this one); close it first"
            ) from None
        self._lock_fd = fd

    def _load(self) -> tuple[dict[date, _DayState], tuple[datetime, frozenset[str]] | None, dict[str, Any]] | None:
        try:
            data = orjson.loads(self._path.read_bytes())
        except FileNotFoundError:
            return None
        except orjson.JSONDecodeError as exc:
            raise StoreError(f"{self._path}: the consumer's position file is not readable JSON ({exc})") from exc
        if data.get("format") != FORMAT or data.get("kind") != self.kind.name:
            raise StoreError(f"{self._path}: not a {self.kind.name} consumer position of format {FORMAT}")
        days = {date.fromisoformat(d): _DayState.from_json(s) for d, s in data["days"].items()}
        cp = data.get("checkpoint")
        checkpoint = None
        if cp:
            checkpoint = (datetime.fromisoformat(cp["timestamp"].replace("Z", "+00:00")), frozenset(cp["ids"]))
        if self._read_only:  # inspecting: count lag with the filter it was last committed with
            saved = data.get("filter") or {}
            self.filter = ConsumerFilter(*(tuple(saved[k]) if k in saved else None
                                           for k in ("sources", "payload_types", "emission_types")))
        meta = {k: data.get(k) for k in ("created", "committed", "commits", "delivered")}
        meta["commits"] = int(meta["commits"] or 0)
        meta["delivered"] = int(meta["delivered"] or 0)
        return days, checkpoint, meta

    def commit(self) -> None:
        """Make the position of the last poll durable (atomic replace; a crash keeps the previous
        commit, and the records polled since are delivered again)."""
        self._check_open()
        if self._read_only:
            raise StoreError(f"consumer {self.name!r} was opened only to be inspected; it cannot commit")
        self._meta["committed"] = _now()
        self._meta["commits"] += 1
        document = {
            "format": FORMAT,
            "name": self.name,
            "kind": self.kind.name,
            "filter": self.filter.to_json(),
            **self._meta,
            "checkpoint": None if self._checkpoint is None else {
                "timestamp": self._checkpoint[0].isoformat().replace("+00:00", "Z"), "ids": sorted(self._checkpoint[1])},
            "days": {d.isoformat(): s.to_json() for d, s in sorted(self._days.items())},
        }
        text = orjson.dumps(document, option=orjson.OPT_APPEND_NEWLINE)
        replace_atomically(self._path, lambda handle: handle.write(text))
        self._committed_delivered = int(self._meta["delivered"])

    def close(self) -> None:
        """Release the name (uncommitted deliveries are delivered again to the next holder)."""
        self._closed = True
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> Consumer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_lock_fd", None) is not None:
            self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"consumer {self.name!r} is closed")

    # ------------------------------------------------------------------ start positions

    def _start(self, start: Any) -> None:
        from metaspn_store.store import ReplayCheckpoint

        if isinstance(start, ReplayCheckpoint):
            if self.kind.name != "signals":
                raise ValueError("a ReplayCheckpoint start is for signal consumers (0.1.8 checkpoints are of signals)")
            self._checkpoint = (start.last_timestamp, frozenset(start.seen_ids_at_timestamp))
            # Records stored now are delivered only if the checkpoint had not reached them;
            # every record appended after this moment is delivered.
            for day, state in self._survey().items():
                state.limit = state.total
                self._days[day] = state
        elif start == "now":
            for day, state in self._survey().items():
                state.k = state.total
                self._days[day] = state
        elif start != "beginning":
            raise ValueError(f"start must be 'beginning', 'now' or a ReplayCheckpoint, got {start!r}")

    def _survey(self) -> dict[date, _DayState]:
        """The state of every day as it is now (positions 0)."""
        for _attempt in range(100):
            out: dict[date, _DayState] = {}
            stats = {day: self._day_stat(day) for day in self._hot.days()}
            with self._cold.reading() as version:
                counts = self._cold.day_counts()
                for day in sorted(set(counts) | set(stats)):
                    state = _DayState()
                    view = self._view(day, counts.get(day, 0), stats.get(day))
                    if view is None:
                        break  # compacted under us: look again
                    self._settle(state, day, view, str(version))
                    state.stat = stats.get(day)
                    out[day] = state
                else:
                    if self._cold.version() == version:  # as in ``_walk``: no commit while hot files were read
                        return out
        raise StoreError(f"consumer {self.name!r}: the store kept changing while its start position was taken")

    # ------------------------------------------------------------------ the sequences

    def _view(self, day: date, n: int, seen: tuple[int, int, int] | None) -> _DayView | None:
        """The day's sequence now (call inside ``cold.reading()``): table rows ``n``, then the
        first copies among the hot rows the table does not claim.

        ``seen`` is the hot file's stat taken *before* the table version was loaded. A file
        deleted or replaced (another inode) since is left for the next poll: None. An inode
        alone cannot prove that the file is still the one seen (a new file may reuse a deleted
        file's inode), so callers also check afterwards that the version is still the latest:
        compaction deletes a hot file only after committing its lines, so without a commit in
        between the file read is consistent with the version (its claimed lines are skipped)."""
        hot = self._hot.table(day)
        ident = self._hot.identity(day) if hot is not None else None
        if (None if ident is None else ident[0]) != (None if seen is None else seen[0]):
            if seen is not None:
                return None
        claimed = self._cold.claimed_hot_lines(day, ident) if ident is not None else 0
        key = (n, claimed, ident)
        view = self._views.get(day)
        if view is None or view.key != key or (hot is not None and hot.num_rows < view.upto):
            view = _DayView(key=key, n=n)
            if hot is not None and claimed:
                view.upto = int(pc.sum(pc.less(hot.column("seq"), int64_scalar(claimed))).as_py() or 0)
            self._views[day] = view
        view.hot = hot
        if hot is not None and hot.num_rows > view.upto:
            if view.ids is None:
                view.ids = set(self._table_rows(day, view).column(self.kind.id_field).to_pylist()) if n else set()
            ids = view.ids
            fresh = hot.column(self.kind.id_field).slice(view.upto).to_pylist()
            for offset, record_id in enumerate(fresh):
                if record_id not in ids:
                    ids.add(record_id)
                    view.first.append(view.upto + offset)
            view.upto = hot.num_rows
        return view

    def _table_rows(self, day: date, view: _DayView) -> pa.Table:
        if view.table_rows is None:
            rows = self._cold.day_rows(day)
            view.table_rows = rows.slice(0, view.n) if rows.num_rows >= view.n else rows
        return view.table_rows

    def _settle(self, state: _DayState, day: date, view: _DayView, version: str) -> None:
        """Bring a day's position from the sequence it was counted in to the one seen now.

        Within this host the sequence only grows at its end (compaction moves hot records to the
        table without changing their order), so the position stands. Rows another host added
        land after the table rows this consumer saw, i.e. before hot records it may have
        delivered: then the day restarts at those rows (at least once, never missed)."""
        n = view.n
        ident = view.key[2]
        a = self._cold.host_rows(day)
        if state.version:
            if n < state.n:
                state.k = 0  # the table lost rows of the day (not something this package does)
            elif state.k > state.n:
                foreign = (n - state.n) - (a - state.a)
                replaced = ident != state.ident and n == state.n and state.ident is not None
                if foreign > 0 or replaced:
                    state.k = state.n
        state.n, state.a, state.ident, state.version = n, a, ident, version
        state.total = view.total
        # The sequence never shrinks within this package; if a tool truncated a file, go on at its
        # new end rather than skip what is appended next.
        state.k = min(state.k, state.total)

    def _records(self, day: date, view: _DayView, lo: int, hi: int) -> pa.Table:
        """Records ``lo..hi-1`` of the day's sequence, in the kind's schema."""
        parts = []
        if lo < view.n:
            parts.append(self._table_rows(day, view).slice(lo, min(hi, view.n) - lo))
        if hi > view.n and view.hot is not None and view.first:
            # Runs of consecutive hot rows as zero-copy slices (a take would copy the day's chunks).
            rows = view.first[max(lo - view.n, 0): hi - view.n]
            start = prev = rows[0]
            for row in [*rows[1:], None]:
                if row is not None and row == prev + 1:
                    prev = row
                    continue
                parts.append(view.hot.slice(start, prev - start + 1))
                if row is not None:
                    start = prev = row
        schema = schema_for(self.kind)
        if not parts:
            return no_rows(schema)
        parts = [p if p.schema.equals(schema) else p.cast(schema) for p in parts]
        return pa.concat_tables(parts) if len(parts) > 1 else parts[0]

    def _matching(self, rows: pa.Table, state: _DayState, lo: int) -> pa.Array | None:
        mask = self.filter.mask(rows)
        if self._checkpoint is not None and lo < state.limit:
            when, seen = self._checkpoint
            ts = rows.column("timestamp")
            stamp = pa.scalar(when, ts.type)
            after = pc.or_(pc.greater(ts, stamp),
                           pc.and_(pc.equal(ts, stamp),
                                   pc.invert(pc.is_in(rows.column(self.kind.id_field),
                                                      value_set=pa.array(sorted(seen), pa.string())))))
            position = pa.array(range(lo, lo + rows.num_rows), pa.int64())
            keep = pc.or_(after, pc.greater_equal(position, state.limit))
            mask = keep if mask is None else pc.and_(mask, keep)
        return mask

    # ------------------------------------------------------------------ polling

    def _day_stat(self, day: date) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self._layout.hot_file(self.kind, day))
        except OSError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def _walk(self, budget: int | None) -> tuple[list[pa.Table], int]:
        """Deliver up to ``budget`` matching records (None: count them without delivering).
        Returns the delivered rows and how many matching records are pending.

        A walk that read a hot file is kept only if the table version it loaded is still the
        latest afterwards. Otherwise this host's compaction may have committed a hot file and
        deleted it, and a new file of that day may have been read against the older version
        (a new file can even get the deleted file's inode): the walk is undone and taken again."""
        for _attempt in range(100):
            before: dict[date, _DayState | None] = {}
            result, read_hot_at = self._walk_once(budget, before)
            if read_hot_at is None or self._cold.version() == read_hot_at:
                return result
            for day, state in before.items():
                if state is None:
                    self._days.pop(day, None)
                else:
                    self._days[day] = state
        raise StoreError(f"consumer {self.name!r}: the store kept changing while it was polled")

    def _walk_once(self, budget: int | None, before: dict[date, _DayState | None]
                   ) -> tuple[tuple[list[pa.Table], int], Any]:
        """One walk over the days (see ``_walk``). Each day's state is saved in ``before`` before
        it changes. Returns the result and the version key if a hot file was read (else None)."""
        out: list[pa.Table] = []
        taken = 0
        pending = 0
        read_hot_at = None
        # Hot files are looked at before the table version is loaded (see ``_view``).
        stats = {day: self._day_stat(day) for day in set(self._hot.days()) | set(self._days)}
        with self._cold.reading() as version_key:
            version = str(version_key)
            counts = self._cold.day_counts()
            for day in sorted(set(counts) | set(stats)):
                if budget is not None and taken >= budget:
                    break
                state = self._days.get(day)
                stat, n = stats.get(day), counts.get(day, 0)
                if state is not None and state.stat == stat and state.n == n and state.k >= state.total:
                    state.version = version
                    continue  # nothing new in this day since the last poll
                before[day] = None if state is None else replace(state)
                if state is None:
                    state = self._days[day] = _DayState()
                read_hot_at = version_key
                view = self._view(day, n, stat)
                if view is None:
                    continue  # compacted while we looked: next poll
                self._settle(state, day, view, version)
                state.stat = stat
                k = state.k
                if budget is None and not self.filter.to_json() and (self._checkpoint is None or k >= state.limit):
                    pending += view.total - k  # counting everything: no record needs to be read
                    continue
                while k < view.total and (budget is None or taken < budget):
                    hi = min(view.total, k + max(_STEP_ROWS, 4 * ((budget or 0) - taken)))
                    rows = self._records(day, view, k, hi)
                    mask = self._matching(rows, state, k)
                    if budget is None:
                        pending += rows.num_rows if mask is None else int(pc.sum(mask).as_py() or 0)
                        k = hi
                        continue
                    need = budget - taken
                    if mask is None:
                        got = rows.slice(0, need)
                        consumed = got.num_rows
                    else:
                        hits = pc.indices_nonzero(mask)
                        if len(hits) > need:
                            consumed = int(hits[need - 1].as_py()) + 1
                            rows, mask = rows.slice(0, consumed), mask.slice(0, consumed)
                        else:
                            consumed = rows.num_rows
                        got = rows.filter(mask)
                    if got.num_rows:
                        out.append(got)
                        taken += got.num_rows
                    k += consumed
                if budget is not None:
                    state.k = k
                if k >= view.total:
                    view.table_rows = None  # done with it for now: keep what makes the next poll incremental
                    view.hot = None
        while len(self._views) > _VIEWS:
            self._views.pop(next(iter(self._views)))
        return (out, pending), read_hot_at

    def poll(self, max_records: int = 1000) -> list[Any]:
        """The next (up to) ``max_records`` matching records: days oldest first, each day in its
        append order, from where the last poll stopped. Commit after processing them."""
        self._check_open()
        if self._read_only:
            raise StoreError(f"consumer {self.name!r} was opened only to be inspected; it cannot poll")
        if not isinstance(max_records, int) or isinstance(max_records, bool) or max_records < 1:
            raise ValueError(f"max_records must be a positive int, got {max_records!r}")
        tables, _ = self._walk(max_records)
        envelopes: list[Any] = []
        for table in tables:
            envelopes.extend(self._builder.build(table))
        self._meta["delivered"] += len(envelopes)
        return envelopes

    def lag(self) -> int:
        """Matching records stored that this consumer has not been given yet."""
        self._check_open()
        saved = {d: _DayState(**vars(s)) for d, s in self._days.items()}
        try:
            _, pending = self._walk(None)
        finally:
            self._days = saved
        return pending

    def info(self) -> dict[str, Any]:
        """Name, kind, filter, when it was created and last committed, records delivered so far
        (committed) and its lag."""
        return {"name": self.name, "kind": self.kind.name, "filter": self.filter.to_json(),
                "created": self._meta["created"], "committed": self._meta["committed"],
                "commits": self._meta["commits"], "delivered": self._committed_delivered, "lag": self.lag()}

    @property
    def uncommitted(self) -> int:
        """Records polled since the last commit (delivered again after a crash)."""
        return int(self._meta["delivered"]) - self._committed_delivered


def list_consumers(layout: Layout, kind: Kind) -> list[str]:
    folder = layout.consumer_dir(kind)
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.json") if not p.name.startswith("."))


__all__ = ["Consumer", "ConsumerFilter", "list_consumers", "position_path"]
