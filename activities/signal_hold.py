"""A quiet continue-as-new: the ingest API holds a shard's signals while it hands over.

Temporal refuses a workflow task that continues as new if a signal arrived while the task
ran (the signal must not be lost with the old run). The worker then drops the workflow from
its cache, and the retried task replays the whole history, about 4,100 events at that point:
1.5 s on this machine at rest, 7 s under load, and the events of the shard wait all that
time. So before it continues as new, a shard sets a short-lived key (``hold_signals``); the
ingest API waits while it is set (:class:`SignalHold`), and the new run deletes it first
thing (``open_signals``).

A sender that read the key just before it was set would still land in the handover's task,
so each sender registers its signal in the shard's *passing* set in the same transaction as
it reads the key, and removes it once Temporal has stored the signal. Having set the key,
``hold_signals`` waits until that set is empty: every signal that got past the hold is then
in the history before the activity's result, and the shard handles it before it hands over.
The hold only saves time, so every wait in it is bounded and a Redis error opens the way.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta

import redis.asyncio as aioredis
from redis.exceptions import RedisError
from temporalio import activity

from journeys.contracts import activities as contracts
from journeys.contracts.run_setup import (
    SIGNAL_HOLD,
    HoldSignalsInput,
    HoldSignalsOutput,
    OpenSignalsInput,
    OpenSignalsOutput,
)
from journeys.names import signal_hold_key, signal_passing_key

log = logging.getLogger(__name__)

PASSING_STALE = timedelta(seconds=5)
"""A passing entry older than this belongs to a sender that died before removing it."""
_POLL = timedelta(milliseconds=5)


def _now_ms() -> int:
    # Wall clock, not monotonic: senders and the holder run in different processes.
    return int(time.time() * 1000)


class SignalHoldActivities:
    """Set and clear a shard's hold; built by the worker with Redis."""

    def __init__(self, *, redis: aioredis.Redis, poll: timedelta = _POLL) -> None:
        self._redis = redis
        self._poll = poll.total_seconds()

    @activity.defn(name=contracts.HOLD_SIGNALS.name)
    async def hold_signals(self, data: HoldSignalsInput) -> HoldSignalsOutput:
        """Senders wait for ``data.hold`` at most; returns once those already past have landed."""
        ttl = max(1, round(data.hold / timedelta(milliseconds=1)))
        await self._redis.set(signal_hold_key(data.run_id, data.shard), "1", px=ttl)
        passing = signal_passing_key(data.run_id, data.shard)
        stale_ms = round(PASSING_STALE / timedelta(milliseconds=1))
        deadline = time.monotonic() + data.drain.total_seconds()
        while True:
            await self._redis.zremrangebyscore(passing, "-inf", _now_ms() - stale_ms)
            if not await self._redis.zcard(passing):
                return HoldSignalsOutput(held=True, drained=True)
            if time.monotonic() >= deadline:
                return HoldSignalsOutput(held=True, drained=False)
            await asyncio.sleep(self._poll)

    @activity.defn(name=contracts.OPEN_SIGNALS.name)
    async def open_signals(self, data: OpenSignalsInput) -> OpenSignalsOutput:
        """Signals to this shard flow again."""
        removed = await self._redis.delete(signal_hold_key(data.run_id, data.shard))
        return OpenSignalsOutput(was_held=bool(removed))


class SignalHold:
    """The senders' side: wait while a shard's signals are held, say when a signal is sent.

    One transaction per shard and signal (register, read the hold); while a hold is set (about
    130 ms, the handover) the key is read again every ``poll``. Never waits past ``most``,
    whatever the key says.
    """

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        poll: timedelta = _POLL,
        most: timedelta = SIGNAL_HOLD,
    ) -> None:
        self._redis = redis
        self._poll = poll.total_seconds()
        self._most = most.total_seconds()

    @asynccontextmanager
    async def passage(self, run_id: str, shards: Sequence[int]) -> AsyncIterator[float]:
        """Wait until ``shards`` of ``run_id`` take signals; send them inside. Seconds waited."""
        token = uuid.uuid4().hex
        waits = await asyncio.gather(*(self._enter(run_id, s, token) for s in shards))
        try:
            yield max(waits, default=0.0)
        finally:
            await asyncio.gather(*(self._leave(run_id, s, token) for s in shards))

    async def _enter(self, run_id: str, shard: int, token: str) -> float:
        hold, passing = signal_hold_key(run_id, shard), signal_passing_key(run_id, shard)
        started = time.monotonic()
        while True:
            waited = time.monotonic() - started
            try:
                async with self._redis.pipeline(transaction=True) as pipe:
                    pipe.zadd(passing, {token: _now_ms()})
                    pipe.pexpire(passing, PASSING_STALE * 2)
                    pipe.exists(hold)
                    *_, held = await pipe.execute()
                if not held or waited >= self._most:
                    return waited
                await self._redis.zrem(passing, token)  # the holder must not wait for us
            except RedisError as exc:
                log.warning("signal hold of %s unreadable, sending: %s", hold, exc)
                return waited
            await asyncio.sleep(self._poll)

    async def _leave(self, run_id: str, shard: int, token: str) -> None:
        try:
            await self._redis.zrem(signal_passing_key(run_id, shard), token)
        except RedisError as exc:  # the holder stops waiting for it once it is stale
            log.warning("could not clear a passing signal of %s: %s", run_id, exc)
