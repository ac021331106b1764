"""Compaction takes a day's rows from the hot tier's parse (the one the id index build made)
only when that parse is of the bytes the compactor read (``_compactor._hot_parse``)."""

from __future__ import annotations

import warnings
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest

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


def test_compaction_saves_no_parse_of_the_days_it_compacts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Two days over the size from which parses are saved; only the first is compacted. Every file
    # the store writes atomically is recorded (the writes still happen).
    from metaspn_store import _hot, _ipc

    later = date(2026, 2, 6)
    folder = tmp_path / "store" / "signals"
    folder.mkdir(parents=True)
    for day in (DAY, later):
        line = _line("x").replace(b"2026-02-05", day.isoformat().encode())
        n = _hot.SAVE_PARSE_BYTES // len(line) + 10
        (folder / f"{day.isoformat()}.jsonl").write_bytes(b"".join(line.replace(b'"x"', f'"{day}-{i}"'.encode())
                                                                     for i in range(n)))
    store = FileSystemStore(tmp_path)
    written: list[Path] = []
    real = _ipc.write_atomic

    def recording(path: Path, *args: Any, **kwargs: Any) -> Any:
        written.append(Path(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(_ipc, "write_atomic", recording)
    report = store.compact(before=later)
    assert [d.day for d in report.days] == [DAY.isoformat()]
    layout = store._layout
    assert layout.saved_parse(store._hot["signals"].kind, later) in written  # the day that stays hot: saved
    assert layout.saved_parse(store._hot["signals"].kind, DAY) not in written  # committed, then deleted: never saved
    # afterwards a parse of that day (late lines) is saved again: the exception ended with the compaction
    written.clear()
    (folder / f"{DAY.isoformat()}.jsonl").write_bytes(b"".join(_line(f"late-{i}") for i in range(n)))
    store._hot["signals"].table(DAY)
    assert layout.saved_parse(store._hot["signals"].kind, DAY) in written
