"""Compact id index: which partition holds the first record of each id.

Ids are kept as 128-bit MD5 digests in two sorted ``array('Q')`` columns plus a partition code,
20 bytes per id (1.5M ids: about 30 MB, against 313 MB for a dict of id -> path). A collision
of two different ids would need equal 128-bit digests; we treat the digest as the id.
Ids added after the last build sit in a small dict until the next merge.

:func:`save` / :func:`load` persist an index as an Arrow IPC file with a JSON description of what
it covers (the caller decides whether that is still the store on disk).
"""

from __future__ import annotations

import hashlib
import struct
from array import array
from bisect import bisect_left
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from metaspn_store import _ipc

_MERGE_AT = 200_000
# Batch lookups first narrow the search to the ids sharing the top bits of ``hi`` (a table of
# 4,097 start positions, built on the first large batch after each load or merge: about 4 ms).
_BUCKET_BITS = 12
_BUCKET_SHIFT = 64 - _BUCKET_BITS
_BUCKETS_FROM_KEYS = 256


_md5 = hashlib.md5
_halves = struct.Struct("<QQ").unpack  # the digest's two 8-byte halves, each little-endian


def digest(record_id: str) -> tuple[int, int]:
    """(upper, lower) 64-bit halves, equal to DuckDB's md5_number_upper / md5_number_lower."""
    hi, lo = _halves(_md5(record_id.encode("utf-8"), usedforsecurity=False).digest())
    return hi, lo


def digest_many(record_ids: list[str]) -> list[tuple[int, int]]:
    """:func:`digest` of each id, in one comprehension (no call per id)."""
    halves, md5 = _halves, _md5
    return [halves(md5(record_id.encode("utf-8"), usedforsecurity=False).digest()) for record_id in record_ids]


def _u64(column: pa.ChunkedArray | pa.Array, typecode: str = "Q") -> array:
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    out = array(typecode)
    if len(arr) == 0:
        return out
    width = out.itemsize
    buf = arr.buffers()[1]
    out.frombytes(memoryview(buf)[arr.offset * width : (arr.offset + len(arr)) * width])
    return out


