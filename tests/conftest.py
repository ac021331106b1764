"""Shared fixtures for the behavioural contract suite.

The suite only touches the public API (``metaspn_store`` / ``metaspn_store.store``) and
``metaspn_schemas``, so the same files can be run against metaspn-store 0.1.8 (the oracle for
semantics) and against this package.

Helpers are exposed as fixtures (``utc``, ``make_signal``, ``make_emission``, ``ref``) so that
test modules never import this file.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from metaspn_schemas import EmissionEnvelope, EntityRef, SignalEnvelope
from states import KNOWN_BUGS, StateStore

from metaspn_store import FileSystemStore

UTC = timezone.utc
BASE = datetime(2026, 2, 5, 12, 0, 0, tzinfo=UTC)


def utc(
    year: int = 2026,
    month: int = 2,
    day: int = 5,
    hour: int = 12,
    minute: int = 0,
    second: int = 0,
    microsecond: int = 0,
) -> datetime:
    """An aware UTC datetime (defaults to 2026-02-05 12:00:00 UTC)."""
    return datetime(year, month, day, hour, minute, second, microsecond, tzinfo=UTC)


_counter = {"signal": 0, "emission": 0}
_DEFAULT: Any = object()  # "not given": lets callers pass payload=None explicitly


def _next_id(kind: str) -> str:
    _counter[kind] += 1
    return f"{kind[0]}-{_counter[kind]:06d}"


def make_signal(
    signal_id: str | None = None,
    *,
    timestamp: datetime | None = None,
    source: str = "ingest.worker",
    payload_type: str = "Observation",
    payload: Any = _DEFAULT,
    entity_refs: tuple[EntityRef, ...] | list[EntityRef] = (),
    schema_version: str | None = None,
    trace: Any = None,
    raw: dict[str, Any] | None = None,
    seconds: float | None = None,
) -> SignalEnvelope:
    """A SignalEnvelope with sensible defaults.

    ``seconds`` is a shortcut for ``timestamp=BASE + seconds``.
    """
    if timestamp is None:
        timestamp = BASE + timedelta(seconds=seconds or 0)
    kwargs: dict[str, Any] = {}
    if schema_version is not None:
        kwargs["schema_version"] = schema_version
    return SignalEnvelope(
        signal_id=signal_id if signal_id is not None else _next_id("signal"),
        timestamp=timestamp,
        source=source,
        payload_type=payload_type,
        payload={} if payload is _DEFAULT else payload,
        entity_refs=tuple(entity_refs),
        trace=trace,
        raw=raw,
        **kwargs,
    )


def make_emission(
    emission_id: str | None = None,
    *,
    timestamp: datetime | None = None,
    emission_type: str = "OutcomeSuccess",
    payload: Any = _DEFAULT,
    caused_by: str = "",
    entity_refs: tuple[EntityRef, ...] | list[EntityRef] = (),
    schema_version: str | None = None,
    trace: Any = None,
    seconds: float | None = None,
) -> EmissionEnvelope:
    """An EmissionEnvelope with sensible defaults."""
    if timestamp is None:
        timestamp = BASE + timedelta(seconds=seconds or 0)
    kwargs: dict[str, Any] = {}
    if schema_version is not None:
        kwargs["schema_version"] = schema_version
    return EmissionEnvelope(
        emission_id=emission_id if emission_id is not None else _next_id("emission"),
        timestamp=timestamp,
        emission_type=emission_type,
        payload={} if payload is _DEFAULT else payload,
        caused_by=caused_by,
        entity_refs=tuple(entity_refs),
        trace=trace,
        **kwargs,
    )


def day_file(folder: Path, when: datetime) -> Path:
    """The hot-tier partition that must hold a record with timestamp ``when``."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return folder / f"{when.astimezone(UTC).date().isoformat()}.jsonl"


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    return tmp_path / "ws"


@pytest.fixture
def store_state() -> str | None:
    """The store state of a test (see tests/states.py). Modules and tests opt in with the
    ``store_states`` marker, which parametrizes this; elsewhere it is None (a plain store)."""
    return None


@pytest.fixture
def store(workspace: Path, store_state: str | None):
    if store_state is None:
        yield FileSystemStore(workspace)
        return
    wrapped = StateStore(workspace, store_state)
    yield wrapped
    wrapped.inner.close()


