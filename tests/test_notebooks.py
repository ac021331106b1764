"""Execute notebooks/analysis.ipynb headless on a small generated workspace and check what it
computed against values derived independently through the public API."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from datetime import date, datetime, timezone
from pathlib import Path

import pytest

from metaspn_store import FileSystemStore
from metaspn_store.sample import generate_workspace

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("matplotlib")
pytest.importorskip("pandas")

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "analysis.ipynb"
MARKER = "__ANALYSIS_JSON__"
UTC = timezone.utc
FAR_PAST = datetime(1970, 1, 1, tzinfo=UTC)
FAR_FUTURE = datetime(2100, 1, 1, tzinfo=UTC)

# Known third-party DeprecationWarnings raised while starting/talking to a kernel.
pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning:jupyter_client.*"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:jupyter_core.*"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:nbclient.*"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:zmq.*"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:traitlets.*"),
    pytest.mark.filterwarnings("ignore:Jupyter is migrating:DeprecationWarning"),
]

DUMP_CELL = f"""
import json as _json
_out = {{
    "window": {{"start": START.isoformat(), "end": END.isoformat(), "now": NOW.isoformat()}},
    "volume": [[str(r.day)[:10], r.source, int(r.signals)] for r in volume.itertuples()],
    "day_tiers": [[str(r.day)[:10], r.tier, int(r.signals)] for r in day_tiers.itertuples()],
    "top": [r.signal_id for r in top.itertuples()],
    "funnel": {{r.bucket: [int(r.api), int(r.sql)] for r in funnel.itertuples()}},
    "calibration": [
        {{"decile": int(r.decile), "n": int(r.n), "successes": int(r.successes),
          "score_min": float(r.score_min), "score_max": float(r.score_max)}}
        for r in calibration.itertuples()
    ],
    "season_ws": str(SEASON_WS),
    "season_summary": season_summary,
    "games": [[r.game_id, int(r.signal_count), int(r.emission_count), float(r.reward_projection_total)]
              for r in games.itertuples()],
}}
print({MARKER!r} + _json.dumps(_out))
"""


def _kernel_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A "python3" kernelspec for this interpreter, first on JUPYTER_PATH."""
    kernel_dir = tmp_path / "jupyter" / "kernels" / "python3"
    kernel_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (metaspn-store test)",
        "language": "python",
    }
    (kernel_dir / "kernel.json").write_text(json.dumps(spec))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("MPLCONFIGDIR", str(tmp_path / "mpl"))
    return "python3"


def _key(ref) -> tuple:
    return (ref.ref_type, ref.platform, ref.value)


def _score(payload) -> float | None:
    """0.1.8 top-candidate score: int/float/bool count, missing is 0.0, anything else excluded."""
    if not isinstance(payload, dict):
        return None
    if "score" not in payload:
        return 0.0
    value = payload["score"]
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        return float(value)
    return None


