"""Build the pools and activity objects and run a Journeys worker.

``python worker.py`` or ``journeys worker`` runs one worker process against the configured
services; scale out with more processes (workflow tasks are CPU-bound under the GIL).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

import redis.asyncio as aioredis
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

from activities.db.migrate import migrate
from activities.db.pool import create_pool
from activities.plans import PlanActivities
from journeys.settings import Settings, get_settings

log = logging.getLogger("journeys.worker")

WORKFLOWS: Sequence[type] = ()


def build_activities(pool: Any, redis: aioredis.Redis) -> list[Callable[..., Any]]:
    """Every activity the worker hosts, bound to the shared pools."""
    plans = PlanActivities(pool)
    return [plans.load_plan_version]


async def run_worker(
    settings: Settings,
    *,
    ready: asyncio.Event | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Migrate, connect, and poll the task queue until ``stop`` is set (or cancelled)."""
    await migrate(settings.database_url)
    pool = await create_pool(settings)
    redis = aioredis.Redis.from_url(settings.redis_url)
    try:
        client = await Client.connect(
            settings.temporal_address,
            namespace=settings.temporal_namespace,
            data_converter=pydantic_data_converter,
        )
        worker = Worker(
            client,
            task_queue=settings.temporal_task_queue,
            workflows=list(WORKFLOWS),
            activities=build_activities(pool, redis),
            max_concurrent_activities=settings.worker_max_activities,
        )
        async with worker:
            log.info(
                "worker polling %s on %s", settings.temporal_task_queue, settings.temporal_address
            )
            if ready is not None:
                ready.set()
            await (stop or asyncio.Event()).wait()
    finally:
        await redis.aclose()
        await pool.close()


def main() -> None:
    """Run one worker with settings from the environment."""
    settings = get_settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(run_worker(settings))


if __name__ == "__main__":
    main()
