"""Answering decisions: the live instance, the caller's tag values, the engine, the record.

One :class:`DecisionService` per process (``journeys serve``, the CLI). It keeps the live
version of each instance for :data:`INSTANCE_TTL` (a publish or rollback shows within it;
one call never sees half a version, since a version is one row read whole), and each tag's
value per user, item or order for the tag's cache TTL (seed 004: "cached for a few
minutes"), in process and, shared by every process, in Redis. Decisions are recorded by
:class:`DecisionRecorder` in batches, not one write per call.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import redis.asyncio as aioredis

from activities.catalog import catalog_values
from activities.db import decision_store, queries, tag_store
from activities.db.pool import DbPool
from activities.tags.values import page_tag_values
from journeys.decisions.check import instance_tags
from journeys.decisions.contracts import DecideAnswer, DecideRequest
from journeys.decisions.engine import Decided, decide
from journeys.decisions.model import FieldType, Scene
from journeys.errors import DecisionRefused, Problem
from journeys.names import tag_value_key
from journeys.tags.check import RegisteredTag
from journeys.tags.model import FieldSource, TagKind

INSTANCE_TTL = timedelta(seconds=1)
MAX_CACHED_VALUES = 200_000
"""Tag values kept in process; past it the cache starts over (cheaper than an LRU here)."""
_FITS: dict[FieldType, tuple[type, ...]] = {
    "string": (str,),
    "number": (int, float),
    "bool": (bool,),
}


@dataclass
class _Live:
    expires: float
    live: decision_store.LiveInstance
    tags: dict[str, RegisteredTag]


@dataclass
class CacheStats:
    """How tag values were found: in this process (``hits``), or not (``misses``: then in
    Redis, ``shared_hits``, which every process fills, or else from their source)."""

    hits: int = 0
    misses: int = 0
    shared_hits: int = 0

    @property
    def hit_ratio(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


DecisionRow = tuple[str, int, str | None, str | None, bool, str | None, str | None,
                    str | None, datetime]  # fmt: skip
"""instance, version, strategy, group, control, user, item, order, decided at."""


async def insert_decisions(pool: DbPool, rows: Sequence[DecisionRow]) -> None:
    """Record decisions in one statement (the API's batches, a journey's pages)."""
    if rows:
        columns = list(zip(*rows, strict=True))
        await pool.execute(queries.DECISIONS_INSERT, *[list(c) for c in columns])


@dataclass
class DecisionRecorder:
    """Buffers decided rows and writes them in one statement per batch."""

    pool: DbPool
    batch: int = 500
    every: timedelta = timedelta(seconds=1)
    _rows: list[DecisionRow] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None

    def add(
        self, request: DecideRequest, answer: DecideAnswer, control: bool, at: datetime
    ) -> None:
        """Buffer one decision (written at the next flush)."""
        self._rows.append(
            (answer.instance, answer.version, answer.strategy, answer.group, control,
             request.user_id, request.item_id, request.order_id, at)
        )  # fmt: skip
        if len(self._rows) >= self.batch:
            self._task = self._task or asyncio.create_task(self._flush_now())

    async def flush(self) -> int:
        """Write what is buffered; how many rows."""
        rows, self._rows = self._rows, []
        await insert_decisions(self.pool, rows)
        return len(rows)

    async def run(self) -> None:
        """Flush every :attr:`every` until cancelled (then once more)."""
        try:
            while True:
                await asyncio.sleep(self.every.total_seconds())
                await self.flush()
        finally:
            await asyncio.shield(self.flush())

    async def _flush_now(self) -> None:
        self._task = None
        await self.flush()


class DecisionService:
    """Decides for callers; built once per process with the pools."""

    def __init__(
        self,
        *,
        pool: DbPool,
        redis: aioredis.Redis | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._pool = pool
        self._clock = clock
        self._redis = redis
        self._live: dict[str, _Live] = {}
        self._values: dict[tuple[str, int, str], tuple[float, Any]] = {}
        self.stats = CacheStats()
        self.recorder = DecisionRecorder(pool)

    async def decide(self, request: DecideRequest, *, now: datetime | None = None) -> DecideAnswer:
        """Answer ``request``; raises NotFound (no such live instance) or
        :class:`DecisionRefused` (a missing id or field, a field of the wrong type)."""
        at = now or datetime.now(UTC)
        live = await self._instance(request.instance)
        scene = live.live.scene
        _refuse_malformed(request, scene)
        values = await self._values_of(request, live, at)
        key = _ids(request)[scene.keys[0]]
        assert key is not None  # the scene's keys were checked present
        decided: Decided = decide(
            live.live.instance, values=values, key=key, now=at, explain=request.explain
        )
        answer = DecideAnswer(
            instance=request.instance,
            version=live.live.version,
            decision=decided.decision,
            strategy=decided.strategy,
            group=decided.group,
            explain=decided.explain,
        )
        self.recorder.add(request, answer, decided.control, at)
        return answer

    async def _instance(self, instance_id: str) -> _Live:
        cached = self._live.get(instance_id)
        clock = self._clock()
        if cached is not None and cached.expires > clock:
            return cached
        live = await decision_store.live(self._pool, instance_id)
        # a disabled tag keeps its live definition: strategies already using it keep working
        tags = await tag_store.registry(self._pool, instance_tags(live.instance))
        fresh = _Live(clock + INSTANCE_TTL.total_seconds(), live, tags)
        self._live[instance_id] = fresh
        return fresh

    async def _values_of(self, request: DecideRequest, live: _Live, at: datetime) -> dict[str, Any]:
        """Each tag the instance reads: pass-through fields from the call; user, item and
        order tags by the call's ids, cached per id for the tag's TTL."""
        values: dict[str, Any] = {}
        missing: dict[TagKind, dict[str, RegisteredTag]] = {}
        clock = self._clock()
        ids = _ids(request)
        for name, tag in live.tags.items():
            definition = tag.live
            if definition is None:
                continue
            if isinstance(definition.source, FieldSource):
                values[name] = request.fields.get(definition.source.field)
                continue
            kind = definition.whose
            key = ids.get(kind)
            if key is None:  # a scene whose calls carry no such id reads no such tag
                values[name] = None
                continue
            hit = self._values.get((name, tag.live_version, f"{kind}:{key}"))
            if hit is not None and hit[0] > clock:
                values[name] = hit[1]
                self.stats.hits += 1
            else:
                missing.setdefault(kind, {})[name] = tag
                self.stats.misses += 1
        if len(self._values) > MAX_CACHED_VALUES:
            self._values.clear()
        for whose, tags in sorted(missing.items()):
            key = ids[whose]
            assert key is not None  # only tags of ids the call carries are missing
            shared = await self._shared(whose, key, tags)
            unread = {name: tag for name, tag in tags.items() if name not in shared}
            found: dict[str, Any] = {}
            if unread and (whose == "item" or whose == "order"):
                found = (await catalog_values(self._pool, whose, [key], unread))[key]
            elif unread:
                found = await self._read_user(key, unread, at)
            if found:
                await self._share(whose, key, unread, found)
            for name, tag in tags.items():
                assert tag.live is not None
                value = shared[name] if name in shared else found.get(name)
                ttl = tag.live.ttl().total_seconds()
                self._values[(name, tag.live_version, f"{whose}:{key}")] = (clock + ttl, value)
                values[name] = value
        return values

    async def _shared(
        self, whose: TagKind, key: str, tags: Mapping[str, RegisteredTag]
    ) -> dict[str, Any]:
        """The values other processes (or this one) left in Redis, unexpired."""
        if self._redis is None:
            return {}
        names = sorted(tags)
        raw = await self._redis.mget([_shared_key(n, tags[n], whose, key) for n in names])
        found = {n: json.loads(r) for n, r in zip(names, raw, strict=True) if r is not None}
        self.stats.shared_hits += len(found)
        return found

    async def _share(
        self, whose: TagKind, key: str, tags: Mapping[str, RegisteredTag], found: dict[str, Any]
    ) -> None:
        if self._redis is None:
            return
        pipe = self._redis.pipeline(transaction=False)
        for name, tag in tags.items():
            assert tag.live is not None
            ttl_ms = int(tag.live.ttl().total_seconds() * 1000)
            if ttl_ms > 0:
                pipe.set(_shared_key(name, tag, whose, key), json.dumps(found.get(name)), px=ttl_ms)
        await pipe.execute()

    async def _read_user(
        self, user: str, tags: Mapping[str, RegisteredTag], at: datetime
    ) -> dict[str, Any]:
        attrs = await self._pool.fetchval(queries.DECISION_USER_ATTRS, user) or {}
        found = await page_tag_values(
            self._pool, self._redis, found=tags, users=[user], attrs={user: attrs},
            entry={}, now=at,
        )  # fmt: skip
        return {name: found[user].get(name, attrs.get(name)) for name in tags}


def _shared_key(name: str, tag: RegisteredTag, whose: TagKind, key: str) -> str:
    """A tag's value for one user, item or order in Redis: the same key as a journey page's
    computed user values, so each layer fills the other's."""
    return tag_value_key(name, tag.live_version, key if whose == "user" else f"{whose}:{key}")


def _ids(request: DecideRequest) -> dict[TagKind, str | None]:
    return {"user": request.user_id, "item": request.item_id, "order": request.order_id}


def _refuse_malformed(request: DecideRequest, scene: Scene) -> None:
    """Every problem of a request the scene cannot answer, at once."""
    problems: list[Problem] = []
    ids = _ids(request)
    for key in scene.keys:
        if ids[key] is None:
            problems.append(Problem(f"{key}_id", f"scene {scene.scene}'s calls carry it"))
    for name, kind in sorted(scene.fields.items()):
        value = request.fields.get(name)
        if name not in request.fields:
            problems.append(Problem(f"fields.{name}", f"missing: scene {scene.scene} promises it"))
        elif value is not None and (
            not isinstance(value, _FITS[kind]) or (kind == "number" and isinstance(value, bool))
        ):
            problems.append(Problem(f"fields.{name}", f"must be a {kind}, got {value!r}"[:200]))
    for name in sorted(set(request.fields) - set(scene.fields)):
        problems.append(Problem(f"fields.{name}", f"not a field of scene {scene.scene}"))
    if problems:
        raise DecisionRefused("decide", problems)
