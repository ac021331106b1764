"""Cross-compatibility with metaspn-store 0.1.8, run in its own interpreter.

Skipped unless ``METASPN_REFERENCE_PYTHON`` names a python executable with metaspn-store 0.1.8
installed (for example ``/tmp/refvenv/bin/python``). Records are appended in time order, so 0.1.8's
(day, line) replay order coincides with the contract's (timestamp, append order).

1. A workspace written by this package reads identically with 0.1.8.
2. A workspace written by 0.1.8 reads identically with this package.
Checkpoints and dated snapshots are exchanged in both directions too.
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import textwrap
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from metaspn_schemas import EmissionEnvelope, EntityRef, SignalEnvelope

from metaspn_store import FileSystemStore, ReplayCheckpoint

pytestmark = pytest.mark.reference

UTC = timezone.utc
REFERENCE_PYTHON = os.environ.get("METASPN_REFERENCE_PYTHON", "")


@pytest.fixture(scope="module")
def ref_python() -> str:
    if not REFERENCE_PYTHON:
        pytest.skip("set METASPN_REFERENCE_PYTHON to a python with metaspn-store 0.1.8 installed")
    probe = subprocess.run(
        [REFERENCE_PYTHON, "-I", "-c", "import importlib.metadata as m; print(m.version('metaspn-store'))"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if probe.returncode != 0 or probe.stdout.strip() != "0.1.8":
        pytest.skip(
            f"{REFERENCE_PYTHON} does not have metaspn-store 0.1.8 (got {probe.stdout.strip() or probe.stderr[-200:]})"
        )
    return REFERENCE_PYTHON


# --------------------------------------------------------------------------- shared query code
# These functions run here and, via their source text, inside the 0.1.8 interpreter.


def decode(value: Any) -> Any:
    from datetime import datetime as _dt

    from metaspn_schemas import EntityRef as _Ref

    if isinstance(value, dict):
        if "__dt__" in value:
            return _dt.fromisoformat(value["__dt__"])
        if "__ref__" in value:
            return _Ref(**value["__ref__"])
        return {k: decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v) for v in value]
    return value


def encode_result(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, dict):
        return {k: encode_result(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode_result(v) for v in value]
    if hasattr(value, "to_dict"):
        return value.to_dict()
    return value


def run_queries(store: Any, queries: list[Any]) -> dict[str, Any]:
    from metaspn_store import ReplayCheckpoint as _Checkpoint

    results: dict[str, Any] = {}
    for label, method, kwargs in queries:
        kwargs = decode(kwargs)
        if "checkpoint" in kwargs and kwargs["checkpoint"] is not None:
            kwargs["checkpoint"] = _Checkpoint.from_dict(kwargs["checkpoint"])
        if method == "build_signal_checkpoint":
            replay = list(store.iter_signals(kwargs["start"], kwargs["end"]))
            value = store.build_signal_checkpoint(replay[: kwargs["k"]])
        else:
            value = getattr(store, method)(**kwargs)
            if not isinstance(value, dict) and value is not None and not hasattr(value, "to_dict"):
                value = list(value)
        results[label] = encode_result(value)
    results["__checkpoint__"] = encode_result(store.read_checkpoint("compat-worker"))
    results["__digest__"] = store.read_daily_digest_snapshot("2026-02-05")
    results["__calibration__"] = store.read_calibration_snapshot("2026-02-05")
    results["__credibility__"] = store.read_credibility_snapshot("2026-02-05")
    return results


SCRIPT = (
    textwrap.dedent(
        """
        from __future__ import annotations
        import json, sys
        from datetime import date
        from typing import Any
        from metaspn_schemas import EmissionEnvelope, SignalEnvelope
        from metaspn_store import FileSystemStore, ReplayCheckpoint
        """
    )
    + "\n".join(inspect.getsource(f) for f in (decode, encode_result, run_queries))
    + textwrap.dedent(
        """
        mode, workspace, spec_path, out_path = sys.argv[1:5]
        spec = json.load(open(spec_path, encoding="utf-8"))
        store = FileSystemStore(workspace)
        if mode == "write":
            for record in spec["signals"]:
                store.write_signal(SignalEnvelope.from_dict(record))
            store.write_emissions([EmissionEnvelope.from_dict(r) for r in spec["emissions"]])
            store.write_checkpoint("compat-worker", ReplayCheckpoint.from_dict(spec["checkpoint"]))
            store.write_daily_digest_snapshot(day=date(2026, 2, 5), digest=spec["digest"])
            store.write_calibration_snapshot(day="2026-02-05", report=spec["report"])
            store.write_credibility_snapshot(day="2026-02-05", report=spec["report"])
        import metaspn_store.store as impl
        out = {"__impl__": impl.__file__, "results": run_queries(FileSystemStore(workspace), spec["queries"])}
        json.dump(out, open(out_path, "w", encoding="utf-8"))
        """
    )
)


# --------------------------------------------------------------------------- the workspace

ALICE = EntityRef("person", "alice", platform="twitter")
ALICE_GH = EntityRef("person", "alice", platform="github")
ALICE_LABEL = EntityRef("person", "alice", platform="twitter", label="Alice")
ALICE_V01 = EntityRef("person", "alice", platform="twitter", schema_version="0.1")
BOB = EntityRef("person", "bob", platform="twitter")


def t(day: int, hour: int, minute: int = 0, second: int = 0, micro: int = 0) -> datetime:
    return datetime(2026, 2, day, hour, minute, second, micro, tzinfo=UTC)


def sig(sid: str, ts: datetime, source: str, ptype: str, payload: Any, refs: tuple = ()) -> SignalEnvelope:
    return SignalEnvelope(
        signal_id=sid, timestamp=ts, source=source, payload_type=ptype, payload=payload, entity_refs=refs
    )


def emi(
    eid: str, ts: datetime, etype: str, caused_by: str, payload: Any = None, refs: tuple = ()
) -> EmissionEnvelope:
    return EmissionEnvelope(
        emission_id=eid,
        timestamp=ts,
        emission_type=etype,
        payload=payload,
        caused_by=caused_by,
        entity_refs=refs,
    )


# In time order (the condition under which 0.1.8's replay order is the contract's).
SIGNALS = [
    sig(
        "s01", t(4, 8), "ingest.web", "SocialPostSeen", {"text": "héllo \"q\" 'x' ;--", "score": 3}, (ALICE,)
    ),
    sig(
        "s02",
        t(4, 8),
        "ingest",
        "Candidate",
        {"score": 2.5, "status": "READY", "token_id": "t1", "project_entity_id": "p1"},
        (ALICE_GH,),
    ),
    sig(
        "s03",
        t(4, 9),
        "rec.v2",
        "OutcomePending",
        {"expires_at": "2026-02-05T00:00:00Z", "promise_id": "pr1", "status": "open"},
        (ALICE,),
    ),
    sig("s04", t(4, 9, micro=1), "rec", "EvaluationRequested", {"expires_at": "2026-02-10T00:00:00+00:00"}),
    sig("s05", t(4, 10), "o'brien; --", "Candidate", [1, 2]),
    sig("s06", t(4, 23, 59, 59, 999999), "ingest", "EntityResolved", {"score": True}),
    sig("s07", t(5, 0), "ingest.web", "SocialPostSeen", {"score": "9"}, (BOB,)),
    sig("s08", t(5, 0), "ingest", "RecommendationAttempted", {"expires_at": "soon"}, (ALICE_LABEL,)),
    sig("s09", t(5, 6), "rec", "Candidate", {"score": 1, "status": 1, "promise_id": "pr1"}, (ALICE_V01,)),
    sig("s10", t(5, 6), "rec", "Candidate", {"score": 1.0, "status": True}, (ALICE,)),
    sig("s01", t(5, 7), "ingest", "SocialPostSeen", {"text": "duplicate id, later"}, (ALICE,)),
    sig("s11", t(5, 12), "ingest", "OutcomePending", {"expires_at": "2026-02-05T11:00:00"}),
    sig("s12", t(6, 1), "ingest.web", "SocialPostSeen", {"text": "bye", "token_id": "t1"}, (ALICE, BOB)),
    sig("s13", t(6, 2), "x", "Other", None),
    sig("s14", t(6, 2), "x", "Candidate", {"token_id": "t1", "status": "READY", "score": -1}, (ALICE,)),
    sig("s15", t(6, 2), "x", "OutcomePending", {"expires_at": "20260205T000000Z"}, (ALICE,)),
]
EMISSIONS = [
    emi("e01", t(4, 9, 30), "OutcomeSuccess", "s03", {"promise_id": "pr1", "status": "kept"}, (ALICE,)),
    emi("e02", t(5, 1), "DraftRejected", "s08", {"status": "rejected"}),
    emi("e03", t(5, 1), "Other", "s04", "text payload"),
    emi("e04", t(6, 3), "OutcomeFailure", "nobody", [1]),
    emi("e05", t(6, 3), "DraftApproved", "s15", {"promise_id": "pr1"}, (BOB,)),
    emi("e01", t(6, 4), "OutcomeFailure", "s11", {"dup": True}),
]
CHECKPOINT = ReplayCheckpoint(last_timestamp=t(5, 0), seen_ids_at_timestamp=("s07",))
DIGEST = {"top": ["s02", "s01"], "note": "ünï"}
REPORT = {"brier": 0.125, "n": 3}


def dt(value: datetime) -> dict[str, str]:
    return {"__dt__": value.isoformat()}


def rf(ref: EntityRef) -> dict[str, Any]:
    return {
        "__ref__": {f: getattr(ref, f) for f in ("ref_type", "value", "platform", "label", "schema_version")}
    }


WIDE = {"start": dt(t(1, 0)), "end": dt(t(10, 0))}
NARROW = {"start": dt(t(4, 9)), "end": dt(t(5, 6))}
NOW = dt(t(5, 12))

QUERIES: list[Any] = [
    ("signals_wide", "iter_signals", dict(WIDE)),
    ("signals_narrow_alice", "iter_signals", {**NARROW, "entity_ref": rf(ALICE)}),
    ("signals_sources", "iter_signals", {**WIDE, "sources": ["ingest", "o'brien; --"]}),
    ("signals_empty_sources", "iter_signals", {**WIDE, "sources": []}),
    ("emissions_wide", "iter_emissions", dict(WIDE)),
    ("emissions_types", "iter_emissions", {**WIDE, "emission_types": ["OutcomeFailure", "Other"]}),
    (
        "from_checkpoint",
        "iter_signals_from_checkpoint",
        {"end": WIDE["end"], "checkpoint": CHECKPOINT.to_dict()},
    ),
    ("from_start", "iter_signals_from_checkpoint", {"end": NARROW["end"], "start": NARROW["start"]}),
    ("recent_entity", "get_recent_signals_by_entity", {"entity_ref": rf(ALICE), "limit": 3, **WIDE}),
    ("recent_entity_default_window", "get_recent_signals_by_entity", {"entity_ref": rf(BOB), "limit": 5}),
    ("last_posts", "get_last_posts_by_entity", {"entity_ref": rf(ALICE), "limit": 2}),
    (
        "last_posts_custom",
        "get_last_posts_by_entity",
        {"entity_ref": rf(ALICE), "limit": 5, "payload_types": ["Candidate"]},
    ),
    ("recent_source", "get_recent_signals_by_source", {"source": "ingest", "limit": 3}),
    (
        "recent_source_entity",
        "get_recent_signals_by_source",
        {"source": "rec", "limit": 5, "entity_ref": rf(ALICE)},
    ),
    ("candidates_resolved", "iter_entity_candidate_signals", {**WIDE, "resolved": True}),
    ("candidates_unresolved", "iter_entity_candidate_signals", {**WIDE, "resolved": False}),
    ("stage_ingest", "iter_stage_window_signals", {"stage": "ingest", **WIDE}),
    (
        "stage_explicit",
        "iter_stage_window_signals",
        {"stage": "ingest", **WIDE, "sources": ["rec"], "checkpoint": CHECKPOINT.to_dict()},
    ),
    ("recommendation", "iter_recommendation_signals", {**WIDE, "payload_types": ["Candidate"]}),
    (
        "learning",
        "iter_learning_signals",
        {**WIDE, "checkpoint": CHECKPOINT.to_dict(), "entity_ref": rf(ALICE)},
    ),
    ("learning_emissions", "iter_learning_emissions", {**WIDE, "emission_types": ["OutcomeSuccess"]}),
    ("top_unique", "get_top_recommendation_candidates", {**WIDE, "limit": 10}),
    ("top_all", "get_top_recommendation_candidates", {**WIDE, "limit": 10, "unique_by_entity": False}),
    (
        "top_status",
        "get_top_recommendation_candidates",
        {**WIDE, "limit": 3, "score_field": "status", "payload_types": ["Candidate"]},
    ),
    ("ready", "get_ready_candidates", dict(WIDE)),
    ("ready_one", "get_ready_candidates", {**WIDE, "ready_value": 1, "limit": 5}),
    ("outcomes", "get_outcomes_for_window", dict(WIDE)),
    ("tokens", "get_token_signals", {**WIDE, "token_id": "t1"}),
    (
        "tokens_project",
        "get_token_signals",
        {**WIDE, "token_id": "t1", "project_entity_id": "p1", "limit": 1},
    ),
    ("tokens_all", "get_token_signals", dict(WIDE)),
    ("promises", "get_promise_signals", {**WIDE, "promise_id": "pr1"}),
    ("promise_status", "get_promise_signals", {**WIDE, "status": "open"}),
    ("promise_outcomes", "get_promise_outcomes_for_window", {**WIDE, "promise_id": "pr1"}),
    ("drafts", "get_latest_draft_signals", {"limit": 4, **WIDE}),
    ("approvals", "get_latest_approval_outcomes", {"limit": 4, **WIDE}),
    ("unresolved", "get_unresolved_outcome_signals", dict(WIDE)),
    ("unresolved_narrow", "get_unresolved_outcome_signals", dict(NARROW)),
    ("expired", "get_expired_outcome_signals", {"now": NOW, **WIDE}),
    ("buckets", "get_outcome_window_buckets", {"now": NOW, **WIDE}),
    ("buckets_alice", "get_outcome_window_buckets", {"now": NOW, **WIDE, "entity_ref": rf(ALICE)}),
    ("buckets_narrow", "get_outcome_window_buckets", {"now": NOW, **NARROW}),
    ("checkpoint_k4", "build_signal_checkpoint", {**WIDE, "k": 4}),
    ("checkpoint_k8", "build_signal_checkpoint", {**WIDE, "k": 8}),
]


def spec() -> dict[str, Any]:
    return {
        "signals": [s.to_dict() for s in SIGNALS],
        "emissions": [e.to_dict() for e in EMISSIONS],
        "checkpoint": CHECKPOINT.to_dict(),
        "digest": DIGEST,
        "report": REPORT,
        "queries": QUERIES,
    }


def run_reference(ref_python: str, mode: str, workspace: Path, tmp_path: Path) -> dict[str, Any]:
    script = tmp_path / "reference_script.py"
    script.write_text(SCRIPT, encoding="utf-8")
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(json.dumps(spec()), encoding="utf-8")
    out_path = tmp_path / f"reference-{mode}.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    proc = subprocess.run(
        [ref_python, "-I", str(script), mode, str(workspace), str(spec_path), str(out_path)],
        capture_output=True,
        text=True,
        cwd=str(tmp_path),
        env=env,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(out_path.read_text(encoding="utf-8"))
    project_root = Path(__file__).resolve().parent.parent
    assert not Path(out["__impl__"]).resolve().is_relative_to(project_root / "metaspn_store"), (
        "the reference run imported this project"
    )
    return out["results"]


def write_here(workspace: Path) -> None:
    store = FileSystemStore(workspace)
    for s in SIGNALS:
        store.write_signal(s)
    store.write_emissions(EMISSIONS)
    store.write_checkpoint("compat-worker", CHECKPOINT)
    store.write_daily_digest_snapshot(day=date(2026, 2, 5), digest=DIGEST)
    store.write_calibration_snapshot(day="2026-02-05", report=REPORT)
    store.write_credibility_snapshot(day="2026-02-05", report=REPORT)


def answers_here(workspace: Path) -> dict[str, Any]:
    # Round-trip through JSON so both sides are compared in the same representation.
    return json.loads(json.dumps(run_queries(FileSystemStore(workspace), QUERIES)))


def _compare(ours: dict[str, Any], theirs: dict[str, Any]) -> None:
    assert set(ours) == set(theirs)
    mismatched = [label for label in ours if ours[label] != theirs[label]]
    assert not mismatched, {label: {"here": ours[label], "0.1.8": theirs[label]} for label in mismatched[:3]}


def _assert_meaningful(results: dict[str, Any]) -> None:
    """Guard: the fixture workspace must make most queries return something."""
    non_empty = [label for label, value in results.items() if value]
    assert len(non_empty) >= len(results) - 3, sorted(set(results) - set(non_empty))


def test_workspace_written_here_reads_identically_in_0_1_8(ref_python, tmp_path):
    workspace = tmp_path / "written-here"
    write_here(workspace)
    theirs = run_reference(ref_python, "read", workspace, tmp_path)
    ours = answers_here(workspace)
    _assert_meaningful(ours)
    _compare(ours, theirs)


def test_workspace_written_by_0_1_8_reads_identically_here(ref_python, tmp_path):
    workspace = tmp_path / "written-by-0.1.8"
    theirs = run_reference(ref_python, "write", workspace, tmp_path)
    ours = answers_here(workspace)
    _assert_meaningful(ours)
    _compare(ours, theirs)
    # And the envelopes are equal to what was written (first write wins).
    store = FileSystemStore(workspace)
    first_signals = list({s.signal_id: s for s in reversed(SIGNALS)}.values())[::-1]
    assert sorted(store.iter_signals(t(1, 0), t(10, 0)), key=lambda s: s.signal_id) == sorted(
        first_signals, key=lambda s: s.signal_id
    )
    assert store.read_checkpoint("compat-worker") == CHECKPOINT
    # Writing more here into the 0.1.8 workspace keeps idempotency with what 0.1.8 wrote.
    assert store.write_signal(SIGNALS[0]) == store.signals_dir / "2026-02-04.jsonl"
    assert store.write_emission(EMISSIONS[-1]) == store.emissions_dir / "2026-02-04.jsonl"


def test_reference_script_is_importable_source():
    compile(SCRIPT, "reference_script.py", "exec")
    assert sys.version_info >= (3, 10)
