"""`journeys launch / status / pause / resume / rate / cancel` through the real console script."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis.asyncio as aioredis
from temporalio.client import WorkflowExecutionStatus

from activities.db.pool import DbPool
from journeys.contracts.counters import RunStatus
from journeys.contracts.runs import PlanRunResult
from journeys.names import run_keys_pattern
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
        "JOURNEYS_ACTOR": "ops",
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
        assert json.loads(out)["kind"] == "marketing"  # not a transactional notice

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

        assert (await journeys(env, "resume", run_id, "--by", "ben"))[0] == 0
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

    # each control is in the audit log, by whom (the environment's actor unless --by), and
    # the refused ones are not
    code, out, err = await journeys(env | {"JOURNEYS_ACTOR": "eve"}, "audit", "--run", run_id,
                                    "--json")  # fmt: skip
    assert code == 0, err
    done = [(e["action"], e["actor"], e["detail"].get("per_second")) for e in json.loads(out)]
    assert done == [("cancel", "ops", None), ("resume", "ben", None), ("rate", "ops", 10.0),
                    ("pause", "ops", None), ("launch", "ops", None)]  # fmt: skip


async def test_a_delayed_run_waits_and_is_cancelled_before_it_starts(
    stack_settings: Settings, tmp_path: Path, receiver: Receiver, pool: DbPool
) -> None:
    settings = for_test(stack_settings, write_channels(tmp_path, receiver_url=receiver.url))
    env = env_for(settings)
    plan = write_plan(tmp_path, channel="popup", shards=2)
    ids = write_ids(tmp_path, 50, prefix="later")
    async with worker_running(settings):
        code, out, err = await journeys(
            env, "launch", str(plan), "--audience", str(ids), "--in", "2h", "--json"
        )
        assert code == 0, err
        launched = json.loads(out)
        run_id = launched["run_id"]
        starts_at = datetime.fromisoformat(launched["start_at"])
        assert timedelta(hours=1, minutes=59) < starts_at - datetime.now(UTC) <= timedelta(hours=2)

        code, out, err = await journeys(env, "status", run_id, "--json")
        assert code == 0, err
        waiting = json.loads(out)
        assert waiting["status"] == "waiting"
        # the start the server keeps, within the second the launch and the server differ by
        assert abs(datetime.fromisoformat(waiting["starts_at"]) - starts_at) < timedelta(seconds=2)
        redis = aioredis.Redis.from_url(settings.redis_url)
        try:
            loaded = [k async for k in redis.scan_iter(match=run_keys_pattern(run_id))]
            assert loaded  # the --audience file went into the run's shard keys at launch

            code, out, err = await journeys(env, "cancel", run_id)
            assert code == 0, err
            assert "cancelled before it started" in out
            assert [k async for k in redis.scan_iter(match=run_keys_pattern(run_id))] == []
        finally:
            await redis.aclose()
        client = await client_for(settings)
        described = await client.get_workflow_handle(run_id).describe()
        assert described.status == WorkflowExecutionStatus.TERMINATED
        rows = await pool.fetchval("SELECT count(*) FROM deliveries WHERE run_id = $1", run_id)
        assert rows == 0  # nothing of it ran

        code, _, err = await journeys(env, "launch", str(plan), "--in", "soon")
        assert code == 1 and "--in" in err and "Traceback" not in err


async def test_a_run_launched_at_a_time_starts_then(
    stack_settings: Settings, tmp_path: Path, receiver: Receiver
) -> None:
    settings = for_test(stack_settings, write_channels(tmp_path, receiver_url=receiver.url))
    env = env_for(settings)
    plan = write_plan(tmp_path, channel="popup", shards=1)
    ids = write_ids(tmp_path, 20, prefix="at")
    # far enough ahead that the command (a process that imports the app, publishes and loads
    # the audience) has surely started the run before it: 4 s was too little on a busy machine
    at = (datetime.now(UTC) + timedelta(seconds=10)).replace(microsecond=0)
    async with worker_running(settings):
        code, out, err = await journeys(
            env,
            "launch",
            str(plan),
            "--audience",
            str(ids),
            "--at",
            at.isoformat(),
            "--wait",
            "--json",
        )
        assert code == 0, err
        result = json.loads(out)
        assert result["result"]["totals"]["delivered"] == 20
        client = await client_for(settings)
        handle = client.get_workflow_handle(result["launched"]["run_id"])
        events = [e async for e in handle.fetch_history_events()]
    # its first workflow task was scheduled when --at came, not when it was launched
    task = next(e for e in events if e.HasField("workflow_task_scheduled_event_attributes"))
    assert task.event_time.ToDatetime(tzinfo=UTC) >= at
    assert events[0].event_time.ToDatetime(tzinfo=UTC) < at
