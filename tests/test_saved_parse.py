"""Saved parses of hot files (``store/.cache/<kind>/<day>.arrow``).

A reader that parsed a hot file saves its rows; the next process maps them and parses only what
was appended since. Every read must return exactly what a process without saved parses returns.
(The suite's conftest saves at any size, so these files exist after every first read here.)
"""

from __future__ import annotations

import shutil
import warnings
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import orjson
import pytest
from metaspn_schemas import EntityRef, SignalEnvelope

import metaspn_store._hot as hot_module
from metaspn_store import BadLineWarning, FileSystemStore

UTC = timezone.utc
DAY1 = datetime(2026, 2, 1, 12, tzinfo=UTC)
START, END = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC)
PERSON = EntityRef(ref_type="person", value="p-1")


def signal(record_id: str, when: datetime = DAY1, **payload: object) -> SignalEnvelope:
    return SignalEnvelope(
        signal_id=record_id,
        timestamp=when,
        source="test.worker",
        payload_type="Probe",
        payload=dict(payload),
        entity_refs=(PERSON,) if len(record_id) % 2 else (),
    )


def fill(workspace: Path, n: int = 200, days: int = 3) -> None:
    with FileSystemStore(workspace) as store:
        store.write_signals(
            signal(f"s-{k:04d}", DAY1 + timedelta(days=k % days, seconds=k), score=k / 7, tag=f"t{k % 5}")
            for k in range(n)
        )


def answers(workspace: Path, parsed: list[int] | None = None) -> dict[str, object]:
    """Everything a fresh process would answer, through the public API (``parsed`` gets the
    number of JSONL bytes the store had to parse)."""
    with FileSystemStore(workspace) as store:
        out = {
            "replay": [s.to_dict() for s in store.iter_signals(START, END)],
            "recent": [s.signal_id for s in store.get_recent_signals_by_entity(entity_ref=PERSON, limit=7)],
            "sql": store.sql("SELECT signal_id, day, payload->>'tag' AS tag FROM signals ORDER BY ALL").fetchall(),
        }
        if parsed is not None:
            parsed.append(store._hot["signals"].bytes_parsed)
        return out


def without_saved_parses(workspace: Path) -> dict[str, object]:
    copy = workspace.parent / (workspace.name + "-plain")
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(workspace, copy, ignore=shutil.ignore_patterns(".cache"))
    hot_module_threshold = hot_module.SAVE_PARSE_BYTES
    hot_module.SAVE_PARSE_BYTES = 1 << 62
    try:
        return answers(copy)
    finally:
        hot_module.SAVE_PARSE_BYTES = hot_module_threshold


def saved_files(workspace: Path) -> list[str]:
    return sorted(p.name for p in (workspace / "store" / ".cache" / "signals").glob("*.arrow"))


def hot_file(workspace: Path, day: str) -> Path:
    return workspace / "store" / "signals" / f"{day}.jsonl"


def test_reads_save_parses_and_fresh_processes_answer_the_same(tmp_path):
    fill(tmp_path)
    parsed: list[int] = []
    first = answers(tmp_path, parsed)
    assert saved_files(tmp_path) == ["2026-02-01.arrow", "2026-02-02.arrow", "2026-02-03.arrow"]
    assert answers(tmp_path, parsed) == first == without_saved_parses(tmp_path)
    assert parsed[0] == sum(p.stat().st_size for p in (tmp_path / "store" / "signals").glob("*.jsonl"))
    assert parsed[1] == 0


def test_lines_appended_after_the_save_are_read_and_torn_ones_are_not(tmp_path):
    fill(tmp_path)
    answers(tmp_path)
    with FileSystemStore(tmp_path) as store:
        store.write_signal(signal("late-1", DAY1 + timedelta(hours=3), tag="late"))
    line = hot_file(tmp_path, "2026-02-01").read_bytes().splitlines(keepends=True)[-1]
    with open(hot_file(tmp_path, "2026-02-01"), "ab") as handle:
        handle.write(b'{"signal_id": "torn')
    parsed: list[int] = []
    got = answers(tmp_path, parsed)
    assert parsed == [len(line)]  # only the appended line was parsed
    ids = [s["signal_id"] for s in got["replay"]]  # type: ignore[index]
    assert "late-1" in ids and not any(i.startswith("torn") for i in ids)
    assert got == without_saved_parses(tmp_path)


