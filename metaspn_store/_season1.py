"""Season 1 read models (upstream metaspn-store 0.1.9): DuckDB aggregations over both tiers.

Each model is one or two parameterised queries through :meth:`QueryEngine.select`, so windows,
filters, tiers and "first copy of an id wins" are exactly those of every other read. What this
module adds is the reading of payload fields with the reference's Python semantics:

* **number** (``_payload_number``): the value of ``payload[key]`` when the payload is a JSON object
  and the value is a JSON int or float (as a float); otherwise 0.0. JSON ``true``/``false``,
  strings (also numeric ones), ``null``, arrays, objects, a missing key and a non-object payload
  all count 0.0. (Unlike the top-candidate score, where a bool counts.)
* **text** (``_payload_text``): ``payload[key]`` when the payload is an object and the value is a
  non-empty string; otherwise nothing.
* **match** (``_payload_match``): ``expected`` None matches every record; otherwise the payload is
  an object and ``payload.get(key) == expected`` in Python. A string is compared in SQL; any other
  value (``1`` also equals ``1.0`` and ``true`` in Python) is compared in Python, on the field
  values alone, and the matching ids go back into SQL as a bind parameter.

Field values come from :class:`~metaspn_store._query.PayloadFields`: each partition's payloads
are parsed once (two JSON parses a row, whatever the number of keys; the default fields of every
model together) and the values kept, so a later call reads no JSON and, without an entity_ref
filter, no cold file either.

**Sums** add the same values in the same order as the reference's ``total += value`` loop
(replay order ``(timestamp, append order)``, or rank order for projection totals), so totals are
bit-identical to the reference's, including where float rounding makes the order matter. The
summary's totals are ``sum(value ORDER BY <order>)`` (DuckDB folds an ordered aggregate
sequentially; ``+ 0.0`` turns a ``-0.0`` total into the reference's ``0.0``, as its running
total starts at ``0.0``). Grouped totals (per game, per player) come from rows sorted by (group,
order) and are added run by run in that order (``_sequential_sums``; DuckDB's grouped ordered
aggregates sort every group apart, several times slower); projection totals are added in one
pass over the rows in rank order. ``tests/test_season1.py`` checks every total with cancelling
values, ``tests/test_season1_sums.py`` both ways of adding runs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import reduce
from operator import add
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from metaspn_store._codec import EPOCH, ensure_utc, iso_z, no_rows
from metaspn_store._ipc import replace_atomically
from metaspn_store._query import FieldRequest, Filter, QueryEngine, json_pointer

# Replay order of ``iter_signals`` / ``iter_emissions``: the order the reference adds values in.
# ``__pos`` is the row's (day, tier, seq) in one orderable value (see ``QueryEngine.select``).
REPLAY_ORDER = "timestamp, __pos"
DEFAULT_METRIC_FIELDS = ("score", "points", "reward_projection", "reward_amount")
STAGE_SOURCE_PREFIXES = ("s1.", "season1.")
# The fields of the default arguments of every read model, extracted together by whichever model
# runs first: one JSON parse per partition serves them all (the parse, not the number of keys,
# is the cost).
PREFETCH: tuple[FieldRequest, ...] = (
    *(("text", key) for key in ("season_id", "game_id", "player_id", "founder_id", "window_status")),
    *(("number", key) for key in ("reward_projection", "reward_amount", "score", "points", "founder_stake_delta",
                                   "founder_stake_value")),
    ("present", "founder_stake_value"),
)


# The reference's timestamp text (``iso_z``: ``isoformat()`` with ``Z``, microseconds only when
# not zero) computed by DuckDB (the session time zone is UTC): 1.5 µs a row less in Python.
ISO_SQL = (
    "CASE WHEN epoch_us(timestamp) % 1000000 = 0 THEN strftime(timestamp, '%Y-%m-%dT%H:%M:%SZ') "
    "ELSE strftime(timestamp, '%Y-%m-%dT%H:%M:%S.%fZ') END"
)


def iso(value: datetime) -> str:
    """The reference's timestamp text: UTC ISO-8601 with ``Z``."""
    return iso_z(ensure_utc(value))


# --------------------------------------------------------------------------- payload fields


