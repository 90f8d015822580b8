"""Saved audiences made from a source (a rule, a query, everyone, a set), snapshots of plan
audiences, and the rebuild of a saved audience whose shards Redis lost.

A saved audience records how it was made: an evaluated one its plan-model source (JSON), an
uploaded one its ids in ``audience_members``. When a run finds a shard whose size differs
from the recorded count (Redis restarted without its append-only file), the audience is
made again from that record before the run reads it, under the audience's lock; with no
record to make it from, the run fails naming the lost shards. Never skipped silently.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from functools import partial

import asyncpg
import redis.asyncio as aioredis
from pydantic import TypeAdapter

from activities.audience.materialise import AudienceUnavailable, materialise
from activities.audience.shard_sets import (
    AudienceInfo,
    audience_info,
    check_audience,
    check_name,
    clear_staging,
    copy_into_run,
    swap_staged,
    write_shards,
)
from activities.db import queries
from activities.db.pool import DbPool
from journeys.errors import NotFound, Problem
from journeys.names import audience_shard_key, audience_staging_key
from journeys.plan.audience import Audience, FileAudience, ListAudience, SetAudience

log = logging.getLogger(__name__)
_AUDIENCE: TypeAdapter[Audience] = TypeAdapter(Audience)
_CHUNK = 50_000


def snapshot_name(plan_id: str, audience: Audience) -> str:
    """The saved audience a plan's ``mode: snapshot`` audience lives in: one per plan and
    audience definition, so a new version with another audience takes a new snapshot."""
    body = json.dumps(
        [plan_id, audience.model_dump(mode="json")], sort_keys=True, separators=(",", ":")
    )
    digest = hashlib.sha256(body.encode()).hexdigest()[:12]
    return f"snap.{plan_id[:40]}.{digest}"


def is_evaluated(audience: Audience) -> bool:
    """Whether the audience is computed from a source (not an upload or a saved list)."""
    return not isinstance(audience, FileAudience | ListAudience)


def names_read(audience: Audience) -> set[str]:
    """The saved audiences ``audience`` reads."""
    if isinstance(audience, ListAudience):
        return {audience.name}
    if isinstance(audience, SetAudience):
        return set().union(*(names_read(member) for member in audience.of))
    return set()


async def save_evaluated(
    redis: aioredis.Redis,
    pool: DbPool,
    *,
    name: str,
    audience: Audience,
    shards: int,
    zone: str = "UTC",
    only_if_absent: bool = False,
) -> AudienceInfo:
    """Evaluate ``audience`` now into the saved audience ``name`` and record its source.
    ``only_if_absent``: keep an audience already saved under ``name`` (a snapshot)."""
    check_name(name)
    if isinstance(audience, FileAudience):
        problem = Problem("audience", "a file is saved with `journeys audience upload`")
        raise AudienceUnavailable(f"audience {name}", [problem])
    if name in await _all_read(pool, audience):
        # a rebuild of one would wait on the lock the other's rebuild holds, for ever
        problem = Problem("audience", f"an audience cannot be made of itself ({name})")
        raise AudienceUnavailable(f"audience {name}", [problem])
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(queries.AUDIENCE_LOCK, name)
        if only_if_absent and (row := await conn.fetchrow(queries.AUDIENCE_SELECT, name)):
            return AudienceInfo(**dict(row))
        counts = await _evaluate_into(conn, redis, pool, name, audience, shards=shards, zone=zone)
        definition = {"audience": audience.model_dump(mode="json", by_alias=True), "zone": zone}
        source = f"{audience.source}, evaluated in {zone}"
        row = await conn.fetchrow(
            queries.AUDIENCE_UPSERT, name, shards, sum(counts), counts, source, definition
        )
    assert row is not None  # an upsert ... RETURNING returns its row
    return AudienceInfo(**dict(row))


async def saved_into(
    redis: aioredis.Redis,
    pool: DbPool,
    *,
    name: str,
    shards: int,
    target: Callable[[int], str],
) -> list[int]:
    """Copy a saved audience into ``target`` keys, rebuilding it first if Redis lost shards."""
    info = await audience_info(pool, name)
    if await check_audience(redis, info):
        info = await rebuild(redis, pool, name=name)
    return await copy_into_run(
        redis,
        source_key=lambda k: audience_shard_key(name, k),
        source_shards=info.shards,
        shards=shards,
        target=target,
    )


async def rebuild(redis: aioredis.Redis, pool: DbPool, *, name: str) -> AudienceInfo:
    """Make the saved audience ``name`` again from its record, if Redis still lacks shards
    once its lock is held (another run may have rebuilt it meanwhile)."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(queries.AUDIENCE_LOCK, name)
        row = await conn.fetchrow(queries.AUDIENCE_SELECT, name)
        if row is None:
            raise NotFound(f"audience {name!r} does not exist")
        info = AudienceInfo(**dict(row))
        damaged = await check_audience(redis, info)
        if not damaged:
            return info
        if info.definition is None and not await conn.fetchval(
            queries.AUDIENCE_MEMBERS_COUNT, name
        ):
            raise AudienceUnavailable(
                f"audience {name}",
                [Problem(f"shard {k}", LOST_WITHOUT_COPY) for k in damaged],
            )
        if info.definition is not None:
            audience = _AUDIENCE.validate_python(info.definition["audience"])
            zone = str(info.definition.get("zone", "UTC"))
            counts = await _evaluate_into(
                conn, redis, pool, name, audience, shards=info.shards, zone=zone
            )
        else:
            await clear_staging(redis, name, info.shards)
            staging = partial(audience_staging_key, name)
            counts = [0] * info.shards
            cursor = await conn.cursor(queries.AUDIENCE_MEMBERS, name)
            while rows := await cursor.fetch(_CHUNK):
                ids = [row[0] for row in rows]
                counts = await write_shards(redis, ids, shards=info.shards, key=staging)
            await swap_staged(redis, name, counts)
        row = await conn.fetchrow(
            queries.AUDIENCE_UPSERT,
            name,
            info.shards,
            sum(counts),
            counts,
            info.source,
            info.definition,
        )
    log.warning(
        "audience %s: shards %s were lost from Redis; rebuilt from its %s (%d users)",
        name,
        damaged,
        "source" if info.definition is not None else "ids kept in PostgreSQL",
        sum(counts),
    )
    assert row is not None  # an upsert ... RETURNING returns its row
    return AudienceInfo(**dict(row))


