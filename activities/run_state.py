"""Whether Redis still holds a run's working state.

A Redis that restarts without its data (no append-only file, or a new empty replica) would
otherwise look like a run whose cohorts are empty: its shards would page nothing, finish, and
report fewer users than they targeted, in silence. So each shard of a run gets a mark
(:func:`journeys.names.run_state_key`) before any other key of it is written, and every read
of the shard's cohorts checks the mark *after* the read, in the same pipeline: if the mark is
gone, whatever the read returned cannot be trusted and the activity fails for good
(``RunStateLost``), which fails the run with the reason. Checking after, not before, means a
loss between the two commands is caught too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from temporalio.exceptions import ApplicationError

from activities.redis_epoch import EpochGuard
from journeys.errors import RunStateLost
from journeys.names import run_state_key


async def mark_run_state(redis: aioredis.Redis, run_id: str, shards: int) -> list[str]:
    """Write the marks of every shard of ``run_id`` (no expiry: the run's cleanup deletes
    them with its other keys); their keys."""
    keys = [run_state_key(run_id, k) for k in range(shards)]
    pipe = redis.pipeline(transaction=False)  # one slot per shard: no MULTI across them
    for key in keys:
        pipe.set(key, b"1")
    await pipe.execute()
    return keys


async def missing_marks(redis: aioredis.Redis, keys: Sequence[str]) -> list[str]:
    """Those of ``keys`` that Redis no longer holds."""
    pipe = redis.pipeline(transaction=False)
    for key in keys:
        pipe.exists(key)
    return [key for key, found in zip(keys, await pipe.execute(), strict=True) if not found]


async def execute_checked(pipe: Pipeline, state_key: str | None) -> list[Any]:
    """Run ``pipe`` with the mark ``state_key`` checked last; its own replies, or
    ``RunStateLost`` if the mark is gone (None: a run from before marks, unchecked)."""
    if state_key is not None:
        pipe.exists(state_key)
    replies: list[Any] = await pipe.execute()
    if state_key is not None and not replies.pop():
        raise run_state_lost(state_key)
    return replies


def run_state_lost(key: str) -> ApplicationError:
    """The non-retryable failure for a shard whose mark ``key`` is gone."""
    error = RunStateLost(
        f"Redis lost this run's working state ({key} is gone: the server restarted without "
        "its data, or was flushed); the shard stops rather than skip its users in silence. "
        "What was sent is recorded in PostgreSQL (deliveries)"
    )
    return ApplicationError(str(error), type=error.kind, non_retryable=True)


async def require_state(
    redis: aioredis.Redis, key: str | None, guard: EpochGuard | None = None
) -> None:
    """Fail for good if mark ``key`` or the epoch key of ``guard`` is gone; after a read of
    shared state (the delivery gate's suppression copy, caps and budgets) that must not be
    trusted then. A run started after the loss has its marks, but not the epoch key."""
    keys = [k for k in (key, guard.key if guard is not None else None) if k is not None]
    for gone in await missing_marks(redis, keys) if keys else []:
        if guard is not None and gone == guard.key:
            lost = guard.lost()
            raise ApplicationError(str(lost), type=lost.kind, non_retryable=True)
        raise run_state_lost(gone)