@dataclass
class _Fields:
    """The payload fields one query reads: requests to :class:`PayloadFields` (each a column
    ``__f<j>`` of the rows, extracted once per partition and kept) and SQL over those columns."""

    requests: list[FieldRequest] = field(default_factory=list)

    def _column(self, variant: str, key: str) -> str:
        request = (variant, key)
        if request not in self.requests:
            self.requests.append(request)
        return f"__f{self.requests.index(request)}"

    def text(self, key: str) -> str:
        """``_payload_text``: the non-empty string value, else NULL."""
        column = self._column("text", key)
        return f"CASE WHEN {column} <> '' THEN {column} END"

    def number(self, key: str) -> str:
        """``_payload_number``: an int or float value as DOUBLE, else 0.0 (bools included)."""
        return f"coalesce({self._column('number', key)}, 0.0)"

    def present(self, key: str) -> str:
        """``isinstance(payload, dict) and key in payload``."""
        return self._column("present", key)

    def equals_text(self, key: str, param: str) -> str:
        return f"({self._column('text', key)} = {param})"

    def names(self) -> str:
        return ", ".join(f"__f{j}" for j in range(len(self.requests)))


@dataclass
class _Query:
    """One kind's rows of the window that pass the column filter and the payload matches."""

    engine: QueryEngine
    start: datetime
    end: datetime
    flt: Filter
    fields: _Fields = field(default_factory=_Fields)
    # String matches, bound when the query runs: a Python match's query (run before) must not
    # carry parameters its SQL does not use.
    text_matches: list[tuple[str, str]] = field(default_factory=list)

    def match(self, key: str, expected: Any) -> None:
        """Keep the records with ``_payload_match(payload, key, expected)``."""
        if expected is None:
            return
        if isinstance(expected, str):
            self.text_matches.append((key, expected))
            return
        ids = _python_matches(self.engine, self.start, self.end, self.flt, key, expected)
        idc = self.engine.kind.id_field
        self.flt.add(f"{idc} IN (SELECT unnest({self.flt.param(ids)}::VARCHAR[]))" if ids else "FALSE", columns=[idc])

    def run(
        self,
        select: str,
        *,
        derive: dict[str, str],
        columns: str | None = None,
        join: str = "",
        tail: str = "",
        limit: int | None = None,
    ) -> pa.Table:
        """``SELECT {select} FROM rows {join} {tail}``: ``rows`` are the matching records with
        ``columns`` (default: id, timestamp and append position) and the ``derive`` columns (SQL over the payload fields). Without any file
        for the window's days the answer is the kind's empty table (see :func:`_rows`)."""
        where = " AND ".join(self.fields.equals_text(k, self.flt.param(v)) for k, v in self.text_matches) or "TRUE"
        derived = "".join(f", {expr} AS {name}" for name, expr in derive.items())
        base_columns = columns or f"{self.engine.kind.id_field}, timestamp, __pos"
        if self.fields.requests and base_columns != "*":
            base_columns += f", {self.fields.names()}"
        post = f"SELECT {select} FROM (SELECT *{derived} FROM ({{inner}}) WHERE {where}) AS __rows {join} {tail}"  # noqa: S608
        return self.engine.select(
            self.start,
            self.end,
            self.flt,
            order=self.engine.kind.id_field,  # unused with post_sql
            limit=limit,
            columns=base_columns,
            post_sql=post,
            payload_fields=self.fields.requests,
            prefetch_fields=PREFETCH,
            narrow=columns is None,
        )


def _python_matches(
    engine: QueryEngine, start: datetime, end: datetime, flt: Filter, key: str, expected: Any
) -> list[str]:
    """Ids whose object payload has ``payload.get(key) == expected`` in Python, for a non-string
    ``expected`` (``1 == 1.0 == True``; lists and dicts compare structurally). Reads only the ids
    and the field's JSON text of the records that have the key."""
    scoped = flt.with_clause("TRUE", columns=[])
    ptr = scoped.param(json_pointer(key))
    scoped.add(f"json_type(payload) = 'OBJECT' AND json_type(payload, {ptr}) IS NOT NULL", columns=["payload"])
    idc = engine.kind.id_field
    table = engine.select(
        start, end, scoped, order=idc, columns=f"{idc}, json_extract(payload, {ptr})::VARCHAR AS __value"
    )
    if "__value" not in table.schema.names:
        return []
    ids = table.column(idc).to_pylist()
    values = table.column("__value").to_pylist()
    loads = orjson.loads
    return [record_id for record_id, text in zip(ids, values, strict=True) if loads(text) == expected]


