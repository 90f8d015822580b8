"""Audiences in Redis: one sorted set per shard, every member at score 0.

With equal scores a sorted set orders its members lexicographically, so page i of a shard
(ranks i*P .. i*P+P-1) is the same users on every read: pages can be addressed by index and
retried. Saved audiences keep their metadata (shard count, per-shard counts) in PostgreSQL;
the counts let a run notice shards that a Redis restart lost instead of skipping them.

Writes are the hot path (a million ids per upload): ids are grouped by shard with plain lists,
sent as ZADDs of ``batch_size`` members each, pipelined without MULTI.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import cast

import mmh3
import redis.asyncio as aioredis
from pydantic import BaseModel

from activities.db import queries
from activities.db.pool import DbPool
from activities.run_state import mark_run_state
from journeys.audience_file import ParsedAudience, read_audience_file
from journeys.errors import InvalidInput, NotFound, Problem
from journeys.names import audience_shard_key, audience_staging_key, run_audience_key
from journeys.sharding import MAX_SHARDS, is_valid_shard_count

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
_ZERO = b"0"  # the score; bytes skip the client's per-argument encoding
FLUSH_MEMBERS = 100_000  # members queued per round trip: bounds client memory
_READ_CHUNK = 50_000  # members per ZRANGE when re-sharding


class AudienceInfo(BaseModel):
    """A saved audience as PostgreSQL records it."""

    name: str
    shards: int
    total: int
    per_shard: list[int]
    source: str | None = None
    definition: dict[str, object] | None = None
    """The plan-model source of an evaluated audience; None for an upload."""
    evaluated_at: datetime | None = None
    updated_at: datetime | None = None


def check_name(name: str) -> str:
    """Return ``name`` if it is a valid audience name, else raise :class:`InvalidInput`."""
    if not NAME_PATTERN.match(name):
        reason = "must be 1-63 lowercase letters, digits, '.', '-' or '_', starting alphanumeric"
        raise InvalidInput(f"audience name {name!r}", [Problem("", reason)])
    return name


def group_by_shard(ids: Sequence[str | bytes], shards: int) -> list[list[str | bytes]]:
    """The ids of each shard, in input order; shard = ``journeys.sharding.shard_of``."""
    if shards == 1:
        return [list(ids)]
    groups: list[list[str | bytes]] = [[] for _ in range(shards)]
    appends = [group.append for group in groups]
    mask = shards - 1
    hash32 = mmh3.hash
    # shard_of's formula, inlined: a Python call per id would cost ~0.2 s per million ids.
    for user_id in ids:
        appends[hash32(user_id, signed=False) & mask](user_id)
    return groups


async def write_shards(
    redis: aioredis.Redis,
    ids: Sequence[str],
    *,
    shards: int,
    key: Callable[[int], str],
    batch_size: int = 1000,
) -> list[int]:
    """ZADD each id (score 0) to ``key(shard_of(id))``; return every shard's ZCARD after.

    Adds to what the keys hold already (callers delete first when they mean to replace).
    """
    return await _write(redis, ids, shards=shards, key=key, batch_size=batch_size)


async def _write(
    redis: aioredis.Redis,
    ids: Sequence[str | bytes],
    *,
    shards: int,
    key: Callable[[int], str],
    batch_size: int = 1000,
) -> list[int]:
    _require_shards(shards)
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    pipe = redis.pipeline(transaction=False)
    queued = 0
    for shard, members in enumerate(group_by_shard(ids, shards)):
        target = key(shard)
        for low in range(0, len(members), batch_size):
            chunk = members[low : low + batch_size]
            args: list[str | bytes] = [_ZERO] * (2 * len(chunk))
            args[1::2] = chunk  # score, member, score, member... without a per-id loop
            pipe.execute_command("ZADD", target, *args)
            queued += len(chunk)
            if queued >= FLUSH_MEMBERS:
                await pipe.execute()
                queued = 0
    for shard in range(shards):
        pipe.zcard(key(shard))
    replies = await pipe.execute()
    return [int(n) for n in replies[-shards:]]


async def save_audience(
    redis: aioredis.Redis,
    pool: DbPool,
    *,
    name: str,
    ids: Sequence[str],
    shards: int,
    source: str | None,
) -> AudienceInfo:
    """Replace the saved audience ``name`` with ``ids`` and record it in PostgreSQL.

    The ids go to staging keys first; each saved shard is then replaced by one RENAME, so a
    reader sees a shard either before or after the upload, never half of it. Uploads of one
    name are serialised by an advisory lock held until the row is written. The ids are also
    kept in ``audience_members``, the copy a shard lost from Redis is rebuilt from.
    """
    check_name(name)
    _require_shards(shards)
    staging = partial(audience_staging_key, name)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(queries.AUDIENCE_LOCK, name)
        await clear_staging(redis, name, shards)  # a crashed upload's
        counts = await write_shards(redis, ids, shards=shards, key=staging)
        await conn.execute(queries.AUDIENCE_MEMBERS_CLEAR, name)
        await conn.copy_records_to_table(
            "audience_members", records=((name, u) for u in ids), columns=("audience", "user_id")
        )
        await swap_staged(redis, name, counts)
        row = await conn.fetchrow(
            queries.AUDIENCE_UPSERT, name, shards, sum(counts), counts, source, None
        )
    assert row is not None  # an upsert ... RETURNING returns its row
    return AudienceInfo(**dict(row))


async def clear_staging(redis: aioredis.Redis, name: str, shards: int) -> None:
    """Drop what a crashed save left in the staging keys of ``name``."""
    await _delete(redis, [audience_staging_key(name, k) for k in range(shards)])


async def swap_staged(redis: aioredis.Redis, name: str, counts: Sequence[int]) -> None:
    """Make the staged shards of ``name`` (``counts`` users each) its saved shards: one
    RENAME per shard, so a reader sees a shard before or after, never half of it."""
    staging = partial(audience_staging_key, name)
    saved = partial(audience_shard_key, name)
    pipe = redis.pipeline(transaction=False)
    for shard, count in enumerate(counts):
        if count:
            pipe.rename(staging(shard), saved(shard))
        else:  # nothing staged (RENAME would fail): the shard is empty now
            pipe.delete(saved(shard))
    # An earlier save may have used more shards; any count up to the maximum, so no key
    # survives even when its row was lost.
    for shard in range(len(counts), MAX_SHARDS):
        pipe.delete(saved(shard))
    await pipe.execute()


async def audience_info(pool: DbPool, name: str) -> AudienceInfo:
    """The recorded metadata of a saved audience; :class:`NotFound` if there is none."""
    row = await pool.fetchrow(queries.AUDIENCE_SELECT, name)
    if row is None:
        raise NotFound(f"audience {name!r} does not exist (upload it with `journeys audience`)")
    return AudienceInfo(**dict(row))


async def check_audience(redis: aioredis.Redis, info: AudienceInfo) -> list[int]:
    """Shards whose ZCARD differs from the recorded count (lost in a Redis restart)."""
    pipe = redis.pipeline(transaction=False)
    for shard in range(info.shards):
        pipe.zcard(audience_shard_key(info.name, shard))
    found = await pipe.execute()
    return [k for k, (n, want) in enumerate(zip(found, info.per_shard, strict=True)) if n != want]


async def copy_into_run(
    redis: aioredis.Redis,
    *,
    source_key: Callable[[int], str],
    source_shards: int,
    shards: int,
    run_id: str | None = None,
    target: Callable[[int], str] | None = None,
) -> list[int]:
    """Copy an audience into a run's keys (``run_audience_key(run_id, k)``, or ``target(k)``).

    With the same shard count each shard is one server-side ZUNIONSTORE (same hash tag, same
    slot); otherwise members are read back in chunks and re-hashed. Target keys are replaced,
    so a retried activity gets the same result. Returns the users per target shard.
    """
    if (run_id is None) == (target is None):
        raise ValueError("give exactly one of run_id and target")
    dest = target if target is not None else partial(run_audience_key, str(run_id))
    _require_shards(source_shards)
    _require_shards(shards)
    if source_shards == shards:
        pipe = redis.pipeline(transaction=False)
        for shard in range(shards):  # ZUNIONSTORE overwrites (or deletes) the destination
            pipe.execute_command("ZUNIONSTORE", dest(shard), 1, source_key(shard))
        return [int(n) for n in await pipe.execute()]
    await _delete(redis, [dest(k) for k in range(shards)])
    counts = [0] * shards
    for shard in range(source_shards):
        low = 0
        while chunk := await _members(redis, source_key(shard), low, low + _READ_CHUNK - 1):
            counts = await _write(redis, chunk, shards=shards, key=dest)
            low += len(chunk)
    return counts


async def load_file_into_run(
    redis: aioredis.Redis,
    path: Path,
    *,
    run_id: str,
    shards: int,
    max_bad_share: float,
) -> tuple[ParsedAudience, list[int]]:
    """Parse an audience file and write it into the run's keys (``journeys launch --audience``)."""
    # parsing a large file takes a few tenths of a second: keep the event loop free meanwhile
    parsed = await asyncio.to_thread(read_audience_file, path, max_bad_share=max_bad_share)
    dest = partial(run_audience_key, run_id)
    await _delete(redis, [dest(k) for k in range(shards)])
    await mark_run_state(redis, run_id, shards)  # before the audience: see its module
    counts = await write_shards(redis, parsed.ids, shards=shards, key=dest)
    return parsed, counts


def _require_shards(shards: int) -> None:
    if not is_valid_shard_count(shards):
        raise InvalidInput(
            "shards", [Problem("", f"{shards} is not a power of two from 1 to {MAX_SHARDS}")]
        )


async def _members(redis: aioredis.Redis, key: str, low: int, high: int) -> list[bytes]:
    # bytes, or str on a decode_responses client: both hash and store the same
    return cast(list[bytes], await redis.zrange(key, low, high))


async def _delete(redis: aioredis.Redis, keys: list[str]) -> None:
    # one DEL per key: the keys live in different cluster slots
    pipe = redis.pipeline(transaction=False)
    for key in keys:
        pipe.delete(key)
    await pipe.execute()
