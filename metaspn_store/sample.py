"""Seeded, deterministic, realistic sample data for MetaSPN workspaces.

This is the project's one sample-data generator: tests, notebooks, the CLI demo and the
benchmarks all draw from it, so that every one of them sees the same shape of data.

The data imitate the MetaSPN worker pipeline ``ingest -> route -> score -> draft -> outcome``:

* ``ingest.twitter`` / ``ingest.farcaster`` see ``SocialPostSeen`` and ``ProfileSnapshotSeen``;
* ``route.worker`` turns posts into ``RouteInput``; ``resolve.worker`` emits ``EntityResolved``
  (a share of them without entity refs), ``EntityMerged`` and ``EntityAliasAdded``;
* ``score.worker`` writes ``RecommendationCandidate`` (payload ``score`` in ``[0, 1]`` and a
  ``status`` such as ``"READY"`` or ``"NEW"``);
* ``learning.worker`` / ``recommend.worker`` write pending outcomes (``OutcomePending``,
  ``EvaluationRequested``, ``RecommendationAttempted``) whose ``expires_at`` is an ISO string with
  ``Z`` (some already past, some in the future, a few missing or unparseable);
* ``draft.worker`` writes ``DraftCreated``; ``token.worker`` and ``promise.worker`` write token
  and promise lifecycle signals; a few ``WorkerHeartbeat`` signals carry non-dict payloads.

Emissions resolve earlier signals: ``OutcomeSuccess`` / ``OutcomeFailure`` are caused by a pending
outcome signal (only a share of pendings is ever resolved), ``DraftApproved`` / ``DraftRejected``
by a ``DraftCreated`` signal, ``PromiseKept`` / ``PromiseBroken`` by a promise signal. Only when a
high ``emission_ratio`` outruns those open causes do ``SignalAcknowledged`` emissions make up the
count. Every ``caused_by`` names a signal written earlier (same day or an earlier day), and no
signal is the cause of two emissions.

Entities (persons, projects, tokens) follow a Zipf-like popularity, so a few are hot. The rarer
corner cases a store must get right are present on purpose, at low rates: exact timestamp ties,
scores that are integers, booleans, strings or missing, ``expires_at`` values that are naive,
offset, unparseable, non-string or missing, non-ASCII text, ``trace`` and ``raw`` on some records.

Only the standard library and ``metaspn_schemas`` are used, and nothing else from this package is
imported, so this module also works next to metaspn-store 0.1.8.
"""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from typing import Any, Protocol

from metaspn_schemas import EmissionEnvelope, EntityRef, SignalEnvelope, TraceContext

__all__ = [
    "DEFAULT_EMISSION_RATIO",
    "DEFAULT_START",
    "SampleStore",
    "generate_workspace",
    "hot_entities",
    "iter_sample_days",
]

DEFAULT_START = date(2026, 2, 1)
DEFAULT_EMISSION_RATIO = 0.1  # emissions per signal, per day

_DAY_US = 86_400_000_000
_UTC = timezone.utc

# fmt: off
# Hour-of-day activity (UTC): quiet nights, busy afternoons; bursts make ties and hot windows.
_HOUR_WEIGHTS = [
    2, 1.5, 1, 1, 1, 1.5, 2.5, 4, 6, 7, 8, 8.5,
    9, 9.5, 10, 10, 9.5, 9, 8, 7, 6, 5, 4, 3,
]
_HOUR_CUM = list(itertools.accumulate(_HOUR_WEIGHTS))

# Chain kinds and their weights; a chain is one item travelling through the pipeline.
_CHAIN_KINDS = ("post", "profile", "candidate", "token", "promise", "heartbeat")
_CHAIN_CUM = list(itertools.accumulate((52, 14, 10, 12, 10, 2)))

