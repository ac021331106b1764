"""Benchmark this package against metaspn-store 0.1.8 on identical workspaces.

    python benchmarks/run.py --size tiny|small|large [--repeat N] [--out benchmarks/results/RESULTS.md]
    python benchmarks/run.py --scaling [--scaling-sizes 60k,300k,1.5M]

What it does (see benchmarks/README.md for the details and the targets):

1. Creates, once, two virtualenvs under ``benchmarks/.cache/venvs/``: ``ref`` with
   ``metaspn-store==0.1.8`` from PyPI, ``new`` with this repository installed (editable, so later
   edits are picked up; it is reinstalled when pyproject.toml changes).
2. Generates the workspace once per size with ``metaspn_store.sample`` (in the ``new`` venv) and
   keeps a JSONL-only copy of it under ``benchmarks/.cache/workspaces/<size>/pristine``; every
   implementation then works on its own copy of those identical files.
3. Times each operation in a fresh process per run (``bench_worker.py`` in the implementation's
   venv): the first call on an opened store, the median over the runs, the peak RSS of the
   process; for the new package also a second call in the same process ("warm").
4. Prints a markdown table (medians, ratios 0.1.8 / new, peak RSS, whether both returned the same
   result, the issue's targets) and writes it to ``--out``, with the raw numbers as JSON beside it.

Only the standard library is used here, so any Python 3.10+ can run it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
import venv
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"
CACHE = BENCH / ".cache"
WORKER = BENCH / "bench_worker.py"
SAMPLE = ROOT / "metaspn_store" / "sample.py"
REF_REQUIREMENT = "metaspn-store==0.1.8"
START_DAY = date(2026, 2, 1)
SEED = 0
EMISSION_RATIO = 0.1


@dataclass(frozen=True)
class Size:
    name: str
    days: int
    per_day: int
    single_writes: int = 0
    batch_writes: int = 0

    @property
    def signals(self) -> int:
        return self.days * self.per_day


SIZES = {
    "tiny": Size("tiny", 2, 2_000, 500, 2_000),
    "small": Size("small", 7, 20_000, 2_000, 20_000),
    "large": Size("large", 30, 50_000, 5_000, 50_000),
    # Never compacted / migrated from 0.1.8: 600 hot day files of 50 signals (issue 11 case 5).
    "many-files": Size("many-files", 600, 50, 2_000, 2_000),
    # Scaling mode: the same 30 days at three densities (the largest is the "large" workspace).
    "scale-60k": Size("scale-60k", 30, 2_000),
    "scale-300k": Size("scale-300k", 30, 10_000),
}
SCALING_ALIASES = {"60k": "scale-60k", "300k": "scale-300k", "1.5M": "large", "1.5m": "large"}

READ_OPS = ("replay", "top_candidates", "outcome_buckets", "recent_by_entity", "ready_candidates")
# The *_fsync variants run the new package with durability="fsync"; 0.1.8 has no such mode and
# runs its ordinary writes there, so the row shows each mode next to 0.1.8's only mode.
WRITE_OPS = ("write_single", "write_batch", "write_single_fsync", "write_batch_fsync", "open_first_write")
# Writes into a populated store after one untimed warm-up write (which loads or builds the id
# index): the new package on the compacted copy of the workspace, 0.1.8 on its JSONL copy.
COMPACTED_WRITE_OPS = ("write_single_compacted", "write_batch_compacted")
ALL_OPS = (*READ_OPS, *WRITE_OPS, "compact", *COMPACTED_WRITE_OPS)
SIMPLE_WRITE_OPS = ("write_single", "write_batch", "write_single_fsync", "write_batch_fsync")

LABELS = {
    "replay": "full replay to envelopes",
    "top_candidates": "top candidates (limit 25)",
    "outcome_buckets": "outcome buckets",
    "recent_by_entity": "recent-by-entity (hot entity, limit 20)",
    "ready_candidates": "ready candidates (limit 50)",
    "write_single": "single writes",
    "write_batch": "batch writes",
    "write_single_fsync": "single writes, durability=fsync",
    "write_batch_fsync": "batch writes, durability=fsync",
    "open_first_write": "open + first write (id index)",
    "compact": "compaction",
    "write_single_compacted": "after compaction: single writes",
    "write_batch_compacted": "after compaction: batch writes",
}
# Reference cost in "passes over every signal", to predict its time before running it.
REF_PASSES = {
    "replay": 1.0,
    "top_candidates": 1.0,
    "ready_candidates": 1.0,
    "recent_by_entity": 1.0,
    "outcome_buckets": 2.4,
    "open_first_write": 0.4,
}
# Ratios (0.1.8 time / new time) the issue asks for; the "parquet" ones apply after compaction.
TARGETS = {
    "replay": 15,
    "top_candidates": 100,
    "outcome_buckets": 100,
    "recent_by_entity": 100,
    "write_batch": 10,
    "write_single": 2.5,
    "write_batch_compacted": 10,
    "write_single_compacted": 2.5,
    "open_first_write": 10,
}
PARQUET_TARGETS = {"top_candidates": 200, "outcome_buckets": 200}
COMPACTION_RATE_TARGET = 400_000
PARQUET_SIZE_TARGET = 1 / 7
REPLAY_RSS_TARGET_MB = 400


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- virtualenvs ---------------------------------------------------------------------------------


@dataclass
class Impl:
    key: str  # "ref" | "new"
    label: str
    venv_dir: Path
    requirement: list[str]
    marker: str
    python: Path = field(init=False)

    def __post_init__(self) -> None:
        self.python = self.venv_dir / "bin" / "python"


def _impls() -> dict[str, Impl]:
    pyproject = (ROOT / "pyproject.toml").read_bytes()
    return {
        "ref": Impl("ref", "0.1.8", CACHE / "venvs" / "ref", [REF_REQUIREMENT], REF_REQUIREMENT),
        "new": Impl(
            "new",
            "new",
            CACHE / "venvs" / "new",
            ["-e", str(ROOT)],
            "editable " + hashlib.sha256(pyproject).hexdigest(),
        ),
    }


def ensure_venv(impl: Impl, *, base_python: str, rebuild: bool) -> None:
    marker = impl.venv_dir / ".bench-installed"
    if not rebuild and marker.exists() and marker.read_text() == impl.marker and impl.python.exists():
        return
    log(f"creating venv {impl.venv_dir} ({' '.join(impl.requirement)})")
    if impl.venv_dir.exists():
        shutil.rmtree(impl.venv_dir)
    impl.venv_dir.parent.mkdir(parents=True, exist_ok=True)
    if Path(base_python).resolve() == Path(sys.executable).resolve():
        venv.EnvBuilder(with_pip=True, clear=True).create(impl.venv_dir)
    else:
        subprocess.run([base_python, "-m", "venv", str(impl.venv_dir)], check=True)
    subprocess.run(
        [str(impl.python), "-m", "pip", "install", "--quiet", *impl.requirement],
        check=True,
        env=_clean_env(),
    )
    marker.write_text(impl.marker)


def has_compact(impl: Impl) -> bool:
    probe = "import metaspn_store; print(hasattr(metaspn_store.FileSystemStore, 'compact'))"
    done = subprocess.run(
        [str(impl.python), "-c", probe], capture_output=True, text=True, cwd=BENCH, env=_clean_env()
    )
    return done.returncode == 0 and done.stdout.strip() == "True"


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    env["PYTHONHASHSEED"] = "0"
    return env


# -- workers -------------------------------------------------------------------------------------


@dataclass
class Outcome:
    status: str  # ok | timeout | error | skipped
    runs: list[dict[str, Any]] = field(default_factory=list)
    note: str = ""

    def median(self, key: str = "seconds") -> float | None:
        values = [run[key] for run in self.runs if run.get(key) is not None]
        return statistics.median(values) if values else None

    def rss(self) -> float | None:
        values = [run["rss_mb"] for run in self.runs if run.get("rss_mb") is not None]
        return max(values) if values else None

    def first(self, key: str) -> Any:
        return self.runs[0].get(key) if self.runs else None


def call_worker(impl: Impl, spec: dict[str, Any], timeout: float | None) -> tuple[str, dict[str, Any] | str]:
    try:
        done = subprocess.run(
            [str(impl.python), str(WORKER), json.dumps(spec)],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=BENCH,
            env=_clean_env(),
        )
    except subprocess.TimeoutExpired:
        return "timeout", f"timeout > {timeout:.0f} s"
    if done.returncode != 0:
        return "error", f"error: {_error_line(done.stderr)}"
    return "ok", json.loads(done.stdout.strip().splitlines()[-1])


def _error_line(stderr: str) -> str:
    """The exception line of a traceback (not the hints some libraries print after it)."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in reversed(lines):
        head = line.split(":", 1)[0]
        if not line.startswith(("File ", "^", "~")) and (head.endswith(("Error", "Exception", "Exit"))):
            return line[:200].replace("|", "/")
    return (lines[-1][:200] if lines else "no output").replace("|", "/")


