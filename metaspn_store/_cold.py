"""Cold tier: one Delta Lake table per kind, on local disk or S3-compatible object storage.

Table (written with ``deltalake``, read by any Delta engine)::

    <root>/_delta_log/00000000000000000000.json ...     the commit log (the only commit point)
    <root>/day=2026-02-05/part-00000-<uuid>-c000.zstd.parquet

``<root>`` is ``store/cold/<kind>`` by default, or ``<uri>/<kind>`` for ``cold=<uri>``. Columns: the
kind's Arrow schema (``_codec``), ``shared`` (bool) and the partition column ``day`` (date).

What a version of the table holds, all written by one Delta commit (so atomically):

* **A day's records**, each id once (``_rules`` rule 2: the first copy of the day), ``seq`` the
  append order within the day.
* **``shared``**: true on the rows whose id may also occur on another day (reads spanning both
  days resolve it, keeping the first). At least one copy of every cross-day id is flagged, because
  compaction commits of a kind are serialised (see ``_compactor``): each commit was computed
  against the table it lands on.
* **Claims**: a Delta application transaction ``metaspn-store/claim/<host>/<kind>/<day>/<inode>-<head>``
  whose version is the number of lines of that host's hot file that the table holds. Readers on
  that host skip those lines; between a commit and the deletion of the hot file (or after a crash
  there) every record is therefore visible exactly once. Another host never matches the claim.
* **``metaspn-store/serial/<kind>``**: an application transaction every compaction commit sets,
  so that two concurrent compaction commits conflict (the loser retries on the new version).

Workspaces compacted by the previous layout (``_legacy_cold``: a manifest plus Parquet in the same
folder) are read through that layout until their conversion commits (application transaction
``metaspn-store/legacy-import``); then the old files are removed.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import orjson
import pyarrow as pa

from metaspn_store._codec import no_rows, repeated_date, schema_for, string_array
from metaspn_store._layout import Kind, Layout
from metaspn_store._legacy_cold import LegacyColdTier

CONFIG = "cold.json"
LEGACY_IMPORT = "metaspn-store/legacy-import"
# storage_options a workspace may remember: where the store is and how to talk to it, never who
# you are (keys, secrets, tokens come from the environment or the caller every time).
REMEMBERED_OPTIONS = frozenset(
    {
        "aws_endpoint_url",
        "aws_endpoint",
        "endpoint_url",
        "aws_region",
        "region",
        "aws_default_region",
        "aws_allow_http",
        "allow_http",
        "aws_virtual_hosted_style_request",
        "aws_conditional_put",
        "aws_s3_allow_unsafe_rename",
    }
)
# Row groups sized for pruning by (type, timestamp) statistics; zstd 3 as before.
ROW_GROUP_ROWS = 64 * 1024

AsOf = int | datetime | None


@dataclass(frozen=True)
class ColdLocation:
    """Where a workspace's cold tables live and how to reach them."""

    uri: str  # folder holding one table per kind
    storage_options: dict[str, str] = field(default_factory=dict)
    host: str = ""  # this workspace's id in claims (one workspace = one host's hot tier)

    @property
    def remote(self) -> bool:
        return "://" in self.uri and not self.uri.startswith("file://")

    def table_uri(self, kind: Kind) -> str:
        return f"{self.uri.rstrip('/')}/{kind.name}"


