"""What budgets and quotas have spent, as the gate counts them in Redis."""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis


@dataclass(frozen=True)
class Spent:
    """Messages reserved (sent or in flight) and their cost."""

    messages: int
    cost: float


async def spent(redis: aioredis.Redis, key: str) -> Spent:
    """The ``n`` and ``c`` fields of a budget or quota hash (nothing spent: zeros)."""
    n, c = await redis.hmget(key, ["n", "c"])
    return Spent(messages=int(float(n or 0)), cost=float(c or 0))


async def reset(redis: aioredis.Redis, key: str) -> Spent:
    """Start a new pack: forget what the quota spent; returns what it had spent."""
    before = await spent(redis, key)
    await redis.delete(key)
    return before
