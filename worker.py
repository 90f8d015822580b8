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
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.channels.runtime import ChannelRuntime
from activities.db.migrate import migrate
from activities.db.pool import DbPool, create_pool
from activities.delivery import DeliveryActivities
from activities.event_registry import RegistryActivities
from activities.journey.entries import EntryActivities
from activities.journey.goals import GoalActivities
from activities.journey.routing import RoutingActivities
from activities.journey.waiting import WaitingActivities
from activities.journey.winners import WinnerActivities
from activities.plans import PlanActivities
from activities.redis_epoch import EpochGuard, ensure_epoch
from activities.runs import RunActivities
from activities.signal_hold import SignalHoldActivities
from journeys.redact import configure_logging
from journeys.settings import Settings, get_settings
from workflows.plan_run import PlanRunWorkflow
from workflows.shard import ShardWorkflow

log = logging.getLogger("journeys.worker")

WORKFLOWS: Sequence[type] = (PlanRunWorkflow, ShardWorkflow)
PASSED_THROUGH = ("redis", "asyncpg", "httpx", "aiohttp", "pglast")
"""I/O libraries the workflow sandbox shares with the rest of the process. Workflow code never
uses them, but a garbage collection in the workflow thread runs their finalizers there: redis's
``ConnectionPool.__del__`` imports ``redis.observability.recorder`` lazily, which inside the
sandbox re-imported all of redis for that workflow (and warned "Module redis... was imported
after initial workflow load"). pglast checks a SQL audience whenever a plan is read back,
in workflow code too, and imports its node modules lazily as it parses."""


def workflow_runner() -> SandboxedWorkflowRunner:
    """The sandbox every worker (and the tests' workers) runs workflows in."""
    restrictions = SandboxRestrictions.default.with_passthrough_modules(*PASSED_THROUGH)
    return SandboxedWorkflowRunner(restrictions=restrictions)


def build_activities(
    *,
    pool: DbPool,
    redis: aioredis.Redis,
    channels: ChannelRuntime,
    guard: EpochGuard | None = None,
) -> list[Callable[..., Any]]:
    """Every activity the worker hosts, bound to the shared pools (``guard``: the Redis
    epoch's, :mod:`activities.redis_epoch`)."""
    plans = PlanActivities(pool)
    runs = RunActivities(pool=pool, redis=redis)
    delivery = DeliveryActivities(pool=pool, redis=redis, channels=channels, guard=guard)
    routing = RoutingActivities(pool=pool, redis=redis, channels=channels)
    waiting = WaitingActivities(pool=pool, redis=redis)
    goals = GoalActivities(pool=pool, redis=redis)
    registry = RegistryActivities(redis=redis)
    entries = EntryActivities(pool=pool, redis=redis)
    winners = WinnerActivities(pool=pool)
    holds = SignalHoldActivities(redis=redis)
    return [
        plans.load_plan_version,
        runs.materialise_audience,
        runs.cohort_size,
        runs.set_rate,
        runs.seal_run_state,
        runs.cleanup_run,
        delivery.deliver_page,
        delivery.release_cohort,
        routing.route_page,
        waiting.catch_events,
        waiting.close_wait,
        waiting.mark_exited,
        goals.record_conversions,
        registry.register_listeners,
        registry.unregister_listeners,
        entries.admit_entries,
        winners.decide_winner,
        holds.hold_signals,
        holds.open_signals,
    ]


async def run_worker(
    settings: Settings,
    *,
    ready: asyncio.Event | None = None,
    stop: asyncio.Event | None = None,
    wrap_activities: Callable[[list[Callable[..., Any]]], list[Callable[..., Any]]] | None = None,
    fail_workflows_on: Sequence[type[BaseException]] = (),
) -> None:
    """Migrate, connect, and poll the task queue until ``stop`` is set (or cancelled).

    ``wrap_activities`` may put observers around the hosted activities (the tests' journey
    kit reads a run's keys before ``cleanup_run`` deletes them). ``fail_workflows_on`` fails a
    workflow at once on those errors instead of retrying its task (the tests fail on sandbox
    warnings and restricted calls that would otherwise only retry)."""
    await migrate(settings.database_url)
    pool = await create_pool(settings)
    redis = aioredis.Redis.from_url(settings.redis_url)
    channels = await ChannelRuntime.open(
        settings.channels_file, pool=pool, limits=settings.template_limits()
    )
    try:
        guard = await ensure_epoch(pool, redis)  # a Redis that lost its data: refuse to start
        client = await Client.connect(
            settings.temporal_address,
            namespace=settings.temporal_namespace,
            data_converter=pydantic_data_converter,
        )
        worker = Worker(
            client,
            task_queue=settings.temporal_task_queue,
            workflows=list(WORKFLOWS),
            workflow_runner=workflow_runner(),
            activities=(wrap_activities or list)(
                build_activities(pool=pool, redis=redis, channels=channels, guard=guard)
            ),
            max_concurrent_activities=settings.worker_max_activities,
            workflow_failure_exception_types=list(fail_workflows_on),
        )
        async with worker:
            log.info(
                "worker polling %s on %s", settings.temporal_task_queue, settings.temporal_address
            )
            if ready is not None:
                ready.set()
            await (stop or asyncio.Event()).wait()
    finally:
        await channels.aclose()
        await redis.aclose()
        await pool.close()


def main() -> None:
    """Run one worker with settings from the environment."""
    settings = get_settings()
    configure_logging(settings.log_level)
    asyncio.run(run_worker(settings))


if __name__ == "__main__":
    main()