def test_a_replaced_or_truncated_file_is_parsed_again(tmp_path):
    fill(tmp_path)
    answers(tmp_path)
    path = hot_file(tmp_path, "2026-02-02")
    lines = path.read_bytes().splitlines(keepends=True)
    path.unlink()
    path.write_bytes(b"".join([lines[1], lines[0], *lines[2:]]))  # same size, other first line
    got = answers(tmp_path)
    assert got == without_saved_parses(tmp_path)
    path.write_bytes(b"".join(lines[:3]))  # shorter than the saved parse covers
    got = answers(tmp_path)
    assert len([s for s in got["replay"] if s["timestamp"].startswith("2026-02-02")]) == 3  # type: ignore[union-attr]
    assert got == without_saved_parses(tmp_path)


@pytest.mark.parametrize("damage", ["truncate", "empty", "other_schema"])
def test_a_damaged_saved_parse_is_ignored(tmp_path, damage):
    fill(tmp_path)
    expected = answers(tmp_path)
    saved = tmp_path / "store" / ".cache" / "signals" / "2026-02-01.arrow"
    if damage == "truncate":
        saved.write_bytes(saved.read_bytes()[:-100])
    elif damage == "empty":
        saved.write_bytes(b"")
    else:
        import pyarrow as pa

        from metaspn_store import _ipc

        table, meta = _ipc.read(saved)  # type: ignore[misc]
        _ipc.write_atomic(saved, table.drop_columns(["raw"]).append_column("raw", pa.nulls(table.num_rows)), meta)
    assert answers(tmp_path) == expected


def test_bad_lines_are_still_reported_from_a_saved_parse(tmp_path):
    fill(tmp_path)
    with open(hot_file(tmp_path, "2026-02-01"), "ab") as handle:
        handle.write(b'{"signal_id": 5, "timestamp": "nope"}\n')
        handle.write(orjson.dumps(signal("after-bad").to_dict()) + b"\n")
    with pytest.warns(BadLineWarning):
        expected = answers(tmp_path)
    with pytest.warns(BadLineWarning, match="2026-02-01.jsonl:68"):
        assert answers(tmp_path) == expected
    with FileSystemStore(tmp_path) as store, warnings.catch_warnings():
        warnings.simplefilter("ignore", BadLineWarning)
        assert [(Path(p.path).name, p.line) for p in store.verify()] == [("2026-02-01.jsonl", 68)]


def test_compaction_removes_the_saved_parses_of_compacted_days(tmp_path):
    fill(tmp_path)
    expected = answers(tmp_path)
    with FileSystemStore(tmp_path) as store:
        store.compact(before=date(2026, 2, 3))
    assert saved_files(tmp_path) == ["2026-02-03.arrow"]
    got = answers(tmp_path)
    assert got["replay"] == expected["replay"] and got["recent"] == expected["recent"]


def test_a_reader_that_cannot_save_still_reads(tmp_path):
    fill(tmp_path)
    (tmp_path / "store" / ".cache").write_text("not a folder")  # saving fails with an OSError
    assert answers(tmp_path) == without_saved_parses(tmp_path)


def _flip_byte_in(path: Path, needle: bytes) -> None:
    data = bytearray(path.read_bytes())
    at = data.find(needle)
    assert at >= 0, needle
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


def test_a_damaged_saved_parse_is_rebuilt_not_believed(tmp_path):
    """Issue 10 case 5: one changed byte of an id inside the saved parse."""
    fill(tmp_path)
    expected = answers(tmp_path)
    saved = sorted((tmp_path / "store" / ".cache" / "signals").glob("*.arrow"))
    assert saved
    for path in saved:
        _flip_byte_in(path, b"s-00")
    parsed: list[int] = []
    assert answers(tmp_path, parsed) == expected
    assert parsed[0] > 0  # it parsed the JSONL again instead


def test_covered_bytes_changed_in_place_invalidate_the_saved_parse(tmp_path):
    """Same inode, same first line, same size, but a covered byte changed: not the same file."""
    fill(tmp_path, days=1)
    answers(tmp_path)
    hot = next((tmp_path / "store" / "signals").glob("*.jsonl"))
    data = hot.read_bytes()
    last = data[data.rfind(b"\n", 0, len(data) - 1) + 1 :]
    changed = last.replace(b'"tag":"t', b'"tag":"T')
    assert changed != last and len(changed) == len(last)
    with open(hot, "r+b") as handle:
        handle.seek(len(data) - len(last))
        handle.write(changed)
    tags = {row[2] for row in answers(tmp_path)["sql"]}
    assert any(tag.startswith("T") for tag in tags)
