"""Checkpoint and snapshot names at the filesystem's limit (issue 11, item 7).

Every name that 0.1.8 accepts and the filesystem can hold works, with real files: the temporary
file of the atomic replacement has a short fixed-length name, so a target name of exactly NAME_MAX
bytes can be written and replaced. One byte more raises ``InvalidNameError`` (a ``ValueError``)
naming the limit, and nothing is written. Lengths are bytes of the encoded file name.
"""

from __future__ import annotations

import os
from datetime import date, datetime, timezone
from pathlib import Path

import orjson
import pytest

from metaspn_store import FileSystemStore, InvalidNameError, ReplayCheckpoint

UTC = timezone.utc
WHEN = datetime(2026, 2, 5, 12, 30, 15, tzinfo=UTC)
CHECKPOINT_SUFFIX = ".json"
SNAPSHOT_SUFFIX = "__2026-02-05T123015Z.json"
DATED = [
    ("write_daily_digest_snapshot", "read_daily_digest_snapshot", "digest", "digest"),
    ("write_calibration_snapshot", "read_calibration_snapshot", "calibration", "report"),
    ("write_credibility_snapshot", "read_credibility_snapshot", "credibility", "report"),
]


def name_max(folder: Path) -> int:
    return os.pathconf(folder, "PC_NAME_MAX")


def name_of(size: int, unit: str = "n") -> str:
    """A name of exactly ``size`` UTF-8 bytes built from ``unit`` (padded with ASCII)."""
    width = len(unit.encode())
    name = unit * (size // width)
    name += "x" * (size - len(name.encode()))
    assert len(name.encode()) == size
    return name


def listing(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


def checkpoint(i: int) -> ReplayCheckpoint:
    return ReplayCheckpoint(WHEN, (f"id-{i}",))


# --------------------------------------------------------------------------- checkpoints


@pytest.mark.parametrize("unit", ["n", "é", "日", "😀"], ids=["ascii", "2-byte", "3-byte", "4-byte"])
@pytest.mark.parametrize("spare", [15, 10, 5, 1, 0], ids=lambda s: f"limit-{s}")
def test_checkpoint_names_up_to_the_limit_are_written_and_replaced(store, spare, unit):
    folder = store.checkpoints_dir
    name = name_of(name_max(folder) - len(CHECKPOINT_SUFFIX) - spare, unit)  # 240..250 bytes on ext4/tmpfs
    path = store.write_checkpoint(name, checkpoint(1))
    assert path == folder / f"{name}{CHECKPOINT_SUFFIX}"
    assert store.write_checkpoint(name, checkpoint(2)) == path  # the replacement path, too
    assert listing(folder) == {path.name}
    assert orjson.loads(path.read_bytes())["seen_ids_at_timestamp"] == ["id-2"]  # 0.1.8's file format
    assert FileSystemStore(store.workspace).read_checkpoint(name) == checkpoint(2)


@pytest.mark.parametrize("unit", ["n", "é", "😀"], ids=["ascii", "2-byte", "4-byte"])
def test_checkpoint_name_one_byte_over_the_limit_is_refused_before_writing(store, unit):
    folder = store.checkpoints_dir
    limit = name_max(folder)
    store.write_checkpoint("other", checkpoint(1))
    name = name_of(limit - len(CHECKPOINT_SUFFIX) + 1, unit)
    with pytest.raises(InvalidNameError) as caught:
        store.write_checkpoint(name, checkpoint(2))
    assert isinstance(caught.value, ValueError)
    message = str(caught.value)
    assert f"at most {limit} bytes" in message and "NAME_MAX" in message
    assert f"at most {limit - len(CHECKPOINT_SUFFIX)} bytes" in message  # what the caller can use
    assert listing(folder) == {"other.json"}  # no file, no temporary file
    with pytest.raises(InvalidNameError):
        store.read_checkpoint(name)  # a name that cannot exist is refused the same way


def test_unencodable_checkpoint_name_is_an_invalid_name(store):
    with pytest.raises(InvalidNameError):
        store.write_checkpoint("half-\ud800-surrogate", checkpoint(1))
    assert listing(store.checkpoints_dir) == set()


# --------------------------------------------------------------------------- snapshots


@pytest.mark.parametrize("unit", ["n", "é", "😀"], ids=["ascii", "2-byte", "4-byte"])
@pytest.mark.parametrize("spare", [5, 2, 1, 0], ids=lambda s: f"limit-{s}")
def test_snapshot_names_up_to_the_limit_are_written_and_replaced(store, spare, unit):
    folder = store.snapshots_dir
    name = name_of(name_max(folder) - len(SNAPSHOT_SUFFIX) - spare, unit)  # 225..230 bytes on ext4/tmpfs
    path = store.write_snapshot(name, {"v": 1}, WHEN)
    assert path == folder / f"{name}{SNAPSHOT_SUFFIX}"
    assert store.write_snapshot(name, {"v": 2}, WHEN) == path
    assert listing(folder) == {path.name}
    assert orjson.loads(path.read_bytes()) == {"v": 2}


def test_snapshot_name_one_byte_over_the_limit_is_refused_before_writing(store):
    folder = store.snapshots_dir
    limit = name_max(folder)
    name = name_of(limit - len(SNAPSHOT_SUFFIX) + 1)
    with pytest.raises(InvalidNameError, match=f"at most {limit - len(SNAPSHOT_SUFFIX)} bytes"):
        store.write_snapshot(name, {"v": 1}, WHEN)
    assert listing(folder) == set()


@pytest.mark.parametrize(("writer", "reader", "prefix", "key"), DATED, ids=[d[2] for d in DATED])
def test_dated_snapshot_day_strings_up_to_the_limit(store, writer, reader, prefix, key):
    folder = store.snapshots_dir
    longest = name_max(folder) - len(f"{prefix}__.json")
    token = name_of(longest, "é")
    path = getattr(store, writer)(day=token, **{key: {"v": 1}})
    assert path == folder / f"{prefix}__{token}.json"
    getattr(store, writer)(day=token, **{key: {"v": 2}})
    assert getattr(store, reader)(token) == {"day": token, key: {"v": 2}, "schema_version": "0.1"}
    assert listing(folder) == {path.name}

    too_long = name_of(longest + 1, "é")
    with pytest.raises(InvalidNameError, match=f"at most {longest} bytes"):
        getattr(store, writer)(day=too_long, **{key: {"v": 3}})
    with pytest.raises(InvalidNameError):
        getattr(store, reader)(too_long)
    assert listing(folder) == {path.name}


def test_dates_still_make_short_names(store):
    path = store.write_daily_digest_snapshot(day=date(2026, 2, 5), digest={})
    assert path.name == "digest__2026-02-05.json"