def _scoped(engine: QueryEngine, start: datetime, end: datetime, flt: Filter, season_field: str, season_id: Any) -> _Query:
    query = _Query(engine, start, end, flt)
    query.match(season_field, season_id)
    return query


def _ordered_sum(expr: str, order: str = REPLAY_ORDER, where: str | None = None) -> str:
    """The reference's ``total = 0.0; total += value`` over the rows in ``order``."""
    filtered = f" FILTER (WHERE {where})" if where else ""
    return f"(coalesce(sum({expr} ORDER BY {order}){filtered}, 0.0) + 0.0)"


def _distinct_list(expr: str) -> str:
    return f"coalesce(list(DISTINCT {expr}) FILTER (WHERE {expr} IS NOT NULL), [])"


def _runs(column: pa.ChunkedArray) -> tuple[list[Any], list[tuple[int, int]]]:
    """The values of the runs of equal consecutive values of ``column`` (sorted by it) and each
    run's ``[start, end)`` (Arrow's run-end encoding, no Python loop over rows)."""
    values = column.combine_chunks()
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    if not len(values):
        return [], []
    if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
        values = values.cast(pa.string())
    encoded = pc.run_end_encode(values)
    ends = encoded.run_ends.to_pylist()
    return encoded.values.to_pylist(), list(zip([0, *ends[:-1]], ends, strict=True))


def _distinct_per_key(table: pa.Table, key: str, column: str) -> dict[Any, int]:
    """Distinct non-null ``column`` values per ``key`` (Arrow's hash aggregation)."""
    grouped = table.group_by(key).aggregate([(column, "count_distinct")])
    return dict(zip(grouped.column(key).to_pylist(), grouped.column(f"{column}_count_distinct").to_pylist(), strict=True))


def _sequential_sums(
    values: pa.ChunkedArray, runs: list[tuple[int, int]], repeat: int = 1, how: str = "auto"
) -> list[float]:
    """For each run ``[start, end)`` of ``values`` (DOUBLE, no nulls): the reference's ``total =
    0.0; for v in values[start:end]: total += v`` (each value added ``repeat`` times), the same
    float additions in the same order, so the totals are bit-identical.

    Many short runs (players) are added position by position across all runs at once (Arrow's
    ``add``, one IEEE addition per element: step ``j`` adds every run's ``j``-th value); a few
    long runs (games) are folded one by one (``reduce`` runs the loop in C). ``how``: "auto",
    "fold" or "columns" (tests compare the two)."""
    if not runs:
        return []
    lengths = [end - start for start, end in runs]
    longest = max(lengths)
    # µs: one Arrow step across the runs vs one Python addition
    if how == "fold" or (how == "auto" and longest * 30 > sum(lengths) * repeat * 0.1):
        flat = values.to_pylist()
        out = []
        for start, end in runs:
            run = flat[start:end]
            if repeat != 1:
                run = [v for v in run for _ in range(repeat)]
            out.append(reduce(add, run, 0.0))
        return out
    column = values.combine_chunks()
    order = sorted(range(len(runs)), key=lambda r: -lengths[r])  # the runs still adding: a prefix
    starts = pa.array([runs[r][0] for r in order], pa.int64())
    remaining = [lengths[r] for r in order]
    totals = pa.array([0.0] * len(runs), pa.float64())
    active = len(runs)
    for j in range(longest):
        while remaining[active - 1] <= j:
            active -= 1
        step = pc.take(column, pc.add(starts.slice(0, active), j))
        head = totals.slice(0, active)
        for _ in range(repeat):
            head = pc.add(head, step)
        totals = pa.concat_arrays([head, totals.slice(active)])
    out = [0.0] * len(runs)
    for position, total in zip(order, totals.to_pylist(), strict=True):
        out[position] = total
    return out


def _rows(table: pa.Table, column: str) -> list[dict[str, Any]]:
    """The rows of an aggregate, or none when ``select`` answered the kind's empty table."""
    if column not in table.schema.names:
        return []
    return table.to_pylist()