def test_analysis_notebook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    workspace = tmp_path / "ws"
    store = FileSystemStore(workspace)
    generate_workspace(store, days=3, signals_per_day=600, start=date(2026, 2, 1), seed=7)
    store.compact(before=date(2026, 2, 3))  # two cold days, one hot day
    figure = tmp_path / "calibration.png"
    volume_figure = tmp_path / "volume.png"
    monkeypatch.setenv("METASPN_WORKSPACE", str(workspace))
    monkeypatch.setenv("METASPN_FIGURE", str(figure))
    monkeypatch.setenv("METASPN_VOLUME_FIGURE", str(volume_figure))
    kernel = _kernel_env(tmp_path, monkeypatch)

    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in nb.cells if c.cell_type == "code")
    nb.cells.append(nbformat.v4.new_code_cell(DUMP_CELL))
    client = nbclient.NotebookClient(
        nb, kernel_name=kernel, timeout=120, resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    text = "".join(o.get("text", "") for o in nb.cells[-1].outputs if o.get("output_type") == "stream")
    line = next(x for x in text.splitlines() if x.startswith(MARKER))
    got = json.loads(line[len(MARKER):])

    signals = list(store.iter_signals(FAR_PAST, FAR_FUTURE))
    emissions = list(store.iter_emissions(FAR_PAST, FAR_FUTURE))
    assert {s.timestamp.date() for s in signals} == {date(2026, 2, d) for d in (1, 2, 3)}

    # window: first to last record of both kinds
    start = min(x.timestamp for x in [*signals, *emissions])
    end = max(x.timestamp for x in [*signals, *emissions])
    assert datetime.fromisoformat(got["window"]["start"]) == start
    assert datetime.fromisoformat(got["window"]["end"]) == end

    # volume by (day, source) == counting a full replay
    expected_volume = Counter((s.timestamp.date().isoformat(), s.source) for s in signals)
    assert {(d, src): n for d, src, n in got["volume"]} == dict(expected_volume)
    per_day = Counter(s.timestamp.date().isoformat() for s in signals)
    assert got["day_tiers"] == [
        ["2026-02-01", "cold", per_day["2026-02-01"]],
        ["2026-02-02", "cold", per_day["2026-02-02"]],
        ["2026-02-03", "hot", per_day["2026-02-03"]],
    ]
    # every table is printed in the notebook's output, not only returned
    printed = "".join(
        o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.get("output_type") == "stream"
    )
    for title in (
        "signals per tier",
        "signals per source and day",
        "tier of each day",
        "top recommendation candidates",
        "outcome funnel (API and SQL agree)",
        "calibration by score decile",
        "cold signals per day as of a pinned table version",
    ):
        assert f"{title}\n" in printed, title
    assert got["top"][0] in printed

    # top candidates: best RecommendationCandidate per first entity ref, by score, newer, larger id
    best: dict[tuple, tuple] = {}
    for s in signals:
        if s.payload_type != "RecommendationCandidate":
            continue
        score = _score(s.payload)
        if score is None:
            continue
        rank = (score, s.timestamp, s.signal_id)
        key = _key(s.entity_refs[0]) if s.entity_refs else ("signal", s.signal_id)
        if key not in best or rank > best[key]:
            best[key] = rank
    expected_top = [r[2] for r in sorted(best.values(), reverse=True)[:10]]
    assert got["top"] == expected_top

    # funnel: API and SQL agree with each other and with the bucket lengths
    buckets = store.get_outcome_window_buckets(now=end, start=start, end=end)
    assert got["funnel"] == {name: [len(v), len(v)] for name, v in buckets.items()}
    assert got["funnel"]["success"][0] == sum(e.emission_type in ("OutcomeSuccess", "DraftApproved") for e in emissions)
    assert got["funnel"]["failure"][0] == sum(e.emission_type in ("OutcomeFailure", "DraftRejected") for e in emissions)

    # calibration: candidate -> pending (recommendation_id) -> OutcomeSuccess/Failure (caused_by)
    by_id = {s.signal_id: s for s in signals}
    pairs = []
    for e in emissions:
        if e.emission_type not in ("OutcomeSuccess", "OutcomeFailure"):
            continue
        pending = by_id.get(e.caused_by)
        if pending is None or pending.payload_type not in ("OutcomePending", "EvaluationRequested", "RecommendationAttempted"):
            continue
        candidate = by_id.get(pending.payload.get("recommendation_id"))
        if candidate is None or candidate.payload_type != "RecommendationCandidate":
            continue
        score = candidate.payload.get("score")
        if isinstance(score, bool) or not isinstance(score, int | float):
            continue
        pairs.append((float(score), e.emission_type == "OutcomeSuccess"))
    cal = got["calibration"]
    assert [c["decile"] for c in cal] == list(range(1, 11))
    total = len(pairs)
    assert [c["n"] for c in cal] == [total // 10 + (1 if i < total % 10 else 0) for i in range(10)]
    assert sum(c["successes"] for c in cal) == sum(ok for _, ok in pairs)
    assert cal[0]["score_min"] == min(p[0] for p in pairs) and cal[-1]["score_max"] == max(p[0] for p in pairs)
    assert all(a["score_max"] <= b["score_min"] for a, b in zip(cal, cal[1:], strict=False))

    assert figure.read_bytes()[:8] == PNG
    assert volume_figure.read_bytes()[:8] == PNG

    # Season 1 dashboard: the reference's semantics in plain Python over the same records
    import season1_oracle
    from oracle import Oracle

    season = FileSystemStore(got["season_ws"], read_only=True)
    oracle = Oracle(season.iter_signals(FAR_PAST, FAR_FUTURE), season.iter_emissions(FAR_PAST, FAR_FUTURE))
    window = {"start": datetime(2026, 3, 1, tzinfo=UTC), "end": datetime(2026, 3, 4, tzinfo=UTC), "season_id": "S1"}
    assert got["season_summary"] == season1_oracle.season_summary(oracle, **window)
    assert got["season_summary"]["signal_count"] > 1000 and got["season_summary"]["emission_count"] > 100
    assert got["games"] == [[g["game_id"], g["signal_count"], g["emission_count"], g["reward_projection_total"]]
                            for g in season1_oracle.per_game(oracle, **window)]
    for title in ("season summary", "per game", "leading players by points"):
        assert f"{title}\n" in printed, title


PNG = b"\x89PNG\r\n\x1a\n"


def _project_copy(tmp_path: Path) -> Path:
    """A folder laid out like the repository: notebooks/analysis.ipynb next to a tracked plot."""
    root = tmp_path / "repo"
    (root / "notebooks").mkdir(parents=True)
    shutil.copy(NOTEBOOK, root / "notebooks" / "analysis.ipynb")
    (root / "notebooks" / "calibration.png").write_bytes(b"tracked plot, must not change")
    return root


def _jupyter_execute(root: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`jupyter execute notebooks/analysis.ipynb` from ``root``, as the README says to run it."""
    return subprocess.run(
        [sys.executable, "-c", "from nbclient.cli import main; main()", "notebooks/analysis.ipynb"],  # jupyter execute
        cwd=root,
        env={**os.environ, **env, "PWD": str(root)},  # a shell sets PWD to where it runs
        capture_output=True,
        text=True,
        timeout=240,
    )


def test_relative_paths_are_taken_from_the_launch_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _project_copy(tmp_path)
    store = FileSystemStore(root / "ws")
    generate_workspace(store, days=2, signals_per_day=300, start=date(2026, 2, 1), seed=1)
    store.compact(before=date(2026, 2, 2))
    _kernel_env(tmp_path, monkeypatch)
    res = _jupyter_execute(
        root, {"METASPN_WORKSPACE": "ws", "METASPN_FIGURE": "calibration.png", "METASPN_VOLUME_FIGURE": "volume.png"}
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert (root / "calibration.png").read_bytes()[:8] == PNG
    assert (root / "volume.png").read_bytes()[:8] == PNG
    assert (root / "notebooks" / "calibration.png").read_bytes() == b"tracked plot, must not change"
    assert not (root / "notebooks" / "volume.png").exists() and not (root / "notebooks" / "ws").exists()
    # the printed tables reach the terminal that ran `jupyter execute`
    assert "tier of each day\n" in res.stdout and "calibration by score decile\n" in res.stdout
    assert f"workspace: {root / 'ws'}" not in res.stdout  # plain prints stay in the notebook


def test_a_workspace_that_does_not_exist_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _project_copy(tmp_path)
    _kernel_env(tmp_path, monkeypatch)
    res = _jupyter_execute(root, {"METASPN_WORKSPACE": "no-such-workspace"})
    assert res.returncode != 0
    message = (
        f"METASPN_WORKSPACE='no-such-workspace' is {root / 'no-such-workspace'}, which is not a metaspn-store "
        "workspace (no store/ folder). Create one with `metaspn-store demo DIR`, or unset METASPN_WORKSPACE "
        "to analyse a generated sample."
    )
    assert message in res.stderr
    assert "AttributeError" not in res.stderr
    assert not (root / "no-such-workspace").exists() and not (root / "notebooks" / "no-such-workspace").exists()
