"""Whether the Redis we talk to still holds our data.

Redis keeps working state that PostgreSQL does not (the listener registry, the copy of the
suppression list the delivery gate reads, send history for caps, budgets). A Redis that
restarts empty answers every read with "nothing": no listeners (so events would be stored as
routed to nobody), nobody suppressed, no caps reached. So PostgreSQL records an *epoch*, and
Redis holds a key named after it (:func:`journeys.names.redis_epoch_key`). The worker and the
ingest API refuse to start if the key is gone, and the ingest API and the delivery gate check
it as they read (:class:`EpochGuard`): the answer is then a loud refusal, never a silent
"nothing". ``journeys recover redis`` rebuilds what PostgreSQL can rebuild and sets the key.
The key is named after the epoch, not a fixed name, so databases sharing one Redis (tests,
staging beside dev) each keep their own.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import redis.asyncio as aioredis

from activities.db import queries
from activities.db.pool import DbPool
from journeys.errors import RedisLost
from journeys.names import redis_epoch_key

LOST = (
    "Redis lost its data ({key} is gone: it restarted without its append-only file, or was "
    "flushed); refusing to act on an empty Redis. Running runs fail at their next page; run "
    "`journeys recover redis` to rebuild what PostgreSQL holds and go on"
)


@dataclass(frozen=True)
class EpochGuard:
    """Checks the epoch key; built from :func:`ensure_epoch`'s answer."""

    key: str

    def lost(self) -> RedisLost:
        return RedisLost(LOST.format(key=self.key))

    async def require(self, redis: aioredis.Redis) -> None:
        """Raise :class:`RedisLost` if the key is gone."""
        if not await redis.exists(self.key):
            raise self.lost()


async def ensure_epoch(pool: DbPool, redis: aioredis.Redis) -> EpochGuard:
    """The guard of this database's epoch, creating the epoch on first use; raises
    :class:`RedisLost` if PostgreSQL has one and Redis no longer holds its key."""
    epoch = await pool.fetchval(queries.REDIS_EPOCH)
    if epoch is None:
        fresh = uuid.uuid4().hex
        # the key first: a crash in between leaves a stray key, never a record without one
        await redis.set(redis_epoch_key(fresh), b"1")
        await pool.execute(queries.REDIS_EPOCH_CLAIM, fresh)
        epoch = await pool.fetchval(queries.REDIS_EPOCH)  # a concurrent first start may win
    guard = EpochGuard(redis_epoch_key(epoch))
    await guard.require(redis)
    return guard


async def recorded_epoch(pool: DbPool) -> EpochGuard | None:
    """The guard of the epoch PostgreSQL records, or None before the first start."""
    epoch = await pool.fetchval(queries.REDIS_EPOCH)
    return None if epoch is None else EpochGuard(redis_epoch_key(epoch))


async def restore_epoch(pool: DbPool, redis: aioredis.Redis) -> EpochGuard:
    """Set the key of the recorded epoch again (``journeys recover redis``, once what can be
    rebuilt is rebuilt)."""
    guard = await recorded_epoch(pool)
    if guard is None:
        return await ensure_epoch(pool, redis)
    await redis.set(guard.key, b"1")
    return guard