def measure(
    impl: Impl,
    spec: dict[str, Any],
    *,
    repeat: int,
    timeout: float | None,
    fresh_copy_of: Path | None = None,
    keep_last_copy_at: Path | None = None,
) -> Outcome:
    """Run ``spec`` ``repeat`` times, each in a fresh process (and, if asked, a fresh workspace copy)."""
    outcome = Outcome("ok")
    for index in range(repeat):
        run_spec = dict(spec, run=index)
        scratch: Path | None = None
        if fresh_copy_of is not None:
            scratch = CACHE / "tmp" / f"{impl.key}-{spec['op']}-{index}"
            _copy_workspace(fresh_copy_of, scratch)
            run_spec["workspace"] = str(scratch)
        elif spec["op"] in SIMPLE_WRITE_OPS:
            scratch = CACHE / "tmp" / f"{impl.key}-{spec['op']}-{index}"
            if scratch.exists():
                shutil.rmtree(scratch)
            scratch.mkdir(parents=True)
            run_spec["workspace"] = str(scratch)
        status, result = call_worker(impl, run_spec, timeout)
        if scratch is not None:
            if keep_last_copy_at is not None and status == "ok" and index == repeat - 1:
                if keep_last_copy_at.exists():
                    shutil.rmtree(keep_last_copy_at)
                keep_last_copy_at.parent.mkdir(parents=True, exist_ok=True)
                scratch.rename(keep_last_copy_at)
            else:
                shutil.rmtree(scratch, ignore_errors=True)
        if status != "ok":
            assert isinstance(result, str)
            outcome.status, outcome.note = status, result
            break
        assert isinstance(result, dict)
        outcome.runs.append(result)
        warm = result.get("warm_seconds")
        log(
            f"  {impl.label:>5} {spec['op']:<18} run {index + 1}/{repeat}: {fmt_time(result['seconds'])}"
            + (f" (warm {fmt_time(warm)})" if warm is not None else "")
            + f", peak RSS {result['rss_mb']:.0f} MB"
        )
    return outcome


