"""Stop the runs whose Redis state is gone (``journeys recover redis``).

After Redis lost its data every run that was running has lost its cohorts; each would fail
at its next page or entry, but a run that only waits (a long ``wait`` step, an entry window
with no events yet) would sit there until then, and events for it would be stored as routed
to nobody, since the listener registry went with Redis. So recovery terminates them at
once, each with the reason, and names them.
"""

from __future__ import annotations

import redis.asyncio as aioredis
from temporalio.client import Client

from activities.db import plan_store
from activities.db.pool import DbPool
from activities.run_state import missing_marks
from journeys.errors import NotFound
from journeys.names import parse_run_id, run_state_key

RUNNING = 'WorkflowType = "PlanRunWorkflow" AND ExecutionStatus = "Running"'
REASON = (
    "Redis lost this run's working state; stopped by `journeys recover redis`. What was sent "
    "is recorded in PostgreSQL (deliveries)"
)


async def stop_lost_runs(client: Client, pool: DbPool, redis: aioredis.Redis) -> list[str]:
    """Terminate every running run with a shard mark missing; their ids, sorted."""
    stopped: list[str] = []
    async for execution in client.list_workflows(RUNNING):
        named = parse_run_id(execution.id)
        if named is None:
            continue
        try:
            plan = await plan_store.load(pool, *named)
        except NotFound:
            continue  # not this database's run (databases may share a Temporal namespace)
        marks = [run_state_key(execution.id, k) for k in range(plan.shards)]
        if await missing_marks(redis, marks):
            await client.get_workflow_handle(execution.id).terminate(reason=REASON)
            stopped.append(execution.id)
    return sorted(stopped)
