"""Records larger than DuckDB's JSON reader takes by default (issue 11 case 3).

Every record the writer accepts is readable by every path (fresh writers, replays, read models,
compaction, the CLI); a record whose line would exceed ``_rules.MAX_LINE_BYTES`` is refused
before anything is written, and a foreign line that long is a bad line, never a crash.
"""

from __future__ import annotations

import subprocess
import sys
import warnings
from datetime import date, datetime, timezone

import pytest
from metaspn_schemas import SignalEnvelope

from metaspn_store import BadLineWarning, FileSystemStore, InvalidRecordError
from metaspn_store._rules import MAX_LINE_BYTES

UTC = timezone.utc
T = datetime(2026, 2, 5, 12, tzinfo=UTC)
WINDOW = (datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 2, 9, tzinfo=UTC))


def small(k: int) -> SignalEnvelope:
    return SignalEnvelope(signal_id=f"s{k}", timestamp=T, source="w", payload_type="p", payload={"score": 0.1})


def test_a_20_mib_record_is_readable_by_every_path(tmp_path):
    big = SignalEnvelope(signal_id="big", timestamp=T, source="w", payload_type="p",
                         payload={"blob": "x" * (20 << 20), "score": 1.0})
    FileSystemStore(tmp_path).write_signals([big] + [small(k) for k in range(5)])
    fresh = FileSystemStore(tmp_path)  # a fresh writer builds its id index from the file
    fresh.write_signal(small(99))
    with pytest.raises(ValueError):
        fresh.write_signal(big, on_duplicate="raise")
    assert fresh.verify() == []
    replay = list(fresh.iter_signals(*WINDOW))
    assert replay[0] == big and len(replay) == 7
    top = fresh.get_top_recommendation_candidates(start=WINDOW[0], end=WINDOW[1], limit=1)
    assert top == [big]
    fresh.compact(before=date(2026, 3, 1))
    assert list(FileSystemStore(tmp_path).iter_signals(*WINDOW)) == replay
    done = subprocess.run([sys.executable, "-m", "metaspn_store", "verify", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr


def test_a_record_over_the_limit_is_refused_before_anything_is_written(tmp_path):
    store = FileSystemStore(tmp_path)
    store.write_signal(small(1))
    path = store.signals_dir / "2026-02-05.jsonl"
    size = path.stat().st_size
    too_big = SignalEnvelope(signal_id="too-big", timestamp=T, source="w", payload_type="p",
                             payload={"blob": "x" * MAX_LINE_BYTES})
    with pytest.raises(InvalidRecordError, match=r"'too-big'.*64 MiB") as caught:
        store.write_signals([small(2), too_big])
    assert caught.value.record_id == "too-big"
    assert path.stat().st_size == size


def test_a_foreign_line_over_the_limit_is_a_bad_line(tmp_path):
    store = FileSystemStore(tmp_path)
    store.write_signal(small(1))
    line = small(2).to_dict()
    line["payload"] = {"blob": "y" * (MAX_LINE_BYTES + 10)}
    import orjson

    with open(store.signals_dir / "2026-02-05.jsonl", "ab") as handle:
        handle.write(orjson.dumps(line) + b"\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BadLineWarning)
        fresh = FileSystemStore(tmp_path)
        assert [s.signal_id for s in fresh.iter_signals(*WINDOW)] == ["s1"]
        (report,) = fresh.verify()
    assert report.line == 2 and "longer than" in report.reason
