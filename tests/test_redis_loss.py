"""A Redis that lost its data is refused, loudly, until ``journeys recover redis``.

The epoch lives in PostgreSQL and names a key in Redis (:mod:`activities.redis_epoch`); each
test has a database of its own, hence an epoch and a key of its own on the shared Redis.
(The whole path under a real Redis restart is ``tests/test_faults.py``.)
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from temporalio.client import WorkflowExecutionStatus

from activities.db.migrate import migrate
from activities.db.pool import create_pool
from activities.redis_epoch import ensure_epoch, restore_epoch
from bench.blast import write_channels
from bench.events import launch_listening, write_event_plan
from journeys.errors import RedisLost
from journeys.names import run_state_key
from journeys.settings import Settings
from tests.conftest import settings_env, spawn_journeys
from tests.engine import for_test, worker_running


@pytest.fixture
async def own(stack_settings: Settings, fresh_database_url: str) -> Settings:
    """The test stack with a database (so an epoch) of the test's own, migrated."""
    await migrate(fresh_database_url)
    return stack_settings.model_copy(update={"database_url": fresh_database_url})


async def test_the_epoch_is_made_once_and_a_lost_key_is_refused_until_restored(
    own: Settings, redis: aioredis.Redis
) -> None:
    pool = await create_pool(own)
    try:
        guard = await ensure_epoch(pool, redis)
        assert (await ensure_epoch(pool, redis)).key == guard.key  # made once, then checked
        await guard.require(redis)
        await redis.delete(guard.key)  # what an empty Redis looks like to this database
        with pytest.raises(RedisLost, match="journeys recover redis"):
            await ensure_epoch(pool, redis)
        with pytest.raises(RedisLost):
            await guard.require(redis)
        assert (await restore_epoch(pool, redis)).key == guard.key
        await ensure_epoch(pool, redis)
    finally:
        await pool.close()


async def test_the_worker_refuses_a_lost_redis_and_recover_lets_it_start(
    own: Settings, redis: aioredis.Redis
) -> None:
    settings = own
    pool = await create_pool(settings)
    try:
        guard = await ensure_epoch(pool, redis)
    finally:
        await pool.close()
    await redis.delete(guard.key)
    env = settings_env(settings)
    worker = await spawn_journeys("worker", env=env)
    _, err = await worker.communicate()
    assert worker.returncode == 1
    lines = err.decode().strip().splitlines()
    assert "Redis lost its data" in lines[-1] and "Traceback" not in err.decode()
    recover = await spawn_journeys("recover", "redis", "--json", env=env)
    out, err = await recover.communicate()
    assert recover.returncode == 0, err.decode()
    report = json.loads(out)
    assert report["epoch_key"] == guard.key and "send history" in report["not_rebuilt"]
    assert await redis.exists(guard.key)


async def test_recover_stops_the_runs_that_lost_their_state(
    own: Settings, redis: aioredis.Redis, tmp_path: Path
) -> None:
    settings = for_test(own, write_channels(tmp_path))
    plan_file = write_event_plan(tmp_path, shards=2, flush_every=timedelta(milliseconds=200))
    async with worker_running(settings):
        pool = await create_pool(settings)
        try:
            guard = await ensure_epoch(pool, redis)
            # a run that only waits for events: nothing of it would notice the loss
            _, _, run_id, handle = await launch_listening(
                settings, plan_file, pool=pool, redis=redis
            )
        finally:
            await pool.close()
        for key in [guard.key, *(run_state_key(run_id, k) for k in range(2))]:
            await redis.delete(key)  # Redis came back without them
        recover = await spawn_journeys("recover", "redis", "--json", env=settings_env(settings))
        out, err = await recover.communicate()
        assert recover.returncode == 0, err.decode()
        assert json.loads(out)["stopped_runs"] == [run_id]
        description = await handle.describe()
        assert description.status == WorkflowExecutionStatus.TERMINATED
        again = await spawn_journeys("recover", "redis", env=settings_env(settings))
        _, err = await again.communicate()
        assert again.returncode == 1 and "nothing to recover" in err.decode()
