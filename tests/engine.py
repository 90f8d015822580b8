"""Helpers for end-to-end runs: a worker on its own task queue, plans and channels on disk."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
import yaml
from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.workflow import NondeterminismError

from activities.db.pool import DbPool
from journeys.contracts.runs import PlanRunResult, RunOptions, RunProgress
from journeys.settings import Settings
from starter.launching import Launched, launch
from starter.plan_files import read_plan
from worker import run_worker
from workflows.plan_run import PlanRunWorkflow

ROOT = Path(__file__).resolve().parents[1]
STRICT: tuple[type[BaseException], ...] = (Warning, NondeterminismError)
"""What fails a workflow at once in the tests' workers: a sandbox warning raised as an error
(pyproject's filterwarnings), a restricted call (``os.environ`` and the like), a
non-deterministic replay. In production the task would retry, so the tests would hang."""


def write_channels(
    directory: Path,
    *,
    receiver_url: str,
    secret: str = "s3cret",
    connections: int | None = None,
) -> Path:
    """A channels file: http push (per message), http batch push, inbox popup, log
    (``connections``: the http channels' connections, else their default)."""
    channels: dict[str, dict[str, dict[str, Any]]] = {
        "channels": {
            "push": {
                "type": "push",
                "provider": {
                    "kind": "http",
                    "url": f"{receiver_url}/push",
                    "secret": secret,
                    "timeout": "5s",
                },
                "templates": {"hello": {"title": "Hi {{ user.first_name }}", "body": "Welcome"}},
            },
            "batchpush": {
                "type": "push",
                "provider": {
                    "kind": "http",
                    "url": f"{receiver_url}/batch",
                    "secret": secret,
                    "batch_size": 50,
                },
                "templates": {"hello": {"title": "Hi", "body": "Welcome"}},
            },
            "popup": {
                "type": "in_app",
                "provider": {"kind": "inbox", "slot": "popup"},
                "templates": {"hello": {"title": "Hello", "body": "Hi {{ user.first_name }}"}},
            },
            "dry": {
                "type": "push",
                "provider": {"kind": "log"},
                "templates": {"hello": {"title": "Hi", "body": "Welcome"}},
            },
        }
    }
    if connections is not None:
        for name in ("push", "batchpush"):
            channels["channels"][name]["provider"]["connections"] = connections
    path = directory / "channels.yaml"
    path.write_text(yaml.safe_dump(channels))
    return path


def write_plan(directory: Path, *, channel: str, shards: int = 4, **limits: Any) -> Path:
    """A one-step blast plan sending template ``hello`` through ``channel``."""
    plan_id = f"blast-{uuid.uuid4().hex[:8]}"
    body = {
        "id": plan_id,
        "name": "Test blast",
        "shards": shards,
        "audience": {"source": "list", "name": "unused-when-a-file-is-given"},
        "entry": {"type": "immediate"},
        "steps": {"hello": {"type": "send", "channel": channel, "template": "hello"}},
        "limits": {"page_size": 100, "concurrency": 4, **limits},
    }
    path = directory / f"{plan_id}.yaml"
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


def write_ids(directory: Path, count: int, *, prefix: str = "user") -> Path:
    """One id per line: ``{prefix}-000001`` ..."""
    path = directory / f"{prefix}-{count}.txt"
    path.write_text("".join(f"{prefix}-{n:06d}\n" for n in range(1, count + 1)))
    return path


def settings_env(settings: Settings, *, channels: Path | None = None) -> dict[str, str]:
    """This process's environment with ``settings`` as the Journeys variables, for child
    processes (the CLI, a worker, the ingest API); channels from ``examples/`` unless given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TEMPORAL_", "JOURNEYS_"))}
    env.update(
        TEMPORAL_ADDRESS=settings.temporal_address,
        TEMPORAL_NAMESPACE=settings.temporal_namespace,
        TEMPORAL_TASK_QUEUE=settings.temporal_task_queue,
        TEMPORAL_UI_URL=settings.temporal_ui_url,
        REDIS_URL=settings.redis_url,
        DATABASE_URL=settings.database_url,
        JOURNEYS_HOME=str(settings.home),
        JOURNEYS_CHANNELS=str(channels or ROOT / "examples" / "channels.yaml"),
        JOURNEYS_INGEST_HOST=settings.ingest_host,
        COLUMNS="200",
    )
    if settings.policy_file is not None:
        env["JOURNEYS_POLICY"] = str(settings.policy_file)
    return env


def for_test(settings: Settings, channels_file: Path) -> Settings:
    """The session's services, a task queue of the test's own, and its channels file."""
    return settings.model_copy(
        update={
            "temporal_task_queue": f"journeys-{uuid.uuid4().hex[:8]}",
            "channels_file": channels_file,
        }
    )


@asynccontextmanager
async def worker_running(
    settings: Settings,
    *,
    wrap: Callable[[list[Callable[..., Any]]], list[Callable[..., Any]]] | None = None,
) -> AsyncIterator[None]:
    """A real worker in this process until the block ends (``wrap``: see ``run_worker``)."""
    ready, stop = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(
        run_worker(settings, ready=ready, stop=stop, wrap_activities=wrap, fail_workflows_on=STRICT)
    )
    waiter = asyncio.create_task(ready.wait())
    done, _ = await asyncio.wait({waiter, task}, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        waiter.cancel()
        task.result()
    try:
        yield
    finally:
        stop.set()
        await task


async def client_for(settings: Settings) -> Client:
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
    )


async def start_blast(
    settings: Settings,
    *,
    pool: DbPool,
    redis: aioredis.Redis,
    plan_file: Path,
    ids_file: Path,
    options: RunOptions | None = None,
) -> tuple[Launched, WorkflowHandle[Any, PlanRunResult]]:
    """Launch ``plan_file`` on the ids of ``ids_file`` as ``journeys launch`` does."""
    client = await client_for(settings)
    plan = read_plan(plan_file, channels=settings.channels_file)
    return await launch(
        settings,
        client=client,
        pool=pool,
        redis=redis,
        plan=plan,
        plan_file=plan_file,
        audience_file=ids_file,
        options=options or RunOptions(),
    )


async def until(
    handle: WorkflowHandle[Any, PlanRunResult], ok: Callable[[RunProgress], bool]
) -> RunProgress:
    """Query progress until ``ok`` holds (a condition, not a timed wait)."""
    async with asyncio.timeout(120):
        while True:
            progress: RunProgress = await handle.query(PlanRunWorkflow.progress)
            if ok(progress):
                return progress
