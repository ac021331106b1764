"""Files replaced atomically, and derived files kept as Arrow IPC (read back memory-mapped).

:func:`replace_atomically` is how every small document (checkpoints, snapshots) and every saved
derived file is written. Its steps, each followed by a crash point of :mod:`metaspn_store._faults`
(``METASPN_STORE_CRASH_AT=atomic.<step>`` kills the process there; ``tests/test_atomic_files.py``
kills it at each one):

1. ``atomic.created``: create ``.tmp-<12 hex>`` in the target's folder (``O_EXCL``; the name is
   17 bytes whatever the target is called, so every target name the filesystem holds works);
2. ``atomic.written``: the caller writes the new bytes;
3. ``atomic.flushed`` / ``atomic.fsynced``: flush and fsync the temporary file;
4. ``atomic.renamed``: rename it over the target (atomic on POSIX), then fsync the folder so the
   rename itself is durable.

A crash before the rename leaves the previous file untouched (and a stray ``.tmp-*`` file, which no
reader looks at: valid checkpoint and snapshot names never start with a dot); after it, the new
file. A reader never sees an empty or partial target. An exception removes the temporary file.

Saved derived files are caches that a process can always rebuild from the store's own files (the
saved id index, saved parses of hot files). Each carries a JSON description of what it was derived
from, which callers compare with the files on disk before trusting the table, and a CRC-32 of its
own data buffers, which :func:`read` checks: a damaged file reads as missing (rebuild), never as
different data. (CRC-32 catches accidental damage, not a deliberate forgery with a matching CRC.)
"""

from __future__ import annotations

import os
import secrets
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import orjson
import pyarrow as pa

from metaspn_store._faults import crash_point

_META_KEY = b"metaspn_store.derived_from"
TEMP_PREFIX = ".tmp-"


def _create_temp(folder: Path) -> tuple[int, Path]:
    """A new, empty temporary file in ``folder``: a short fixed-length name, created exclusively.

    Mode 0o666 less the umask, like the plain ``open()`` of 0.1.8 (mkstemp's 0600 would hide
    checkpoints from the other users of a shared workspace).
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _attempt in range(100):
        tmp = folder / f"{TEMP_PREFIX}{secrets.token_hex(6)}"
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a temporary file in {folder}")


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable; a filesystem that cannot fsync folders is left as is."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def replace_atomically(path: Path, write: Callable[[BinaryIO], object], *, mode: int | None = None) -> None:
    """Replace ``path`` with what ``write`` writes to a temporary file in the same folder, flushed,
    fsynced and renamed into place: a crash or an exception leaves the previous file or the new
    one, never a torn one (steps in the module docstring). ``mode`` sets the new file's permissions
    (default: 0o666 less the umask)."""
    fd, tmp = _create_temp(path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            crash_point("atomic.created")
            if mode is not None:
                os.fchmod(handle.fileno(), mode)
            write(handle)
            crash_point("atomic.written")
            handle.flush()
            crash_point("atomic.flushed")
            os.fsync(handle.fileno())
            crash_point("atomic.fsynced")
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    crash_point("atomic.renamed")
    _fsync_folder(path.parent)


def write_atomic(path: Path, table: pa.Table, meta: dict[str, Any]) -> None:
    """Write ``table`` with ``meta`` and the CRC of its data atomically (see
    :func:`replace_atomically`)."""
    # Round trip through an in-memory IPC stream: the buffers then have exactly the layout a
    # reader of the file maps, so the CRC computed here is the one read() recomputes.
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as stream:
        stream.write_table(table)
    table = pa.ipc.open_stream(sink.getvalue()).read_all()
    described = {**meta, _CRC: _crc(table)}
    table = table.replace_schema_metadata({_META_KEY: orjson.dumps(described)})
    path.parent.mkdir(parents=True, exist_ok=True)

    def write(handle: BinaryIO) -> None:
        with pa.ipc.new_file(handle, table.schema) as writer:
            writer.write_table(table)

    # Readable by other users of the workspace, like the hot files.
    replace_atomically(path, write, mode=0o644)


_CRC = "crc32"


def _crc(table: pa.Table) -> list[int]:
    """Row count and CRC-32 of every data buffer (children included) of every column."""
    crc = 0
    for column in table.columns:
        for chunk in column.chunks:
            for buffer in chunk.buffers():
                if buffer is not None:
                    crc = zlib.crc32(memoryview(buffer), crc)
    return [table.num_rows, crc]


def read(path: Path) -> tuple[pa.Table, dict[str, Any]] | None:
    """The table (backed by a memory map, not copied) and its description; None when the file is
    missing, unreadable, or its data do not match the CRC it was written with."""
    try:
        with pa.memory_map(str(path)) as source:
            table = pa.ipc.open_file(source).read_all()
        meta = orjson.loads((table.schema.metadata or {})[_META_KEY])
    except (OSError, KeyError, ValueError, pa.ArrowException, orjson.JSONDecodeError):
        return None
    if not isinstance(meta, dict) or meta.pop(_CRC, None) != _crc(table):
        return None
    return table.replace_schema_metadata(None), meta