# -- workspaces ----------------------------------------------------------------------------------


def _copy_workspace(source: Path, target: Path) -> None:
    if target.exists():
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source, target)


SAVED_DIRS = (".cache", ".index")  # derived files the new package saves (parses, id index)


def _drop_saved(workspace: Path) -> None:
    """Remove the new package's saved parses and id index: the state right after migrating a
    0.1.8 workspace, or of a workspace only 0.1.8 ever wrote to."""
    for name in SAVED_DIRS:
        shutil.rmtree(workspace / "store" / name, ignore_errors=True)


def _jsonl_bytes(workspace: Path) -> int:
    return sum(p.stat().st_size for p in (workspace / "store").glob("*/*.jsonl"))


def ensure_workspace(size: Size, generator: Impl, *, regenerate: bool) -> dict[str, Any]:
    """Generate (or reuse) the pristine JSONL-only workspace of ``size``; return its metadata."""
    home = CACHE / "workspaces" / size.name
    pristine = home / "pristine"
    meta_path = home / "meta.json"
    wanted = {
        "size": size.name,
        "days": size.days,
        "signals_per_day": size.per_day,
        "seed": SEED,
        "emission_ratio": EMISSION_RATIO,
        "start_day": START_DAY.isoformat(),
        "sample_sha256": hashlib.sha256(SAMPLE.read_bytes()).hexdigest(),
    }
    if not regenerate and meta_path.exists() and pristine.exists():
        meta = json.loads(meta_path.read_text())
        if all(meta.get(k) == v for k, v in wanted.items()):
            return meta
    log(f"generating workspace {size.name}: {size.days} days x {size.per_day:,} signals ({generator.label})")
    if home.exists():
        shutil.rmtree(home)
    scratch = home / "generating"
    scratch.mkdir(parents=True)
    spec = {"op": "generate", "workspace": str(scratch), "sample_path": str(SAMPLE), **wanted}
    status, result = call_worker(generator, spec, timeout=None)
    if status != "ok":
        raise SystemExit(f"workspace generation failed with the {generator.label} package: {result}")
    assert isinstance(result, dict)
    # Keep only what a 0.1.8 workspace has, so neither side starts with the other's side files.
    for kind in ("signals", "emissions"):
        (pristine / "store" / kind).mkdir(parents=True)
        for part in sorted((scratch / "store" / kind).glob("*.jsonl")):
            shutil.move(str(part), pristine / "store" / kind / part.name)
    for kind in ("snapshots", "checkpoints"):
        (pristine / "store" / kind).mkdir(parents=True)
    shutil.rmtree(scratch)
    last_day = START_DAY + timedelta(days=size.days - 1)
    meta = {
        **wanted,
        "last_day": last_day.isoformat(),
        "signals": result["count"]["signals"],
        "emissions": result["count"]["emissions"],
        "jsonl_bytes": _jsonl_bytes(pristine),
        "hot_entities": result["hot_entities"],
        "generated_with": f"{generator.label} ({result['version']})",
        "generation_seconds": result["seconds"],
    }
    meta_path.write_text(json.dumps(meta, indent=2))
    log(
        f"  {meta['signals']:,} signals, {meta['emissions']:,} emissions, "
        f"{meta['jsonl_bytes'] / 1e6:.0f} MB JSONL in {result['seconds']:.1f} s"
    )
    return meta


def window(meta: dict[str, Any], *, one_day: bool = False) -> dict[str, str]:
    first = date.fromisoformat(meta["last_day"] if one_day else meta["start_day"])
    last = date.fromisoformat(meta["last_day"])
    start = datetime.combine(first, datetime.min.time(), timezone.utc)
    end = datetime.combine(last, datetime.max.time(), timezone.utc)  # inclusive, to the microsecond
    now = datetime.combine(last + timedelta(days=1), datetime.min.time(), timezone.utc)
    return {
        "start": start.isoformat(),
        "end": end.isoformat(),
        "now": now.isoformat(),
        "entity": meta["hot_entities"][0],
        "last_day": meta["last_day"],
    }


