"""The one exceptions module: every error this package raises derives from :class:`StoreError`.

Errors that 0.1.8 raised as ``ValueError`` stay ``ValueError`` subclasses so existing
``except ValueError`` handlers keep working.
"""

from __future__ import annotations


class StoreError(Exception):
    """Base class of every error raised by metaspn-store."""


class DuplicateEventError(StoreError, ValueError):
    """Raised when a duplicate event ID is written with ``on_duplicate='raise'``."""


class InvalidRecordError(StoreError, ValueError):
    """A record cannot be stored: the message names the record id and the field path.

    Raised before anything is appended, so the store is unchanged.
    """

    def __init__(self, message: str, *, record_id: str | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.record_id = record_id
        self.field = field


class InvalidNameError(StoreError, ValueError):
    """A checkpoint/snapshot name or a day string would escape its folder or is malformed."""


class QueryError(StoreError):
    """DuckDB failed to answer a read; the DuckDB error is chained as ``__cause__``."""


class CompactionError(StoreError):
    """The compactor could not finish; the store still reads exactly as before the run."""


class StoreLockedError(StoreError):
    """Another process holds the lock this operation needs and waiting was not allowed."""


class ReadOnlyStoreError(StoreError, PermissionError):
    """A write or a compaction on a store opened read-only (explicitly, or because the workspace
    is not writable). Nothing was written."""


class StoreIOError(StoreError, OSError):
    """The operating system refused a write (disk full, quota, permission, file too large, not a
    regular file). The message names the file and the cause; ``errno`` is the OS error's, and
    nothing of the failed call was stored."""


class ConsumerBusyError(StoreLockedError):
    """Another open consumer (this process or another) already uses this consumer name: a name
    is one reader of its positions at a time, so that no record is delivered to both."""