def _distinct_count(lists: list[pa.ChunkedArray]) -> int:
    """Distinct strings across list-of-string columns (Arrow compute, no Python loop)."""
    flat = [chunk for values in lists for chunk in pc.list_flatten(values).chunks]
    if not flat:
        return 0
    return int(pc.count_distinct(pa.chunked_array(flat, pa.string())).as_py())


# --------------------------------------------------------------------------- read models


@dataclass(frozen=True)
class KindScope:
    """One kind's engine, its column filter (entity ref, sources / types) and the payload field
    whose number it totals (``reward_projection`` for signals, ``reward_amount`` for emissions)."""

    engine: QueryEngine
    flt: Filter
    amount_field: str


def season_summary(
    kinds: tuple[KindScope, KindScope],
    *,
    start: datetime,
    end: datetime,
    season_id: Any,
    season_id_field: str,
    game_id_field: str,
    player_id_field: str,
) -> dict[str, Any]:
    counts: list[int] = []
    totals: list[float] = []
    games: list[pa.ChunkedArray] = []
    players: list[pa.ChunkedArray] = []
    for kind in kinds:
        query = _scoped(kind.engine, start, end, kind.flt, season_id_field, season_id)
        derive = {
            "__game": query.fields.text(game_id_field),
            "__player": query.fields.text(player_id_field),
            "__amount": query.fields.number(kind.amount_field),
        }
        table = query.run(
            f"count(*) AS n, {_ordered_sum('__amount')} AS total, "
            f"{_distinct_list('__game')} AS games, {_distinct_list('__player')} AS players",
            derive=derive,
        )
        rows = _rows(table, "n")
        counts.append(rows[0]["n"] if rows else 0)
        totals.append(rows[0]["total"] if rows else 0.0)
        if rows:
            games.append(table.column("games"))
            players.append(table.column("players"))
    return {
        "season_id": season_id,
        "start": iso(start),
        "end": iso(end),
        "signal_count": counts[0],
        "emission_count": counts[1],
        "game_count": _distinct_count(games),
        "player_count": _distinct_count(players),
        "reward_projection_total": totals[0],
        "reward_emitted_total": totals[1],
    }


def per_game_aggregates(
    kinds: tuple[KindScope, KindScope],
    *,
    start: datetime,
    end: datetime,
    season_id: Any,
    season_id_field: str,
    game_id_field: str,
    player_id_field: str,
) -> list[dict[str, Any]]:
    per_game: dict[str, list[tuple[int, float]]] = {}
    pairs: list[pa.Table] = []
    for position, kind in enumerate(kinds):
        query = _scoped(kind.engine, start, end, kind.flt, season_id_field, season_id)
        derive = {
            "__game": query.fields.text(game_id_field),
            "__player": query.fields.text(player_id_field),
            "__amount": query.fields.number(kind.amount_field),
        }
        # Rows sorted by game, then replay order: each game's total is added in Python in that
        # order (DuckDB's grouped ordered sums sort every group apart, several times slower).
        table = query.run(
            "__game AS game, __player AS player, __amount AS amount",
            derive=derive,
            tail=f"WHERE __game IS NOT NULL ORDER BY __game, {REPLAY_ORDER}",
        )
        if "game" not in table.schema.names:
            continue
        games, runs = _runs(table.column("game"))
        totals = _sequential_sums(table.column("amount"), runs)
        for game, (first, last), total in zip(games, runs, totals, strict=True):
            per_game.setdefault(game, [(0, 0.0), (0, 0.0)])[position] = (last - first, total)
        pairs.append(table.select(["game", "player"]))
    players = _distinct_per_key(pa.concat_tables(pairs), "game", "player") if pairs else {}
    result = []
    for game_id in sorted(per_game):
        (signal_count, projection_total), (emission_count, emitted_total) = per_game[game_id]
        result.append(
            {
                "season_id": season_id,
                "game_id": game_id,
                "signal_count": signal_count,
                "emission_count": emission_count,
                "player_count": players.get(game_id, 0),
                "reward_projection_total": projection_total,
                "reward_emitted_total": emitted_total,
            }
        )
    return result