# -- formatting ----------------------------------------------------------------------------------


def fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms"
    if seconds < 100:
        return f"{seconds:.2f} s"
    return f"{seconds:.0f} s"


def fmt_ratio(ref: float | None, new: float | None) -> str:
    if ref is None or new is None or new <= 0:
        return "—"
    ratio = ref / new
    return f"{ratio:,.0f}x" if ratio >= 10 else f"{ratio:.1f}x"


def fmt_mb(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f} MB"


def _cell(outcome: Outcome | None, key: str = "seconds") -> str:
    if outcome is None:
        return "—"
    if outcome.status == "skipped":
        return outcome.note or "skipped"
    if outcome.status != "ok":
        return outcome.note
    return fmt_time(outcome.median(key))


def _same(ref: Outcome | None, new: Outcome | None) -> str:
    if ref is None or new is None or ref.status != "ok" or new.status != "ok":
        return "—"
    if ref.first("digest") == new.first("digest") and ref.first("count") == new.first("count"):
        return "yes"
    return f"NO ({ref.first('count')} vs {new.first('count')})"


def _verdict(ok: bool, size: Size) -> str:
    if size.name == "tiny":
        return "target at small/large:"
    return "met" if ok else "MISSED"


def _target(
    op: str, ref: Outcome | None, new: Outcome | None, targets: Mapping[str, float], size: Size
) -> str:
    goal = targets.get(op)
    if goal is None:
        return ""
    if size.name == "tiny":
        return f"(≥ {goal}x is for small/large)"
    if ref is None or new is None or ref.status != "ok" or new.status != "ok":
        return f"≥ {goal}x"
    ratio = (ref.median() or 0) / (new.median() or math.inf)
    return f"≥ {goal}x {'met' if ratio >= goal else 'MISSED'}"


# -- the comparison run --------------------------------------------------------------------------