_FIRST_NAMES = (
    "Ada", "Grace", "Linus", "Margaret", "Ken", "Barbara", "José", "Zoë", "Ana", "Mateus",
    "Søren", "Chloé", "Yuki", "Wei", "Priya", "Olu", "Émile", "Björn", "Iñés", "Noa",
)
_LAST_NAMES = (
    "Lovelace", "Hopper", "Torvalds", "Hamilton", "Thompson", "Liskov", "Müller", "Østergaard",
    "García", "Nakamura", "Chen", "Patel", "Adeyemi", "Dubois", "Kowalski", "Lindqvist",
)
_WORDS = (
    "shipping", "the", "new", "release", "of", "our", "protocol", "today", "thanks", "to",
    "everyone", "who", "helped", "onchain", "governance", "vote", "is", "live", "reading",
    "notes", "on", "agents", "and", "markets", "builders", "week", "demo", "day", "launch",
    "thread", "🚀", "gm", "☕", "naïve", "café", "über", "データ", "ideas", "feedback", "welcome",
)
_PROJECT_STEMS = (
    "Atlas", "Beacon", "Cobalt", "Delta", "Ember", "Flux", "Garnet", "Harbor", "Iris", "Juniper",
    "Kite", "Lumen", "Mosaic", "Nimbus", "Onyx", "Prism", "Quartz", "Relay", "Summit", "Tidal",
)
_CHAINS = ("base", "ethereum", "optimism", "solana")
_CANDIDATE_STATUSES = ("READY", "NEW", "SCORED", "SHORTLISTED", "DISMISSED")
_CANDIDATE_STATUS_CUM = list(itertools.accumulate((30, 35, 15, 12, 8)))
_PROMISE_STATUSES = ("OPEN", "IN_PROGRESS", "AT_RISK", "KEPT", "BROKEN")
_ROUTES = ("score", "enrich", "ignore", "review")
_WORKER_SOURCES = (
    "route.worker", "score.worker", "recommend.worker", "draft.worker", "learning.worker",
    "token.worker", "promise.worker",
)
_UNPARSEABLE_EXPIRES = ("soon", "", "2026-13-45T25:61:00Z", "next week", "TBD")
# fmt: on


class SampleStore(Protocol):
    """Anything with the batch write API of ``FileSystemStore`` (0.1.8 or this package)."""

    def write_signals(self, signals: list[SignalEnvelope]) -> Any: ...

    def write_emissions(self, emissions: list[EmissionEnvelope]) -> Any: ...


