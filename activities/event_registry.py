"""The Redis registry of running journeys and the event names they listen for.

Runs add themselves when they start and remove themselves when they end (activities below);
the ingest path reads it through :class:`ListenerCache`, which keeps answers for a moment so
a burst of events costs one Redis round trip per name, not per event.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta

import redis.asyncio as aioredis
from temporalio import activity

from activities.redis_epoch import EpochGuard
from activities.redis_values import text_of
from journeys.contracts import activities as contracts
from journeys.contracts.run_setup import ListenersInput, ListenersOutput
from journeys.names import listeners_key


@dataclass(frozen=True, order=True)
class Listener:
    """A running journey to tell about an event: its run id and shard count."""

    run_id: str
    shards: int


class RegistryActivities:
    """Register and unregister a run's event names; built by the worker with Redis."""

    def __init__(self, *, redis: aioredis.Redis) -> None:
        self._redis = redis

    @activity.defn(name=contracts.REGISTER_LISTENERS.name)
    async def register_listeners(self, data: ListenersInput) -> ListenersOutput:
        """From now on, events of ``data.events`` are routed to this run."""
        pipe = self._redis.pipeline(transaction=False)
        for name in data.events:
            pipe.hset(listeners_key(name), data.run_id, str(data.shards))
        await pipe.execute()
        return ListenersOutput(events=len(data.events))

    @activity.defn(name=contracts.UNREGISTER_LISTENERS.name)
    async def unregister_listeners(self, data: ListenersInput) -> ListenersOutput:
        """The run has ended: route nothing more to it."""
        pipe = self._redis.pipeline(transaction=False)
        for name in data.events:
            pipe.hdel(listeners_key(name), data.run_id)
        await pipe.execute()
        return ListenersOutput(events=len(data.events))


class ListenerCache:
    """Who listens for which event names, cached for ``ttl``.

    A run that starts is seen within ``ttl``; a run that ended and is still cached gets a
    signal that fails as not found, which the router skips.
    """

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        ttl: timedelta = timedelta(seconds=1),
        guard: EpochGuard | None = None,
    ) -> None:
        self._redis = redis
        self._ttl = ttl.total_seconds()
        self._guard = guard
        self._cache: dict[str, tuple[float, list[Listener]]] = {}

    async def lookup(self, names: list[str], *, fresh: bool = False) -> dict[str, list[Listener]]:
        """Listeners of each name in ``names``; ``fresh`` reads again a name cached with
        none (a run that just started), for answers that refuse when there is none."""
        now = time.monotonic()
        found: dict[str, list[Listener]] = {}
        stale = []
        for name in names:
            cached = self._cache.get(name)
            if cached is not None and cached[0] > now and (cached[1] or not fresh):
                found[name] = cached[1]
            else:
                stale.append(name)
        if stale:
            pipe = self._redis.pipeline(transaction=False)
            for name in stale:
                pipe.hgetall(listeners_key(name))
            if self._guard is not None:
                # after the reads: a registry read from a Redis that lost its data says
                # "nobody listens", and the events would be stored as routed to nobody
                pipe.exists(self._guard.key)
            replies = await pipe.execute()
            if self._guard is not None and not replies.pop():
                raise self._guard.lost()
            for name, entries in zip(stale, replies, strict=True):
                listeners = sorted(
                    Listener(run_id=text_of(run), shards=int(shards))
                    for run, shards in entries.items()
                )
                self._cache[name] = (now + self._ttl, listeners)
                found[name] = listeners
        return found