def per_player_dashboard(
    signals: KindScope,
    *,
    start: datetime,
    end: datetime,
    season_id: Any,
    season_id_field: str,
    player_id_field: str,
    game_id_field: str,
    metric_fields: list[str] | None,
) -> list[dict[str, Any]]:
    metrics = list(metric_fields or DEFAULT_METRIC_FIELDS)
    names = list(dict.fromkeys(metrics))
    query = _scoped(signals.engine, start, end, signals.flt, season_id_field, season_id)
    derive = {"__player": query.fields.text(player_id_field), "__game": query.fields.text(game_id_field)}
    for i, name in enumerate(names):
        derive[f"__m{i}"] = query.fields.number(name)
    # Rows sorted by player (Python's str order: DuckDB compares UTF-8 bytes), then replay order;
    # the totals are added in Python in that order. The reference adds a metric listed k times k
    # times per record ((total + v) + v).
    table = query.run(
        "__player AS player, __game AS game" + "".join(f", __m{i} AS m{i}" for i in range(len(names))),
        derive=derive,
        tail=f"WHERE __player IS NOT NULL ORDER BY __player, {REPLAY_ORDER}",
    )
    if "player" not in table.schema.names:
        return []
    players, runs = _runs(table.column("player"))
    games = _distinct_per_key(table.select(["player", "game"]), "player", "game")
    totals = [_sequential_sums(table.column(f"m{i}"), runs, metrics.count(name)) for i, name in enumerate(names)]
    result = []
    for k, (player, (first, last)) in enumerate(zip(players, runs, strict=True)):
        result.append(
            {
                "season_id": season_id,
                "player_id": player,
                "signal_count": last - first,
                "games_played": games[player],
                "metrics": {name: totals[i][k] for i, name in enumerate(names)},
            }
        )
    return result


def founder_stake_heartbeat(
    signals: KindScope,
    *,
    start: datetime,
    end: datetime,
    season_id: Any,
    founder_id: Any,
    season_id_field: str,
    founder_id_field: str,
    stake_delta_field: str,
    stake_value_field: str,
) -> list[dict[str, Any]]:
    query = _scoped(signals.engine, start, end, signals.flt, season_id_field, season_id)
    fields = query.fields
    derive = {
        "__founder": fields.text(founder_id_field),
        "__delta": fields.number(stake_delta_field),
        "__explicit": f"CASE WHEN {fields.present(stake_value_field)} THEN {fields.number(stake_value_field)} END",
    }
    wanted = "TRUE"
    if founder_id is not None:
        wanted = f"__founder = {query.flt.param(founder_id)}" if isinstance(founder_id, str) else "FALSE"
    table = query.run(
        f"__founder AS founder, {ISO_SQL} AS ts, signal_id, __delta AS delta, __explicit AS explicit",
        derive=derive,
        # DuckDB orders strings by their UTF-8 bytes, which is Python's order of str.
        tail=f"WHERE __founder IS NOT NULL AND {wanted} ORDER BY timestamp, signal_id",
    )
    if "founder" not in table.schema.names:
        return []
    founders, stamps, ids, deltas, explicits = (table.column(name).to_pylist() for name in table.schema.names)
    # The running stake is a scan in event order that restarts at every explicit value; it is
    # folded here, while building the one output row per event (SQL cannot fold a running float
    # sum in order: window sums add in tree order).
    running: dict[str, float] = {}
    values = []
    for founder, delta, explicit in zip(founders, deltas, explicits, strict=True):
        value = explicit if explicit is not None else running.get(founder, 0.0) + delta
        running[founder] = value
        values.append(value)
    return [
        {
            "season_id": season_id,
            "founder_id": founder,
            "timestamp": ts,
            "event_kind": "signal",
            "event_id": event_id,
            "stake_delta": delta,
            "stake_value": value,
        }
        for founder, ts, event_id, delta, value in zip(founders, stamps, ids, deltas, values, strict=True)
    ]


_RANK = "__proj DESC, timestamp DESC, signal_id DESC"


def _active_projections(
    signals: KindScope,
    start: datetime,
    end: datetime,
    season_id: Any,
    season_id_field: str,
    window_status_field: str,
    active_status: Any,
    projection_field: str,
) -> tuple[_Query, dict[str, str]]:
    query = _scoped(signals.engine, start, end, signals.flt, season_id_field, season_id)
    query.match(window_status_field, active_status)
    # + 0.0 makes -0.0 rank like 0.0 (Python compares them equal; the tie goes to the timestamp).
    return query, {"__proj": f"({query.fields.number(projection_field)}) + 0.0"}


