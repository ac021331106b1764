"""Write a workspace's closed days in the previous cold layout (up to commit 6d970cf on main):
``store/cold/<kind>/day=<day>/part-<generation:08d>.parquet`` plus ``_manifest.json``, byte for
byte the way that version's ``_cold.ColdTier.write_day`` / ``commit`` and ``_compactor.compact_day``
wrote them, so the conversion is tested against real old workspaces without old code."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from metaspn_store import FileSystemStore
from metaspn_store._codec import schema_for
from metaspn_store._hot import head_digest
from metaspn_store._layout import EMISSIONS, SIGNALS


def compact_the_old_way(store: FileSystemStore, before: date, *, keep_claim_on: date | None = None) -> None:
    """Move every hot day before ``before`` into the old layout. With ``keep_claim_on``, that
    day is left as a crash between the manifest commit and the hot file's deletion leaves it:
    the manifest claims the hot file's lines and the file is still there."""
    for kind in (SIGNALS, EMISSIONS):
        hot = store._hot[kind.name]
        root = store._layout.cold_dir(kind)
        manifest: dict = {"days": {}, "generation": 0}
        days = [d for d in hot.days() if d < before]
        tables = {}
        for day in days:
            table = hot.table(day)
            assert table is not None
            tables[day] = _first_copy(table.cast(schema_for(kind)), kind.id_field)
        counts: dict[str, int] = {}
        for table in tables.values():
            for record_id in table.column(kind.id_field).to_pylist():
                counts[record_id] = counts.get(record_id, 0) + 1
        for day, table in tables.items():
            manifest["generation"] += 1
            generation = manifest["generation"]
            folder = root / f"day={day.isoformat()}"
            folder.mkdir(parents=True, exist_ok=True)
            name = f"day={day.isoformat()}/part-{generation:08d}.parquet"
            type_col = "source" if "source" in table.column_names else "emission_type"
            ordered = table.sort_by([(type_col, "ascending"), ("timestamp", "ascending"), ("seq", "ascending")])
            pq.write_table(ordered.cast(schema_for(kind)), root / name, compression="zstd", compression_level=3,
                           row_group_size=64 * 1024, write_statistics=True)
            path = store._layout.hot_file(kind, day)
            data = path.read_bytes()
            claimed = day == keep_claim_on
            manifest["days"][day.isoformat()] = {
                "files": [name],
                "hot_file": [os.stat(path).st_ino, head_digest(data)] if claimed else None,
                "hot_lines": data.count(b"\n") if claimed else 0,
                "shared_ids": sorted(i for i in table.column(kind.id_field).to_pylist() if counts[i] > 1),
            }
            if not claimed:
                path.unlink()
                hot.forget(day)
        root.mkdir(parents=True, exist_ok=True)
        (root / "_manifest.json").write_bytes(orjson.dumps(manifest, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2))


def _first_copy(table: pa.Table, id_field: str) -> pa.Table:
    seen: set[str] = set()
    keep = []
    for record_id in table.column(id_field).to_pylist():
        keep.append(record_id not in seen)
        seen.add(record_id)
    out = table.filter(pa.array(keep, pa.bool_()))
    return out.set_column(out.schema.get_field_index("seq"), "seq", pa.array(range(out.num_rows), pa.int64()))


def legacy_files(root: Path) -> list[Path]:
    return sorted(p for p in root.glob("store/cold/*/day=*/part-*.parquet") if len(p.name) == len("part-00000001.parquet"))


__all__ = ["compact_the_old_way", "legacy_files", "pc"]
