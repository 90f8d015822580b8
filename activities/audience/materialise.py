"""Resolve a plan's audience into a run's shard keys.

Set operations (union / intersect / difference) run server-side per shard: every key of shard
k carries the same hash tag, so ZUNIONSTORE and friends work even on Redis Cluster.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg
import redis.asyncio as aioredis

from activities.audience.shard_sets import (
    write_shards,
)
from activities.db import queries, tag_store
from activities.db.pool import DbPool
from journeys.durations import format_duration
from journeys.errors import InvalidInput, Problem
from journeys.names import cohort_key
from journeys.plan.audience import (
    AllAudience,
    Audience,
    FileAudience,
    ListAudience,
    SegmentAudience,
    SetAudience,
    SqlAudience,
)
from journeys.plan.rule_sites import rule_tags
from journeys.plan.sql_check import statement_text
from journeys.rule_sql import SqlParam, segment_query
from journeys.tag_sql import registry_reader

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
    zone: str = "UTC",
    as_of: datetime | None = None,
) -> list[int]:
    """Write ``audience`` into the keys ``target(k)``; return users per shard. Rules are
    evaluated at ``as_of`` (now when None) in ``zone`` (the plan's): it decides what "today"
    is for anniversaries and where relative windows end."""
    if isinstance(audience, ListAudience):
        # a saved audience may need rebuilding from its source, which this module evaluates
        from activities.audience.saved import saved_into

        return await saved_into(redis, pool, name=audience.name, shards=shards, target=target)
    if isinstance(audience, AllAudience):
        query = "SELECT user_id FROM users"
        return await _from_query(redis, pool, query, shards=shards, target=target)
    if isinstance(audience, SqlAudience):
        return await _from_sql(redis, pool, audience.query, shards=shards, target=target)
    if isinstance(audience, SegmentAudience):
        # relative dates (T-7d) count from when the segment is evaluated
        definitions = await tag_store.live_definitions(pool, rule_tags([audience.rule]))
        now = (as_of or datetime.now(UTC)).astimezone(ZoneInfo(zone))
        query, params = segment_query(audience.rule, now=now, read_tag=registry_reader(definitions))
        return await _from_query(redis, pool, query, params, shards=shards, target=target)
    if isinstance(audience, SetAudience):
        return await _combine(
            redis,
            pool,
            audience,
            run_id=run_id,
            shards=shards,
            target=target,
            scratch=scratch,
            zone=zone,
            as_of=as_of,
        )
    assert isinstance(audience, FileAudience)
    problem = Problem("audience.path", "file audiences are loaded by `journeys launch`")
    raise AudienceUnavailable("audience", [problem])


async def _from_query(
    redis: aioredis.Redis,
    pool: DbPool,
    query: str,
    params: Sequence[SqlParam] = (),
    *,
    shards: int,
    target: Callable[[int], str],
    as_reader: bool = False,
) -> list[int]:
    """Stream the ids ``query`` selects into the shard keys, a chunk at a time, in a read-only
    transaction (``as_reader``: as ``journeys_reader``, under the statement timeout)."""
    await redis.delete(*(target(k) for k in range(shards)))
    counts = [0] * shards
    # Saving or rebuilding an audience holds a connection (its lock) while this takes another:
    # with the pool exhausted by such holders, fail and let the activity retry, never hang.
    acquired = pool.acquire(timeout=ACQUIRE_TIMEOUT.total_seconds())
    async with acquired as conn, conn.transaction(readonly=True, isolation="repeatable_read"):
        if as_reader:
            if not await conn.fetchval(queries.CAN_BE_READER):
                raise AudienceUnavailable("audience", [Problem("audience.query", NO_READER)])
            timeout_ms = int(SQL_AUDIENCE_TIMEOUT.total_seconds() * 1000)
            await conn.execute(f"SET LOCAL statement_timeout = {timeout_ms:d}")
            await conn.execute("SET LOCAL ROLE journeys_reader")
        # the statement timeout bounds each FETCH; a query whose rows never end needs a
        # deadline over the whole read as well
        deadline = time.monotonic() + SQL_AUDIENCE_TIMEOUT.total_seconds()
        cursor = await conn.cursor(query, *params)
        while rows := await cursor.fetch(_CHUNK):
            ids = [str(r[0]) for r in rows if r[0] is not None]
            counts = await write_shards(redis, ids, shards=shards, key=target)
            if as_reader and time.monotonic() > deadline:
                raise asyncpg.exceptions.QueryCanceledError("audience read past its deadline")
    return counts


async def _from_sql(
    redis: aioredis.Redis, pool: DbPool, query: str, *, shards: int, target: Callable[[int], str]
) -> list[int]:
    """An operator's query: checked by its grammar when the plan was read, and run here as
    ``journeys_reader`` in a read-only transaction under a statement timeout, so the database
    itself refuses a write or a call with side effects, whatever got past the check."""
    wrapped = f"SELECT q.user_id::text FROM (\n{statement_text(query)}\n) AS q"
    try:
        return await _from_query(redis, pool, wrapped, shards=shards, target=target, as_reader=True)
    except asyncpg.PostgresError as exc:
        reason = _sql_failure(exc)
        raise AudienceUnavailable("audience", [Problem("audience.query", reason)]) from None


ACQUIRE_TIMEOUT = timedelta(seconds=30)
"""How long reading an audience waits for a free database connection."""
SQL_AUDIENCE_TIMEOUT = timedelta(minutes=2)
"""How long an SQL audience's query may run before the database stops it."""
NO_READER = (
    "SQL audiences run as the journeys_reader role, which this database lacks or this user "
    "cannot use (see docs/deployment.md)"
)


def _sql_failure(exc: asyncpg.PostgresError) -> str:
    if isinstance(exc, asyncpg.exceptions.UndefinedColumnError) and "q.user_id" in str(exc):
        return "the query returns no user_id column"
    if isinstance(exc, asyncpg.exceptions.QueryCanceledError):
        return f"the query ran longer than {format_duration(SQL_AUDIENCE_TIMEOUT)} and was stopped"
    if isinstance(exc, asyncpg.exceptions.InsufficientPrivilegeError):
        return f"the query may only read users and events: {exc}"
    if isinstance(exc, asyncpg.exceptions.ReadOnlySQLTransactionError):
        return f"the query tried to write: {exc}"
    return f"the query failed: {type(exc).__name__}: {exc}"


async def _combine(
    redis: aioredis.Redis,
    pool: DbPool,
    audience: SetAudience,
    *,
    run_id: str,
    shards: int,
    target: Callable[[int], str],
    scratch: str,
    zone: str,
    as_of: datetime | None,
) -> list[int]:
    parts: list[Callable[[int], str]] = []
    for index, member in enumerate(audience.of):
        name = f"{scratch}.{index}"

        def part(k: int, name: str = name) -> str:
            return cohort_key(run_id, k, name)

        await materialise(
            redis,
            pool,
            audience=member,
            run_id=run_id,
            shards=shards,
            target=part,
            scratch=name,
            zone=zone,
            as_of=as_of,
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