def active_reward_projections(
    signals: KindScope,
    *,
    start: datetime,
    end: datetime,
    season_id: Any,
    season_id_field: str,
    window_status_field: str,
    active_status: Any,
    projection_field: str,
    limit: int | None,
) -> pa.Table:
    """Rows of the matching signals in rank order (build envelopes with the engine)."""
    query, derive = _active_projections(
        signals, start, end, season_id, season_id_field, window_status_field, active_status, projection_field
    )
    use_limit = limit if limit is not None and limit >= 0 else None
    # Rank on the kept fields alone, then read the whole rows of the ranked ids only.
    ranked = query.run("signal_id", derive=derive, tail=f"ORDER BY {_RANK}", limit=use_limit)
    engine = signals.engine
    if "signal_id" not in ranked.schema.names or not ranked.num_rows:
        return no_rows(engine.kind_schema)
    ids = ranked.column("signal_id").to_pylist()
    flt = Filter()
    flt.add(f"signal_id IN (SELECT unnest({flt.param(ids)}::VARCHAR[]))", columns=["signal_id"])
    rows = engine.select(start, end, flt, order="signal_id")
    where = {record_id: i for i, record_id in enumerate(rows.column("signal_id").to_pylist())}
    return rows.take(pa.array([where[record_id] for record_id in ids], pa.int64()))


def active_reward_projection_totals(
    signals: KindScope,
    *,
    start: datetime,
    end: datetime,
    season_id: Any,
    group_by_field: str,
    projection_field: str,
) -> list[dict[str, Any]]:
    query, derive = _active_projections(
        signals, start, end, season_id, "season_id", "window_status", "ACTIVE", projection_field
    )
    derive["__group"] = query.fields.text(group_by_field)
    # Rows in rank order; totals added in that order, groups in order of first appearance (as the
    # reference's dict holds them; the final sort is stable, which shows when a total is NaN).
    table = query.run("__group AS grp, __proj AS proj", derive=derive,
                      tail=f"WHERE __group IS NOT NULL ORDER BY {_RANK}")
    counts: dict[str, int] = {}
    totals: dict[str, float] = {}
    if "grp" in table.schema.names:
        for group, value in zip(table.column("grp").to_pylist(), table.column("proj").to_pylist(), strict=True):
            counts[group] = counts.get(group, 0) + 1
            totals[group] = totals.get(group, 0.0) + value
    result = [
        {"season_id": season_id, "group": group, "signal_count": counts[group], "reward_projection_total": total}
        for group, total in totals.items()
    ]
    result.sort(key=lambda item: (item["reward_projection_total"], item["group"]), reverse=True)
    return result


def stage_filter(
    flt: Filter, *, stage: str, sources: list[str] | None, season_id: Any, season_id_field: str
) -> tuple[Filter, tuple[str, Any] | None]:
    """The stage replay's filter: without ``sources``, sources ``s1.<stage>`` / ``season1.<stage>``
    or below them (``<prefix>.``). Returns the (key, value) left for Python to check when
    ``season_id`` is not a string (see ``_payload_match``), else None."""
    if not sources:
        parts = []
        for prefix in STAGE_SOURCE_PREFIXES:
            name = f"{prefix}{stage}"
            parts.append(f"source = {flt.param(name)} OR starts_with(source, {flt.param(name + '.')})")
        flt.add(" OR ".join(f"({p})" for p in parts))
    if season_id is None or flt.payload_equals(season_id_field, season_id):
        return flt, None
    return flt, (season_id_field, season_id)


def keep_matching(signals: Iterator[Any], key: str, expected: Any) -> Iterator[Any]:
    for signal in signals:
        if isinstance(signal.payload, dict) and signal.payload.get(key) == expected:
            yield signal


# --------------------------------------------------------------------------- research export


_SIGNAL_COLUMNS = "signal_id AS id, epoch_us(timestamp) AS us, source, payload_type, payload, refs"
_EMISSION_COLUMNS = "emission_id AS id, epoch_us(timestamp) AS us, emission_type, caused_by, payload, refs"


