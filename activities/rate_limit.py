"""A token bucket in Redis, shared by every worker, adjustable while a run is going.

State lives in one hash per scope (a run, or a channel shared by every plan): ``rate``
(tokens/s, 0 = unlimited), ``burst``, ``tokens`` and ``stamp`` (ms). A channel's hash has a
``rate`` only when an operator set one (``journeys rate CHANNEL``); until then the rate of
the channels file applies, passed in by the caller. The Lua script refills from the Redis
server clock, so workers with skewed clocks still agree.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import redis.asyncio as aioredis

from journeys.names import rate_key

_RUN_TTL = timedelta(days=1)

_TAKE = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local rate = tonumber(redis.call('HGET', KEYS[1], 'rate') or ARGV[2])
if rate <= 0 then return {tonumber(ARGV[1]), 0} end
local burst = tonumber(redis.call('HGET', KEYS[1], 'burst') or tostring(math.max(1, rate)))
local tokens = tonumber(redis.call('HGET', KEYS[1], 'tokens') or tostring(burst))
local stamp = tonumber(redis.call('HGET', KEYS[1], 'stamp') or tostring(now_ms))
tokens = math.min(burst, tokens + math.max(0, now_ms - stamp) * rate / 1000)
local want = tonumber(ARGV[1])
local grant = math.min(want, math.floor(tokens))
tokens = tokens - grant
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'stamp', tostring(now_ms))
if ARGV[3] ~= '0' then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
local wait = 0
if grant < want then wait = math.ceil((1 - (tokens - math.floor(tokens))) * 1000 / rate) end
return {grant, wait}
"""


class RateLimiter:
    """Acquire send permits for a scope; unlimited unless a rate was set."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis
        self._take = redis.register_script(_TAKE)

    async def set_rate(self, scope: str, *, per_second: float, expires: bool = True) -> None:
        """Set (or, with 0, lift) the rate; the burst is one second's worth, at least 1. A
        run's bucket expires a day after its last use; a channel's (``expires=False``) stays."""
        key = rate_key(scope)
        burst = max(1.0, per_second)
        await self._redis.hset(key, mapping={"rate": per_second, "burst": burst})
        if expires:
            await self._redis.expire(key, _RUN_TTL)

    async def reset_rate(self, scope: str) -> None:
        """Drop an operator's rate: the default (the channels file's) applies again."""
        await self._redis.hdel(rate_key(scope), "rate", "burst")

    async def rate(self, scope: str, *, default: float = 0.0) -> float:
        """The rate in force (0 = unlimited): the one set, else ``default``."""
        raw = await self._redis.hget(rate_key(scope), "rate")
        return float(raw) if raw is not None else default

    async def take(
        self, scope: str, *, want: int, default: float = 0.0, expires: bool = True
    ) -> tuple[int, timedelta]:
        """Take up to ``want`` permits now; returns (granted, wait before asking again).
        ``default`` is the rate when none was set on the scope."""
        ttl = int(_RUN_TTL.total_seconds() * 1000) if expires else 0
        granted, wait_ms = await self._take(keys=[rate_key(scope)], args=[want, default, ttl])
        return int(granted), timedelta(milliseconds=int(wait_ms))

    async def acquire(
        self, scope: str, *, want: int, default: float = 0.0, expires: bool = True
    ) -> int:
        """Take permits for up to ``want`` messages, waiting for at least one.

        Returns how many were granted (at most one burst), so callers send in chunks and a
        rate lowered mid-run takes effect at once.
        """
        while True:
            granted, wait = await self.take(scope, want=want, default=default, expires=expires)
            if granted:
                return granted
            await asyncio.sleep(wait.total_seconds())

    async def delete(self, scope: str) -> None:
        """Forget the bucket (the run ended)."""
        await self._redis.delete(rate_key(scope))