def _iso_z(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _zipf_cum(count: int, exponent: float = 1.05, offset: float = 2.5) -> list[float]:
    """Cumulative Zipf-Mandelbrot weights: rank r has weight 1 / (r + offset) ** exponent."""
    return list(itertools.accumulate(1.0 / (rank + offset) ** exponent for rank in range(count)))


class _Entities:
    """The entity universe of one seed: persons, projects and tokens, each with fixed refs."""

    def __init__(self, seed: int, persons: int) -> None:
        rng = random.Random(f"metaspn-sample-entities:{seed}")
        projects = max(10, persons // 20)
        tokens = max(5, projects // 2)
        self.persons: list[EntityRef] = []
        self.handles: list[str] = []
        for index in range(persons):
            platform = "twitter" if rng.random() < 0.65 else "farcaster"
            first, last = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
            handle = f"{first.lower()}_{last.lower()}_{index}"
            label = f"{first} {last}" if rng.random() < 0.2 else None
            self.persons.append(
                EntityRef(ref_type="person", value=f"p_{index:06d}", platform=platform, label=label)
            )
            self.handles.append(handle)
        self.projects: list[EntityRef] = [
            EntityRef(
                ref_type="project",
                value=f"proj_{index:05d}",
                platform=None,
                label=f"{_PROJECT_STEMS[index % len(_PROJECT_STEMS)]} {index}" if index % 3 == 0 else None,
            )
            for index in range(projects)
        ]
        self.tokens: list[EntityRef] = [
            EntityRef(ref_type="token", value=f"tok_{index:05d}", platform=None) for index in range(tokens)
        ]
        # Each token belongs to one project; hot tokens tend to belong to hot projects.
        self.token_project: list[int] = [
            min(projects - 1, int(rng.random() * rng.random() * projects)) for _ in range(tokens)
        ]
        self.person_cum = _zipf_cum(persons)
        self.project_cum = _zipf_cum(projects)
        self.token_cum = _zipf_cum(tokens)

    @staticmethod
    def _pick(rng: random.Random, cum: list[float]) -> int:
        return bisect.bisect_right(cum, rng.random() * cum[-1])

    def person(self, rng: random.Random) -> int:
        return self._pick(rng, self.person_cum)

    def project(self, rng: random.Random) -> int:
        return self._pick(rng, self.project_cum)

    def token(self, rng: random.Random) -> int:
        return self._pick(rng, self.token_cum)


def _default_entities(signals_per_day: int) -> int:
    return max(50, min(20_000, signals_per_day // 5))


def hot_entities(
    *,
    signals_per_day: int = 2000,
    seed: int = 0,
    entities: int | None = None,
    top: int = 5,
) -> list[EntityRef]:
    """Return the ``top`` most popular person refs of the universe that the same arguments of
    ``iter_sample_days`` use, hottest first (useful for recent-by-entity queries)."""
    universe = _Entities(seed, entities if entities is not None else _default_entities(signals_per_day))
    return universe.persons[: max(0, top)]


class _Draft:
    """One signal before it becomes an envelope (ids are known early so others can cite them)."""

    __slots__ = (
        "offset",
        "seq",
        "signal_id",
        "source",
        "payload_type",
        "payload",
        "refs",
        "trace",
        "raw",
        "pool",
        "extra",
    )

    def __init__(
        self,
        offset: int,
        seq: int,
        signal_id: str,
        source: str,
        payload_type: str,
        payload: Any,
        refs: tuple[EntityRef, ...],
        trace: TraceContext | None = None,
        raw: dict[str, Any] | None = None,
    ) -> None:
        self.offset = offset
        self.seq = seq
        self.signal_id = signal_id
        self.source = source
        self.payload_type = payload_type
        self.payload = payload
        self.refs = refs
        self.trace = trace
        self.raw = raw
        self.pool = -1  # which open-cause pool (pending, draft, promise) it joins once written
        self.extra: Any = None


_Cause = tuple[str, date, int, tuple[EntityRef, ...], Any]
_PENDING, _DRAFT, _PROMISE, _ACK = 0, 1, 2, 3


class _Generator:
    """Carries the state that crosses day boundaries (open pendings, drafts and promises)."""

    _POOL_CAP = 200_000

    def __init__(self, *, seed: int, entities: int, emission_ratio: float) -> None:
        self.rng = random.Random(f"metaspn-sample:{seed}")
        self.universe = _Entities(seed, entities)
        self.emission_ratio = emission_ratio
        # Open causes, oldest first: (signal_id, day of the signal, offset_us in it, refs, extra).
        self.pools: tuple[list[_Cause], list[_Cause], list[_Cause]] = ([], [], [])
        self._current: list[_Draft] = []

    # -- helpers -------------------------------------------------------------------------------

    def _text(self, low: int, high: int) -> str:
        rng = self.rng
        return " ".join(rng.choice(_WORDS) for _ in range(rng.randint(low, high)))

    def _start_offset(self) -> int:
        rng = self.rng
        hour = bisect.bisect_right(_HOUR_CUM, rng.random() * _HOUR_CUM[-1])
        return hour * 3_600_000_000 + rng.randrange(3_600_000_000)

    def _step(self, offset: int) -> int:
        """Delay between two pipeline steps: usually sub-second to minutes, sometimes zero (a tie)."""
        rng = self.rng
        roll = rng.random()
        if roll < 0.04:
            return offset
        if roll < 0.7:
            return offset + rng.randrange(200, 2_000_000)
        return offset + rng.randrange(2_000_000, 300_000_000)

    def _trace(self, chain_trace: str, cause: str, source: str) -> TraceContext | None:
        rng = self.rng
        if rng.random() >= 0.15:
            return None
        metadata = {"worker_version": f"1.{rng.randrange(8)}.{rng.randrange(20)}"}
        if rng.random() < 0.3:
            metadata["host"] = f"worker-{rng.randrange(12):02d}"
        return TraceContext(
            trace_id=chain_trace,
            caused_by=(cause,),
            provenance=source,
            redactions=("raw.email",) if rng.random() < 0.05 else (),
            metadata=metadata,
        )

    def _expires_at(self, day_start: datetime, offset: int) -> Any:
        rng = self.rng
        roll = rng.random()
        created = day_start + timedelta(microseconds=offset)
        # Mostly hours to a week ahead of creation: relative to "now" at a window's end, a share
        # of them has expired and a share has not.
        expires = (created + timedelta(seconds=rng.randrange(3600, 9 * 86400))).replace(microsecond=0)
        if roll < 0.90:
            return _iso_z(expires)
        if roll < 0.93:
            return None  # key left out by the caller
        if roll < 0.95:
            return rng.choice(_UNPARSEABLE_EXPIRES)
        if roll < 0.97:
            return expires.replace(tzinfo=None).isoformat()  # naive: read as UTC
        if roll < 0.99:
            return expires.astimezone(timezone(timedelta(hours=2))).isoformat()
        return rng.randrange(1_700_000_000, 1_800_000_000)  # not a string: never expires

    def _score(self) -> Any:
        rng = self.rng
        roll = rng.random()
        if roll < 0.990:
            # Three decimals make score ties, so the (timestamp, id) tie-breaks matter.
            return round(rng.betavariate(2.0, 5.0), 3)
        # Rare odd scores, kept rare so that a top-25 is still mostly ordinary floats.
        if roll < 0.9935:
            return 0  # an int counts (as 0.0)
        if roll < 0.9937:
            return 1  # an int counts (as 1.0)
        if roll < 0.9939:
            return True  # a JSON true counts as 1.0 in 0.1.8
        if roll < 0.9965:
            return f"{rng.random():.2f}"  # a string does not count
        return None  # key left out by the caller: counts as 0.0

    # -- chains --------------------------------------------------------------------------------

    def _chain(self, kind: str, day_key: str, day_start: datetime, chain_no: int, next_id) -> list[_Draft]:
        rng = self.rng
        universe = self.universe
        offset = self._start_offset()
        chain_trace = f"t_{day_key}_{chain_no:07d}"
        out: list[_Draft] = []
        self._current = out

        def add(source: str, payload_type: str, payload: Any, refs: tuple[EntityRef, ...], **kw: Any) -> str:
            nonlocal offset
            if out:
                offset = self._step(offset)
                if "trace" not in kw:
                    kw["trace"] = self._trace(chain_trace, out[-1].signal_id, source)
            signal_id, seq = next_id()
            out.append(_Draft(offset, seq, signal_id, source, payload_type, payload, refs, **kw))
            return signal_id

        if kind == "post" or kind == "profile":
            person = universe.person(rng)
            ref = universe.persons[person]
            handle = universe.handles[person]
            platform = ref.platform or "twitter"
            source = f"ingest.{platform}"
            refs: tuple[EntityRef, ...] = (ref,)
            if rng.random() < 0.1:
                refs = (ref, universe.projects[universe.project(rng)])
            raw = None
            if rng.random() < 0.05:
                raw = {
                    "http_status": 200,
                    "fetched_at": _iso_z(day_start + timedelta(microseconds=offset)),
                    "platform": platform,
                    "headers": {"x-rate-limit-remaining": str(rng.randrange(0, 900))},
                }
            if kind == "profile":
                add(
                    source,
                    "ProfileSnapshotSeen",
                    {
                        "handle": handle,
                        "platform": platform,
                        "followers": int(rng.paretovariate(1.2) * 50),
                        "following": rng.randrange(0, 5000),
                        "bio": self._text(3, 14),
                        "verified": rng.random() < 0.1,
                    },
                    refs,
                    raw=raw,
                )
                if rng.random() < 0.6:
                    roll = rng.random()
                    if roll < 0.9:
                        resolved_type = "EntityResolved"
                    elif roll < 0.95:
                        resolved_type = "EntityMerged"
                    else:
                        resolved_type = "EntityAliasAdded"
                    add(
                        "resolve.worker",
                        resolved_type,
                        {
                            "entity_id": ref.value,
                            "handle": handle,
                            "confidence": round(rng.uniform(0.5, 1.0), 4),
                            "method": rng.choice(("handle_match", "bio_link", "manual")),
                        },
                        # Resolver output often arrives before refs are attached.
                        () if rng.random() < 0.3 else (ref,),
                    )
                return out

            post_id = f"{platform[:2]}_{rng.getrandbits(48):012x}"
            add(
                source,
                "SocialPostSeen",
                {
                    "post_id": post_id,
                    "author": handle,
                    "text": self._text(4, 30),
                    "likes": int(rng.paretovariate(1.5)) - 1,
                    "reposts": int(rng.paretovariate(2.0)) - 1,
                    "lang": rng.choice(("en", "en", "en", "es", "de", "ja")),
                    "url": f"https://{platform}.example/{handle}/{post_id}",
                },
                refs,
                raw=raw,
            )
            if rng.random() >= 0.55:
                return out
            add(
                "route.worker",
                "RouteInput",
                {
                    "post_id": post_id,
                    "route": rng.choice(_ROUTES),
                    "priority": rng.randrange(0, 5),
                    "reason": rng.choice(("keyword", "follower_graph", "manual", "backfill")),
                },
                refs,
            )
            if rng.random() >= 0.6:
                return out
            self._candidate_tail(add, refs, day_start, post_id=post_id)
            return out

        if kind == "candidate":
            project = universe.projects[universe.project(rng)]
            refs = (project,)
            if rng.random() < 0.2:
                refs = (project, universe.persons[universe.person(rng)])
            self._candidate_tail(add, refs, day_start, post_id=None)
            return out

        if kind == "token":
            token = universe.token(rng)
            project = universe.projects[universe.token_project[token]]
            token_ref = universe.tokens[token]
            payload_type = rng.choice(
                ("TokenMentioned", "TokenPriceObserved", "TokenPriceObserved", "TokenLaunched")
            )
            for _ in range(1 if rng.random() < 0.7 else rng.randrange(2, 4)):
                payload: dict[str, Any] = {
                    "token_id": token_ref.value,
                    "project_entity_id": project.value,
                    "chain": _CHAINS[token % len(_CHAINS)],
                }
                if payload_type == "TokenPriceObserved":
                    payload["price_usd"] = round(rng.lognormvariate(0.0, 2.0), 6)
                    payload["volume_24h"] = round(rng.lognormvariate(10.0, 2.0), 2)
                elif payload_type == "TokenMentioned":
                    payload["mentions"] = rng.randrange(1, 40)
                    payload["sentiment"] = round(rng.uniform(-1.0, 1.0), 3)
                if rng.random() < 0.03:
                    del payload["project_entity_id"]
                add("token.worker", payload_type, payload, (token_ref, project))
                payload_type = "TokenPriceObserved"
            return out

        if kind == "promise":
            person = universe.persons[universe.person(rng)]
            promise_id = f"pr_{day_key}_{chain_no:07d}"
            due = (day_start + timedelta(microseconds=offset, days=rng.randrange(1, 30))).replace(
                microsecond=0
            )
            refs = (person,) if rng.random() < 0.7 else (person, universe.projects[universe.project(rng)])
            status = "OPEN"
            add(
                "promise.worker",
                "PromiseCreated",
                {
                    "promise_id": promise_id,
                    "status": status,
                    "due_at": _iso_z(due),
                    "text": self._text(3, 12),
                },
                refs,
            )
            out[-1].pool, out[-1].extra = _PROMISE, promise_id
            while rng.random() < 0.4:
                status = rng.choice(_PROMISE_STATUSES[1:])
                add(
                    "promise.worker",
                    "PromiseUpdated",
                    {"promise_id": promise_id, "status": status, "note": self._text(2, 8)},
                    refs,
                )
            return out

        # heartbeat: non-dict payloads, no entity refs
        payload_choice = rng.randrange(4)
        beat: Any = ("ok", ["ok", rng.randrange(100)], None, rng.randrange(1000))[payload_choice]
        add(rng.choice(_WORKER_SOURCES), "WorkerHeartbeat", beat, ())
        return out

    def _candidate_tail(
        self, add, refs: tuple[EntityRef, ...], day_start: datetime, *, post_id: str | None
    ) -> None:
        rng = self.rng
        roll = rng.random()
        status = _CANDIDATE_STATUSES[
            bisect.bisect_right(_CANDIDATE_STATUS_CUM, roll * _CANDIDATE_STATUS_CUM[-1])
        ]
        payload: dict[str, Any] = {
            "score": self._score(),
            "status": status,
            "model": rng.choice(("ranker-v3", "ranker-v3", "ranker-v4")),
            "features": {
                "recency": round(rng.random(), 4),
                "affinity": round(rng.random(), 4),
                "reach": round(rng.random(), 4),
            },
        }
        if post_id is not None:
            payload["post_id"] = post_id
        if payload["score"] is None:
            del payload["score"]
        candidate_id = add("score.worker", "RecommendationCandidate", payload, refs)
        if rng.random() < 0.6:
            roll = rng.random()
            if roll < 0.4:
                source, pending_type = "learning.worker", "OutcomePending"
            elif roll < 0.7:
                source, pending_type = "learning.worker", "EvaluationRequested"
            else:
                source, pending_type = "recommend.worker", "RecommendationAttempted"
            # The offset of the new step is only known inside add(); expiry is relative to the
            # candidate's time, which is at most minutes earlier.
            pending_payload: dict[str, Any] = {
                "recommendation_id": candidate_id,
                "channel": rng.choice(("dm", "reply", "email")),
            }
            expires = self._expires_at(day_start, self._current[-1].offset)
            if expires is not None:
                pending_payload["expires_at"] = expires
            add(source, pending_type, pending_payload, refs)
            self._current[-1].pool = _PENDING
        if rng.random() < 0.4:
            add(
                "draft.worker",
                "DraftCreated",
                {
                    "draft_id": f"d_{rng.getrandbits(40):010x}",
                    "recommendation_id": candidate_id,
                    "channel": rng.choice(("twitter", "farcaster", "email")),
                    "text": self._text(6, 25),
                },
                refs,
            )
            self._current[-1].pool = _DRAFT

    # -- days ----------------------------------------------------------------------------------

    def generate_day(self, day: date, signals: int) -> tuple[list[SignalEnvelope], list[EmissionEnvelope]]:
        rng = self.rng
        day_key = day.strftime("%Y%m%d")
        day_start = datetime(day.year, day.month, day.day, tzinfo=_UTC)
        drafts: list[_Draft] = []
        counter = itertools.count()

        def next_id() -> tuple[str, int]:
            seq = next(counter)
            return f"s_{day_key}_{seq:07d}", seq

        chain_no = 0
        previous_start: int | None = None
        while len(drafts) < signals:
            kind = _CHAIN_KINDS[bisect.bisect_right(_CHAIN_CUM, rng.random() * _CHAIN_CUM[-1])]
            built = self._chain(kind, day_key, day_start, chain_no, next_id)
            # One chain in a hundred starts at exactly the same microsecond as the one before.
            if previous_start is not None and built and rng.random() < 0.01:
                shift = previous_start - built[0].offset
                for item in built:
                    item.offset += shift
            if built:
                previous_start = built[0].offset
            drafts.extend(built[: signals - len(drafts)])
            chain_no += 1

        for item in drafts:
            if item.offset >= _DAY_US:
                item.offset = _DAY_US - 1  # a chain running past midnight is cut at the last µs
            elif item.offset < 0:
                item.offset = 0
        drafts.sort(key=lambda item: (item.offset, item.seq))
        for item in drafts:
            if item.pool >= 0:
                pool = self.pools[item.pool]
                pool.append((item.signal_id, day, item.offset, item.refs, item.extra))
        for pool in self.pools:
            if len(pool) > self._POOL_CAP:
                del pool[: len(pool) - self._POOL_CAP]

        envelopes = [
            SignalEnvelope(
                signal_id=item.signal_id,
                timestamp=day_start + timedelta(microseconds=item.offset),
                source=item.source,
                payload_type=item.payload_type,
                payload=item.payload,
                entity_refs=item.refs,
                trace=item.trace,
                raw=item.raw,
            )
            for item in drafts
        ]
        emissions = self._emissions(
            day, day_key, day_start, round(self.emission_ratio * len(envelopes)), drafts
        )
        return envelopes, emissions

    def _emissions(
        self, day: date, day_key: str, day_start: datetime, wanted: int, today: list[_Draft]
    ) -> list[EmissionEnvelope]:
        rng = self.rng
        made: list[tuple[int, int, EmissionEnvelope]] = []
        pools = self.pools
        # Outcomes dominate, then draft reviews, then promise outcomes.
        kind_cum = list(itertools.accumulate((55, 30, 15)))
        spare: list[_Draft] | None = None
        for seq in range(wanted):
            kind = bisect.bisect_right(kind_cum, rng.random() * kind_cum[-1])
            if not pools[kind]:
                kind = next((k for k in range(3) if pools[k]), _ACK)
            if kind == _ACK:
                # High emission ratios outrun the open causes: acknowledge other signals of the day.
                if spare is None:
                    spare = [item for item in today if item.pool < 0]
                    rng.shuffle(spare)
                if not spare:
                    break
                item = spare.pop()
                signal_id, cause_day, cause_offset, refs, extra = (
                    item.signal_id,
                    day,
                    item.offset,
                    item.refs,
                    None,
                )
            else:
                pool = pools[kind]
                # Prefer recent causes: pick among the newest part of the pool.
                window = min(len(pool), max(50, len(pool) // 3))
                index = len(pool) - 1 - int(rng.random() ** 1.5 * window)
                signal_id, cause_day, cause_offset, refs, extra = pool[index]
                pool[index] = pool[-1]
                pool.pop()
            if cause_day == day:
                if cause_offset >= _DAY_US - 1:
                    offset = _DAY_US - 1
                else:
                    offset = cause_offset + 1 + int(rng.random() ** 2 * (_DAY_US - 1 - cause_offset))
            else:
                offset = rng.randrange(_DAY_US)
            timestamp = day_start + timedelta(microseconds=offset)
            trace = None
            if rng.random() < 0.2:
                trace = TraceContext(
                    trace_id=f"t_e_{day_key}_{seq:07d}", caused_by=(signal_id,), provenance="learning.worker"
                )
            if kind == 0:
                success = rng.random() < 0.45
                emission_type = "OutcomeSuccess" if success else "OutcomeFailure"
                payload: Any = {
                    "outcome": "success" if success else "failure",
                    "signal_id": signal_id,
                    "value": round(rng.uniform(0.0, 1.0) if success else rng.uniform(-1.0, 0.0), 4),
                    "label": rng.choice(("replied", "meeting", "no_reply", "ignored", "converted")),
                }
            elif kind == 1:
                approved = rng.random() < 0.6
                emission_type = "DraftApproved" if approved else "DraftRejected"
                payload = {"draft_signal_id": signal_id, "reviewer": rng.choice(("ops", "founder", "auto"))}
                if not approved:
                    payload["reason"] = rng.choice(("tone", "off_topic", "duplicate", "timing"))
            elif kind == _ACK:
                emission_type = "SignalAcknowledged"
                payload = {"signal_id": signal_id, "worker": rng.choice(_WORKER_SOURCES)}
            else:
                kept = rng.random() < 0.55
                emission_type = "PromiseKept" if kept else "PromiseBroken"
                payload = {"promise_id": extra, "status": "KEPT" if kept else "BROKEN"}
            emission = EmissionEnvelope(
                emission_id=f"e_{day_key}_{seq:07d}",
                timestamp=timestamp,
                emission_type=emission_type,
                payload=payload,
                caused_by=signal_id,
                trace=trace,
                entity_refs=refs,
            )
            made.append((offset, seq, emission))
        made.sort(key=lambda item: (item[0], item[1]))
        return [item[2] for item in made]


def iter_sample_days(
    *,
    days: int = 3,
    signals_per_day: int = 2000,
    start: date = DEFAULT_START,
    seed: int = 0,
    emission_ratio: float = DEFAULT_EMISSION_RATIO,
    entities: int | None = None,
) -> Iterator[tuple[date, list[SignalEnvelope], list[EmissionEnvelope]]]:
    """Yield ``(day, signals, emissions)`` for ``days`` consecutive UTC days from ``start``.

    * One day at a time, so a 1.5M-signal workspace never sits in memory at once.
    * Exactly ``signals_per_day`` signals per day, all timestamped inside that UTC day, in
      non-decreasing timestamp order (microsecond precision, with some exact ties).
    * ``round(emission_ratio * signals_per_day)`` emissions per day, in non-decreasing timestamp
      order inside the day.
      Each emission's ``caused_by`` is the id of a signal yielded earlier (same or earlier day)
      with a strictly earlier timestamp, and copies that signal's entity refs.
    * Signal ids look like ``s_YYYYMMDD_NNNNNNN`` and emission ids ``e_YYYYMMDD_NNNNNNN``; they
      are unique, and their order is unrelated to timestamp order (so tie-breaks on id matter).
    * Fully determined by the arguments: the same arguments give equal envelopes, and the first
      ``k`` days do not depend on ``days``. ``entities`` is the number of persons (default: a
      fifth of ``signals_per_day``, between 50 and 20,000); projects and tokens scale with it.
    """
    if days < 0:
        raise ValueError(f"days must be >= 0, got {days}")
    if signals_per_day < 0:
        raise ValueError(f"signals_per_day must be >= 0, got {signals_per_day}")
    if not 0.0 <= emission_ratio <= 1.0:
        raise ValueError(f"emission_ratio must be between 0 and 1, got {emission_ratio}")
    if entities is not None and entities < 1:
        raise ValueError(f"entities must be >= 1, got {entities}")
    generator = _Generator(
        seed=seed,
        entities=entities if entities is not None else _default_entities(signals_per_day),
        emission_ratio=emission_ratio,
    )
    for index in range(days):
        day = start + timedelta(days=index)
        signals, emissions = generator.generate_day(day, signals_per_day)
        yield day, signals, emissions


def generate_workspace(
    store: SampleStore,
    *,
    days: int = 3,
    signals_per_day: int = 2000,
    start: date = DEFAULT_START,
    seed: int = 0,
    emission_ratio: float = DEFAULT_EMISSION_RATIO,
    entities: int | None = None,
) -> dict[str, int]:
    """Write ``iter_sample_days(...)`` into ``store`` and return ``{"signals", "emissions", "days"}``.

    Each day goes through the public batch API, ``store.write_signals(list)`` then
    ``store.write_emissions(list)``, so any object with those two methods works (this package's
    ``FileSystemStore`` as well as metaspn-store 0.1.8's). The counts are of envelopes handed to
    the store; on a fresh workspace they are the records written.
    """
    totals = {"signals": 0, "emissions": 0, "days": 0}
    for _day, signals, emissions in iter_sample_days(
        days=days,
        signals_per_day=signals_per_day,
        start=start,
        seed=seed,
        emission_ratio=emission_ratio,
        entities=entities,
    ):
        store.write_signals(signals)
        store.write_emissions(emissions)
        totals["signals"] += len(signals)
        totals["emissions"] += len(emissions)
        totals["days"] += 1
    return totals