def compare(args: argparse.Namespace, impls: dict[str, Impl]) -> tuple[str, dict[str, Any]]:
    size = SIZES[args.size]
    ops = [op for op in ALL_OPS if not args.only or op in args.only]
    generator = impls[args.gen_with]
    meta = ensure_workspace(size, generator, regenerate=args.regenerate)
    pristine = CACHE / "workspaces" / size.name / "pristine"
    first_write_meta, first_write_pristine = meta, pristine
    if args.first_write_size and args.first_write_size != size.name and "open_first_write" in ops:
        first_write_meta = ensure_workspace(
            SIZES[args.first_write_size], generator, regenerate=args.regenerate
        )
        first_write_pristine = CACHE / "workspaces" / args.first_write_size / "pristine"
    base = window(meta)
    results: dict[str, dict[str, Outcome]] = {"ref": {}, "new": {}, "new_first": {}, "new_parquet": {}}
    compaction: Outcome | None = None

    sides = [key for key in ("ref", "new") if not getattr(args, f"skip_{key}")]
    reads_at = {key: CACHE / "runs" / key / size.name for key in sides}
    if any(op in READ_OPS for op in ops):
        for key in sides:
            _copy_workspace(pristine, reads_at[key])
    per_record = 150e-6  # 0.1.8 seconds per signal per pass, until its replay measures it
    log(
        f"{size.name} workspace; runs per operation: 0.1.8 {args.ref_repeat}, new {args.repeat} "
        "(the two sides alternate per operation, so machine load hits both alike)"
    )
    for op in ops:
        if op == "compact" or op in COMPACTED_WRITE_OPS:
            continue
        for key in sides:
            impl = impls[key]
            is_ref = key == "ref"
            repeat = args.ref_repeat if is_ref else args.repeat
            timeout = args.ref_timeout if is_ref else args.new_timeout
            spec: dict[str, Any] = {"op": op, "workspace": str(reads_at[key]), "warm": not is_ref, **base}
            spec["sample_path"] = str(SAMPLE)
            op_meta = first_write_meta if op == "open_first_write" else meta
            if is_ref and args.ref_budget and op in REF_PASSES:
                estimate = REF_PASSES[op] * per_record * op_meta["signals"]
                if estimate > args.ref_budget:
                    results[key][op] = Outcome(
                        "skipped",
                        note=f"skipped: > budget (est. {fmt_time(estimate)} > {args.ref_budget:.0f} s)",
                    )
                    log(f"  {impl.label:>5} {op:<18} skipped (estimated {fmt_time(estimate)})")
                    continue
            if op in SIMPLE_WRITE_OPS:
                spec["n"] = size.single_writes if op.startswith("write_single") else size.batch_writes
                results[key][op] = measure(impl, spec, repeat=repeat, timeout=timeout)
            elif op == "open_first_write" and is_ref:
                spec["last_day"] = first_write_meta["last_day"]
                results[key][op] = measure(
                    impl, spec, repeat=repeat, timeout=timeout, fresh_copy_of=first_write_pristine
                )
            elif op == "open_first_write":
                # First on a copy of the JSONL-only workspace (no saved id index yet), then again
                # on that copy, which now has the index the first open saved.
                spec["last_day"] = first_write_meta["last_day"]
                reopened = CACHE / "runs" / "new" / f"{first_write_meta['size']}-first-write"
                results["new_first"][op] = measure(
                    impl,
                    spec,
                    repeat=1,
                    timeout=timeout,
                    fresh_copy_of=first_write_pristine,
                    keep_last_copy_at=reopened,
                )
                spec = dict(spec, workspace=str(reopened), first_run=1)
                results[key][op] = measure(impl, spec, repeat=repeat, timeout=timeout)
                shutil.rmtree(reopened, ignore_errors=True)
            elif is_ref:
                results[key][op] = measure(impl, spec, repeat=repeat, timeout=timeout)
            else:
                # First with no saved parses (as right after migrating from 0.1.8), then the
                # usual fresh processes, which find the parses the first one saved.
                _drop_saved(reads_at[key])
                results["new_first"][op] = measure(impl, dict(spec, warm=False), repeat=1, timeout=timeout)
                results[key][op] = measure(impl, spec, repeat=repeat, timeout=timeout)
            if is_ref and op == "replay" and results[key][op].status == "ok":
                per_record = (results[key][op].median() or 0) / max(1, meta["signals"])

    compacted_writes = [op for op in ops if op in COMPACTED_WRITE_OPS]
    if "new" in sides and ("compact" in ops or compacted_writes):
        impl = impls["new"]
        if not has_compact(impl):
            log("new package has no FileSystemStore.compact(): skipping compaction")
            compaction = Outcome("skipped", note="no compact() yet")
        else:
            compacted_at = CACHE / "runs" / "new" / f"{size.name}-compacted"
            compaction = measure(
                impl,
                {"op": "compact", "workspace": "", **base},
                repeat=args.compact_repeat,
                timeout=args.new_timeout,
                fresh_copy_of=pristine,
                keep_last_copy_at=compacted_at,
            )
            if compaction.status == "ok":
                for op in compacted_writes:
                    for key in sides:
                        is_ref = key == "ref"
                        spec = {
                            "op": op,
                            "workspace": "",
                            "warm": False,
                            "sample_path": str(SAMPLE),
                            "n": size.single_writes if op.startswith("write_single") else size.batch_writes,
                            **base,
                        }
                        results[key][op] = measure(
                            impls[key],
                            spec,
                            repeat=args.ref_repeat if is_ref else args.repeat,
                            timeout=args.ref_timeout if is_ref else args.new_timeout,
                            fresh_copy_of=pristine if is_ref else compacted_at,
                        )
                for op in ops:
                    if op in READ_OPS:
                        spec = {"op": op, "workspace": str(compacted_at), "warm": True, **base}
                        results["new_parquet"][op] = measure(
                            impl, spec, repeat=args.repeat, timeout=args.new_timeout
                        )

    report = render_compare(args, size, meta, first_write_meta, ops, results, compaction, impls)
    raw = {
        "meta": meta,
        "first_write_workspace": first_write_meta,
        "args": {k: v for k, v in vars(args).items() if k != "func"},
        "results": {
            side: {op: {"status": o.status, "note": o.note, "runs": o.runs} for op, o in by_op.items()}
            for side, by_op in results.items()
        },
        "compaction": None
        if compaction is None
        else {"status": compaction.status, "note": compaction.note, "runs": compaction.runs},
    }
    return report, raw


def _op_label(op: str, size: Size, meta: dict[str, Any], first_write_meta: dict[str, Any]) -> str:
    label = LABELS[op]
    if op == "replay":
        return f"{label} ({meta['signals']:,} signals)"
    if op in COMPACTED_WRITE_OPS:
        what = (
            f"{size.single_writes:,} × write_signal"
            if op.startswith("write_single")
            else f"write_signals of {size.batch_writes:,}"
        )
        return f"{label} ({what} after one warm-up write; 0.1.8 on the same JSONL)"
    if op.startswith("write_single"):
        return f"{label} ({size.single_writes:,} × write_signal, fresh workspace)"
    if op.startswith("write_batch"):
        return f"{label} (write_signals of {size.batch_writes:,}, fresh workspace)"
    if op == "open_first_write":
        return f"{label} ({first_write_meta['size']} workspace, {first_write_meta['signals']:,} signals)"
    return label