def research_rows(
    kinds: list[tuple[str, KindScope]],
    *,
    start: datetime,
    end: datetime,
    season_id: Any,
    season_id_field: str,
) -> list[dict[str, Any]]:
    """The export's rows (the reference's dicts), ordered by (timestamp, record_id, record_kind)."""
    keyed: list[tuple[int, str, str, dict[str, Any]]] = []
    for name, kind in kinds:
        query = _scoped(kind.engine, start, end, kind.flt, season_id_field, season_id)
        table = query.run(
            _SIGNAL_COLUMNS if name == "signal" else _EMISSION_COLUMNS,
            derive={"refs": "to_json(entity_refs)::VARCHAR"},
            columns="*",
        )
        if "us" not in table.schema.names:
            continue
        loads = orjson.loads
        for row in table.to_pylist():
            ts = iso_z(EPOCH + timedelta(microseconds=row["us"]))
            record: dict[str, Any] = {"record_kind": name, "record_id": row["id"], "timestamp": ts}
            if name == "signal":
                record["source"] = row["source"]
                record["payload_type"] = row["payload_type"]
            else:
                record["emission_type"] = row["emission_type"]
                record["caused_by"] = row["caused_by"]
            record["payload"] = loads(row["payload"])
            record["season_id"] = season_id
            record["entity_refs"] = loads(row["refs"]) or []
            keyed.append((row["us"], row["id"], name, record))
    keyed.sort(key=lambda item: (item[0], item[1], item[2]))
    return [item[3] for item in keyed]


def ndjson_line(row: dict[str, Any]) -> str:
    """The reference's line: ``json.dumps`` with sorted keys, compact separators, ASCII escapes."""
    return json.dumps(row, sort_keys=True, separators=(",", ":")) + "\n"


def write_export(rows: list[dict[str, Any]], destination: str | Path) -> Path:
    """Write ``rows`` as NDJSON, or as Parquet when the name ends in ``.parquet``; the file is
    replaced atomically (a rerun or a crash never leaves a torn file)."""
    path = Path(destination)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.name.lower().endswith(".parquet"):
        import pyarrow.parquet as pq

        table = research_table(rows)
        replace_atomically(path, lambda handle: pq.write_table(table, handle, compression="zstd"))
    else:
        replace_atomically(path, lambda handle: handle.write("".join(map(ndjson_line, rows)).encode("utf-8")))
    return path


_REF_TYPE = pa.struct(
    [(name, pa.string()) for name in ("ref_type", "value", "platform", "label", "schema_version")]
)


def _season_text(season_id: Any) -> str | None:
    """A string season as itself; another value (``season_id`` is typed ``str``) as JSON text."""
    if season_id is None or isinstance(season_id, str):
        return season_id
    return json.dumps(season_id, sort_keys=True, separators=(",", ":"))


def research_table(rows: list[dict[str, Any]]) -> pa.Table:
    """The export's rows as Arrow: one column per NDJSON key (null where a kind lacks it),
    ``timestamp`` as a UTC timestamp, ``payload`` as the NDJSON line's JSON text."""

    def column(name: str) -> list[Any]:
        return [row.get(name) for row in rows]

    def payload_text(value: Any) -> str:
        return json.dumps(value, sort_keys=True, separators=(",", ":"))

    return pa.table(
        {
            "record_kind": pa.array(column("record_kind"), pa.string()),
            "record_id": pa.array(column("record_id"), pa.string()),
            "timestamp": pa.array(
                [datetime.fromisoformat(t.replace("Z", "+00:00")) for t in column("timestamp")],
                pa.timestamp("us", tz="UTC"),
            ),
            "source": pa.array(column("source"), pa.string()),
            "payload_type": pa.array(column("payload_type"), pa.string()),
            "emission_type": pa.array(column("emission_type"), pa.string()),
            "caused_by": pa.array(column("caused_by"), pa.string()),
            "payload": pa.array([payload_text(row["payload"]) for row in rows], pa.string()),
            "season_id": pa.array([_season_text(row["season_id"]) for row in rows], pa.string()),
            "entity_refs": pa.array(column("entity_refs"), pa.list_(_REF_TYPE)),
        }
    )


__all__ = [
    "DEFAULT_METRIC_FIELDS",
    "KindScope",
    "active_reward_projection_totals",
    "active_reward_projections",
    "founder_stake_heartbeat",
    "keep_matching",
    "per_game_aggregates",
    "per_player_dashboard",
    "research_rows",
    "season_summary",
    "stage_filter",
    "write_export",
]
