"""Resolve a plan's audience into a run's shard keys.

Set operations (union / intersect / difference) run server-side per shard: every key of shard
k carries the same hash tag, so ZUNIONSTORE and friends work even on Redis Cluster.
"""

from __future__ import annotations

from collections.abc import Callable

import redis.asyncio as aioredis

from activities.audience.shard_sets import (
    audience_info,
    check_audience,
    copy_into_run,
    write_shards,
)
from activities.db.pool import DbPool
from journeys.errors import InvalidInput, Problem
from journeys.names import audience_shard_key, cohort_key
from journeys.plan.audience import (
    AllAudience,
    Audience,
    FileAudience,
    ListAudience,
    SegmentAudience,
    SetAudience,
    SqlAudience,
)

_CHUNK = 50_000
_COMBINE = {"union": "ZUNIONSTORE", "intersect": "ZINTERSTORE", "difference": "ZDIFFSTORE"}


class AudienceUnavailable(InvalidInput):
    """The audience cannot be resolved (damaged, missing, or a source the engine lacks)."""


async def materialise(
    redis: aioredis.Redis,
    pool: DbPool,
    *,
    audience: Audience,
    run_id: str,
    shards: int,
    target: Callable[[int], str],
    scratch: str = "aud",
) -> list[int]:
    """Write ``audience`` into the keys ``target(k)``; return users per shard."""
    if isinstance(audience, ListAudience):
        return await saved_into(redis, pool, name=audience.name, shards=shards, target=target)
    if isinstance(audience, AllAudience):
        query = "SELECT user_id FROM users"
        return await _from_query(redis, pool, query, shards=shards, target=target)
    if isinstance(audience, SqlAudience):
        return await _from_query(redis, pool, audience.query, shards=shards, target=target)
    if isinstance(audience, SetAudience):
        return await _combine(
            redis, pool, audience, run_id=run_id, shards=shards, target=target, scratch=scratch
        )
    if isinstance(audience, FileAudience):
        problem = Problem("audience.path", "file audiences are loaded by `journeys launch`")
        raise AudienceUnavailable("audience", [problem])
    assert isinstance(audience, SegmentAudience)
    problem = Problem("audience.rule", "segment audiences need the rule-to-SQL compiler")
    raise AudienceUnavailable("audience", [problem])


async def saved_into(
    redis: aioredis.Redis,
    pool: DbPool,
    *,
    name: str,
    shards: int,
    target: Callable[[int], str],
) -> list[int]:
    """Copy a saved audience into ``target`` keys, refusing one whose shards were lost."""
    info = await audience_info(pool, name)
    damaged = await check_audience(redis, info)
    if damaged:
        raise AudienceUnavailable(
            f"audience {name}",
            [Problem(f"shard {k}", "lost from Redis; upload the audience again") for k in damaged],
        )
    return await copy_into_run(
        redis,
        source_key=lambda k: audience_shard_key(name, k),
        source_shards=info.shards,
        shards=shards,
        target=target,
    )


async def _from_query(
    redis: aioredis.Redis, pool: DbPool, query: str, *, shards: int, target: Callable[[int], str]
) -> list[int]:
    await redis.delete(*(target(k) for k in range(shards)))
    counts = [0] * shards
    async with pool.acquire() as conn, conn.transaction(readonly=True, isolation="repeatable_read"):
        cursor = await conn.cursor(query)
        while rows := await cursor.fetch(_CHUNK):
            counts = await write_shards(redis, [str(r[0]) for r in rows], shards=shards, key=target)
    return counts


async def _combine(
    redis: aioredis.Redis,
    pool: DbPool,
    audience: SetAudience,
    *,
    run_id: str,
    shards: int,
    target: Callable[[int], str],
    scratch: str,
) -> list[int]:
    parts: list[Callable[[int], str]] = []
    for index, member in enumerate(audience.of):
        name = f"{scratch}.{index}"

        def part(k: int, name: str = name) -> str:
            return cohort_key(run_id, k, name)

        await materialise(
            redis, pool, audience=member, run_id=run_id, shards=shards, target=part, scratch=name
        )
        parts.append(part)
    command = _COMBINE[audience.source]
    pipe = redis.pipeline(transaction=False)
    for k in range(shards):
        sources = [part(k) for part in parts]
        if command == "ZDIFFSTORE":
            pipe.execute_command(command, target(k), len(sources), *sources)
        else:
            pipe.execute_command(command, target(k), len(sources), *sources, "AGGREGATE", "MIN")
        pipe.delete(*sources)
    await pipe.execute()
    pipe = redis.pipeline(transaction=False)
    for k in range(shards):
        pipe.zcard(target(k))
    return [int(n) for n in await pipe.execute()]
