"""The Season 1 totals' two ways of adding each run's values in order (folded per run, or
position by position across runs) give the reference's loop bit for bit."""

from __future__ import annotations

from functools import reduce
from operator import add

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from metaspn_store._season1 import _sequential_sums

# Values whose sum depends on the order of the additions (cancellation, rounding, -0.0, inf).
VALUES = st.one_of(
    st.sampled_from([1e16, -1e16, 1.0, -1.0, 0.1, 0.2, 0.3, -0.0, 0.0, 1e-300, 2.5, float("inf")]),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
)


def reference(values: list[float], runs: list[tuple[int, int]], repeat: int) -> list[float]:
    out = []
    for start, end in runs:
        total = 0.0
        for value in values[start:end]:
            for _ in range(repeat):
                total += value
        out.append(total)
    return out


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(VALUES, min_size=1, max_size=12), min_size=1, max_size=15), st.integers(1, 3),
       st.integers(1, 4))
def test_both_ways_equal_the_loop(groups, repeat, chunks):
    values = [v for group in groups for v in group]
    runs, start = [], 0
    for group in groups:
        runs.append((start, start + len(group)))
        start += len(group)
    size = max(1, len(values) // chunks)
    column = pa.chunked_array([values[i:i + size] for i in range(0, len(values), size)], pa.float64())
    expected = reference(values, runs, repeat)
    for how in ("fold", "columns", "auto"):
        got = _sequential_sums(column, runs, repeat, how)
        assert [repr(x) for x in got] == [repr(x) for x in expected], how


def test_reduce_is_the_loop():
    values = [1e16, 1.0, -1e16, 1.0]
    assert reduce(add, values, 0.0) == 1.0  # ((1e16 + 1) - 1e16) + 1: the 1.0 is lost first
