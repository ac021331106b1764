"""The analysis connection behind ``store.sql()``: read-only, and it sees only the store.

User SQL runs on an in-memory DuckDB connection that :func:`lock_down` has closed before any user
query runs. DuckDB itself then opens no file at all: the ``signals`` / ``emissions`` views read the
hot rows from registered Arrow tables and the Parquet files through a registered pyarrow dataset,
both handed over from Python, so neither needs DuckDB's file access. Settings (DuckDB 1.3-2.0):

* ``enable_external_access = false``: no file is read or written by SQL (``read_csv``,
  ``read_text``, ``read_json``, ``read_parquet``, ``glob``, ``COPY``, ``EXPORT DATABASE``,
  ``ATTACH`` of a file, ``relation.to_csv`` / ``to_parquet``), no URL is fetched, no extension is
  installed or loaded from disk, no secret is persisted. ``allowed_directories`` / ``allowed_paths``
  stay empty on purpose: they re-allow reads *and writes* below a path (measured: ``COPY ... TO``
  an allowed folder succeeds), and the views do not need them;
* ``autoinstall_known_extensions`` / ``autoload_known_extensions = false``,
  ``allow_community_extensions = false``: a query naming an extension's function or file type
  fails instead of fetching or loading code (the built-in json and parquet stay available);
* ``python_enable_replacements = false``: an unknown table name is an error, never a Python
  variable that happens to be in scope;
* ``temp_directory = ''``: DuckDB does not spill to disk (its default is ``./.tmp`` in the current
  folder); a query that needs more than ``memory_limit`` fails with a :class:`QueryError` saying so;
* ``lock_configuration = true`` last: no ``SET`` / ``RESET`` / ``PRAGMA`` can undo any of the
  above (nor change ``threads`` / ``memory_limit``).

What stays possible: any query over the views, and ``CREATE TABLE`` / ``CREATE VIEW`` / ``ATTACH
':memory:'``, which live in this process's memory only. Registering Arrow tables and datasets from
Python still works on a locked connection, so the views are re-registered on each call without
opening a new connection (locking costs ~0.5 ms, once per connection).
"""

from __future__ import annotations

import duckdb

from metaspn_store.errors import QueryError

# Applied in this order: temp_directory cannot change once external access is off, and
# lock_configuration must come last.
LOCKDOWN_SETTINGS: tuple[tuple[str, str], ...] = (
    ("temp_directory", "''"),
    ("enable_external_access", "false"),
    ("autoinstall_known_extensions", "false"),
    ("autoload_known_extensions", "false"),
    ("allow_community_extensions", "false"),
    ("python_enable_replacements", "false"),
    ("lock_configuration", "true"),
)

READ_ONLY_HINT = (
    "sql() is read-only and sees only the `signals` and `emissions` views: it cannot read or write "
    "files, attach database files, install or load extensions, or change settings"
)


def lock_down(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """Make ``con`` read-only towards the outside world and lock its settings (module docstring).

    Call it after the connection's own settings (threads, memory, time zone) are made; afterwards
    none can change. Returns ``con``.
    """
    for name, value in LOCKDOWN_SETTINGS:
        con.execute(f"SET {name} = {value}")
    return con


def query_error(exc: duckdb.Error, *, memory_limit: str) -> QueryError:
    """The :class:`QueryError` for a DuckDB error raised by user SQL (chain it with ``from exc``)."""
    detail = str(exc).strip()
    if isinstance(exc, duckdb.OutOfMemoryException):
        return QueryError(
            f"sql() ran out of memory: the query needs more than memory_limit={memory_limit!r} and sql() "
            "does not spill to disk; open the store with a larger memory_limit "
            f"(FileSystemStore(ws, memory_limit=...)) or aggregate / filter earlier. DuckDB: {detail}"
        )
    if isinstance(exc, duckdb.PermissionException) or "configuration has been locked" in detail:
        return QueryError(f"{READ_ONLY_HINT}. DuckDB: {detail}")
    if isinstance(exc, duckdb.CatalogException):
        return QueryError(f"SQL failed: {detail}\n(sql() sees only the `signals` and `emissions` views)")
    return QueryError(f"SQL failed: {detail}")


__all__ = ["LOCKDOWN_SETTINGS", "READ_ONLY_HINT", "lock_down", "query_error"]
