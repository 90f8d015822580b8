"""Plans with a schedule entry become Temporal Schedules: ``journeys launch`` and
``journeys schedule ...`` through the real console script, a real worker and server."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
import yaml
from temporalio.client import WorkflowHandle

from activities.audience.shard_sets import save_audience
from activities.db.pool import DbPool
from journeys.contracts.counters import RunStatus
from journeys.contracts.runs import PlanRunResult
from journeys.settings import Settings
from tests.conftest import spawn_journeys
from tests.engine import client_for, for_test, worker_running, write_channels, write_plan
from tests.journey_kit import eventually
from tests.receiver import Receiver
from tests.test_run_cli import env_for
from workflows.plan_run import PlanRunWorkflow


async def cli(env: dict[str, str], *args: str, ok: bool = True) -> Any:
    proc = await spawn_journeys(*args, env=env)
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert (proc.returncode == 0) is ok, err.decode()
    assert "Traceback" not in err.decode()
    return json.loads(out) if ok and "--json" in args else err.decode()


async def test_a_schedule_is_launched_triggered_backfilled_paused_updated_and_deleted(
    stack_settings: Settings,
    pool: DbPool,
    redis: aioredis.Redis,
    tmp_path: Path,
    receiver: Receiver,
) -> None:
    settings = for_test(stack_settings, write_channels(tmp_path, receiver_url=receiver.url))
    env = env_for(settings)
    tag = uuid.uuid4().hex[:6]
    audience = f"sched-{tag}"
    await save_audience(
        redis, pool, name=audience, ids=[f"sch{tag}-{i}" for i in range(20)], shards=2, source="t"
    )
    body = yaml.safe_load(write_plan(tmp_path, channel="popup", shards=2).read_text())
    body |= {
        "audience": {"source": "list", "name": audience},
        "entry": {"type": "schedule", "every": "1h", "overlap": "allow_all"},
    }
    plan = tmp_path / "hourly.yaml"
    plan.write_text(yaml.safe_dump(body))
    plan_id = body["id"]
    client = await client_for(settings)

    async def runs_started() -> list[str]:
        shown = await cli(env, "schedule", "show", plan_id, "--json")
        return sorted(r["run_id"] for r in shown["recent"])

    async with worker_running(settings):
        launched = await cli(env, "launch", str(plan), "--json")
        assert (launched["schedule_id"], launched["version"]) == (f"plan/{plan_id}", 1)
        assert launched["created"] is True and len(launched["next_runs"]) == 3
        listed = await cli(env, "schedule", "list", "--json")
        assert f"plan/{plan_id}" in {s["schedule_id"] for s in listed}
        # options for one run are refused: each occurrence is its own run
        err = await cli(env, "launch", str(plan), "--run-key", "x", ok=False)
        assert "--run-key" in err

        await cli(env, "schedule", "trigger", plan_id)
        (run_id,) = await eventually(runs_started, until=bool)
        assert run_id.startswith(f"plan/{plan_id}/v1/sched-")
        run: WorkflowHandle[PlanRunWorkflow, PlanRunResult] = client.get_workflow_handle_for(
            PlanRunWorkflow.run, run_id
        )
        result = await run.result()
        assert result.status is RunStatus.COMPLETED and result.totals.delivered == 20

        # two past occurrences of an hourly schedule, run now
        hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        start, end = hour - timedelta(hours=3, minutes=-1), hour - timedelta(hours=1, minutes=-1)
        await cli(
            env,
            "schedule",
            "backfill",
            plan_id,
            "--start",
            start.isoformat(),
            "--end",
            end.isoformat(),
        )
        started = await eventually(runs_started, until=lambda runs: len(runs) == 3)
        marks = [(hour - timedelta(hours=h)).strftime("%Y-%m-%dT%H:%M:%S") for h in (2, 1)]
        assert all(any(m in r for r in started) for m in marks), started

        await cli(env, "schedule", "pause", plan_id)
        assert (await cli(env, "schedule", "show", plan_id, "--json"))["paused"] is True
        body["name"] = "Hourly, renamed"  # a new version: the schedule starts it from now on
        plan.write_text(yaml.safe_dump(body))
        updated = await cli(env, "launch", str(plan), "--json")
        assert (updated["version"], updated["created"]) == (2, False)
        shown = await cli(env, "schedule", "show", plan_id, "--json")
        assert shown["paused"] is True  # still paused after the update
        handle = client.get_schedule_handle(f"plan/{plan_id}")
        action = (await handle.describe()).schedule.action
        assert getattr(action, "id", "") == f"plan/{plan_id}/v2/sched"
        body["name"] = "Hourly, renamed again"  # publishing alone moves the schedule on too
        plan.write_text(yaml.safe_dump(body))
        published = await cli(env, "publish", str(plan), "--json")
        assert published["version"] == 3
        action = (await handle.describe()).schedule.action
        assert getattr(action, "id", "") == f"plan/{plan_id}/v3/sched"
        await cli(env, "schedule", "resume", plan_id)
        assert (await cli(env, "schedule", "show", plan_id, "--json"))["paused"] is False

        await cli(env, "schedule", "delete", plan_id)
        err = await cli(env, "schedule", "show", plan_id, ok=False)
        assert f"no schedule for plan '{plan_id}'" in err
    for started_id in started:
        described = await client.get_workflow_handle(started_id).describe()
        assert described.status is not None and described.status.name == "COMPLETED"
    rows = await pool.fetchval(
        "SELECT count(*) FROM deliveries WHERE run_id = ANY($1) AND status = 'sent'", started
    )
    assert rows == 3 * 20  # three occurrences, each to the whole audience
