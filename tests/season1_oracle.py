"""The Season 1 read models (upstream metaspn-store 0.1.9) evaluated in plain Python.

This is the specification (``/work/shared/reference/metaspn-store-0.1.9-season1.py``) restated
over ``oracle.Oracle``, which knows the stored records (first write wins) and the replay order,
and nothing of files, tiers or SQL. Every loop here is the reference's loop: values are added
with ``+=`` in replay order (Python 3.12's ``sum`` would compensate; the reference does not).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from metaspn_schemas import EntityRef, SignalEnvelope
from oracle import Oracle, as_utc

from metaspn_store import ReplayCheckpoint

DEFAULT_METRICS = ["score", "points", "reward_projection", "reward_amount"]


def number(payload: Any, key: str) -> float:
    """``_payload_number``: ints and floats (not bools) as float, anything else 0.0."""
    if not isinstance(payload, dict):
        return 0.0
    value = payload.get(key, 0.0)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 0.0
    return float(value)


def text(payload: Any, key: str) -> str | None:
    """``_payload_text``: a non-empty string value, else None."""
    if not isinstance(payload, dict):
        return None
    value = payload.get(key)
    return value if isinstance(value, str) and value != "" else None


def matches(payload: Any, key: str, expected: Any) -> bool:
    """``_payload_match``: None matches all; else a dict payload with ``get(key) == expected``."""
    if expected is None:
        return True
    return isinstance(payload, dict) and payload.get(key) == expected


def iso(value: datetime) -> str:
    return as_utc(value).isoformat().replace("+00:00", "Z")


def _types(values: list[str] | None) -> set[str] | None:
    return set(values) if values else None


def _season_signals(oracle: Oracle, a: dict[str, Any]) -> list[SignalEnvelope]:
    types = _types(a.get("payload_types"))
    return [
        s
        for s in oracle.iter_signals(a["start"], a["end"], a.get("entity_ref"), a.get("sources"))
        if (types is None or s.payload_type in types)
        and matches(s.payload, a.get("season_id_field", "season_id"), a["season_id"])
    ]


def _season_emissions(oracle: Oracle, a: dict[str, Any]) -> list[Any]:
    types = _types(a.get("emission_types"))
    return [
        e
        for e in oracle.iter_emissions(a["start"], a["end"], a.get("entity_ref"), a.get("emission_types"))
        if (types is None or e.emission_type in types)
        and matches(e.payload, a.get("season_id_field", "season_id"), a["season_id"])
    ]


def season_summary(oracle: Oracle, **a: Any) -> dict[str, Any]:
    game_f, player_f = a.get("game_id_field", "game_id"), a.get("player_id_field", "player_id")
    games: set[str] = set()
    players: set[str] = set()
    projected = emitted = 0.0
    signals = _season_signals(oracle, a)
    for s in signals:
        for bucket, key in ((games, game_f), (players, player_f)):
            value = text(s.payload, key)
            if value is not None:
                bucket.add(value)
        projected += number(s.payload, a.get("reward_projection_field", "reward_projection"))
    emissions = _season_emissions(oracle, a)
    for e in emissions:
        for bucket, key in ((games, game_f), (players, player_f)):
            value = text(e.payload, key)
            if value is not None:
                bucket.add(value)
        emitted += number(e.payload, a.get("reward_amount_field", "reward_amount"))
    return {
        "season_id": a["season_id"],
        "start": iso(a["start"]),
        "end": iso(a["end"]),
        "signal_count": len(signals),
        "emission_count": len(emissions),
        "game_count": len(games),
        "player_count": len(players),
        "reward_projection_total": projected,
        "reward_emitted_total": emitted,
    }


def per_game(oracle: Oracle, **a: Any) -> list[dict[str, Any]]:
    game_f, player_f = a.get("game_id_field", "game_id"), a.get("player_id_field", "player_id")
    rows: dict[str, dict[str, Any]] = {}
    players: dict[str, set[str]] = {}

    def row(game: str) -> dict[str, Any]:
        players.setdefault(game, set())
        return rows.setdefault(
            game,
            {
                "season_id": a["season_id"],
                "game_id": game,
                "signal_count": 0,
                "emission_count": 0,
                "player_count": 0,
                "reward_projection_total": 0.0,
                "reward_emitted_total": 0.0,
            },
        )

    for records, count, total, field in (
        (_season_signals(oracle, a), "signal_count", "reward_projection_total", a.get("reward_projection_field", "reward_projection")),
        (_season_emissions(oracle, a), "emission_count", "reward_emitted_total", a.get("reward_amount_field", "reward_amount")),
    ):
        for r in records:
            game = text(r.payload, game_f)
            if game is None:
                continue
            current = row(game)
            current[count] += 1
            player = text(r.payload, player_f)
            if player is not None:
                players[game].add(player)
            current[total] += number(r.payload, field)
    for game, current in rows.items():
        current["player_count"] = len(players[game])
    return [rows[g] for g in sorted(rows)]


def per_player(oracle: Oracle, **a: Any) -> list[dict[str, Any]]:
    metrics = a.get("metric_fields") or DEFAULT_METRICS
    rows: dict[str, dict[str, Any]] = {}
    games: dict[str, set[str]] = {}
    for s in _season_signals(oracle, a):
        player = text(s.payload, a.get("player_id_field", "player_id"))
        if player is None:
            continue
        current = rows.setdefault(
            player,
            {
                "season_id": a["season_id"],
                "player_id": player,
                "signal_count": 0,
                "games_played": 0,
                "metrics": {m: 0.0 for m in metrics},
            },
        )
        current["signal_count"] += 1
        game = text(s.payload, a.get("game_id_field", "game_id"))
        if game is not None:
            games.setdefault(player, set()).add(game)
        for m in metrics:  # a metric listed twice is added twice, as in the reference
            current["metrics"][m] += number(s.payload, m)
    for player, current in rows.items():
        current["games_played"] = len(games.get(player, ()))
    return [rows[p] for p in sorted(rows)]


def heartbeat(oracle: Oracle, **a: Any) -> list[dict[str, Any]]:
    founder_f = a.get("founder_id_field", "founder_id")
    delta_f = a.get("stake_delta_field", "founder_stake_delta")
    value_f = a.get("stake_value_field", "founder_stake_value")
    events = []
    for s in _season_signals(oracle, a):
        founder = text(s.payload, founder_f)
        if founder is None or (a.get("founder_id") is not None and founder != a["founder_id"]):
            continue
        explicit = number(s.payload, value_f) if isinstance(s.payload, dict) and value_f in s.payload else None
        events.append((as_utc(s.timestamp), s.signal_id, founder, number(s.payload, delta_f), explicit))
    events.sort(key=lambda e: (e[0], e[1]))
    running: dict[str, float] = {}
    out = []
    for ts, signal_id, founder, delta, explicit in events:
        value = explicit if explicit is not None else running.get(founder, 0.0) + delta
        running[founder] = value
        out.append(
            {
                "season_id": a["season_id"],
                "founder_id": founder,
                "timestamp": iso(ts),
                "event_kind": "signal",
                "event_id": signal_id,
                "stake_delta": delta,
                "stake_value": value,
            }
        )
    return out


def active_projections(oracle: Oracle, **a: Any) -> list[SignalEnvelope]:
    projection_f = a.get("projection_field", "reward_projection")
    ranked = [
        (number(s.payload, projection_f), as_utc(s.timestamp), s.signal_id, s)
        for s in _season_signals(oracle, a)
        if matches(s.payload, a.get("window_status_field", "window_status"), a.get("active_status", "ACTIVE"))
    ]
    ranked.sort(key=lambda item: item[:3], reverse=True)
    out = [item[3] for item in ranked]
    limit = a.get("limit")
    return out[:limit] if limit is not None and limit >= 0 else out


def projection_totals(oracle: Oracle, **a: Any) -> list[dict[str, Any]]:
    projection_f = a.get("projection_field", "reward_projection")
    base = {k: v for k, v in a.items() if k in ("start", "end", "season_id", "entity_ref", "sources", "payload_types")}
    grouped: dict[str, dict[str, Any]] = {}
    for s in active_projections(oracle, **base, projection_field=projection_f):
        group = text(s.payload, a.get("group_by_field", "player_id"))
        if group is None:
            continue
        bucket = grouped.setdefault(
            group, {"season_id": a["season_id"], "group": group, "signal_count": 0, "reward_projection_total": 0.0}
        )
        bucket["signal_count"] += 1
        bucket["reward_projection_total"] += number(s.payload, projection_f)
    result = list(grouped.values())
    result.sort(key=lambda r: (r["reward_projection_total"], r["group"]), reverse=True)
    return result


def stage_window(
    oracle: Oracle,
    *,
    stage: str,
    start: datetime,
    end: datetime,
    checkpoint: ReplayCheckpoint | None = None,
    entity_ref: EntityRef | None = None,
    sources: list[str] | None = None,
    payload_types: list[str] | None = None,
    season_id: Any = None,
    season_id_field: str = "season_id",
) -> list[SignalEnvelope]:
    types = _types(payload_types)
    prefixes = (f"s1.{stage}", f"season1.{stage}")
    return [
        s
        for s in oracle.iter_signals_from_checkpoint(
            start=start, end=end, checkpoint=checkpoint, entity_ref=entity_ref, sources=sources
        )
        if (sources or any(s.source == p or s.source.startswith(p + ".") for p in prefixes))
        and (types is None or s.payload_type in types)
        and matches(s.payload, season_id_field, season_id)
    ]


def research_rows(oracle: Oracle, **a: Any) -> list[dict[str, Any]]:
    rows: list[tuple[datetime, str, dict[str, Any]]] = []
    if a.get("include_signals", True):
        for s in _season_signals(oracle, a):
            rows.append(
                (
                    as_utc(s.timestamp),
                    s.signal_id,
                    {
                        "record_kind": "signal",
                        "record_id": s.signal_id,
                        "timestamp": iso(s.timestamp),
                        "source": s.source,
                        "payload_type": s.payload_type,
                        "payload": s.payload,
                        "season_id": a["season_id"],
                        "entity_refs": [r.to_dict() for r in s.entity_refs],
                    },
                )
            )
    if a.get("include_emissions", True):
        for e in _season_emissions(oracle, a):
            rows.append(
                (
                    as_utc(e.timestamp),
                    e.emission_id,
                    {
                        "record_kind": "emission",
                        "record_id": e.emission_id,
                        "timestamp": iso(e.timestamp),
                        "emission_type": e.emission_type,
                        "caused_by": e.caused_by,
                        "payload": e.payload,
                        "season_id": a["season_id"],
                        "entity_refs": [r.to_dict() for r in e.entity_refs],
                    },
                )
            )
    rows.sort(key=lambda item: (item[0], item[1], item[2]["record_kind"]))
    return [row for _, _, row in rows]


def research_ndjson(oracle: Oracle, **a: Any) -> bytes:
    lines = [json.dumps(row, sort_keys=True, separators=(",", ":")) + "\n" for row in research_rows(oracle, **a)]
    return "".join(lines).encode("utf-8")


def write_research(oracle: Oracle, destination: Path, **a: Any) -> None:
    destination.write_bytes(research_ndjson(oracle, **a))