async def _evaluate_into(
    conn: asyncpg.pool.PoolConnectionProxy[asyncpg.Record],
    redis: aioredis.Redis,
    pool: DbPool,
    name: str,
    audience: Audience,
    *,
    shards: int,
    zone: str,
) -> list[int]:
    """Evaluate ``audience`` into the saved shards of ``name`` (staged, then swapped in) and
    its kept members, under the lock ``conn`` holds; return users per shard."""
    await clear_staging(redis, name, shards)
    counts = await materialise(
        redis,
        pool,
        audience=audience,
        run_id=f"save.{name}",
        shards=shards,
        target=partial(audience_staging_key, name),
        zone=zone,
    )
    await swap_staged(redis, name, counts)
    await _keep_members(conn, redis, name, shards)
    return counts


async def _all_read(pool: DbPool, audience: Audience) -> set[str]:
    """Every saved audience ``audience`` reads, directly or through the saved ones it reads."""
    found: set[str] = set()
    frontier = names_read(audience)
    while frontier:
        name = frontier.pop()
        if name in found:
            continue
        found.add(name)
        row = await pool.fetchrow(queries.AUDIENCE_SELECT, name)
        if row is not None and row["definition"] is not None:
            frontier |= names_read(_AUDIENCE.validate_python(row["definition"]["audience"]))
    return found


async def _keep_members(
    conn: asyncpg.pool.PoolConnectionProxy[asyncpg.Record],
    redis: aioredis.Redis,
    name: str,
    shards: int,
) -> None:
    """Copy the saved shards of ``name`` into ``audience_members``: list tags read them, and
    they say who was in the audience when it was evaluated."""
    await conn.execute(queries.AUDIENCE_MEMBERS_CLEAR, name)
    for shard in range(shards):
        low = 0
        while chunk := await redis.zrange(audience_shard_key(name, shard), low, low + _CHUNK - 1):
            records = [(name, m.decode() if isinstance(m, bytes) else str(m)) for m in chunk]
            await conn.copy_records_to_table(
                "audience_members", records=records, columns=("audience", "user_id")
            )
            low += len(chunk)


LOST_WITHOUT_COPY = (
    "lost from Redis, and this audience was uploaded before its ids were kept in PostgreSQL;"
    " upload it again"
)
