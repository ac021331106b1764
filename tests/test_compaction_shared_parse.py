"""Compaction takes a day's rows from the hot tier's parse (the one the id index build made)
only when that parse is of the bytes the compactor read (``_compactor._hot_parse``)."""

from __future__ import annotations

import warnings
from datetime import date
from pathlib import Path

import orjson

from metaspn_store import BadLineWarning, FileSystemStore
from metaspn_store._compactor import _hot_parse
from metaspn_store._hot import head_digest
from metaspn_store._parse import new_connection, parse_chunk

DAY = date(2026, 2, 5)


def _line(record_id: str) -> bytes:
    return orjson.dumps({
        "entity_refs": [], "payload": {"n": 1}, "payload_type": "P", "raw": None, "schema_version": "0.8",
        "signal_id": record_id, "source": "s", "timestamp": "2026-02-05T12:00:00Z", "trace": None,
    }, option=orjson.OPT_SORT_KEYS) + b"\n"


def _store(tmp_path: Path, lines: list[bytes]) -> tuple[FileSystemStore, Path]:
    folder = tmp_path / "store" / "signals"
    folder.mkdir(parents=True)
    path = folder / f"{DAY.isoformat()}.jsonl"
    path.write_bytes(b"".join(lines))
    return FileSystemStore(tmp_path), path


def test_the_hot_parse_is_cut_to_the_lines_the_compactor_read(tmp_path: Path) -> None:
    lines = [_line("a"), b"not json\n", _line("b"), _line("c"), b"{\n"]
    store, path = _store(tmp_path, lines)
    hot = store._hot["signals"]
    data = b"".join(lines[:3])  # the compactor read three lines; two more were appended after
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BadLineWarning)
        hot.table(DAY)
        shared = _hot_parse(hot, DAY, path.stat().st_ino, data, 3)
        own = parse_chunk(hot.kind, new_connection(), data, 0, str(path))
    assert shared is not None
    rows, bad = shared
    assert rows.to_pylist() == own[0].to_pylist()
    assert [(b.line, b.reason) for b in bad] == [(b.line, b.reason) for b in own[1]]


def test_another_file_or_an_uncached_day_is_parsed_by_the_compactor(tmp_path: Path) -> None:
    store, path = _store(tmp_path, [_line("a"), _line("b")])
    hot = store._hot["signals"]
    data = path.read_bytes()
    assert _hot_parse(hot, DAY, path.stat().st_ino, data, 2) is None  # not parsed by the hot tier yet
    hot.table(DAY)
    assert _hot_parse(hot, DAY, path.stat().st_ino + 1, data, 2) is None  # another inode
    other = _line("z") + _line("b")
    assert head_digest(other) != head_digest(data)
    assert _hot_parse(hot, DAY, path.stat().st_ino, other, 2) is None  # another first line
    assert _hot_parse(hot, DAY, path.stat().st_ino, data, 2) is not None
