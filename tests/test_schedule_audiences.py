"""Occurrences of a schedule and their audiences: a ``per_run`` segment is evaluated again
for each occurrence, a ``snapshot`` is the first occurrence's, and a plan cap holds across
occurrences (a real Temporal Schedule, worker, Redis and PostgreSQL; each occurrence a
backfill of its own time, run now)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
import yaml
from temporalio.client import (
    Client,
    ScheduleActionExecutionStartWorkflow,
    ScheduleBackfill,
    ScheduleOverlapPolicy,
    WorkflowHandle,
)

from activities.db.pool import DbPool
from journeys.contracts.counters import RunStatus
from journeys.contracts.runs import PlanRunResult
from journeys.settings import Settings
from starter.plan_files import read_plan
from starter.schedules import launch_schedule, schedule_id
from tests.engine import client_for, for_test, worker_running, write_channels
from tests.journey_kit import eventually
from tests.receiver import Receiver
from workflows.plan_run import PlanRunWorkflow


async def occurrence(
    client: Client, plan_id: str, seen: set[str], *, days_ago: int
) -> PlanRunResult:
    """Run the 09:00 UTC occurrence of ``days_ago`` days ago now (a backfill of exactly it)
    and wait for its run's result. Each occurrence has its own time, hence its own run id."""
    handle = client.get_schedule_handle(schedule_id(plan_id))
    nine = datetime.now(UTC).replace(hour=9, minute=0, second=0, microsecond=0)
    at = nine - timedelta(days=days_ago)
    window = ScheduleBackfill(
        start_at=at - timedelta(minutes=1),
        end_at=at + timedelta(minutes=1),
        overlap=ScheduleOverlapPolicy.ALLOW_ALL,
    )
    await handle.backfill(window)

    async def new_runs() -> list[str]:
        recent = (await handle.describe()).info.recent_actions
        started = [a.action for a in recent]
        ids = {
            a.workflow_id for a in started if isinstance(a, ScheduleActionExecutionStartWorkflow)
        }
        return sorted(ids - seen)

    (run_id,) = await eventually(new_runs, until=bool)
    seen.add(run_id)
    run: WorkflowHandle[PlanRunWorkflow, PlanRunResult] = client.get_workflow_handle_for(
        PlanRunWorkflow.run, run_id
    )
    return await run.result()


async def delivered_to(pool: DbPool, run_id: str) -> set[str]:
    rows = await pool.fetch(
        "SELECT user_id FROM deliveries WHERE run_id = $1 AND status = 'sent'", run_id
    )
    return {r["user_id"] for r in rows}


@pytest.mark.parametrize("mode", ["per_run", "snapshot"])
async def test_each_occurrence_reads_its_audience_and_the_plan_cap_holds(
    mode: str,
    stack_settings: Settings,
    pool: DbPool,
    redis: aioredis.Redis,
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    settings = for_test(stack_settings, write_channels(tmp_path, receiver_url=receiver.url))
    tag = f"so{uuid.uuid4().hex[:6]}"
    first, later = [f"{tag}-a", f"{tag}-b"], f"{tag}-c"

    async def join(users: list[str]) -> None:
        await pool.executemany(
            "INSERT INTO users (user_id, attrs) VALUES ($1, $2) ON CONFLICT (user_id)"
            " DO UPDATE SET attrs = excluded.attrs",
            [(u, {"batch": tag}) for u in users],
        )

    body: dict[str, Any] = {
        "id": f"daily-{tag}-{mode.replace('_', '')}",
        "name": "Daily, by rule",
        "shards": 2,
        "audience": {
            "source": "segment",
            "rule": {"tag": "batch", "op": "eq", "value": tag},
            "mode": mode,
        },
        "entry": {"type": "schedule", "cron": "0 9 * * *", "overlap": "allow_all"},
        "steps": {"hello": {"type": "send", "channel": "push", "template": "hello"}},
        "limits": {"plan_cap": {"max": 1, "per": "7d"}},
    }
    plan_file = tmp_path / "daily.yaml"
    plan_file.write_text(yaml.safe_dump(body))
    plan = read_plan(plan_file, channels=settings.channels_file)
    client = await client_for(settings)
    await join(first)
    seen: set[str] = set()
    async with worker_running(settings):
        await launch_schedule(settings, client=client, pool=pool, plan=plan, plan_file=plan_file)
        try:
            one = await occurrence(client, plan.id, seen, days_ago=2)
            await join([later])  # the segment grows between occurrences
            two = await occurrence(client, plan.id, seen, days_ago=1)
        finally:
            await client.get_schedule_handle(schedule_id(plan.id)).delete()
    assert one.status is RunStatus.COMPLETED and two.status is RunStatus.COMPLETED
    assert await delivered_to(pool, one.run_id) == set(first)
    if mode == "per_run":  # evaluated again: the new member is targeted and reached
        assert two.totals.targeted == 3
        assert await delivered_to(pool, two.run_id) == {later}
    else:  # the first occurrence's snapshot: the new member is not in it
        assert two.totals.targeted == 2
        assert await delivered_to(pool, two.run_id) == set()
    # the first two were reached by the first occurrence: the plan cap holds them back
    assert two.totals.skipped == {"plan_cap": 2}
    assert len(receiver.messages()) == (3 if mode == "per_run" else 2)