@pytest.fixture
def reopen(request: pytest.FixtureRequest, workspace: Path):
    """Open a fresh FileSystemStore on the same workspace (new in-memory state).

    When the test's ``store`` is in a state (tests/states.py), that state is applied first, so
    the new instance opens the workspace as the state left it (compacted, padded, ...)."""

    def _reopen() -> FileSystemStore:
        if "store" in request.fixturenames:
            current = request.getfixturevalue("store")
            if isinstance(current, StateStore):
                current.settle()
        return FileSystemStore(workspace)

    return _reopen


@pytest.fixture(name="utc")
def utc_fixture():
    return utc


@pytest.fixture(name="make_signal")
def make_signal_fixture():
    return make_signal


@pytest.fixture(name="make_emission")
def make_emission_fixture():
    return make_emission


@pytest.fixture(name="day_file")
def day_file_fixture():
    return day_file


@pytest.fixture(name="ref")
def ref_fixture():
    return EntityRef


@pytest.fixture
def window():
    """A window wide enough to hold every record the default factories produce."""
    return {"start": utc(2026, 1, 1, 0), "end": utc(2026, 3, 1, 0)}


@pytest.fixture(autouse=True)
def save_derived_files_eagerly(monkeypatch):
    """Save the id index and hot-file parses at any size (this package only), so that every test
    that reopens a store also goes through the saved-file paths; set METASPN_TEST_NO_SAVED=1 to
    run the suite with the production thresholds instead."""
    if os.environ.get("METASPN_TEST_NO_SAVED") == "1":
        return
    try:
        import metaspn_store._hot as hot_module
    except ImportError:  # metaspn-store 0.1.8
        return
    monkeypatch.setattr(hot_module, "SAVE_MIN_IDS", 1)
    monkeypatch.setattr(hot_module, "SAVE_PARSE_BYTES", 1)


# --------------------------------------------------------------------------- store states


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "store_states(*states, reason=None): run the test once per store state (tests/states.py); "
        "the closest marker wins, so a test narrows its module's states and says why in reason",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    marker = metafunc.definition.get_closest_marker("store_states")
    if marker is None or "store_state" not in metafunc.fixturenames:
        return
    metafunc.parametrize("store_state", list(marker.args), ids=list(marker.args))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the (test, state) pairs of states.KNOWN_BUGS as strict expected failures."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        state = callspec.params.get("store_state") if callspec is not None else None
        if state is None:
            continue
        name = getattr(item, "originalname", item.name)
        keys = [(name, state)]
        # The state's id sits first or last among the test's parameter ids.
        ids = callspec.id
        others = ids[len(state) + 1 :] if ids.startswith(state + "-") else ids[: -len(state) - 1]
        if ids != state:
            keys.insert(0, (f"{name}[{others}]", state))
        for key in keys:
            if key in KNOWN_BUGS:
                item.add_marker(pytest.mark.xfail(strict=True, reason=KNOWN_BUGS[key]))
                break


# ---------------------------------------------------------------------------- S3 (moto server)


class S3Endpoint:
    """A moto S3 server on a free loopback port with one bucket; ``uri(name)`` is a fresh prefix."""

    BUCKET = "metaspn-test"

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        # Only non-secret options: the credentials are in the environment (as on a real host),
        # so child processes opening the workspace by path alone reach the bucket too.
        self.options = {"AWS_ENDPOINT_URL": endpoint, "AWS_REGION": "us-east-1", "AWS_ALLOW_HTTP": "true"}
        self._n = 0

    def uri(self, name: str) -> str:
        self._n += 1
        return f"s3://{self.BUCKET}/{name}-{self._n}"

    def client(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1")


@pytest.fixture(scope="session")
def s3() -> Any:
    """A real S3 endpoint (``moto_server`` in its own process: an in-process server deadlocks with
    pyarrow filesystems that call back into Python while holding the GIL)."""
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    env_before = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_DEFAULT_REGION")}
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_REGION="us-east-1",
                      AWS_DEFAULT_REGION="us-east-1")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = Path(sys.executable).with_name("moto_server")
    proc = subprocess.Popen([str(server), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/data.json", timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError("moto_server exited at start") from None
                time.sleep(0.1)
        s3 = S3Endpoint(endpoint)
        s3.client().create_bucket(Bucket=S3Endpoint.BUCKET)
        yield s3
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        for key, value in env_before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(params=["local", "s3"])
def cold_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    """Where a test's cold tier lives: None (the workspace's own store/cold) or a fresh S3 prefix."""
    if request.param == "local":
        return None
    return str(request.getfixturevalue("s3").uri("ws"))
