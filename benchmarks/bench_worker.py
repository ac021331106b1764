"""One benchmark operation in one fresh process; run by ``benchmarks/run.py`` inside each venv.

Usage: ``python bench_worker.py '<json spec>'``. The spec names an operation, a workspace and the
operation's parameters. The worker prints one JSON line: the time of the first call on an opened
store (``seconds``), optionally of a second call in the same process (``warm_seconds``), the
process's peak RSS, and a digest of the result so that run.py can check that both
implementations returned the same thing.

Only the public API is used, so the same file runs against metaspn-store 0.1.8 and this package
(both import as ``metaspn_store``). The sample generator is loaded from the repository by path
(it needs only ``metaspn_schemas``), so both venvs build identical envelopes for the write tests.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import json
import os
import resource
import sys
import time
from datetime import date, datetime, timedelta, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from metaspn_schemas import EntityRef, SignalEnvelope

import metaspn_store
from metaspn_store import FileSystemStore

UTC = timezone.utc
SCORE_SOURCES = ["score.worker"]
CANDIDATE_TYPES = ["RecommendationCandidate"]


def _load_sample(path: str) -> Any:
    spec = importlib.util.spec_from_file_location("metaspn_bench_sample", path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load the sample generator from {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def _digest(ids: list[str]) -> str:
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16]


def _ids(items: list[Any]) -> list[str]:
    return [getattr(item, "signal_id", None) or item.emission_id for item in items]


def _rel_paths(paths: list[Any], workspace: Path) -> list[str]:
    return [str(Path(p).resolve().relative_to(workspace.resolve())) for p in paths]


# -- read operations: each returns (callable doing one call, summariser of its result) -----------


def _reads(op: str, store: Any, spec: dict[str, Any]) -> Any:
    start, end = _ts(spec["start"]), _ts(spec["end"])
    if op == "replay":

        def call() -> Any:
            # A rolling hash keeps the check cheap and the memory flat (PYTHONHASHSEED is fixed).
            count = 0
            rolling = 0
            for signal in store.iter_signals(start, end):
                rolling = hash((rolling, signal.signal_id))
                count += 1
            return count, rolling

        return call, lambda result: {"count": result[0], "digest": f"{result[1] & 0xFFFFFFFFFFFF:012x}"}
    if op == "top_candidates":

        def call() -> Any:
            return store.get_top_recommendation_candidates(
                start=start, end=end, limit=25, sources=SCORE_SOURCES, payload_types=CANDIDATE_TYPES
            )

        return call, lambda result: {"count": len(result), "digest": _digest(_ids(result))}
    if op == "ready_candidates":

        def call() -> Any:
            return store.get_ready_candidates(
                start=start, end=end, limit=50, sources=SCORE_SOURCES, payload_types=CANDIDATE_TYPES
            )

        return call, lambda result: {"count": len(result), "digest": _digest(_ids(result))}
    if op == "recent_by_entity":
        entity = EntityRef.from_dict(spec["entity"])

        def call() -> Any:
            return store.get_recent_signals_by_entity(entity_ref=entity, limit=20, start=start, end=end)

        return call, lambda result: {"count": len(result), "digest": _digest(_ids(result))}
    if op == "outcome_buckets":
        now = _ts(spec["now"])

        def call() -> Any:
            return store.get_outcome_window_buckets(now=now, start=start, end=end)

        def summary(result: dict[str, list[Any]]) -> dict[str, Any]:
            names = sorted(result)
            return {
                "count": {name: len(result[name]) for name in names},
                "digest": _digest([f"{name}:{i}" for name in names for i in _ids(result[name])]),
            }

        return call, summary
    raise ValueError(f"unknown read operation {op!r}")


def _new_signals(sample: Any, n: int, seed: int, day: date) -> list[SignalEnvelope]:
    out: list[SignalEnvelope] = []
    for _, signals, _ in sample.iter_sample_days(days=1, signals_per_day=n, start=day, seed=seed):
        out.extend(signals)
    return out


def _compact_kwargs(compact: Any, spec: dict[str, Any]) -> dict[str, Any]:
    """Ask the compactor to treat every generated day as closed, whatever the wall clock says."""
    params = inspect.signature(compact).parameters
    through = date.fromisoformat(spec["last_day"])
    kwargs: dict[str, Any] = {}
    for name in ("now", "as_of"):
        if name in params:
            kwargs[name] = datetime.combine(through + timedelta(days=2), datetime.min.time(), UTC)
    for name in ("before", "until", "closed_before"):
        if name in params:
            kwargs[name] = through + timedelta(days=1)
    for name in ("through", "up_to", "end"):
        if name in params:
            kwargs[name] = through
    return kwargs


def run(spec: dict[str, Any]) -> dict[str, Any]:
    op = spec["op"]
    workspace = Path(spec["workspace"])
    out: dict[str, Any] = {"op": op, "warm_seconds": None}

    if op == "generate":
        sample = _load_sample(spec["sample_path"])
        store = FileSystemStore(workspace)
        began = time.perf_counter()
        counts = sample.generate_workspace(
            store,
            days=spec["days"],
            signals_per_day=spec["signals_per_day"],
            start=date.fromisoformat(spec["start_day"]),
            seed=spec["seed"],
            emission_ratio=spec["emission_ratio"],
        )
        out["seconds"] = time.perf_counter() - began
        out["count"] = counts
        hot = sample.hot_entities(signals_per_day=spec["signals_per_day"], seed=spec["seed"], top=3)
        out["hot_entities"] = [ref.to_dict() for ref in hot]
    elif op in (
        "write_single",
        "write_batch",
        "write_single_fsync",
        "write_batch_fsync",
        "write_single_compacted",
        "write_batch_compacted",
    ):
        sample = _load_sample(spec["sample_path"])
        first = _new_signals(sample, spec["n"], seed=1001, day=date(2026, 3, 1))
        second = _new_signals(sample, spec["n"], seed=1002, day=date(2026, 3, 2)) if spec.get("warm") else []
        fsync = op.endswith("_fsync") and "durability" in inspect.signature(FileSystemStore).parameters
        store = FileSystemStore(workspace, durability="fsync") if fsync else FileSystemStore(workspace)
        if op.endswith("_compacted"):
            # A populated store (compacted for the new package): one untimed write first loads
            # or builds the id index, so the timed writes are the steady state.
            store.write_signal(
                SignalEnvelope(
                    signal_id="s_bench_warm_up",
                    timestamp=datetime(2026, 3, 1, tzinfo=UTC),
                    source="bench.worker",
                    payload_type="BenchProbe",
                    payload={"probe": 0},
                )
            )
        if op.startswith("write_single"):

            def write(batch: list[SignalEnvelope]) -> list[Any]:
                return [store.write_signal(signal) for signal in batch]
        else:

            def write(batch: list[SignalEnvelope]) -> list[Any]:
                return list(store.write_signals(batch))

        began, cpu = time.perf_counter(), time.process_time()
        paths = write(first)
        out["seconds"] = time.perf_counter() - began
        # This process's CPU time (user + system) of the same call: on a shared machine it moves
        # much less than the wall time when other processes take the cores.
        out["cpu_seconds"] = time.process_time() - cpu
        rel = _rel_paths(paths, workspace)
        out["count"] = len(rel)
        out["digest"] = _digest(rel)
        if second:
            began = time.perf_counter()
            write(second)
            out["warm_seconds"] = time.perf_counter() - began
    elif op == "open_first_write":
        day = date.fromisoformat(spec["last_day"])
        noon = datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=12)

        # Runs on one reused workspace write new ids each time (run numbers start at first_run).
        run = spec.get("first_run", 0) + spec.get("run", 0)
        prefix = "s_bench_first_write_" + (f"{run}_" if run else "")

        def fresh(index: int) -> SignalEnvelope:
            return SignalEnvelope(
                signal_id=f"{prefix}{index}",
                timestamp=noon + timedelta(microseconds=index),
                source="bench.worker",
                payload_type="BenchProbe",
                payload={"probe": index},
            )

        probe, probe2 = fresh(1), fresh(2)
        began = time.perf_counter()
        store = FileSystemStore(workspace)
        path = store.write_signal(probe)
        out["seconds"] = time.perf_counter() - began
        out["count"] = 1
        out["digest"] = _digest(_rel_paths([path], workspace))
        if spec.get("warm"):
            began = time.perf_counter()
            store.write_signal(probe2)
            out["warm_seconds"] = time.perf_counter() - began
    elif op == "compact":
        store = FileSystemStore(workspace)
        if not hasattr(store, "compact"):
            raise RuntimeError("this metaspn_store has no compact()")
        kwargs = _compact_kwargs(store.compact, spec)
        began = time.perf_counter()
        result = store.compact(**kwargs)
        out["seconds"] = time.perf_counter() - began
        out["kwargs"] = {k: str(v) for k, v in kwargs.items()}
        out["metrics"] = _jsonable(result)
        out["parquet_bytes"] = sum(p.stat().st_size for p in workspace.rglob("*.parquet"))
        out["jsonl_bytes_after"] = sum(p.stat().st_size for p in workspace.rglob("*.jsonl"))
    else:
        store = FileSystemStore(workspace)
        call, summarise = _reads(op, store, spec)
        began = time.perf_counter()
        result = call()
        out["seconds"] = time.perf_counter() - began
        out.update(summarise(result))
        del result
        if spec.get("warm"):
            began = time.perf_counter()
            result = call()
            out["warm_seconds"] = time.perf_counter() - began
            warm = summarise(result)
            out["warm_same"] = warm == {k: out[k] for k in warm}

    out["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    try:
        out["version"] = metadata.version("metaspn-store")
    except metadata.PackageNotFoundError:
        out["version"] = getattr(metaspn_store, "__version__", "?")
    return out


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "to_dict"):
        return _jsonable(value.to_dict())
    if hasattr(value, "__dataclass_fields__"):
        return {name: _jsonable(getattr(value, name)) for name in value.__dataclass_fields__}
    return str(value)


def main() -> int:
    spec = json.loads(sys.argv[1])
    if os.environ.get("PYTHONHASHSEED") != "0":
        print("warning: PYTHONHASHSEED is not 0; replay digests will not compare", file=sys.stderr)
    print(json.dumps(run(spec)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