def open_location(
    layout: Layout, cold: str | Path | None, storage_options: dict[str, str] | None, *, remember: bool = True
) -> ColdLocation:
    """The workspace's cold location: ``cold`` if given (remembered in ``store/cold.json``),
    else the remembered one, else ``store/cold``. Switching an existing workspace to another
    location is refused while the current one holds data. ``remember=False`` (read-only
    stores) writes nothing."""
    path = layout.store_root / CONFIG
    saved: dict[str, Any] = orjson.loads(path.read_bytes()) if path.exists() else {}
    default = str(layout.cold_root)
    host = str(saved.get("host") or uuid.uuid4().hex)
    # The default location is not written as a path, so a copied or moved workspace keeps using
    # its own store/cold.
    uri = str(saved.get("uri") or default)
    options = {str(k): str(v) for k, v in (saved.get("storage_options") or {}).items()}
    if cold is not None:
        wanted = str(cold).rstrip("/") if "://" in str(cold) else str(Path(cold).resolve())
        if wanted != uri:
            if saved.get("uri") or _holds_data(layout):
                raise ValueError(
                    f"this workspace's cold tier is {uri!r}, not {wanted!r}; a workspace keeps one cold "
                    "location (edit store/cold.json only after moving the tables there)"
                )
            uri = wanted
    if storage_options:
        options.update(storage_options)
    remembered = {k: v for k, v in options.items() if k.lower() in REMEMBERED_OPTIONS}
    record = {"uri": None if uri == default else uri, "host": host, "storage_options": remembered}
    if record != saved and remember:
        layout.store_root.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{CONFIG}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_bytes(orjson.dumps(record, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
        if saved:
            os.replace(tmp, path)
        else:
            # The first open names the host: of two processes opening a new workspace at once,
            # exactly one creates the file and the other adopts its host id.
            try:
                os.link(tmp, path)
            except FileExistsError:
                return open_location(layout, cold, storage_options, remember=remember)
            finally:
                tmp.unlink()
    return ColdLocation(uri=uri, storage_options=options, host=host)


def _holds_data(layout: Layout) -> bool:
    """True when the default location holds a Delta table. (Files of the previous layout do not
    count: they are converted into whichever location the workspace has at its next compaction.)"""
    root = layout.cold_root
    return any((root / kind / "_delta_log").exists() for kind in ("signals", "emissions"))


def _s3_filesystem(options: dict[str, str]) -> Any:
    """pyarrow's S3 filesystem configured like deltalake's object store from the same options
    (credentials not given here come from the environment, as for deltalake)."""
    import pyarrow.fs as pa_fs

    lower = {k.lower(): v for k, v in options.items()}
    endpoint = lower.get("aws_endpoint_url") or lower.get("aws_endpoint") or lower.get("endpoint_url") \
        or os.environ.get("AWS_ENDPOINT_URL")
    kwargs: dict[str, Any] = {}
    if endpoint:
        scheme, _, rest = endpoint.partition("://")
        kwargs["endpoint_override"] = rest or scheme
        kwargs["scheme"] = scheme if rest else "https"
    region = lower.get("aws_region") or lower.get("region") or lower.get("aws_default_region")
    if region:
        kwargs["region"] = region
    if lower.get("aws_access_key_id") and lower.get("aws_secret_access_key"):
        kwargs["access_key"] = lower["aws_access_key_id"]
        kwargs["secret_key"] = lower["aws_secret_access_key"]
        if lower.get("aws_session_token"):
            kwargs["session_token"] = lower["aws_session_token"]
    return pa_fs.S3FileSystem(**kwargs)


def table_schema(kind: Kind) -> pa.Schema:
    """The Delta table's columns: the kind's schema, ``shared``, then the partition ``day``."""
    return schema_for(kind).append(pa.field("shared", pa.bool_())).append(pa.field("day", pa.date32()))


class ColdTier:
    """The Delta table of one kind (or, until its conversion, the previous layout's files).

    Readers use ``version``, ``files``, ``shared_ids``, ``claimed_hot_lines`` and ``dataset``;
    the compactor also ``table`` / ``read_day`` / ``replace_day``. With ``as_of`` the tier is
    pinned to one table version (or the version current at a timestamp) and never changes.
    """

    def __init__(self, layout: Layout, kind: Kind, location: ColdLocation, *, as_of: AsOf = None) -> None:
        self.layout = layout
        self.kind = kind
        self.location = location
        self.uri = location.table_uri(kind)
        self.root = layout.cold_dir(kind)  # the logical location writes report for cold records
        self.legacy = LegacyColdTier(layout, kind)
        self.as_of = as_of
        self._lock = threading.RLock()
        self._dt: Any = None
        self._cache: dict[tuple[int, str], Any] = {}
        if as_of is not None:
            self._dt = self._open(as_of)
            if self._dt is None:
                raise ValueError(f"{kind.name}: there is no cold table at {self.uri} to read as of {as_of!r}")

    # ------------------------------------------------------------------ the table

    def _open(self, as_of: AsOf = None) -> Any:
        from deltalake import DeltaTable
        from deltalake.exceptions import TableNotFoundError

        try:
            dt = DeltaTable(self.uri, storage_options=self.location.storage_options or None)
        except TableNotFoundError:
            return None
        if as_of is not None:
            dt.load_as_version(as_of)
        return dt

    def table(self) -> Any:
        """The latest version of the Delta table (None before the first commit)."""
        with self._lock:
            if self._dt is None:
                self._dt = self._open()
            elif self.as_of is None:
                self._dt.update_incremental()
            return self._dt

    def _legacy_active(self, dt: Any) -> bool:
        return self.as_of is None and self.legacy.manifest_path.exists() and (
            dt is None or dt.transaction_version(LEGACY_IMPORT) is None
        )

    def version(self) -> Any:
        """Changes whenever what readers see changes (a commit here or on another host)."""
        with self._lock:
            dt = self.table()
            if self._legacy_active(dt):
                return ("legacy", self.legacy.version())
            return ("delta", -1 if dt is None else dt.version())

    def _current(self) -> Any:
        """The table as the last ``version()`` / ``table()`` call loaded it (no request).

        Readers call ``version()`` first and again at the end of a read (and retry if it moved),
        so everything they ask in between comes from one version without asking the store again:
        on S3 each refresh is a request."""
        if self._dt is None:
            return self.table()
        return self._dt

    def _state(self) -> tuple[int, Any]:
        dt = self._current()
        return (-1 if dt is None else dt.version()), dt

    def state(self) -> tuple[int, Any]:
        """(version, a table object pinned at it) of the latest version; (-1, None) before the
        first commit."""
        from deltalake import DeltaTable

        with self._lock:
            self.table()
            version, dt = self._state()
            if dt is None:
                return -1, None
            pinned = DeltaTable(self.uri, version=version, storage_options=self.location.storage_options or None)
            return version, pinned

    def _cached(self, version: int, name: str, compute: Any) -> Any:
        key = (version, name)
        if key not in self._cache:
            if len(self._cache) > 64:
                self._cache.clear()
            self._cache[key] = compute()
        return self._cache[key]

    def _adds(self, version: int, dt: Any) -> pa.Table:
        """(path, day, max_shared, size) of every live file at ``version``."""

        def compute() -> pa.Table:
            adds = pa.RecordBatchReader.from_stream(dt.get_add_actions(flatten=True)).read_all()
            max_shared = adds.column("max.shared") if "max.shared" in adds.column_names else pa.nulls(adds.num_rows, pa.bool_())
            paths = [self._uri_of(p) for p in adds.column("path").to_pylist()]
            return pa.table(
                {"path": string_array(paths), "day": adds.column("partition.day").cast(pa.date32()),
                 "max_shared": max_shared, "size": adds.column("size_bytes"), "rows": adds.column("num_records")}
            ).sort_by([("day", "ascending"), ("path", "ascending")])

        return self._cached(version, "adds", compute)

    def _uri_of(self, relative: str) -> str:
        if "://" in relative:
            return relative
        relative = unquote(relative)
        if self.location.remote:
            return f"{self.uri.rstrip('/')}/{relative}"
        base = self.uri[len("file://"):] if self.uri.startswith("file://") else self.uri
        return os.path.join(base, relative)

    # ------------------------------------------------------------------ what readers use

    def files(self, first: date, last: date) -> dict[date, list[str]]:
        """Data files per day of ``first..last`` (local paths, or URIs for object storage)."""
        with self._lock:
            version, dt = self._state()
            if self._legacy_active(dt):
                return self.legacy.files(first, last)
            if dt is None:
                return {}
            out: dict[date, list[str]] = {}
            adds = self._adds(version, dt)
            for path, day in zip(adds.column("path").to_pylist(), adds.column("day").to_pylist(), strict=True):
                if first <= day <= last:
                    out.setdefault(day, []).append(path)
            return out

    def all_files(self) -> list[tuple[date, str]]:
        return [(day, path) for day, paths in self.files(date.min, date.max).items() for path in paths]

    def shared_ids(self, first: date, last: date) -> list[str]:
        """Ids stored on the days ``first..last`` flagged as also occurring on other days."""
        with self._lock:
            version, dt = self._state()
            if self._legacy_active(dt):
                return self.legacy.shared_ids(first, last)
            if dt is None:
                return []
            per_day: dict[date, list[str]] = self._cached(version, "shared", lambda: self._read_shared(version, dt))
            return sorted({i for day, ids in per_day.items() if first <= day <= last for i in ids})

    def _read_shared(self, version: int, dt: Any) -> dict[date, list[str]]:
        import pyarrow.dataset as ds

        adds = self._adds(version, dt)
        # File statistics say which files hold no flagged row at all: only the others are read.
        wanted = [p for p, flag in zip(adds.column("path").to_pylist(), adds.column("max_shared").to_pylist(), strict=True)
                  if flag is not False]
        if not wanted:
            return {}
        idc = self.kind.id_field
        rows = self.dataset(wanted).to_table(columns=[idc, "day"], filter=ds.field("shared"))
        out: dict[date, list[str]] = {}
        for record_id, day in zip(rows.column(idc).to_pylist(), rows.column("day").to_pylist(), strict=True):
            out.setdefault(day, []).append(record_id)
        return out

    def claim_id(self, day: date, identity: tuple[int, str]) -> str:
        inode, head = identity
        return f"metaspn-store/claim/{self.location.host}/{self.kind.name}/{day.isoformat()}/{inode}-{head}"

    def claimed_hot_lines(self, day: date, identity: tuple[int, str] | None) -> int:
        """How many first lines of this host's hot file ``identity`` of ``day`` the table holds."""
        if identity is None:
            return 0
        with self._lock:
            dt = self._current()
            if self._legacy_active(dt):
                claim = self.legacy.claimed_hot_lines(day)
                return claim[1] if claim is not None and claim[0] == identity else 0
            if dt is None or self.as_of is not None:
                return 0
            return self._transaction(dt, self.claim_id(day, identity))

    # ------------------------------------------------------------------ what consumers use

    @contextmanager
    def reading(self) -> Iterator[Any]:
        """Load the latest version and keep it while the caller asks several questions
        (``day_counts``, ``host_rows``, ``claimed_hot_lines``, ``day_rows``): every answer is of
        that one version (other threads of the process wait). Yields ``version()``."""
        with self._lock:
            yield self.version()

    def rows_id(self, day: date) -> str:
        """Application transaction whose version counts the rows this host's commits added to
        ``day`` (consumers tell their own compactions from other hosts' by it)."""
        return f"metaspn-store/rows/{self.location.host}/{self.kind.name}/{day.isoformat()}"

    def day_counts(self) -> dict[date, int]:
        """Rows per day in the version the last ``version()`` call loaded (no data file is read:
        Delta add actions, or the previous layout's Parquet footers)."""
        with self._lock:
            version, dt = self._state()
            if self._legacy_active(dt):
                import pyarrow.parquet as pq

                return {day: sum(pq.ParquetFile(p).metadata.num_rows for p in paths)
                        for day, paths in self.legacy.files(date.min, date.max).items()}
            if dt is None:
                return {}

            def compute() -> dict[date, int]:
                adds = self._adds(version, dt)
                counts: dict[date, int] = {}
                for rows, day in zip(adds.column("rows").to_pylist(), adds.column("day").to_pylist(), strict=True):
                    counts[day] = counts.get(day, 0) + int(rows or 0)
                return counts

            return dict(self._cached(version, "day_counts", compute))

    def host_rows(self, day: date) -> int:
        """Rows this host's compactions added to ``day`` (the version ``version()`` loaded)."""
        with self._lock:
            dt = self._current()
            if dt is None or self._legacy_active(dt):
                return 0
            return self._transaction(dt, self.rows_id(day))

    def _transaction(self, dt: Any, app_id: str) -> int:
        """An application transaction's version (0 if unset), asked once per table version: each
        ask costs about 2 ms, and a consumer's poll asks for every day that changed."""
        version = dt.version()
        cache = self.__dict__.setdefault("_txns", {})
        if cache.get("__version__") != version:
            cache.clear()
            cache["__version__"] = version
        if app_id not in cache:
            cache[app_id] = int(dt.transaction_version(app_id) or 0)
        return int(cache[app_id])

    def day_rows(self, day: date) -> pa.Table:
        """The rows of ``day`` in append (``seq``) order, in the version ``version()`` loaded."""
        schema = schema_for(self.kind)
        with self._lock:
            version, dt = self._state()
            if self._legacy_active(dt):
                import pyarrow.parquet as pq

                paths = self.legacy.files(day, day).get(day, [])
                if not paths:
                    return no_rows(schema)
                return pq.read_table(paths).select(schema.names).cast(schema).sort_by("seq")
        return self.read_day(version, dt, day)

    def dataset(self, files: list[str]) -> Any:
        """A pyarrow dataset over these data files (hive ``day`` partition as a date column)."""
        import pyarrow.dataset as ds

        partitioning = ds.partitioning(pa.schema([("day", pa.date32())]), flavor="hive")
        if not self.location.remote:
            base = str(Path(files[0]).parent.parent) if files else self.uri
            return ds.dataset(files, format="parquet", partitioning=partitioning, partition_base_dir=base)
        filesystem, native = self._filesystem()
        if native:  # pyarrow's S3: "bucket/key" paths
            paths = [f.split("://", 1)[1] for f in files]
            base = self.uri.split("://", 1)[1].rstrip("/")
            return ds.dataset(paths, format="parquet", filesystem=filesystem, partitioning=partitioning,
                              partition_base_dir=base)
        prefix = self.uri.rstrip("/") + "/"
        relative = [f[len(prefix):] if f.startswith(prefix) else f for f in files]
        return ds.dataset(relative, format="parquet", filesystem=filesystem, partitioning=partitioning)

    def _filesystem(self) -> tuple[Any, bool]:
        """A pyarrow filesystem for the data files, and how paths are written on it: pyarrow's
        own S3 client for ``s3://`` (C++, about 2x faster than going through Python), else the
        table's object store through deltalake's handler (paths relative to the table)."""
        import pyarrow.fs as pa_fs
        from deltalake.fs import DeltaStorageHandler

        with self._lock:
            if "fs" not in self.__dict__:
                if self.uri.startswith(("s3://", "s3a://")):
                    self.__dict__["fs"] = (_s3_filesystem(self.location.storage_options), True)
                else:
                    handler = DeltaStorageHandler(self.uri, self.location.storage_options or None)
                    self.__dict__["fs"] = (pa_fs.PyFileSystem(handler), False)
            return self.__dict__["fs"]

    def local_files(self) -> bool:
        """True when DuckDB can read the data files by path (not object storage)."""
        return not self.location.remote or self._legacy_active(self._current())

    def summary(self) -> tuple[dict[date, int], datetime | None]:
        """Bytes of data files per day, and the time of the last commit (UTC), for ``info``."""
        from datetime import timezone

        with self._lock:
            version, dt = self._state()
            if self._legacy_active(dt):
                sizes = {day: sum(os.path.getsize(p) for p in paths) for day, paths in self.legacy.files(date.min, date.max).items()}
                stamp = self.legacy.manifest_path.stat().st_mtime
                return sizes, datetime.fromtimestamp(stamp, tz=timezone.utc)
            if dt is None:
                return {}, None
            adds = self._adds(version, dt)
            out: dict[date, int] = {}
            for size, day in zip(adds.column("size").to_pylist(), adds.column("day").to_pylist(), strict=True):
                out[day] = out.get(day, 0) + int(size)
            last = dt.history(1)
            stamp_ms = last[0].get("timestamp") if last else None
            committed = datetime.fromtimestamp(stamp_ms / 1000, tz=timezone.utc) if stamp_ms else None
            return out, committed

    def history(self) -> list[dict[str, Any]]:
        dt = self.table()
        return [] if dt is None else list(dt.history())

    # ------------------------------------------------------------------ what the compactor uses

    def legacy_pending(self) -> bool:
        """True while the previous layout's files are what readers see (not converted yet)."""
        with self._lock:
            return self._legacy_active(self.table())

    def legacy_imported(self) -> bool:
        """True once a conversion of the previous layout committed to the table."""
        with self._lock:
            dt = self.table()
            return dt is not None and dt.transaction_version(LEGACY_IMPORT) is not None

    def read_day(self, version: int, dt: Any, day: date) -> pa.Table:
        """The rows of ``day`` at ``version`` in append (``seq``) order, in the kind's schema."""
        schema = schema_for(self.kind)
        if dt is None:
            return no_rows(schema)
        adds = self._adds(version, dt)
        files = [p for p, d in zip(adds.column("path").to_pylist(), adds.column("day").to_pylist(), strict=True) if d == day]
        if not files:
            return no_rows(schema)
        return self.dataset(files).to_table(columns=schema.names).cast(schema).sort_by("seq")

    def replace_day(self, dt: Any, day: date, rows: pa.Table, shared: pa.Array, claim: tuple[tuple[int, str], int] | None,
                    *, extra_claims: dict[str, int] | None = None, operation: str = "compact-day") -> int:
        """Replace the day's rows with ``rows`` in one commit on top of ``dt``'s version (or
        create the table); raises ``CommitFailedError`` if another compaction committed first.
        Returns the new version."""
        from deltalake import CommitProperties, Transaction, WriterProperties, write_deltalake

        schema = schema_for(self.kind)
        type_col = "source" if "source" in schema.names else "emission_type"
        data = rows.cast(schema).append_column("shared", shared).append_column(
            "day", repeated_date(day, rows.num_rows))
        # Clustered by the common filters so row-group statistics prune; ``seq`` keeps append order.
        data = data.sort_by([(type_col, "ascending"), ("timestamp", "ascending"), ("seq", "ascending")])
        base = -1 if dt is None else dt.version()
        txns = [Transaction(f"metaspn-store/serial/{self.kind.name}", base + 1)]
        if claim is not None:
            txns.append(Transaction(self.claim_id(day, claim[0]), claim[1]))
        txns.extend(Transaction(app_id, lines) for app_id, lines in (extra_claims or {}).items())
        props = CommitProperties(
            app_transactions=txns,
            custom_metadata={"metaspn-store.operation": operation, "metaspn-store.day": day.isoformat(),
                             "metaspn-store.host": self.location.host},
        )
        writer = WriterProperties(compression="ZSTD", compression_level=3, max_row_group_size=ROW_GROUP_ROWS)
        with self._lock:
            if dt is not None:
                write_deltalake(dt, data, mode="overwrite", partition_by=["day"], predicate=f"day = '{day.isoformat()}'",
                                writer_properties=writer, commit_properties=props)
            else:
                write_deltalake(self.uri, data, mode="append", partition_by=["day"],
                                storage_options=self.location.storage_options or None,
                                writer_properties=writer, commit_properties=props)
            if dt is None:
                self._dt = None
            fresh = self.table()
            return int(fresh.version())

    def import_legacy(self, dt: Any, days: dict[date, tuple[pa.Table, pa.Array]], claims: dict[str, int]) -> int:
        """Commit the previous layout's days (rows, shared flags) and claims as one version."""
        from deltalake import CommitProperties, Transaction, WriterProperties, write_deltalake

        schema = schema_for(self.kind)
        parts = [
            rows.cast(schema).append_column("shared", shared).append_column("day", repeated_date(day, rows.num_rows))
            for day, (rows, shared) in sorted(days.items())
        ]
        data = pa.concat_tables(parts) if parts else no_rows(table_schema(self.kind))
        base = -1 if dt is None else dt.version()
        txns = [Transaction(f"metaspn-store/serial/{self.kind.name}", base + 1), Transaction(LEGACY_IMPORT, 1)]
        txns.extend(Transaction(app_id, lines) for app_id, lines in claims.items())
        props = CommitProperties(app_transactions=txns, custom_metadata={
            "metaspn-store.operation": "convert-legacy", "metaspn-store.host": self.location.host})
        writer = WriterProperties(compression="ZSTD", compression_level=3, max_row_group_size=ROW_GROUP_ROWS)
        with self._lock:
            # The days are replaced (other hosts may have committed rows of them: merged in ``rows``).
            listed = ", ".join(f"'{day.isoformat()}'" for day in sorted(days)) or "'0001-01-01'"
            write_deltalake(dt, data, mode="overwrite", partition_by=["day"], predicate=f"day IN ({listed})",
                            writer_properties=writer, commit_properties=props)
            self._dt = None
            return int(self.table().version())

    def create(self) -> None:
        """Create the empty table (schema, ``day`` partition) unless it exists. Every later commit
        is then a replacement of days on a known version, so a race to create it is harmless."""
        from deltalake import CommitProperties, DeltaTable
        from deltalake.exceptions import DeltaError

        with self._lock:
            try:
                DeltaTable.create(self.uri, schema=table_schema(self.kind), partition_by=["day"], mode="ignore",
                                  storage_options=self.location.storage_options or None,
                                  commit_properties=CommitProperties(custom_metadata={"metaspn-store.operation": "create"}))
            except DeltaError:
                if self._open() is None:  # lost the race to another creator: fine if it exists now
                    raise
            self._dt = None

    def day_bytes(self, version: int, day: date) -> int:
        """Bytes of the day's data files in the table's current version (callers pass the version
        they expect; replays ask once per day, so the sizes of all days are summed once per
        version)."""
        with self._lock:
            version_now, dt = self._state()
            if dt is None:
                return 0

            def compute() -> dict[date, int]:
                adds = self._adds(version_now, dt)
                sizes: dict[date, int] = {}
                for size, when in zip(adds.column("size").to_pylist(), adds.column("day").to_pylist(), strict=True):
                    sizes[when] = sizes.get(when, 0) + size
                return sizes

            return int(self._cached(version_now, "day_bytes", compute).get(day, 0))

    def vacuum(self, retain_hours: int | None, *, dry_run: bool) -> list[str]:
        """Delete data files no version within ``retain_hours`` uses (Delta's vacuum)."""
        dt = self.table()
        if dt is None:
            return []
        return list(dt.vacuum(retention_hours=retain_hours, dry_run=dry_run, enforce_retention_duration=False))


__all__ = ["CONFIG", "LEGACY_IMPORT", "AsOf", "ColdLocation", "ColdTier", "open_location", "table_schema"]