def render_compare(
    args: argparse.Namespace,
    size: Size,
    meta: dict[str, Any],
    first_write_meta: dict[str, Any],
    ops: list[str],
    results: dict[str, dict[str, Outcome]],
    compaction: Outcome | None,
    impls: dict[str, Impl],
) -> str:
    versions = {}
    for key in ("ref", "new"):
        for outcome in results[key].values():
            if outcome.runs:
                versions[key] = outcome.runs[0].get("version", "?")
                break
    lines = [
        f"# metaspn-store benchmarks: {size.name}",
        "",
        f"- run: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}, {platform.platform()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, commit {_git_commit()}, "
        f"load average {args.load_at_start} at start (other processes on the machine skew the times)",
        f"- workspace: {size.days} days × {size.per_day:,} signals = {meta['signals']:,} signals + "
        f"{meta['emissions']:,} emissions, {meta['jsonl_bytes'] / 1e6:,.0f} MB of JSONL "
        f"(generated once with metaspn_store.sample, seed {meta['seed']}; each side reads its own copy)",
        f"- versions: reference metaspn-store {versions.get('ref', '0.1.8')}, "
        f"new metaspn-store {versions.get('new', '?')}",
        f"- runs per operation: 0.1.8 {args.ref_repeat}, new {args.repeat}; each run is a fresh process "
        "timing the first call on an opened store (files already in the OS page cache); "
        '"warm" is a second call in the same process. Times are medians; ratio = 0.1.8 / new. '
        "Read windows span the whole workspace.",
        f"- 0.1.8 limits: timeout {args.ref_timeout:.0f} s per run"
        + (f", operations estimated over {args.ref_budget:.0f} s skipped" if args.ref_budget else ""),
        "",
        "- new, first open: one fresh process on a workspace without the files this package saves "
        "(parses of hot files, the id index), as right after switching from 0.1.8; it saves them. "
        "new: fresh processes after that (the steady state of a store this package uses); "
        "new warm: a second call in the same process.",
        "",
        "| operation | 0.1.8 | new, first open | new | new warm | ratio first open | ratio | ratio warm "
        "| 0.1.8 peak RSS | new peak RSS | same result | target |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for op in ops:
        if op == "compact":
            continue
        ref, new = results["ref"].get(op), results["new"].get(op)
        first = results["new_first"].get(op)
        lines.append(
            "| "
            + " | ".join(
                [
                    _op_label(op, size, meta, first_write_meta),
                    _cell(ref),
                    _cell(first),
                    _cell(new),
                    _cell(new, "warm_seconds"),
                    fmt_ratio(ref.median() if ref else None, first.median() if first else None),
                    fmt_ratio(ref.median() if ref else None, new.median() if new else None),
                    fmt_ratio(ref.median() if ref else None, new.median("warm_seconds") if new else None),
                    fmt_mb(ref.rss() if ref else None),
                    fmt_mb(new.rss() if new else None),
                    _same(ref, new),
                    _target(op, ref, new, TARGETS, size)
                    if op != "open_first_write" or first_write_meta["size"] == "large"
                    else "(≥ 10x on large)",
                ]
            )
            + " |"
        )
    if "compact" in ops and compaction is not None:
        if compaction.status == "ok":
            seconds = compaction.median() or math.inf
            metrics = compaction.runs[-1].get("metrics") or {}
            records = metrics.get("records_in") or (meta["signals"] + meta["emissions"])
            rate = records / seconds
            parquet = compaction.runs[-1].get("parquet_bytes", 0)
            share = parquet / meta["jsonl_bytes"] if meta["jsonl_bytes"] else math.nan
            lines.append(
                f"| compaction ({records:,} records) | n/a | | {fmt_time(seconds)} | | | | | | "
                f"{fmt_mb(compaction.rss())} | | {rate:,.0f} records/s "
                f"({_verdict(rate >= COMPACTION_RATE_TARGET, size)} ≥ 400,000/s); Parquet "
                f"{parquet / 1e6:,.1f} MB = 1/{1 / share:.1f} of JSONL "
                f"({_verdict(share <= PARQUET_SIZE_TARGET, size)} ≤ 1/7) |"
            )
            for op in ops:
                if op not in READ_OPS or op not in results["new_parquet"]:
                    continue
                ref, new = results["ref"].get(op), results["new_parquet"][op]
                lines.append(
                    "| "
                    + " | ".join(
                        [
                            f"after compaction: {_op_label(op, size, meta, first_write_meta)}",
                            _cell(ref),
                            "",
                            _cell(new),
                            _cell(new, "warm_seconds"),
                            "",
                            fmt_ratio(ref.median() if ref else None, new.median()),
                            fmt_ratio(ref.median() if ref else None, new.median("warm_seconds")),
                            fmt_mb(ref.rss() if ref else None),
                            fmt_mb(new.rss()),
                            _same(ref, new),
                            _target(op, ref, new, PARQUET_TARGETS, size),
                        ]
                    )
                    + " |"
                )
        else:
            lines.append(f"| compaction | n/a | | {compaction.note} | | | | | | | | |")
    replay = results["new"].get("replay")
    notes = []
    cpu_rows = []
    for op in ops:
        ref, new = results["ref"].get(op), results["new"].get(op)
        ref_cpu = ref.median("cpu_seconds") if ref else None
        new_cpu = new.median("cpu_seconds") if new else None
        if ref_cpu and new_cpu:
            cpu_rows.append(
                f"{LABELS[op]} {fmt_time(ref_cpu)} / {fmt_time(new_cpu)} = {fmt_ratio(ref_cpu, new_cpu)}"
            )
    if cpu_rows:
        notes.append(
            "- CPU time of the timed call (process_time, user + system; medians, 0.1.8 / new = ratio), "
            "less disturbed by other processes than the wall times above: " + "; ".join(cpu_rows) + "."
        )
    if size.name == "large" and replay is not None and replay.status == "ok":
        rss = replay.rss() or 0
        notes.append(
            f"- full replay of the large workspace: new peak RSS {rss:,.0f} MB "
            f"({'met' if rss < REPLAY_RSS_TARGET_MB else 'MISSED'}: target < {REPLAY_RSS_TARGET_MB} MB)"
        )
    if size.name == "small":
        notes.append("- the ≥ 200x Parquet targets for top candidates and outcome buckets are for this size.")
    notes.append(
        "- peak RSS is the worker process's ru_maxrss (interpreter, imports and, for the write rows, "
        "the envelopes to write, which are built before the timer starts)."
    )
    return "\n".join([*lines, "", *notes, ""])


def _git_commit() -> str:
    try:
        done = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--", "metaspn_store", "pyproject.toml"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return "?"
    commit = done.stdout.strip() or "?"
    return commit + ("+dirty" if dirty.stdout.strip() else "")


# -- the scaling run -----------------------------------------------------------------------------


def scaling(args: argparse.Namespace, impls: dict[str, Impl]) -> tuple[str, dict[str, Any]]:
    impl = impls["new"]
    names = [SCALING_ALIASES.get(name, name) for name in args.scaling_sizes]
    sizes = [SIZES[name] for name in names]
    ops = [op for op in READ_OPS if not args.only or op in args.only]
    compactable = has_compact(impl)
    tiers = ["hot", "parquet"] if compactable else ["hot"]
    table: dict[tuple[str, str, str], dict[str, Outcome]] = {}
    metas = {}
    notes: list[str] = [] if compactable else ["- this metaspn_store has no compact(): hot tier only"]
    for size in sizes:
        meta = ensure_workspace(size, impls[args.gen_with], regenerate=args.regenerate)
        metas[size.name] = meta
        pristine = CACHE / "workspaces" / size.name / "pristine"
        for tier in tiers:
            at = CACHE / "runs" / "scaling" / f"{size.name}-{tier}"
            _copy_workspace(pristine, at)
            if tier == "parquet":
                compact = measure(
                    impl, {"op": "compact", "workspace": str(at), **window(meta)}, repeat=1, timeout=None
                )
                if compact.status != "ok":
                    log(f"compaction failed on {size.name}: {compact.note}")
                    notes.append(f"- parquet tier of {size.name}: compaction failed ({compact.note})")
                    continue
            for label, one_day in (("30 days", False), ("1 day", True)):
                spec_base = window(meta, one_day=one_day)
                log(f"scaling: {size.name}, {tier} tier, {label} window")
                for op in ops:
                    spec = {"op": op, "workspace": str(at), "warm": True, **spec_base}
                    outcome = measure(impl, spec, repeat=args.repeat, timeout=args.new_timeout)
                    table.setdefault((op, label, tier), {})[size.name] = outcome
    lines = [
        "# metaspn-store scaling (new package only)",
        "",
        f"- run: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}, {platform.platform()}, "
        f"{os.cpu_count()} CPUs, commit {_git_commit()}, load average {args.load_at_start} at start",
        "- workspaces: "
        + "; ".join(
            f"{s.name} = {s.days} days × {s.per_day:,}/day = {metas[s.name]['signals']:,} signals"
            for s in sizes
        ),
        "- windows: the whole 30 days, or only the last day (1/30 of the data). Each cell: median "
        f"of {args.repeat} run(s), each a fresh process (first call) / warm second call in it. "
        "Growth = log(time ratio) / log(size ratio) from the smallest to the largest workspace "
        "(1.0 = linear in data size, 0 = independent of it). Tier: hot = daily JSONL files as written; "
        "parquet = the same workspace after compact().",
        "",
        "| operation | window | tier | "
        + " | ".join(f"{metas[s.name]['signals']:,} signals" for s in sizes)
        + " | growth (fresh) | growth (warm) |",
        "|---|---|---|" + "---:|" * len(sizes) + "---:|---:|",
    ]
    for (op, label, tier), by_size in table.items():
        cells = []
        for s in sizes:
            cell = by_size.get(s.name)
            if cell is None or cell.status != "ok":
                cells.append(cell.note if cell else "—")
            else:
                cells.append(f"{fmt_time(cell.median())} / {fmt_time(cell.median('warm_seconds'))}")
        growth = []
        for key in ("seconds", "warm_seconds"):
            lo, hi = by_size.get(sizes[0].name), by_size.get(sizes[-1].name)
            n_lo, n_hi = metas[sizes[0].name]["signals"], metas[sizes[-1].name]["signals"]
            t_lo = lo.median(key) if lo else None
            t_hi = hi.median(key) if hi else None
            if t_lo and t_hi and n_hi != n_lo:
                growth.append(f"{math.log(t_hi / t_lo) / math.log(n_hi / n_lo):.2f}")
            else:
                growth.append("—")
        lines.append(
            f"| {LABELS[op]} | {label} | {tier} | " + " | ".join(cells) + f" | {growth[0]} | {growth[1]} |"
        )
    raw = {
        "metas": metas,
        "results": {
            f"{op}|{label}|{tier}": {
                name: {"status": o.status, "note": o.note, "runs": o.runs} for name, o in v.items()
            }
            for (op, label, tier), v in table.items()
        },
    }
    return "\n".join([*lines, "", *notes, ""]), raw


# -- command line --------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark this metaspn-store against metaspn-store 0.1.8 on identical workspaces.",
        epilog="Example: python benchmarks/run.py --size small --out benchmarks/results/RESULTS.md",
    )
    parser.add_argument("--size", choices=("tiny", "small", "large", "many-files"), default="tiny")
    parser.add_argument(
        "--scaling", action="store_true", help="time the new package's reads at 3 sizes instead"
    )
    parser.add_argument(
        "--scaling-sizes",
        default="60k,300k,1.5M",
        help="comma-separated scaling workspaces (60k, 300k, 1.5M: 30 days each); default %(default)s",
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="fresh-process runs per operation for the new package"
    )
    parser.add_argument(
        "--ref-repeat", type=int, help="runs per operation for 0.1.8 (default: 3 tiny, 1 otherwise)"
    )
    parser.add_argument(
        "--compact-repeat", type=int, default=None, help="compaction runs (default: --repeat)"
    )
    parser.add_argument(
        "--ref-timeout", type=float, help="seconds before a 0.1.8 run is killed (default by size)"
    )
    parser.add_argument(
        "--new-timeout", type=float, default=1800.0, help="seconds before a new-package run is killed"
    )
    parser.add_argument(
        "--ref-budget",
        type=float,
        help="skip 0.1.8 operations estimated to take longer than this many seconds (default: 600 on large)",
    )
    parser.add_argument("--only", help=f"comma-separated subset of: {', '.join(ALL_OPS)}")
    parser.add_argument("--skip-ref", action="store_true", help="do not run 0.1.8")
    parser.add_argument("--skip-new", action="store_true", help="do not run the new package")
    parser.add_argument(
        "--first-write-size",
        choices=("tiny", "small", "large"),
        help="workspace for open + first write (default: the --size one; the issue's target is on large)",
    )
    parser.add_argument(
        "--gen-with", choices=("new", "ref"), default="new", help="package that writes the workspace"
    )
    parser.add_argument("--regenerate", action="store_true", help="regenerate the cached workspaces")
    parser.add_argument("--rebuild-venvs", action="store_true", help="recreate the two virtualenvs")
    parser.add_argument("--python", default=sys.executable, help="interpreter the virtualenvs are made from")
    parser.add_argument(
        "--out", type=Path, help="markdown file to write (default benchmarks/results/<size>.md)"
    )
    args = parser.parse_args(argv)
    args.only = [op.strip() for op in args.only.split(",")] if args.only else []
    unknown = [op for op in args.only if op not in ALL_OPS]
    if unknown:
        parser.error(f"unknown operation(s) {unknown}; choose from {', '.join(ALL_OPS)}")
    args.scaling_sizes = [s.strip() for s in args.scaling_sizes.split(",") if s.strip()]
    for name in args.scaling_sizes:
        if SCALING_ALIASES.get(name, name) not in SIZES:
            parser.error(f"unknown scaling size {name!r}")
    defaults = {"tiny": (3, 120.0, None), "small": (1, 300.0, None), "large": (1, 900.0, 600.0),
                "many-files": (3, 300.0, None)}[args.size]
    args.ref_repeat = args.ref_repeat or defaults[0]
    args.ref_timeout = args.ref_timeout or defaults[1]
    args.ref_budget = args.ref_budget if args.ref_budget is not None else defaults[2]
    args.compact_repeat = args.compact_repeat or args.repeat
    if args.out is None:
        args.out = BENCH / "results" / ("SCALING.md" if args.scaling else f"RESULTS-{args.size}.md")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.load_at_start = "/".join(f"{value:.1f}" for value in os.getloadavg())
    impls = _impls()
    needed = ["new"] if args.scaling else [k for k in ("ref", "new") if not getattr(args, f"skip_{k}")]
    if args.gen_with not in needed:
        needed.append(args.gen_with)
    for key in needed:
        ensure_venv(impls[key], base_python=args.python, rebuild=args.rebuild_venvs)
    began = time.perf_counter()
    report, raw = scaling(args, impls) if args.scaling else compare(args, impls)
    print(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report, encoding="utf-8")
    args.out.with_suffix(".json").write_text(json.dumps(raw, indent=1, default=str), encoding="utf-8")
    shutil.rmtree(CACHE / "tmp", ignore_errors=True)
    log(f"wrote {args.out} (and {args.out.with_suffix('.json').name}) in {time.perf_counter() - began:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
