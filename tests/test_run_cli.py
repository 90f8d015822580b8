"""`journeys launch / status / pause / resume / rate / cancel` through the real console script."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from activities.db.pool import DbPool
from journeys.contracts.counters import RunStatus
from journeys.contracts.runs import PlanRunResult
from journeys.settings import Settings
from tests.conftest import settings_env, spawn_journeys
from tests.engine import client_for, for_test, worker_running, write_channels, write_ids, write_plan
from tests.receiver import Receiver


async def journeys(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    proc = await spawn_journeys(*args, env=env)
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def env_for(settings: Settings) -> dict[str, str]:
    return settings_env(settings) | {
        "JOURNEYS_CHANNELS": str(settings.channels_file),
        "TEMPORAL_TASK_QUEUE": settings.temporal_task_queue,
    }


async def test_launch_wait_status_and_duplicate_run_key(
    stack_settings: Settings, tmp_path: Path, receiver: Receiver, pool: DbPool
) -> None:
    settings = for_test(stack_settings, write_channels(tmp_path, receiver_url=receiver.url))
    env = env_for(settings)
    plan = write_plan(tmp_path, channel="popup", shards=2)
    ids = write_ids(tmp_path, 300, prefix="cli")
    async with worker_running(settings):
        code, out, err = await journeys(
            env, "launch", str(plan), "--audience", str(ids), "--run-key", "k1", "--wait", "--json"
        )
        assert code == 0, err
        launched = json.loads(out)
        run_id = launched["launched"]["run_id"]
        assert run_id.endswith("/k1") and run_id.startswith("plan/blast-")
        assert launched["result"]["totals"]["delivered"] == 300

        code, out, err = await journeys(env, "status", run_id, "--json")
        assert code == 0, err
        assert json.loads(out)["status"] == "completed"

        code, out, err = await journeys(
            env, "launch", str(plan), "--audience", str(ids), "--run-key", "k1"
        )
        assert code == 1
        assert err.strip() == f"error: run {run_id} already exists; pick another --run-key"


async def test_pause_rate_resume_cancel_commands(
    stack_settings: Settings, tmp_path: Path, receiver: Receiver
) -> None:
    settings = for_test(stack_settings, write_channels(tmp_path, receiver_url=receiver.url))
    env = env_for(settings)
    plan = write_plan(tmp_path, channel="push", shards=1, rate="5/s", page_size=5, concurrency=1)
    ids = write_ids(tmp_path, 200, prefix="ctlcli")
    async with worker_running(settings):
        code, out, err = await journeys(env, "launch", str(plan), "--audience", str(ids), "--json")
        assert code == 0, err
        run_id = json.loads(out)["run_id"]

        assert (await journeys(env, "pause", run_id))[0] == 0
        code, out, _ = await journeys(env, "status", run_id, "--json")
        assert json.loads(out)["status"] == "paused"

        code, out, err = await journeys(env, "rate", run_id, "10/s")  # 200 users: ~20 s more
        assert code == 0, err
        assert f"rate of {run_id} is now 10/s" in out

        assert (await journeys(env, "resume", run_id))[0] == 0
        code, out, _ = await journeys(env, "status", run_id, "--json")
        assert json.loads(out)["status"] == "running"

        assert (await journeys(env, "cancel", run_id))[0] == 0
        client = await client_for(settings)
        result = await client.get_workflow_handle(run_id, result_type=PlanRunResult).result()
        code, _, err = await journeys(env, "pause", run_id)
    assert result.status is RunStatus.CANCELLED
    assert result.totals.delivered + result.totals.cancelled == 200
    assert result.totals.cancelled > 0
    assert len(receiver.messages()) == result.totals.delivered
    assert code == 1 and err.strip() == f"error: run {run_id} has already ended (completed)"

    code, _, err = await journeys(env, "pause", "plan/nope/v1/none")
    assert code == 1 and err.startswith("error: no run 'plan/nope/v1/none'")
