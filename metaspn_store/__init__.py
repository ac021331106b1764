"""metaspn-store: columnar, analytics-oriented event store for MetaSPN signals and emissions.

The public API of metaspn-store 0.1.8 (``FileSystemStore``, ``ReplayCheckpoint``,
``DuplicateEventError``, ``RESOLVED_ENTITY_PAYLOAD_TYPES``) plus the error types.
"""

from metaspn_store._consumer import Consumer
from metaspn_store._hot import BadLineWarning
from metaspn_store.errors import (
    CompactionError,
    ConsumerBusyError,
    DuplicateEventError,
    InvalidNameError,
    InvalidRecordError,
    QueryError,
    ReadOnlyStoreError,
    StoreError,
    StoreIOError,
    StoreLockedError,
)
from metaspn_store.store import RESOLVED_ENTITY_PAYLOAD_TYPES, FileSystemStore, ReplayCheckpoint

__version__ = "0.2.0"

__all__ = [
    "BadLineWarning",
    "CompactionError",
    "Consumer",
    "ConsumerBusyError",
    "DuplicateEventError",
    "FileSystemStore",
    "InvalidNameError",
    "InvalidRecordError",
    "QueryError",
    "RESOLVED_ENTITY_PAYLOAD_TYPES",
    "ReadOnlyStoreError",
    "ReplayCheckpoint",
    "StoreError",
    "StoreIOError",
    "StoreLockedError",
]
