"""Run-level activities: materialise the audience, set the rate, size cohorts, clean up."""

from __future__ import annotations

import redis.asyncio as aioredis
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.audience.materialise import materialise
from activities.audience.saved import is_evaluated, save_evaluated, saved_into, snapshot_name
from activities.db.pool import DbPool
from activities.rate_limit import RateLimiter
from activities.run_state import execute_checked, mark_run_state, missing_marks, run_state_lost
from journeys.contracts import activities as contracts
from journeys.contracts.pages import CohortSizeInput, CohortSizeOutput
from journeys.contracts.run_setup import (
    CleanupInput,
    CleanupOutput,
    MaterialiseInput,
    MaterialiseOutput,
    SealRunStateInput,
    SealRunStateOutput,
    SetRateInput,
    SetRateOutput,
)
from journeys.errors import InvalidInput, NotFound, Problem
from journeys.names import run_audience_key, run_keys_pattern, run_state_key


class RunActivities:
    """Activities about a whole run; the worker builds one with the shared pools."""

    def __init__(self, *, pool: DbPool, redis: aioredis.Redis) -> None:
        self._pool = pool
        self._redis = redis
        self._limiter = RateLimiter(redis)

    @activity.defn(name=contracts.MATERIALISE_AUDIENCE.name)
    async def materialise_audience(self, data: MaterialiseInput) -> MaterialiseOutput:
        """Fill the run's shard keys from its audience and set the plan's rate limit."""
        plan, shards = data.plan, data.plan.shards

        def target(k: int) -> str:
            return run_audience_key(data.run_id, k)

        try:
            if data.audience.preloaded:
                counts = await self._sizes([target(k) for k in range(shards)])
            elif data.audience.saved is not None:
                counts = await saved_into(
                    self._redis, self._pool, name=data.audience.saved, shards=shards, target=target
                )
            elif plan.audience is not None and (
                plan.audience.mode == "snapshot"
                and is_evaluated(plan.audience)
                and not data.dry_run
            ):
                # evaluated by the plan's first run, reused by every later one
                name = snapshot_name(plan.id, plan.audience)
                await save_evaluated(
                    self._redis,
                    self._pool,
                    name=name,
                    audience=plan.audience,
                    shards=shards,
                    zone=plan.timezone,
                    only_if_absent=True,
                )
                counts = await saved_into(
                    self._redis, self._pool, name=name, shards=shards, target=target
                )
            elif plan.audience is not None:
                counts = await materialise(
                    self._redis,
                    self._pool,
                    audience=plan.audience,
                    run_id=data.run_id,
                    shards=shards,
                    target=target,
                    zone=plan.timezone,
                    as_of=data.as_of,
                )
            else:
                reason = "the plan has no audience and none was given at launch"
                raise InvalidInput("audience", [Problem("audience", reason)])
        except (InvalidInput, NotFound) as exc:
            raise ApplicationError(str(exc), type=exc.kind, non_retryable=True) from exc
        if plan.limits.rate is not None:
            await self._limiter.set_rate(data.run_id, per_second=plan.limits.rate.per_second)
        return MaterialiseOutput(per_shard=counts)

    @activity.defn(name=contracts.COHORT_SIZE.name)
    async def cohort_size(self, data: CohortSizeInput) -> CohortSizeOutput:
        """ZCARD of a cohort (a retry cohort's true size after crashes)."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.zcard(data.key)
        (size,) = await execute_checked(pipe, data.state_key)
        return CohortSizeOutput(size=int(size))

    @activity.defn(name=contracts.SEAL_RUN_STATE.name)
    async def seal_run_state(self, data: SealRunStateInput) -> SealRunStateOutput:
        """Mark the run's shards before anything else of them is written (a launcher that
        preloaded the audience marked them itself: then check the marks are still there)."""
        if not data.preloaded:
            return SealRunStateOutput(
                keys=await mark_run_state(self._redis, data.run_id, data.shards)
            )
        keys = [run_state_key(data.run_id, k) for k in range(data.shards)]
        missing = await missing_marks(self._redis, keys)
        if missing:
            raise run_state_lost(missing[0])
        return SealRunStateOutput(keys=keys)

    @activity.defn(name=contracts.SET_RATE.name)
    async def set_rate(self, data: SetRateInput) -> SetRateOutput:
        """Change a run's rate while it is going; every worker sees it at its next permit."""
        await self._limiter.set_rate(data.scope, per_second=data.per_second)
        return SetRateOutput(per_second=data.per_second)

    @activity.defn(name=contracts.CLEANUP_RUN.name)
    async def cleanup_run(self, data: CleanupInput) -> CleanupOutput:
        """Delete the run's working keys (saved audiences are not the run's and stay)."""
        # One pass over the keyspace for all shards; deletes go per key because a run's keys
        # live in different cluster slots (one hash tag per shard).
        deleted = 0
        pipe = self._redis.pipeline(transaction=False)
        async for key in self._redis.scan_iter(match=run_keys_pattern(data.run_id), count=1000):
            pipe.delete(key)
        for removed in await pipe.execute():
            deleted += int(removed)
        await self._limiter.delete(data.run_id)
        return CleanupOutput(deleted=deleted)

    async def _sizes(self, keys: list[str]) -> list[int]:
        pipe = self._redis.pipeline(transaction=False)
        for key in keys:
            pipe.zcard(key)
        return [int(n) for n in await pipe.execute()]