class IdIndex:
    def __init__(self) -> None:
        self._hi = array("Q")
        self._lo = array("Q")
        self._code = array("I")
        self._recent: dict[tuple[int, int], int] = {}
        self._starts: array | None = None  # bucket -> first position (see _BUCKET_BITS)
        # Ids seen in more than one line anywhere: when empty, the store holds no duplicates and
        # the compactor can skip its per-id first-write check.
        self.repeated: set[tuple[int, int]] = set()

    def __len__(self) -> int:
        return len(self._hi) + len(self._recent)

    def load_sorted(self, table: pa.Table, repeated: pa.Table | None = None) -> None:
        """Replace the content with a table of (hi UBIGINT, lo UBIGINT, code UINTEGER) sorted by hi, lo;
        ``repeated`` lists (hi, lo) of ids that occurred more than once."""
        self._hi = _u64(table.column("hi").cast(pa.uint64()))
        self._lo = _u64(table.column("lo").cast(pa.uint64()))
        self._code = _u64(table.column("code").cast(pa.uint32()), "I")
        self._recent = {}
        self._starts = None
        self.repeated = set()
        if repeated is not None and repeated.num_rows:
            self.repeated = set(
                zip(repeated.column("hi").to_pylist(), repeated.column("lo").to_pylist(), strict=True)
            )

    def get(self, key: tuple[int, int]) -> int | None:
        code = self._recent.get(key)
        if code is not None:
            return code
        position = self.position(key)
        return None if position is None else self._code[position]

    def position(self, key: tuple[int, int]) -> int | None:
        """Where ``key`` sits in the sorted arrays (None if it is not there)."""
        hi, lo = key
        i = bisect_left(self._hi, hi)
        n = len(self._hi)
        while i < n and self._hi[i] == hi:
            if self._lo[i] == lo:
                return i
            i += 1
        return None

    def add(self, key: tuple[int, int], code: int) -> None:
        """Record an id's partition; an id already present keeps the smaller code (the earliest
        partition: an earlier day, cold before hot on the same day), as a build from the files
        does, and is counted as repeated."""
        if self._keep_smaller(key, code):
            self.repeated.add(key)

    def relocate(self, key: tuple[int, int], code: int) -> None:
        """Record that the first record of an id indexed in a partition of the same day now
        (also) lives in the partition ``code`` (its hot line moved into the table): the smaller
        code is kept, and the id is not counted as repeated (it is one record)."""
        self._keep_smaller(key, code)

    def _keep_smaller(self, key: tuple[int, int], code: int) -> bool:
        """Record ``code`` for ``key``, or keep the smaller of it and the code already there;
        returns whether the id was there."""
        existing = self.get(key)
        if existing is None:
            self.add_new(key, code)
            return False
        if code < existing:  # an earlier partition (lines are not read in day order)
            if key in self._recent:
                self._recent[key] = code
            else:
                position = self.position(key)
                assert position is not None
                self._code[position] = code
        return True

    def compact(self) -> None:
        """Fold ids added since the last build into the sorted arrays."""
        if self._recent:
            self._merge()

    def add_new(self, key: tuple[int, int], code: int) -> None:
        """Record an id the caller has just checked is not in the index (no second lookup)."""
        self._recent[key] = code
        if len(self._recent) >= _MERGE_AT:
            self._merge()

    def add_new_many(self, keys: list[tuple[int, int]], code: int) -> None:
        """Record distinct ids of one partition the caller has just checked are not in the index."""
        self._recent.update(dict.fromkeys(keys, code))
        if len(self._recent) >= _MERGE_AT:
            self._merge()

    def known(self, keys: list[tuple[int, int]]) -> list[int]:
        """Positions in ``keys`` of the ids the index holds (one pass; most batches hold none)."""
        recent = self._recent
        out = [i for i, key in enumerate(keys) if key in recent] if recent else []
        his = self._hi
        if his:
            los = self._lo
            n = len(his)
            if len(keys) >= _BUCKETS_FROM_KEYS:
                starts = self._buckets()
                shift = _BUCKET_SHIFT
                for i, (hi, lo) in enumerate(keys):
                    bucket = hi >> shift
                    j = bisect_left(his, hi, starts[bucket], starts[bucket + 1])
                    while j < n and his[j] == hi:
                        if los[j] == lo:
                            out.append(i)
                            break
                        j += 1
            else:
                for i, (hi, lo) in enumerate(keys):
                    j = bisect_left(his, hi)
                    while j < n and his[j] == hi:
                        if los[j] == lo:
                            out.append(i)
                            break
                        j += 1
            out.sort()
        return out

    def _buckets(self) -> array:
        """First position of each bucket of ``hi`` values, and the length at the end."""
        if self._starts is None:
            his = self._hi
            self._starts = array(
                "I", [bisect_left(his, b << _BUCKET_SHIFT) for b in range(1 << _BUCKET_BITS)] + [len(his)]
            )
        return self._starts

    def _merge(self) -> None:
        """Fold the recent ids into the sorted arrays (sorted by Arrow, not as Python tuples)."""
        # Built from raw buffers: converting Python lists (pa.array) makes pyarrow import pandas
        # when it is installed (0.2 s inside a write).
        his, los, codes = array("Q"), array("Q"), array("I")
        for (hi, lo), code in self._recent.items():
            his.append(hi)
            los.append(lo)
            codes.append(code)
        table = pa.concat_tables(
            [
                pa.table(
                    {
                        "hi": _as_arrow(self._hi, pa.uint64()),
                        "lo": _as_arrow(self._lo, pa.uint64()),
                        "code": _as_arrow(self._code, pa.uint32()),
                    }
                ),
                pa.table(
                    {
                        "hi": _as_arrow(his, pa.uint64()),
                        "lo": _as_arrow(los, pa.uint64()),
                        "code": _as_arrow(codes, pa.uint32()),
                    }
                ),
            ]
        )
        order = pc.sort_indices(table, sort_keys=[("hi", "ascending"), ("lo", "ascending")])
        merged = table.take(order)
        self._hi = _u64(merged.column("hi"))
        self._lo = _u64(merged.column("lo"))
        self._code = _u64(merged.column("code"), "I")
        self._recent = {}
        self._starts = None


_SAVED_FORMAT = 2


def save(path: Path, index: IdIndex, covers: dict[str, Any]) -> None:
    """Write ``index`` and the description of what it covers (atomically, fsynced)."""
    index.compact()
    flags = bytearray(len(index._hi))
    for key in index.repeated:
        position = index.position(key)
        if position is not None:
            flags[position] = 1
    table = pa.table(
        {
            "hi": _as_arrow(index._hi, pa.uint64()),
            "lo": _as_arrow(index._lo, pa.uint64()),
            "code": _as_arrow(index._code, pa.uint32()),
            "repeated": pa.Array.from_buffers(pa.uint8(), len(flags), [None, pa.py_buffer(flags)]),
        }
    )
    _ipc.write_atomic(path, table, {"format": _SAVED_FORMAT, **covers})


def load(path: Path) -> tuple[IdIndex, dict[str, Any]] | None:
    """The saved index and its description, or None when there is none or it cannot be read."""
    found = _ipc.read(path)
    if found is None:
        return None
    table, meta = found
    if meta.get("format") != _SAVED_FORMAT or table.schema.names != ["hi", "lo", "code", "repeated"]:
        return None
    index = IdIndex()
    index.load_sorted(table.select(["hi", "lo", "code"]))
    # Flags are one byte per id and nearly all zero: find the ones without pyarrow.compute
    # (whose first use imports pandas, 0.2 s of a fresh writer's start).
    flags = bytes(_u64(table.column("repeated"), "B"))
    position = flags.find(1)
    while position >= 0:
        index.repeated.add((index._hi[position], index._lo[position]))
        position = flags.find(1, position + 1)
    return index, meta


def _as_arrow(values: array, type_: pa.DataType) -> pa.Array:
    """Zero-copy Arrow view of an ``array.array`` of fixed-width ints."""
    return pa.Array.from_buffers(type_, len(values), [None, pa.py_buffer(values)])
