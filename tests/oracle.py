"""A plain in-memory model of the metaspn-store read semantics (DESIGN.md, "The reference is the oracle").

It knows nothing about files, SQL or the implementation: it is fed the envelopes in the order they
were written and answers every read method of ``FileSystemStore`` with plain Python.

Rules it encodes:

- first write wins for an id, forever (later records with the same id are dropped);
- replay order is ``(timestamp, append order)``;
- windows are inclusive ``[start, end]`` in UTC at microsecond precision, naive = UTC,
  ``end < start`` raises ``ValueError``;
- list filters: ``None`` or an empty list mean "no filter";
- ``entity_ref`` matches by full ``EntityRef`` equality against any of a record's refs;
- payload filters use Python ``==`` on ``payload.get(key)`` and need a dict payload;
- ``get_last_posts_by_entity`` returns the last ``limit`` posts (not 0.1.8's "posts among the last
  4 * limit signals");
- ``write_*`` returns where the first record of the id is: its hot day file, or its Parquet day
  folder once that day was compacted (the caller says which days were, with ``compacted``).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timezone
from pathlib import PurePosixPath
from typing import Any

from metaspn_schemas import EmissionEnvelope, EntityRef, SignalEnvelope

from metaspn_store import ReplayCheckpoint

UTC = timezone.utc
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

PENDING_TYPES = frozenset({"OutcomePending", "EvaluationRequested", "RecommendationAttempted"})
SUCCESS_TYPES = frozenset({"OutcomeSuccess", "DraftApproved"})
FAILURE_TYPES = frozenset({"OutcomeFailure", "DraftRejected"})
RESOLVER_TYPES = frozenset({"EntityResolved", "EntityMerged", "EntityAliasAdded"})
POST_TYPES = frozenset({"SocialPostSeen"})


def as_utc(value: datetime) -> datetime:
    """Naive means UTC; aware values are converted to UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def parse_expiry(value: Any) -> datetime | None:
    """``expires_at`` the way the contract reads it: ISO text (``Z`` allowed) via
    ``datetime.fromisoformat``, naive = UTC; anything else (or unparseable) = never expires."""
    if not isinstance(value, str):
        return None
    text = value
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return as_utc(parsed)


def numeric_score(payload: Any, field: str) -> float | None:
    """The top-candidate score, or None when the record is not a candidate."""
    if not isinstance(payload, dict):
        return None
    value = payload[field] if field in payload else 0.0
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, (int, float)):
        return float(value)
    return None


def entity_key(signal: SignalEnvelope) -> str:
    if not signal.entity_refs:
        return "signal:" + signal.signal_id
    first = signal.entity_refs[0]
    return f"{first.ref_type}:{first.platform}:{first.value}"


def _as_set(values: Iterable[str] | None) -> set[str] | None:
    if not values:
        return None
    return set(values)


def _payload_equals(payload: Any, key: str, expected: Any) -> bool:
    if expected is None:
        return True
    return isinstance(payload, dict) and payload.get(key) == expected


def _limit_or_all(rows: list, limit: int | None) -> list:
    if limit is None or limit < 0:
        return rows
    return rows[:limit]


def _newest_first(rows: list, id_attr: str) -> list:
    return sorted(rows, key=lambda r: (r.timestamp, getattr(r, id_attr)), reverse=True)


def _oldest_first(rows: list, id_attr: str) -> list:
    return sorted(rows, key=lambda r: (r.timestamp, getattr(r, id_attr)))


