"""Files replaced atomically, and derived files kept as Arrow IPC (read back memory-mapped).

Used for caches that a process can always rebuild from the store's own files (the saved id index,
saved parses of hot files). Each file carries a JSON description of what it was derived from;
callers compare that with the files on disk before trusting the table.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import orjson
import pyarrow as pa

_META_KEY = b"metaspn_store.derived_from"


def replace_atomically(path: Path, write: Callable[[BinaryIO], object], *, mode: int | None = None) -> None:
    """Replace ``path`` with what ``write`` writes to a temporary file in the same folder, flushed,
    fsynced and renamed into place: a crash or an exception leaves the previous file or the new
    one, never a torn one. ``mode`` sets the new file's permissions (mkstemp makes it 0600)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        if mode is not None:
            os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_atomic(path: Path, table: pa.Table, meta: dict[str, Any]) -> None:
    """Write ``table`` with ``meta`` atomically (see :func:`replace_atomically`)."""
    table = table.replace_schema_metadata({_META_KEY: orjson.dumps(meta)})
    path.parent.mkdir(parents=True, exist_ok=True)

    def write(handle: BinaryIO) -> None:
        with pa.ipc.new_file(handle, table.schema) as writer:
            writer.write_table(table)

    # Readable by other users of the workspace, like the hot files.
    replace_atomically(path, write, mode=0o644)


def read(path: Path) -> tuple[pa.Table, dict[str, Any]] | None:
    """The table (backed by a memory map, not copied) and its description; None when the file is
    missing or unreadable."""
    try:
        with pa.memory_map(str(path)) as source:
            table = pa.ipc.open_file(source).read_all()
        meta = orjson.loads((table.schema.metadata or {})[_META_KEY])
    except (OSError, KeyError, ValueError, pa.ArrowException, orjson.JSONDecodeError):
        return None
    if not isinstance(meta, dict):
        return None
    return table.replace_schema_metadata(None), meta
