"""A quiet continue-as-new: the ingest API holds a shard's signals while it hands over.

Temporal refuses a workflow task that continues as new if a signal arrived while the task
ran (the signal must not be lost with the old run). The worker then drops the workflow from
its cache, and the retried task replays the whole history, about 4,100 events at that point:
1.5 s on this machine at rest, 7 s under load, and the events of the shard wait all that
time. So before it continues as new, a shard sets a short-lived key (``hold_signals``); the
ingest API waits while it is set (:class:`SignalHold`), and the new run deletes it first
thing (``open_signals``). The hold is best effort: a signal whose sender read the key just
before it was set can still land in the handover's task (the old retry path then delivers
it, slowly), and a sender that cannot read the key sends at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
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
from journeys.names import signal_hold_key

log = logging.getLogger(__name__)


class SignalHoldActivities:
    """Set and clear a shard's hold; built by the worker with Redis."""

    def __init__(self, *, redis: aioredis.Redis) -> None:
        self._redis = redis

    @activity.defn(name=contracts.HOLD_SIGNALS.name)
    async def hold_signals(self, data: HoldSignalsInput) -> HoldSignalsOutput:
        """Senders wait before signalling this shard, for ``data.hold`` at most."""
        ttl = max(1, round(data.hold / timedelta(milliseconds=1)))
        await self._redis.set(signal_hold_key(data.run_id, data.shard), "1", px=ttl)
        return HoldSignalsOutput(held=True)

    @activity.defn(name=contracts.OPEN_SIGNALS.name)
    async def open_signals(self, data: OpenSignalsInput) -> OpenSignalsOutput:
        """Signals to this shard flow again."""
        removed = await self._redis.delete(signal_hold_key(data.run_id, data.shard))
        return OpenSignalsOutput(was_held=bool(removed))


class SignalHold:
    """The senders' side: wait while a shard's signals are held.

    One ``EXISTS`` per signal; while a hold is set (about 130 ms, the handover), the key is
    read again every ``poll``. Never waits past ``most``, whatever the key says, and a Redis
    error opens the way (the hold only saves time; the signal must still go).
    """

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        poll: timedelta = timedelta(milliseconds=5),
        most: timedelta = SIGNAL_HOLD,
    ) -> None:
        self._redis = redis
        self._poll = poll.total_seconds()
        self._most = most.total_seconds()

    async def wait_open(self, run_id: str, shard: int) -> float:
        """Return once shard ``shard`` of ``run_id`` takes signals; the seconds waited."""
        key = signal_hold_key(run_id, shard)
        started = time.monotonic()
        while True:
            waited = time.monotonic() - started
            try:
                if waited >= self._most or not await self._redis.exists(key):
                    return waited
            except RedisError as exc:
                log.warning("signal hold of %s unreadable, sending: %s", key, exc)
                return waited
            await asyncio.sleep(self._poll)
