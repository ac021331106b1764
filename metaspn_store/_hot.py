"""Hot tier: daily JSONL partitions, locked appends, the id index and incremental reads.

Reads: each partition file is parsed once per process; later reads parse only the bytes
appended since (complete lines only: a torn last line is left for later and never returned).
Parsed partitions live in an LRU cache bounded by ``cache_bytes``.

Writes: appends of one kind are serialised by an OS lock (threads and processes). Under the lock
the writer first indexes every complete line other writers or tools appended since it last
looked, so the new-or-duplicate decision sees the whole store.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import threading
import time
import warnings
from array import array
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from metaspn_store import _index as saved_index
from metaspn_store import _ipc
from metaspn_store._codec import int64_scalar, no_rows, schema_for
from metaspn_store._index import IdIndex, digest
from metaspn_store._layout import Kind, Layout, day_of_hot_file
from metaspn_store._locks import ProcessLock
from metaspn_store._parse import BULK_THRESHOLD, BadLineReport, parse_chunk, parse_lines_exact
from metaspn_store._rules import TIER_HOT, code_for
from metaspn_store.errors import StoreIOError

# The id index is saved to ``store/.index/<kind>.arrow`` once it holds this many ids, and saved
# again when a later open had to read this many bytes appended since. A saved index is used only
# while everything it covers is unchanged and what it misses is at most RELOAD_MAX_BYTES.
SAVE_MIN_IDS = 20_000
RESAVE_BYTES = 8 << 20
RELOAD_MAX_BYTES = 64 << 20
# A reader that parsed at least this many bytes of one hot file saves the file's rows as Arrow
# (``store/.cache/<kind>/<day>.arrow``); the next process maps them instead of parsing again.
SAVE_PARSE_BYTES = 256 << 10
# Every hot file is checked for appends by tools that do not take the lock at least this often.
_SWEEP_NS = 1_000_000_000
_PARSE_FORMAT = 2


class BadLineWarning(UserWarning):
    """A JSONL line was skipped because it is not a readable record (file and line named)."""


@dataclass
class _Partition:
    path: Path
    day: date
    inode: int = -1
    offset: int = 0  # bytes consumed: always just after a newline
    lines: int = 0  # lines consumed (blank and bad ones included)
    tables: list[pa.Table] = field(default_factory=list)
    nbytes: int = 0
    bad: list[BadLineReport] = field(default_factory=list)
    head: str = ""
    mtime: int = 0


class HotTier:
    def __init__(
        self,
        layout: Layout,
        kind: Kind,
        *,
        cache_bytes: int,
        connection: Callable[[], duckdb.DuckDBPyConnection],
        durability: str,
        read_only: bool = False,
    ) -> None:
        self.read_only = read_only  # never write anything, saved parses included
        self.layout = layout
        self.kind = kind
        self.dir = layout.kind_dir(kind)
        self.cache_bytes = cache_bytes
        self._connection = connection
        self._durability = durability
        self._fsync = durability == "fsync"
        self._cache: OrderedDict[date, _Partition] = OrderedDict()
        self._lock = threading.RLock()
        self._warned: set[tuple[str, int]] = set()
        self.bytes_parsed = 0  # JSONL bytes this process parsed for reads (diagnostics)
        self.write_lock = ProcessLock(layout.lock_file(kind.name))
        # id index state
        self._index: IdIndex | None = None
        self.index_source = ""  # "saved" or "built": how this process got its index (diagnostics)
        self._saved_len = 0  # ids in the index when it was last loaded or saved
        self._index_cold: list[str] = []  # the cold files whose ids the index holds
        self._cold_version: object = None  # the cold tier's version when that was checked
        self._indexed: dict[date, _Seen] = {}  # day -> how far its hot file is indexed
        self._stats: dict[date, tuple[int, int]] = {}  # day -> (inode, size) seen under the lock
        self._fds: dict[date, tuple[int, int]] = {}  # day -> (append fd, inode)
        self._paths: dict[date, Path] = {}  # day -> its hot file's path (computed once)
        self._dir_mtime: int = -1
        self._last_scan: int = 0
        self._generation: int | None = None  # the lock file's append generation we last saw
        self._cold_generation: int | None = None  # the lock file's cold generation we last checked
        self._last_cold_check: int = 0  # when the cold tier's version was last asked
        self._last_sweep: int = 0  # when every hot file was last checked for appends
        self._known_files: dict[date, Path] = {}
        self._not_saved: frozenset[date] = frozenset()  # days being compacted (see ``compacting``)

    # ------------------------------------------------------------------ listing

    def days(self) -> dict[date, Path]:
        """Every hot partition file on disk, by day (regular files only; see :meth:`unusable`)."""
        out: dict[date, Path] = {}
        for day, entry, problem in self._entries():
            if problem is None:
                out[day] = Path(entry.path)
        return dict(sorted(out.items()))

    def unusable(self) -> list[tuple[Path, str]]:
        """Entries named like day files that are not readable regular files (a folder, a device,
        a symlink loop or a dangling link): reads, writes and compaction skip them."""
        return [(Path(entry.path), problem) for _, entry, problem in self._entries() if problem is not None]

    def _entries(self) -> list[tuple[date, os.DirEntry[str], str | None]]:
        try:
            entries = list(os.scandir(self.dir))
        except FileNotFoundError:
            return []
        out: list[tuple[date, os.DirEntry[str], str | None]] = []
        for entry in entries:
            day = day_of_hot_file(Path(entry.name))
            if day is None:
                continue
            try:
                problem = None if entry.is_file() else "not a regular file"
            except OSError as exc:
                problem = f"cannot be read: {exc.strerror or exc}"
            out.append((day, entry, problem))
        return out

    # ------------------------------------------------------------------ reads

    def table(self, day: date) -> pa.Table | None:
        """All complete records of the day's hot file, in append order (None if no file)."""
        path = self.layout.hot_file(self.kind, day)
        with self._lock:
            part = self._cache.get(day)
            try:
                st = os.stat(path)
            except FileNotFoundError:
                self._cache.pop(day, None)
                return None
            seen = None if part is None else _Seen(part.inode, part.head, part.offset, part.mtime)
            grew = part is None or not _same_file(seen, st, path)
            if grew:
                part = _Partition(path=path, day=day, inode=st.st_ino)
                self._load_saved_parse(part, st)
                self._cache[day] = part
            assert part is not None
            parsed = 0
            if st.st_size > part.offset:
                before = part.offset
                self._read_new_bytes(part, st.st_size)
                parsed = part.offset - before
            part.mtime = st.st_mtime_ns
            self._cache.move_to_end(day)
            tables = part.tables
            if len(tables) > 1:
                merged = pa.concat_tables(tables)
                part.tables = [merged]
                tables = part.tables
            if parsed >= SAVE_PARSE_BYTES and day not in self._not_saved:
                self._save_parse(part)
            if grew or parsed:
                self._evict()
            if not tables:
                return no_rows(schema_for(self.kind))
            return tables[0]

    def _read_new_bytes(self, part: _Partition, size: int) -> None:
        with open(part.path, "rb") as handle:
            handle.seek(part.offset)
            data = handle.read(size - part.offset)
        cut = data.rfind(b"\n") + 1
        if cut == 0:
            return  # only a torn (still being written) line so far
        data = data[:cut]
        if part.offset == 0:
            part.head = head_digest(data)
        con = self._connection()
        table, bad, n_lines = parse_chunk(
            self.kind,
            con,
            data,
            part.lines,
            str(part.path),
            whole_file=part.path if part.offset == 0 else None,
        )
        part.offset += cut
        part.lines += n_lines
        self.bytes_parsed += cut
        if table.num_rows:
            part.tables.append(table)
            part.nbytes += table.nbytes
        for report in bad:
            self._note_bad(part, report)

    def _note_bad(self, part: _Partition, report: BadLineReport) -> None:
        part.bad.append(report)
        key = (report.path, report.line)
        if key not in self._warned:
            self._warned.add(key)
            warnings.warn(
                f"{report.path}:{report.line}: skipped a line that is not a readable "
                f"{self.kind.label} ({report.reason})",
                BadLineWarning,
                stacklevel=5,
            )

    def _load_saved_parse(self, part: _Partition, st: os.stat_result) -> None:
        """Start ``part`` from the saved parse of its file if that still describes the file."""
        found = _ipc.read(self.layout.saved_parse(self.kind, part.day))
        if found is None:
            return
        table, meta = found
        offset = meta.get("offset")
        if (
            meta.get("format") != _PARSE_FORMAT
            or meta.get("inode") != st.st_ino
            or not isinstance(offset, int)
            or not 0 < offset <= st.st_size
            or not table.schema.equals(schema_for(self.kind))
            or first_line_digest(part.path) != meta.get("head")
            or tail_digest(part.path, offset) != meta.get("tail")
        ):
            return
        part.offset = offset
        part.lines = meta["lines"]
        part.head = meta["head"]
        part.tables = [table] if table.num_rows else []
        part.nbytes = table.nbytes
        for line, reason in meta["bad"]:
            self._note_bad(part, BadLineReport(str(part.path), line, reason))

    @contextmanager
    def compacting(self, days: Iterable[date]) -> Iterator[None]:
        """While a compaction of ``days`` runs, their parses are not saved: the compactor parses
        their files only to commit them to the table and delete them (saving the parses cost a
        tenth of a compaction of a week of hot files)."""
        with self._lock:
            self._not_saved = frozenset(days)
        try:
            yield
        finally:
            with self._lock:
                self._not_saved = frozenset()

    def _save_parse(self, part: _Partition) -> None:
        """Save the rows parsed so far; a reader that may not write there just goes on."""
        if self.read_only:
            return
        table = part.tables[0] if part.tables else no_rows(schema_for(self.kind))
        meta = {
            "format": _PARSE_FORMAT,
            "inode": part.inode,
            "head": part.head,
            "offset": part.offset,
            "tail": tail_digest(part.path, part.offset),
            "lines": part.lines,
            "bad": [[report.line, report.reason] for report in part.bad],
        }
        try:
            _ipc.write_atomic(self.layout.saved_parse(self.kind, part.day), table, meta)
        except OSError:
            pass

    def _evict(self) -> None:
        total = sum(p.nbytes for p in self._cache.values())
        while total > self.cache_bytes and len(self._cache) > 1:
            _, old = self._cache.popitem(last=False)
            total -= old.nbytes

    def identity(self, day: date) -> tuple[int, str] | None:
        """(inode, first-line digest) of the cached hot file of ``day`` (the file the rows came from)."""
        with self._lock:
            part = self._cache.get(day)
            return (part.inode, part.head) if part else None

    def bad_lines(self, day: date) -> list[BadLineReport]:
        self.table(day)
        with self._lock:
            part = self._cache.get(day)
            return list(part.bad) if part else []

    def forget(self, day: date) -> None:
        """Drop what we know of the day's hot file (it was compacted and deleted)."""
        with self._lock:
            self._cache.pop(day, None)
            try:
                self.layout.saved_parse(self.kind, day).unlink(missing_ok=True)
            except OSError:
                pass  # left by another user: harmless, it no longer matches any file

    # ------------------------------------------------------------------ id index (call under write_lock)

    def index(
        self,
        cold_ids: Callable[[list[str] | None], pa.Table | None],
        cold_files: Callable[[], list[str]],
        cold_version: Callable[[], object],
        *,
        ask_table: bool = False,
    ) -> IdIndex:
        """The id index, brought up to date with every complete line on disk.

        A fresh process starts from the saved index when it still describes the files on disk
        (same cold files, same hot files up to the offsets it covers) and reads only what was
        appended since; otherwise it builds the index from the files. When another process
        changed the cold tier (a compaction), the index is built again: lines it moved to Parquet
        may never have been seen here. The index is saved again when it has grown by a quarter
        (at least SAVE_MIN_IDS ids) or an open read RESAVE_BYTES.

        The table's version is asked when this workspace's compactions announced a change in
        the lock file (:meth:`cold_changing`), and otherwise at most once a second: that catches
        other hosts' commits to a shared table within a second (on S3 each ask is a request, and
        it was made at every write), which the identity rule across hosts allows (README "More
        than one machine": until then both hosts accept the id, and reads keep one copy).
        ``ask_table`` asks it now: compaction flags the ids a day shares with other days from
        the index, so it must know every commit, other hosts' too.
        """
        now = time.time_ns()
        generation, cold_generation = self.write_lock.generations()
        fresh = self._index is None
        cold_moved = cold_generation != self._cold_generation
        if fresh or cold_moved or ask_table or now - self._last_cold_check > _SWEEP_NS:
            self._last_cold_check = now
            version = cold_version()
            if fresh or version != self._cold_version:
                cold = self._relative(cold_files())
                if fresh and self._load_saved_index(cold):
                    self.index_source = "saved"
                elif not fresh and not cold_moved and cold != self._index_cold:
                    # No compaction of this workspace: another host committed to a shared table.
                    known = set(self._index_cold)
                    self._add_cold_files([p for p in cold if p not in known], cold_ids)
                elif fresh or cold != self._index_cold:
                    self._build_index(cold_ids)
                    self.index_source = "built"
                    self._saved_len = 0
                    fresh = False
                self._index_cold = cold
                self._cold_version = version
            self._cold_generation = cold_generation
        if cold_moved or generation != self._generation or now - self._last_sweep > _SWEEP_NS:
            read = self._refresh_index(now, force=cold_moved)
        else:
            read = 0  # nobody appended since our last look, and no sweep is due: no file to check
        assert self._index is not None
        if (fresh and read >= RESAVE_BYTES) or self._grown():
            self._save_index()
        return self._index

    def _add_cold_files(self, added: list[str], cold_ids: Callable[[list[str] | None], pa.Table | None]) -> None:
        """Index the ids of table files another host added (instead of building the index
        again: all the table's ids, from object storage). A commit replaces a day's files with
        files holding the same rows and more, so the files it removed need nothing. An id whose
        first record is indexed on the same day is that record (moved, or this host's own copy:
        one per day is kept) and keeps the smaller code; on another day it is repeated."""
        assert self._index is not None
        table = cold_ids(added) if added else None
        if table is None or not table.num_rows:
            return
        index = self._index
        for hi, lo, code in zip(table.column("hi").to_pylist(), table.column("lo").to_pylist(),
                                table.column("code").to_pylist(), strict=True):
            key = (hi, lo)
            existing = index.get(key)
            if existing is not None and existing // 2 != code // 2:  # codes: day ordinal * 2 + tier
                index.add(key, code)
            else:
                index.relocate(key, code)

    def cold_changing(self) -> None:
        """A compaction in this process is about to change the cold tier (call under write_lock,
        before anything is committed): every other writer asks the table again at its next write,
        and so does this one (see :meth:`cold_changed_here`). Announced first, so a compactor
        killed after its commit has announced it already."""
        self.write_lock.bump_cold_generation()
        self._cold_generation = None

    def recheck_cold(self) -> None:
        """Ask the cold tier's version at the next :meth:`index` (a compaction here did not keep
        the index in step with it)."""
        self._cold_generation = None

    def cold_changed_here(self, cold_files: list[str], cold_version: object) -> None:
        """This process's compactor committed a day (call under write_lock): the index still
        holds the same ids (they moved from a hot file to Parquet), so only the description of
        the cold tier it reflects changes, and no rebuild is needed."""
        if self._index is not None:
            self._index_cold = self._relative(cold_files)
            self._cold_version = cold_version
            self._cold_generation = self.write_lock.cold_generation()
        # The compaction removed hot files: list the folder and check every file at the next
        # refresh (cached descriptors and sizes of removed files are dropped there).
        self._generation = None

    def persist_index(self) -> None:
        """Save the index if it grew since it was loaded or saved (call under write_lock)."""
        if self._index is not None and len(self._index) > self._saved_len:
            self._refresh_index()
            if len(self._index) >= SAVE_MIN_IDS:
                self._save_index()

    def _grown(self) -> bool:
        assert self._index is not None
        n = len(self._index)
        return n >= SAVE_MIN_IDS and n - self._saved_len >= max(SAVE_MIN_IDS, self._saved_len // 4)

    def _relative(self, paths: list[str]) -> list[str]:
        return [self.relative_path(p) for p in paths]

    def relative_path(self, path: str) -> str:
        """A cold file's path as the id index keeps it (relative to the store; URIs, of object
        storage, as they are: relpath would make them depend on the cwd)."""
        return path if "://" in path else os.path.relpath(path, self.layout.store_root)

    def _load_saved_index(self, cold: list[str]) -> bool:
        """Adopt the saved index if it covers exactly these cold files and a prefix of each hot file."""
        path = self.layout.saved_index(self.kind)
        if not path.exists():
            return False
        loaded = saved_index.load(path)
        if loaded is None:
            return False
        index, meta = loaded
        covered = meta.get("hot")
        if meta.get("kind") != self.kind.name or meta.get("cold") != cold or not isinstance(covered, dict):
            return False
        files = self.days()
        dir_mtime = _mtime(self.dir)
        indexed: dict[date, _Seen] = {}
        missing = 0
        for day, file in files.items():
            try:
                st = os.stat(file)
            except FileNotFoundError:
                continue
            entry = covered.get(day.isoformat())
            if entry is None:
                missing += st.st_size
                continue
            if not isinstance(entry, list) or len(entry) != 4:
                return False
            inode, head, offset, tail = entry
            if st.st_ino != inode or st.st_size < offset or (offset and first_line_digest(file) != head):
                return False
            if tail_digest(file, offset) != tail:
                return False  # the covered bytes changed (same inode, same first line)
            indexed[day] = _Seen(inode, head, offset, st.st_mtime_ns)
            missing += st.st_size - offset
        if len(indexed) != len(covered) or missing > RELOAD_MAX_BYTES:
            return False  # a covered file is gone (compacted or deleted), or a rebuild is cheaper
        self._index = index
        self._indexed = indexed
        self._known_files = files
        self._dir_mtime = dir_mtime
        self._saved_len = len(index)
        return True

    def _save_index(self) -> None:
        """Persist the index with what it covers (call right after a build or a refresh)."""
        assert self._index is not None
        covers = {
            "kind": self.kind.name,
            "cold": self._index_cold,
            "hot": {
                day.isoformat(): [s.inode, s.head, s.offset, tail_digest(self.layout.hot_file(self.kind, day), s.offset)]
                for day, s in sorted(self._indexed.items())
            },
        }
        try:
            saved_index.save(self.layout.saved_index(self.kind), self._index, covers)
            self._saved_len = len(self._index)
        except OSError as exc:  # a read-only or full disk must not stop writes: it is only a cache
            warnings.warn(f"could not save the id index ({exc}); the next open rebuilds it", stacklevel=3)

    def _build_index(self, cold_ids: Callable[[list[str] | None], pa.Table | None]) -> None:
        """Build the index from the cold ids and the valid records of every hot file.

        Hot files are read through :meth:`table` (the same parse every read uses, cached and
        saved), so a line claims an id only if it is a valid record (``_rules``)."""
        files = self.days()
        self._dir_mtime = _mtime(self.dir)
        self._known_files = files
        stats: dict[date, _Seen] = {}
        parts: list[pa.Table] = []
        cold = cold_ids(None)
        if cold is not None and cold.num_rows:
            parts.append(cold)
        ids: list[pa.ChunkedArray] = []
        codes: list[pa.Array] = []
        for day in files:
            table = self.table(day)
            with self._lock:
                part = self._cache.get(day)
                if table is None or part is None:
                    continue
                stats[day] = _Seen(part.inode, part.head, part.offset, part.mtime)
            if table.num_rows:
                ids.append(table.column(self.kind.id_field))
                n = table.num_rows
                codes.append(pa.Array.from_buffers(pa.uint32(), n, [None, pa.py_buffer(array("I", [code_for(day, TIER_HOT)]) * n)]))
        # No connection for an empty store (opening one costs about 20 ms of a first write).
        con = self._connection() if ids or parts else None
        if ids:
            assert con is not None
            parts.append(_digests(con, pa.chunked_array([c for col in ids for c in col.chunks], pa.string()),
                                  pa.chunked_array(codes, pa.uint32())))
        index = IdIndex()
        if parts:
            assert con is not None
            combined = pa.concat_tables([p.select(["hi", "lo", "code"]).cast(_IDS_SCHEMA) for p in parts])
            # First write wins (_rules): the smallest code is the earliest (day, tier).
            con.register("id_digests", combined)
            try:
                rel = con.sql(
                    "SELECT hi, lo, min(code) AS code, count(*) AS n FROM id_digests GROUP BY hi, lo ORDER BY hi, lo"
                )
                table = rel.to_arrow_table()
                # (an Arrow scalar: a Python 1 would make pyarrow import pandas, about 1 s)
                repeated = table.filter(pc.greater(table.column("n"), int64_scalar(1))).select(["hi", "lo"])
                index.load_sorted(table.select(["hi", "lo", "code"]), repeated)
            finally:
                con.unregister("id_digests")
        self._index = index
        self._indexed = stats

    def _refresh_index(self, now: int | None = None, *, force: bool = False) -> int:
        """Index complete lines appended by anyone since we last looked (call under write_lock);
        return the number of bytes read.

        Writers of this package count their appends in the lock file (a generation and the last
        day written): when exactly one append happened since our last look, only that day's file
        is checked; when none did, no file is (no system call at all). The folder is listed and
        every file checked when more happened, when ``force`` (the cold tier changed: a
        compaction removed hot files), and at least once a second, so files and lines written
        by tools that do not take the lock are indexed within a second.
        """
        assert self._index is not None
        if now is None:
            now = time.time_ns()
        generation, last_day = self.write_lock.state()
        if (
            force
            or self._generation is None
            or generation not in (self._generation, self._generation + 1)
            or now - self._last_sweep > _SWEEP_NS
        ):
            self._rescan_listing(now, force=force or self._generation is None)
            days = list(self._known_files)
            self._last_sweep = now
            self._stats = {}
        elif generation == self._generation + 1:
            changed = date.fromordinal(last_day) if last_day > 0 else None
            if changed is not None and changed not in self._known_files:
                self._rescan_listing(now, force=True)  # another writer created the day's file
            days = [changed] if changed in self._known_files else []
        else:
            days = []
        self._generation = generation
        read = 0
        for day in days:
            read += self._index_file(day, self._known_files[day])
        return read

    def _rescan_listing(self, now: int, *, force: bool = False) -> bool:
        """Refresh the list of hot files when the folder changed (or ``force``); True if it was
        rescanned."""
        mtime = _mtime(self.dir)
        # Rescan when the folder changed, and also while its mtime is recent: on filesystems with
        # coarse timestamps a file created in the same clock tick leaves the mtime unchanged.
        if (
            force
            or mtime != self._dir_mtime
            or (now - mtime < 2_000_000_000 and now - self._last_scan > 20_000_000)
        ):
            self._known_files = self.days()
            self._dir_mtime = mtime
            self._last_scan = now
            for gone in [day for day in self._indexed if day not in self._known_files]:
                del self._indexed[gone]  # compacted or deleted: nothing left to follow
            return True
        return False

    def _index_file(self, day: date, path: Path) -> int:
        """Index the complete lines of one hot file past what is indexed; bytes read."""
        assert self._index is not None
        try:
            st = os.stat(path)
        except FileNotFoundError:
            self._indexed.pop(day, None)
            self._stats.pop(day, None)
            return 0
        self._stats[day] = (st.st_ino, st.st_size)
        state = self._indexed.get(day)
        if state is None or not _same_file(state, st, path):
            state = _Seen(st.st_ino, "", 0, st.st_mtime_ns)
            self._indexed[day] = state
        state.mtime = st.st_mtime_ns
        if st.st_size <= state.offset:
            return 0
        with open(path, "rb") as handle:
            handle.seek(state.offset)
            data = handle.read(st.st_size - state.offset)
        cut = data.rfind(b"\n") + 1
        if cut:
            if state.offset == 0:
                state.head = head_digest(data)
            code = code_for(day, TIER_HOT)
            for record_id in self._valid_ids(data[:cut], str(path)):
                self._index.add(digest(record_id), code)
        state.offset += cut
        return len(data)

    def _valid_ids(self, data: bytes, path: str) -> list[str]:
        """Ids of the valid records among complete lines someone else appended (``_rules``)."""
        if len(data) < BULK_THRESHOLD:
            # What parse_chunk's line-by-line path decides, without its Arrow table: building
            # one from Python lists makes pyarrow import pandas when it is installed (0.4 s of
            # the first write of a process that finds a few lines appended since the saved index).
            rows, _bad = parse_lines_exact(self.kind, data.split(b"\n")[:-1], 0, path)
            id_field = self.kind.id_field
            return [row[id_field] for row in rows]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", BadLineWarning)
            table, _bad, _n = parse_chunk(self.kind, self._connection(), data, 0, path)
        return table.column(self.kind.id_field).to_pylist()

    # ------------------------------------------------------------------ appends (call under write_lock)

    def _append_fd(self, day: date, path: Path) -> tuple[int, int, int, bool]:
        """(fd, inode, size, created) of the day file, reusing an open descriptor while the file
        is the same; ``created`` is true when this call created the file."""
        known = self._stats.get(day)
        cached = self._fds.get(day)
        if cached is not None and known is not None and cached[1] == known[0]:
            # The real length (a tool without our lock may have appended since we looked), and
            # whether the file is still there: a file removed since (by a compaction we have not
            # heard of yet, or by hand) is opened again rather than written into the void.
            st = os.fstat(cached[0])
            if st.st_nlink:
                return cached[0], known[0], st.st_size, False
        if cached is not None:
            os.close(cached[0])
            del self._fds[day]
        flags = os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC
        created = True
        try:
            fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            created = False
            fd = os.open(path, flags)
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        if len(self._fds) >= 32:
            old_day, (old_fd, _) = next(iter(self._fds.items()))
            os.close(old_fd)
            del self._fds[old_day]
        self._fds[day] = (fd, st.st_ino)
        return fd, st.st_ino, st.st_size, created

    def close(self) -> None:
        """Close cached append descriptors (also done when the tier is garbage collected)."""
        for fd, _ in self._fds.values():
            try:
                os.close(fd)
            except OSError:
                pass
        self._fds.clear()

    def __del__(self) -> None:
        if hasattr(self, "_fds"):  # __init__ may have failed before it existed
            self.close()

    def append_all(self, batches: dict[date, tuple[bytes, list[tuple[int, int]]]]) -> dict[date, Path]:
        """Append each day's complete lines to its file, all days or none (call under write_lock).

        ``batches`` maps a day to its lines (one bytes object) and the digests of their ids, each
        checked absent from the index. If the OS refuses any write or fsync (disk full, quota,
        file too large, permission), every file this call touched is cut back to its previous
        length (a file it created is removed), the index is left as it was, and
        :class:`StoreIOError` names the file and the cause.
        """
        done: list[_Appended] = []
        try:
            for day, (payload, _keys) in batches.items():
                done.append(self._write_day(day, payload))
        except OSError as exc:
            self._undo(done, exc)
            raise self._refused(exc, day) from exc
        for appended in done:
            self._indexed_append(appended, batches[appended.day][1])
        if done:
            self._announce(len(done), done[-1].day)
        return {appended.day: appended.path for appended in done}

    def append_one(self, day: date, line: bytes, key: tuple[int, int]) -> Path:
        """:meth:`append_all` of one record (a single write), without the batch's containers."""
        try:
            appended = self._write_day(day, line)  # undoes its own append if refused
        except OSError as exc:
            raise self._refused(exc, day) from exc
        self._indexed_append(appended, [key])
        self._announce(1, day)
        return appended.path

    def _refused(self, exc: OSError, day: date) -> StoreIOError:
        path = getattr(exc, "filename", None) or self.layout.hot_file(self.kind, day)
        return StoreIOError(
            exc.errno or errno.EIO,
            f"could not append to {path}: {_cause(exc)}; nothing of this write was stored",
        )

    def _announce(self, appends: int, last_day: date) -> None:
        """Count our appends in the lock file. One append: others check only that day; several:
        they check every file."""
        generation = self.write_lock.state()[0] + appends
        self.write_lock.set_state(generation, last_day.toordinal())
        if self._generation is not None and generation == self._generation + appends:
            self._generation = generation  # nobody else appended since our last look

    def _write_day(self, day: date, payload: bytes) -> _Appended:
        path = self._paths.get(day)
        if path is None:
            path = self._paths[day] = self.layout.hot_file(self.kind, day)
        fd, inode, size, created = self._append_fd(day, path)
        appended = _Appended(day, path, inode, size, created, b"")
        indexed = self._indexed.get(day)
        in_step = indexed is not None and indexed.inode == inode and indexed.offset == size
        prefix = b""
        if size > 0 and not in_step:
            # Our index does not end exactly at the end of the file: look at the last byte. A
            # writer that died mid-line left no newline; start ours on a fresh line.
            with open(path, "rb") as handle:
                handle.seek(size - 1)
                if handle.read(1) != b"\n":
                    prefix = b"\n"
        buf = prefix + payload if prefix else payload
        appended.buf = buf
        try:
            written = os.write(fd, buf)
            if written < len(buf):
                view = memoryview(buf)
                while written < len(buf):
                    written += os.write(fd, view[written:])
            if self._fsync:
                os.fsync(fd)
            st = os.fstat(fd)  # now: a later day of the batch may close this descriptor
        except OSError as exc:
            self._undo([appended], exc)
            raise
        appended.size_after, appended.mtime_after = st.st_size, st.st_mtime_ns
        self._stats[day] = (inode, size + len(buf))
        return appended

    def _undo(self, done: list[_Appended], exc: OSError) -> None:
        """Cut every file back to its length before this write; remove files it created."""
        for appended in done:
            self._stats.pop(appended.day, None)
            cached = self._fds.pop(appended.day, None)
            try:
                if appended.created:
                    os.unlink(appended.path)
                else:
                    os.truncate(appended.path, appended.size)
            except OSError:
                pass  # the next append starts on a fresh line; the index never saw these lines
            if cached is not None:
                try:
                    os.close(cached[0])
                except OSError:
                    pass

    def _indexed_append(self, appended: _Appended, keys: list[tuple[int, int]]) -> None:
        """Record lines this process appended in the index (they are valid by construction)."""
        day, inode, size, buf = appended.day, appended.inode, appended.size, appended.buf
        if self._index is None:
            return
        new_size = size + len(buf)
        indexed = self._indexed.get(day)
        in_step = indexed is not None and indexed.inode == inode and indexed.offset == size
        # The writer checked every key against the index (and that they are distinct).
        if len(keys) == 1:
            self._index.add_new(keys[0], code_for(day, TIER_HOT))
        else:
            self._index.add_new_many(keys, code_for(day, TIER_HOT))
        if in_step and indexed is not None:
            if appended.size_after == new_size:
                indexed.offset = new_size
                indexed.mtime = appended.mtime_after
            # else a tool without our lock appended in between: the next refresh reads from
            # the old offset (its lines and ours), so no foreign id is skipped.
        elif size == 0:
            self._indexed[day] = _Seen(inode, head_digest(buf), new_size, appended.mtime_after)
        if day not in self._known_files:
            self._known_files[day] = appended.path
            self._known_files = dict(sorted(self._known_files.items()))
            self._dir_mtime = _mtime(self.dir)


class _Appended:
    """One day's append of a write call: what to undo if a later one fails."""

    __slots__ = ("day", "path", "inode", "size", "created", "buf", "size_after", "mtime_after")

    def __init__(self, day: date, path: Path, inode: int, size: int, created: bool, buf: bytes) -> None:
        self.day = day
        self.path = path
        self.inode = inode
        self.size = size  # the file's length before
        self.created = created  # this call created the file
        self.buf = buf
        self.size_after = -1  # fstat right after the write
        self.mtime_after = 0


def _cause(exc: OSError) -> str:
    names = {
        errno.ENOSPC: "the disk is full (ENOSPC)",
        errno.EDQUOT: "the disk quota is exhausted (EDQUOT)",
        errno.EFBIG: "the file would exceed the size limit (EFBIG)",
        errno.EACCES: "permission denied (EACCES)",
        errno.EPERM: "operation not permitted (EPERM)",
        errno.EROFS: "the filesystem is read-only (EROFS)",
        errno.EINVAL: "not a regular file",
    }
    return names.get(exc.errno or 0, exc.strerror or str(exc))

@dataclass
class _Seen:
    """How far we have read one hot file, and how to tell it is still the same file.

    A deleted file's inode number is soon reused (compaction deletes hot files; a late write
    creates a new one), so identity is the inode plus a digest of the first line; the first line
    is only re-read when the file's mtime moved since we last looked.
    """

    inode: int
    head: str
    offset: int
    mtime: int


def head_digest(data: bytes) -> str:
    """Digest of a hot file's first line: with the inode, tells a file from a later one that
    reuses the inode number of a deleted file."""
    return hashlib.md5(data[: data.find(b"\n") + 1], usedforsecurity=False).hexdigest()


def _digests(con: duckdb.DuckDBPyConnection, ids: pa.ChunkedArray, codes: pa.ChunkedArray) -> pa.Table:
    """(hi, lo, code) of each id: the 128-bit digests the index keeps (``_index.digest``); one
    query for every hot file."""
    con.register("ids_to_digest", pa.table({"id": ids, "code": codes}))
    try:
        return con.sql(
            "SELECT md5_number_upper(id) AS hi, md5_number_lower(id) AS lo, code FROM ids_to_digest"
        ).to_arrow_table()
    finally:
        con.unregister("ids_to_digest")


_TAIL_BYTES = 4096


def tail_digest(path: Path, offset: int) -> str:
    """Digest of the last 4 KiB before ``offset``: with the inode and the first line, what a saved
    file checks to tell that the bytes it covers are still the same ("" if unreadable)."""
    try:
        with open(path, "rb") as handle:
            start = max(0, offset - _TAIL_BYTES)
            handle.seek(start)
            data = handle.read(offset - start)
    except OSError:
        return ""
    if len(data) != offset - start:
        return ""
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def first_line_digest(path: Path) -> str:
    """head_digest of the file's first complete line ("" while there is none)."""
    with open(path, "rb") as handle:
        data = b""
        while True:
            chunk = handle.read(65536)
            if not chunk:
                return head_digest(b"")
            data += chunk
            if b"\n" in chunk:
                return head_digest(data)


def _same_file(seen: _Seen | None, st: os.stat_result, path: Path) -> bool:
    """Is ``path`` (with stat ``st``) still the file ``seen`` describes?"""
    if seen is None or seen.inode != st.st_ino or st.st_size < seen.offset:
        return False
    if st.st_mtime_ns == seen.mtime or seen.offset == 0:
        return True
    return first_line_digest(path) == seen.head


_IDS_SCHEMA = pa.schema([("hi", pa.uint64()), ("lo", pa.uint64()), ("code", pa.uint32())])


def _mtime(path: Path) -> int:
    try:
        return os.stat(path).st_mtime_ns
    except FileNotFoundError:
        return -1