class Oracle:
    """Feed it writes (``write_signal`` / ``write_emission``) then ask it the read questions."""

    def __init__(
        self,
        signals: Iterable[SignalEnvelope] = (),
        emissions: Iterable[EmissionEnvelope] = (),
    ) -> None:
        self._signals: list[SignalEnvelope] = []
        self._emissions: list[EmissionEnvelope] = []
        self._signal_days: dict[str, date] = {}
        self._emission_days: dict[str, date] = {}
        self._cold: dict[str, set[str]] = {"signals": set(), "emissions": set()}  # ids in Parquet
        for signal in signals:
            self.write_signal(signal)
        for emission in emissions:
            self.write_emission(emission)

    # ------------------------------------------------------------------ writes

    def write_signal(self, signal: SignalEnvelope) -> PurePosixPath:
        """Record a write; return ``signals/DAY.jsonl`` of the first record with that id."""
        if signal.signal_id not in self._signal_days:
            self._signal_days[signal.signal_id] = as_utc(signal.timestamp).date()
            self._signals.append(signal)
        return self._location("signals", signal.signal_id, self._signal_days[signal.signal_id])

    def write_emission(self, emission: EmissionEnvelope) -> PurePosixPath:
        if emission.emission_id not in self._emission_days:
            self._emission_days[emission.emission_id] = as_utc(emission.timestamp).date()
            self._emissions.append(emission)
        return self._location("emissions", emission.emission_id, self._emission_days[emission.emission_id])

    def compacted(self, kind: str, day: date) -> None:
        """``day`` of ``kind`` ("signals" / "emissions") was compacted: the first records stored
        on it so far now live in its Parquet day folder (later writes to the day stay hot until
        the next compaction)."""
        days = self._signal_days if kind == "signals" else self._emission_days
        self._cold[kind].update(record_id for record_id, stored in days.items() if stored == day)

    def _location(self, kind: str, record_id: str, day: date) -> PurePosixPath:
        if record_id in self._cold[kind]:
            return PurePosixPath("cold", kind, f"day={day.isoformat()}")
        return PurePosixPath(kind, f"{day.isoformat()}.jsonl")

    @property
    def stored_signals(self) -> list[SignalEnvelope]:
        """Accepted signals in write order."""
        return list(self._signals)

    @property
    def stored_emissions(self) -> list[EmissionEnvelope]:
        return list(self._emissions)

    # ------------------------------------------------------------------ replay

    @staticmethod
    def _window(start: datetime, end: datetime) -> tuple[datetime, datetime]:
        lo, hi = as_utc(start), as_utc(end)
        if hi < lo:
            raise ValueError("end must not be before start")
        return lo, hi

    def iter_signals(
        self,
        start: datetime,
        end: datetime,
        entity_ref: EntityRef | None = None,
        sources: list[str] | None = None,
    ) -> list[SignalEnvelope]:
        lo, hi = self._window(start, end)
        wanted = _as_set(sources)
        # sorted() is stable: equal timestamps keep write (= append) order.
        ordered = sorted(self._signals, key=lambda s: as_utc(s.timestamp))
        return [
            s
            for s in ordered
            if lo <= as_utc(s.timestamp) <= hi
            and (wanted is None or s.source in wanted)
            and (entity_ref is None or entity_ref in s.entity_refs)
        ]

    def iter_emissions(
        self,
        start: datetime,
        end: datetime,
        entity_ref: EntityRef | None = None,
        emission_types: list[str] | None = None,
    ) -> list[EmissionEnvelope]:
        lo, hi = self._window(start, end)
        wanted = _as_set(emission_types)
        ordered = sorted(self._emissions, key=lambda e: as_utc(e.timestamp))
        return [
            e
            for e in ordered
            if lo <= as_utc(e.timestamp) <= hi
            and (wanted is None or e.emission_type in wanted)
            and (entity_ref is None or entity_ref in e.entity_refs)
        ]

    def iter_signals_from_checkpoint(
        self,
        *,
        end: datetime,
        checkpoint: ReplayCheckpoint | None = None,
        start: datetime | None = None,
        entity_ref: EntityRef | None = None,
        sources: list[str] | None = None,
    ) -> list[SignalEnvelope]:
        begin = as_utc(start) if start is not None else EPOCH
        skip: set[str] = set()
        at: datetime | None = None
        if checkpoint is not None:
            at = as_utc(checkpoint.last_timestamp)
            begin = max(begin, at)
            skip = set(checkpoint.seen_ids_at_timestamp)
        return [
            s
            for s in self.iter_signals(begin, end, entity_ref, sources)
            if not (at is not None and as_utc(s.timestamp) == at and s.signal_id in skip)
        ]

    def build_signal_checkpoint(self, processed: Iterable[SignalEnvelope]) -> ReplayCheckpoint | None:
        last: datetime | None = None
        ids: list[str] = []
        for s in processed:
            ts = as_utc(s.timestamp)
            if last is not None and ts < last:
                raise ValueError("processed signals are not in timestamp order")
            if last is None or ts > last:
                last, ids = ts, []
            if s.signal_id not in ids:
                ids.append(s.signal_id)
        if last is None:
            return None
        return ReplayCheckpoint(last_timestamp=last, seen_ids_at_timestamp=tuple(ids))

    # ------------------------------------------------------------------ recent / latest

    def get_recent_signals_by_entity(
        self,
        *,
        entity_ref: EntityRef,
        limit: int,
        start: datetime | None = None,
        end: datetime | None = None,
        sources: list[str] | None = None,
    ) -> list[SignalEnvelope]:
        if limit <= 0:
            return []
        rows = self.iter_signals(start or EPOCH, end or datetime.now(UTC), entity_ref, sources)
        return _newest_first(rows, "signal_id")[:limit]

    def get_last_posts_by_entity(
        self,
        *,
        entity_ref: EntityRef,
        limit: int,
        start: datetime | None = None,
        end: datetime | None = None,
        sources: list[str] | None = None,
        payload_types: list[str] | None = None,
    ) -> list[SignalEnvelope]:
        if limit <= 0:
            return []
        post_types = _as_set(payload_types) or set(POST_TYPES)
        rows = self.iter_signals(start or EPOCH, end or datetime.now(UTC), entity_ref, sources)
        posts = [s for s in rows if s.payload_type in post_types]
        return _newest_first(posts, "signal_id")[:limit]

    def get_recent_signals_by_source(
        self,
        *,
        source: str,
        limit: int,
        start: datetime | None = None,
        end: datetime | None = None,
        entity_ref: EntityRef | None = None,
    ) -> list[SignalEnvelope]:
        if limit <= 0:
            return []
        rows = self.iter_signals(start or EPOCH, end or datetime.now(UTC), entity_ref, [source])
        return _newest_first(rows, "signal_id")[:limit]

    def get_latest_draft_signals(
        self,
        *,
        limit: int,
        start: datetime,
        end: datetime,
        entity_ref: EntityRef | None = None,
        sources: list[str] | None = None,
        payload_types: list[str] | None = None,
    ) -> list[SignalEnvelope]:
        if limit <= 0:
            return []
        types = _as_set(payload_types)
        rows = [
            s
            for s in self.iter_signals(start, end, entity_ref, sources)
            if types is None or s.payload_type in types
        ]
        return _newest_first(rows, "signal_id")[:limit]

    def get_latest_approval_outcomes(
        self,
        *,
        limit: int,
        start: datetime,
        end: datetime,
        entity_ref: EntityRef | None = None,
        emission_types: list[str] | None = None,
    ) -> list[EmissionEnvelope]:
        if limit <= 0:
            return []
        return _newest_first(self.iter_emissions(start, end, entity_ref, emission_types), "emission_id")[
            :limit
        ]

    # ------------------------------------------------------------------ replay views

    def iter_entity_candidate_signals(
        self,
        *,
        start: datetime,
        end: datetime,
        resolved: bool | None = None,
        sources: list[str] | None = None,
    ) -> list[SignalEnvelope]:
        out = []
        for s in self.iter_signals(start, end, None, sources):
            is_resolved = len(s.entity_refs) > 0 or s.payload_type in RESOLVER_TYPES
            if resolved is None or resolved is is_resolved:
                out.append(s)
        return out

    def iter_stage_window_signals(
        self,
        *,
        stage: str,
        start: datetime,
        end: datetime,
        checkpoint: ReplayCheckpoint | None = None,
        entity_ref: EntityRef | None = None,
        sources: list[str] | None = None,
        payload_types: list[str] | None = None,
    ) -> list[SignalEnvelope]:
        types = _as_set(payload_types)
        rows = self.iter_signals_from_checkpoint(
            start=start, end=end, checkpoint=checkpoint, entity_ref=entity_ref, sources=sources
        )
        out = []
        for s in rows:
            if not sources and not (s.source == stage or s.source.startswith(stage + ".")):
                continue
            if types is not None and s.payload_type not in types:
                continue
            out.append(s)
        return out

    def iter_recommendation_signals(
        self,
        *,
        start: datetime,
        end: datetime,
        checkpoint: ReplayCheckpoint | None = None,
        entity_ref: EntityRef | None = None,
        sources: list[str] | None = None,
        payload_types: list[str] | None = None,
    ) -> list[SignalEnvelope]:
        types = _as_set(payload_types)
        rows = self.iter_signals_from_checkpoint(
            start=start, end=end, checkpoint=checkpoint, entity_ref=entity_ref, sources=sources
        )
        return [s for s in rows if types is None or s.payload_type in types]

    def iter_learning_signals(self, **kwargs: Any) -> list[SignalEnvelope]:
        return self.iter_recommendation_signals(**kwargs)

    def iter_learning_emissions(
        self,
        *,
        start: datetime,
        end: datetime,
        entity_ref: EntityRef | None = None,
        emission_types: list[str] | None = None,
    ) -> list[EmissionEnvelope]:
        return self.iter_emissions(start, end, entity_ref, emission_types)

    # ------------------------------------------------------------------ read models

    def get_top_recommendation_candidates(
        self,
        *,
        start: datetime,
        end: datetime,
        limit: int,
        entity_ref: EntityRef | None = None,
        sources: list[str] | None = None,
        payload_types: list[str] | None = None,
        score_field: str = "score",
        unique_by_entity: bool = True,
    ) -> list[SignalEnvelope]:
        if limit <= 0:
            return []
        types = _as_set(payload_types)
        scored = []
        for s in self.iter_signals(start, end, entity_ref, sources):
            if types is not None and s.payload_type not in types:
                continue
            score = numeric_score(s.payload, score_field)
            if score is None:
                continue
            scored.append((score, as_utc(s.timestamp), s.signal_id, s))
        scored.sort(key=lambda item: item[:3], reverse=True)
        if not unique_by_entity:
            return [item[3] for item in scored[:limit]]
        picked: list[SignalEnvelope] = []
        keys: set[str] = set()
        for *_, s in scored:
            key = entity_key(s)
            if key in keys:
                continue
            keys.add(key)
            picked.append(s)
            if len(picked) == limit:
                break
        return picked

    def get_ready_candidates(
        self,
        *,
        start: datetime,
        end: datetime,
        limit: int | None = None,
        entity_ref: EntityRef | None = None,
        sources: list[str] | None = None,
        ready_field: str = "status",
        ready_value: str = "READY",
        payload_types: list[str] | None = None,
    ) -> list[SignalEnvelope]:
        types = _as_set(payload_types)
        rows = [
            s
            for s in self.iter_signals(start, end, entity_ref, sources)
            if (types is None or s.payload_type in types)
            and isinstance(s.payload, dict)
            and s.payload.get(ready_field) == ready_value
        ]
        return _limit_or_all(_newest_first(rows, "signal_id"), limit)

    def get_outcomes_for_window(
        self,
        *,
        start: datetime,
        end: datetime,
        entity_ref: EntityRef | None = None,
        emission_types: list[str] | None = None,
    ) -> list[EmissionEnvelope]:
        return _oldest_first(self.iter_emissions(start, end, entity_ref, emission_types), "emission_id")

    def get_token_signals(
        self,
        *,
        start: datetime,
        end: datetime,
        token_id: str | None = None,
        project_entity_id: str | None = None,
        entity_ref: EntityRef | None = None,
        sources: list[str] | None = None,
        payload_types: list[str] | None = None,
        limit: int | None = None,
    ) -> list[SignalEnvelope]:
        types = _as_set(payload_types)
        rows = [
            s
            for s in self.iter_signals(start, end, entity_ref, sources)
            if (types is None or s.payload_type in types)
            and _payload_equals(s.payload, "token_id", token_id)
            and _payload_equals(s.payload, "project_entity_id", project_entity_id)
        ]
        return _limit_or_all(_oldest_first(rows, "signal_id"), limit)

    def get_promise_signals(
        self,
        *,
        start: datetime,
        end: datetime,
        promise_id: str | None = None,
        status: str | None = None,
        entity_ref: EntityRef | None = None,
        sources: list[str] | None = None,
        payload_types: list[str] | None = None,
        limit: int | None = None,
    ) -> list[SignalEnvelope]:
        types = _as_set(payload_types)
        rows = [
            s
            for s in self.iter_signals(start, end, entity_ref, sources)
            if (types is None or s.payload_type in types)
            and _payload_equals(s.payload, "promise_id", promise_id)
            and _payload_equals(s.payload, "status", status)
        ]
        return _limit_or_all(_oldest_first(rows, "signal_id"), limit)

    def get_promise_outcomes_for_window(
        self,
        *,
        start: datetime,
        end: datetime,
        promise_id: str | None = None,
        status: str | None = None,
        entity_ref: EntityRef | None = None,
        emission_types: list[str] | None = None,
    ) -> list[EmissionEnvelope]:
        rows = [
            e
            for e in self.iter_emissions(start, end, entity_ref, emission_types)
            if _payload_equals(e.payload, "promise_id", promise_id)
            and _payload_equals(e.payload, "status", status)
        ]
        return _oldest_first(rows, "emission_id")

    # ------------------------------------------------------------------ outcomes

    def get_unresolved_outcome_signals(
        self,
        *,
        start: datetime,
        end: datetime,
        entity_ref: EntityRef | None = None,
        sources: list[str] | None = None,
        pending_payload_types: list[str] | None = None,
        success_emission_types: list[str] | None = None,
        failure_emission_types: list[str] | None = None,
    ) -> list[SignalEnvelope]:
        pending = _as_set(pending_payload_types) or set(PENDING_TYPES)
        closing = (_as_set(success_emission_types) or set(SUCCESS_TYPES)) | (
            _as_set(failure_emission_types) or set(FAILURE_TYPES)
        )
        resolved_ids = {e.caused_by for e in self.iter_emissions(start, end, entity_ref, sorted(closing))}
        rows = [
            s
            for s in self.iter_signals(start, end, entity_ref, sources)
            if s.payload_type in pending and s.signal_id not in resolved_ids
        ]
        return _oldest_first(rows, "signal_id")

    def get_expired_outcome_signals(
        self,
        *,
        now: datetime,
        start: datetime,
        end: datetime,
        entity_ref: EntityRef | None = None,
        sources: list[str] | None = None,
        pending_payload_types: list[str] | None = None,
        success_emission_types: list[str] | None = None,
        failure_emission_types: list[str] | None = None,
        expires_at_field: str = "expires_at",
    ) -> list[SignalEnvelope]:
        cutoff = as_utc(now)
        unresolved = self.get_unresolved_outcome_signals(
            start=start,
            end=end,
            entity_ref=entity_ref,
            sources=sources,
            pending_payload_types=pending_payload_types,
            success_emission_types=success_emission_types,
            failure_emission_types=failure_emission_types,
        )
        out = []
        for s in unresolved:
            if not isinstance(s.payload, dict):
                continue
            expiry = parse_expiry(s.payload.get(expires_at_field))
            if expiry is not None and expiry < cutoff:
                out.append(s)
        return out

    def get_outcome_window_buckets(
        self,
        *,
        now: datetime,
        start: datetime,
        end: datetime,
        entity_ref: EntityRef | None = None,
        sources: list[str] | None = None,
        pending_payload_types: list[str] | None = None,
        success_emission_types: list[str] | None = None,
        failure_emission_types: list[str] | None = None,
        expires_at_field: str = "expires_at",
    ) -> dict[str, list]:
        common = {
            "start": start,
            "end": end,
            "entity_ref": entity_ref,
            "sources": sources,
            "pending_payload_types": pending_payload_types,
            "success_emission_types": success_emission_types,
            "failure_emission_types": failure_emission_types,
        }
        unresolved = self.get_unresolved_outcome_signals(**common)
        expired = self.get_expired_outcome_signals(now=now, expires_at_field=expires_at_field, **common)
        expired_ids = {s.signal_id for s in expired}
        success_types = sorted(_as_set(success_emission_types) or SUCCESS_TYPES)
        failure_types = sorted(_as_set(failure_emission_types) or FAILURE_TYPES)
        return {
            "pending": [s for s in unresolved if s.signal_id not in expired_ids],
            "expired": expired,
            "success": _oldest_first(
                self.iter_emissions(start, end, entity_ref, success_types), "emission_id"
            ),
            "failure": _oldest_first(
                self.iter_emissions(start, end, entity_ref, failure_types), "emission_id"
            ),
        }
