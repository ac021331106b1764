"""Arrow values built from buffers (``_codec``): equal to pyarrow's own constructors, and the
paths that use them never import pandas (pyarrow imports it the first time a Python object is
handed to ``pa.array``: a quarter of a second to a second of a fresh process's first read)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metaspn_store._codec import (
    REF_FIELDS,
    bool_array,
    int64_range,
    int64_scalar,
    no_rows,
    repeated_date,
    rows_to_table,
    schema_for,
    string_array,
)
from metaspn_store._layout import EMISSIONS, SIGNALS

ROOT = Path(__file__).resolve().parents[1]
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=6)
OPT_TEXT = st.none() | TEXT
REF = st.fixed_dictionaries({name: OPT_TEXT for name in REF_FIELDS})


def _by_pyarrow(kind: Any, rows: list[dict[str, Any]]) -> pa.Table:
    schema = schema_for(kind)
    arrays = []
    for field in schema:
        values = [row[field.name] for row in rows]
        if pa.types.is_timestamp(field.type):
            arrays.append(pa.array(values, pa.int64()).cast(field.type))
        else:
            arrays.append(pa.array(values, field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


@st.composite
def _rows(draw: Any) -> tuple[Any, list[dict[str, Any]]]:
    kind = draw(st.sampled_from([SIGNALS, EMISSIONS]))
    rows = []
    for _ in range(draw(st.integers(0, 8))):
        row: dict[str, Any] = {}
        for field in schema_for(kind):
            if field.type == pa.string():
                row[field.name] = draw(OPT_TEXT)
            elif field.name == "entity_refs":
                row[field.name] = draw(st.none() | st.lists(REF, max_size=3))
            else:  # seq, timestamp (microseconds)
                row[field.name] = draw(st.integers(-(2**62), 2**62))
        rows.append(row)
    return kind, rows


@settings(max_examples=300, deadline=None)
@given(_rows())
def test_rows_to_table_equals_pyarrows_construction(case: tuple[Any, list[dict[str, Any]]]) -> None:
    kind, rows = case
    table = rows_to_table(kind, rows)
    table.validate(full=True)
    assert table.equals(_by_pyarrow(kind, rows))


@settings(max_examples=200, deadline=None)
@given(st.lists(OPT_TEXT, max_size=20), st.lists(st.booleans(), max_size=70), st.integers(0, 40),
       st.dates(date(1900, 1, 1), date(2200, 1, 1)))
def test_builders_equal_pyarrows_constructors(texts: list[str | None], flags: list[bool], n: int, day: date) -> None:
    for built, expected in (
        (string_array(texts), pa.array(texts, pa.string())),
        (bool_array(flags), pa.array(flags, pa.bool_())),
        (repeated_date(day, n), pa.array([day] * n, pa.date32())),
        (int64_range(n), pa.array(range(n), pa.int64())),
    ):
        built.validate(full=True)
        assert built.equals(expected)
    assert int64_scalar(n).equals(pa.scalar(n, pa.int64()))
    assert no_rows(schema_for(SIGNALS)).equals(schema_for(SIGNALS).empty_table())


SCRIPT = textwrap.dedent(
    """
    import sys
    from datetime import datetime, timedelta, timezone, date
    from metaspn_schemas import SignalEnvelope
    from metaspn_store import FileSystemStore

    ws = sys.argv[1]
    t0 = datetime(2026, 3, 1, tzinfo=timezone.utc)

    def sig(i, day, pad=""):
        return SignalEnvelope(signal_id=f"s{day}-{i}", timestamp=t0 + timedelta(days=day, seconds=i), source="x",
                              payload_type="T", payload={"i": i, "pad": pad},
                              entity_refs=[])

    store = FileSystemStore(ws)
    store.write_signals([sig(i, 0, "p" * 300) for i in range(1500)])  # over the bulk parse's threshold
    store.write_signals([sig(i, 1) for i in range(20)])  # a small file: the line-by-line path
    store.write_signal(sig(99, 2))
    fresh = FileSystemStore(ws)
    assert len(list(fresh.iter_signals(t0, t0 + timedelta(days=3)))) == 1521
    consumer = fresh.consumer("w")
    assert len(consumer.poll(5000)) == 1521
    consumer.commit()
    report = FileSystemStore(ws).compact(before=date(2026, 3, 3))
    assert len(report.days) == 2, report
    print(sorted(m for m in ("pandas",) if m in sys.modules))
    """
)


def test_writes_hot_reads_consumers_and_a_first_compaction_never_import_pandas(tmp_path: Path) -> None:
    pytest.importorskip("pandas")  # installed with the dev extras: otherwise nothing to show
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", "pandas was imported"


def test_the_script_sees_pandas_when_something_asks_for_it(tmp_path: Path) -> None:
    # The check above can fail: the same script with one pa.array of a list reports pandas.
    pytest.importorskip("pandas")
    script = SCRIPT.replace("print(sorted(", "import pyarrow as pa; pa.array([1]); print(sorted(")
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['pandas']"

