"""The compact id index: first partition per id survives merges; repeats are remembered."""

from __future__ import annotations

import random

import duckdb

import metaspn_store._index as index_module
from metaspn_store._index import IdIndex, digest


def test_digest_matches_duckdb_md5_halves():
    con = duckdb.connect()
    for value in ["abc", "s_20260201_0000001", "ünï ✓", ""]:
        expected = con.execute("SELECT md5_number_upper($v), md5_number_lower($v)", {"v": value}).fetchall()[0]
        assert digest(value) == expected


def test_first_code_wins_across_merges(monkeypatch):
    monkeypatch.setattr(index_module, "_MERGE_AT", 100)
    ids = [f"id-{i}" for i in range(2_500)]
    random.Random(7).shuffle(ids)
    index = IdIndex()
    for n, record_id in enumerate(ids):
        index.add(digest(record_id), n % 11)
    for record_id in ids:
        index.add(digest(record_id), 99)  # later writes never replace the first location
    assert len(index) == len(ids)
    assert all(index.get(digest(record_id)) == n % 11 for n, record_id in enumerate(ids))
    assert index.get(digest("never-written")) is None
    assert len(index.repeated) == len(ids)
    assert list(index._hi) == sorted(index._hi)
