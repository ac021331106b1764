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

The payload's JSON type and the types of every field a query reads come from one parse
(``json_type`` over a list of JSON pointers), their values as text from a second
(``json_extract_string``), whatever the number of fields.

**Sums** are ``sum(value ORDER BY <order>)``: DuckDB folds an ordered aggregate sequentially in
that order, which is the reference's ``total += value`` loop over the same values in the same
order (replay order ``(timestamp, append order)``, or rank order for projection totals), so totals
are bit-identical to the reference's, including where float rounding makes the order matter.
``tests/test_season1.py`` checks that with cancelling values. ``+ 0.0`` turns a ``-0.0`` total into
the reference's ``0.0`` (its running total starts at ``0.0``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from metaspn_store._codec import EPOCH, ensure_utc, iso_z
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
        self.flt.add(f"{idc} IN (SELECT unnest({self.flt.param(ids)}::VARCHAR[]))" if ids else "FALSE")

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
        )


def _python_matches(
    engine: QueryEngine, start: datetime, end: datetime, flt: Filter, key: str, expected: Any
) -> list[str]:
    """Ids whose object payload has ``payload.get(key) == expected`` in Python, for a non-string
    ``expected`` (``1 == 1.0 == True``; lists and dicts compare structurally). Reads only the ids
    and the field's JSON text of the records that have the key."""
    scoped = flt.with_clause("TRUE")
    ptr = scoped.param(json_pointer(key))
    scoped.add(f"json_type(payload) = 'OBJECT' AND json_type(payload, {ptr}) IS NOT NULL")
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


def _players_per_group(tables: list[pa.Table]) -> dict[str, int]:
    """Distinct players per game across the kinds' ``(game, players)`` tables (Arrow compute)."""
    pairs = []
    for table in tables:
        lists = table.column("players").combine_chunks()
        flat = pc.list_flatten(lists)
        if len(flat):
            owners = pc.take(table.column("game"), pc.list_parent_indices(lists))
            pairs.append(pa.table({"game": owners, "player": flat}))
    if not pairs:
        return {}
    grouped = pa.concat_tables(pairs).group_by("game").aggregate([("player", "count_distinct")])
    return dict(zip(grouped.column("game").to_pylist(), grouped.column("player_count_distinct").to_pylist(), strict=True))


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
    player_tables: list[pa.Table] = []
    for position, kind in enumerate(kinds):
        query = _scoped(kind.engine, start, end, kind.flt, season_id_field, season_id)
        derive = {
            "__game": query.fields.text(game_id_field),
            "__player": query.fields.text(player_id_field),
            "__amount": query.fields.number(kind.amount_field),
        }
        table = query.run(
            f"__game AS game, count(*) AS n, {_ordered_sum('__amount')} AS total, {_distinct_list('__player')} AS players",
            derive=derive,
            tail="WHERE __game IS NOT NULL GROUP BY __game",
        )
        if "game" not in table.schema.names:
            continue
        player_tables.append(table.select(["game", "players"]))
        for row in table.select(["game", "n", "total"]).to_pylist():
            per_game.setdefault(row["game"], [(0, 0.0), (0, 0.0)])[position] = (row["n"], row["total"])
    players = _players_per_group(player_tables)
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
    # The reference adds a metric listed k times k times per record ((total + v) + v): every row
    # is repeated max(k) times (``__rep``), and a metric sums its first k copies in replay order.
    repeats = max(metrics.count(name) for name in names)
    query = _scoped(signals.engine, start, end, signals.flt, season_id_field, season_id)
    derive = {"__player": query.fields.text(player_id_field), "__game": query.fields.text(game_id_field)}
    for i, name in enumerate(names):
        derive[f"__m{i}"] = query.fields.number(name)
    sums = "".join(
        f", {_ordered_sum(f'__m{i}', REPLAY_ORDER + ', __rep', f'__rep < {metrics.count(name)}')} AS m{i}"
        for i, name in enumerate(names)
    )
    table = query.run(
        f"__player AS player, count(*) FILTER (WHERE __rep = 0) AS n, count(DISTINCT __game) AS games{sums}",
        derive=derive,
        join=f"CROSS JOIN range({int(repeats)}) AS __r(__rep)",
        tail="WHERE __player IS NOT NULL GROUP BY __player",
    )
    return [
        {
            "season_id": season_id,
            "player_id": row["player"],
            "signal_count": row["n"],
            "games_played": row["games"],
            "metrics": {name: row[f"m{i}"] for i, name in enumerate(names)},
        }
        for row in sorted(_rows(table, "player"), key=lambda r: r["player"])
    ]


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
    return query.run(
        f"* EXCLUDE (__proj, __pos, {query.fields.names()})",
        derive=derive,
        columns="*",
        tail=f"ORDER BY {_RANK}",
        limit=use_limit,
    )


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
    table = query.run(
        f"__group AS grp, count(*) AS n, {_ordered_sum('__proj', _RANK)} AS total, "
        "max(struct_pack(p := __proj, t := timestamp, i := signal_id)) AS __first",
        derive=derive,
        # Groups in order of first appearance in rank order, as the reference's dict holds them
        # (the final sort is stable, which only shows when a total is NaN: inf - inf).
        tail="WHERE __group IS NOT NULL GROUP BY __group ORDER BY __first DESC",
    )
    result = [
        {"season_id": season_id, "group": row["grp"], "signal_count": row["n"], "reward_projection_total": row["total"]}
        for row in _rows(table, "grp")
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
