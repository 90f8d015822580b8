"""Helpers for journey tests: channels and plans on disk, profiles, virtual time, events."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import redis.asyncio as aioredis
import yaml
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import Client, WorkflowExecution, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import TimeSkipper, TimeSkippingConfig

from activities.db import queries
from activities.db.pool import DbPool
from journeys.contracts.runs import PlanRunResult, RunOptions, ShardResult, ShardSummary
from journeys.events import JourneyEvent
from journeys.names import shard_workflow_id
from journeys.settings import Settings
from starter.event_signals import signal_events
from starter.launching import Launched, launch
from starter.plan_files import read_plan
from tests.engine import client_for
from tests.receiver import Receiver
from workflows.plan_run import PlanRunWorkflow
from workflows.shard import ShardWorkflow

T = TypeVar("T")
METADATA_QUERY = "__temporal_workflow_metadata"
"""The SDK's built-in query behind the UI's details (not one of ours)."""


def write_journey_channels(directory: Path, *, receiver_url: str) -> Path:
    """push, sms and a webhook over HTTP to the receiver; popup into the inbox."""

    def http(path: str, kind: str, templates: dict[str, Any]) -> dict[str, Any]:
        provider = {"kind": "http", "url": f"{receiver_url}/{path}", "timeout": "5s"}
        return {"type": kind, "provider": provider, "templates": templates}

    channels = {
        "push": http(
            "push",
            "push",
            {
                "hello": {"title": "Hi", "body": "Welcome"},
                "offer": {"title": "Offer", "body": "{{ vars.offer | default('none') }}"},
                "recall": {"title": "A coupon", "body": "for {{ event.order_id }}"},
            },
        ),
        "sms": http("sms", "sms", {"nudge": {"body": "Still there? Reply TD to stop"}}),
        "hook": http("hook", "webhook", {"grant": {"payload": {"coupon": "{{ vars.coupon }}"}}}),
        "popup": {
            "type": "in_app",
            "provider": {"kind": "inbox", "slot": "popup"},
            "templates": {"hello": {"title": "Hello", "body": "Hi"}},
        },
    }
    path = directory / "channels.yaml"
    path.write_text(yaml.safe_dump({"channels": channels}))
    return path


EXAMPLE_CHANNELS = Path(__file__).resolve().parents[1] / "examples" / "channels.yaml"


def write_example_channels(
    directory: Path,
    *,
    receiver_url: str,
    smtp_port: int | None = None,
    judge_url: str | None = None,
) -> Path:
    """``examples/channels.yaml`` with its templates as they are; HTTP providers post to the
    receiver (``/{channel}``, batches kept), SMTP ones to ``smtp_port`` on this machine when
    given (a :class:`tests.receiver.SmtpSink`), the inbox and log providers stay; its
    judgement services are asked at ``judge_url`` when given."""
    example = yaml.safe_load(EXAMPLE_CHANNELS.read_text())["channels"]
    channels: dict[str, Any] = {}
    for name, declared in example.items():
        channel = dict(declared)
        if channel["provider"]["kind"] == "http":
            provider = {"kind": "http", "url": f"{receiver_url}/{name}", "timeout": "5s"}
            if "batch_size" in channel["provider"]:
                provider["batch_size"] = channel["provider"]["batch_size"]
            channel["provider"] = provider
        elif channel["provider"]["kind"] == "smtp" and smtp_port is not None:
            channel["provider"] = channel["provider"] | {"host": "127.0.0.1", "port": smtp_port}
        channels[name] = channel
    services = yaml.safe_load(EXAMPLE_CHANNELS.read_text()).get("services", {})
    if judge_url is not None:  # every judgement service is the test's judge, same settings
        services = {name: s | {"url": judge_url, "secret": "judge-secret"}
                    for name, s in services.items()}  # fmt: skip
    path = directory / "example-channels.yaml"
    path.write_text(yaml.safe_dump({"channels": channels, "services": services}))
    return path


def write_journey(directory: Path, body: dict[str, Any]) -> Path:
    """A plan file from ``body`` (steps, goal, exit_criteria...), with test defaults."""
    plan_id = f"jny-{uuid.uuid4().hex[:8]}"
    full = {
        "id": plan_id,
        "name": "Test journey",
        "shards": 1,
        "audience": {"source": "list", "name": "unused-when-a-file-is-given"},
        "entry": {"type": "immediate"},
        "limits": {"page_size": 50, "concurrency": 4},
        **body,
    }
    path = directory / f"{plan_id}.yaml"
    path.write_text(yaml.safe_dump(full, sort_keys=False))
    return path


def write_users(directory: Path, users: list[str]) -> Path:
    path = directory / f"users-{uuid.uuid4().hex[:6]}.txt"
    path.write_text("".join(f"{user}\n" for user in users))
    return path


def awake_zone(plan_file: Path, *, now: datetime | None = None) -> str:
    """A fixed-offset zone (``Etc/GMT-5`` is UTC+5) where it is now the middle of the hours
    ``plan_file``'s quiet hours leave for sending, so a test of a plan with quiet hours in
    force does not depend on the time of day it runs. UTC when the plan has none."""
    quiet = read_plan(plan_file, channels=None).limits.quiet_hours
    if quiet is None:
        return "UTC"
    now = now or datetime.now(UTC)
    start = quiet.start.hour * 60 + quiet.start.minute
    end = quiet.end.hour * 60 + quiet.end.minute
    awake = (start - end) % (24 * 60)  # minutes from the window's end to its next start
    middle = (end + awake // 2) % (24 * 60)
    offset = round((middle - (now.hour * 60 + now.minute)) / 60)
    offset = (offset + 12) % 24 - 12  # -12..+11 hours: every Etc/GMT zone exists
    return "Etc/UTC" if offset == 0 else f"Etc/GMT{-offset:+d}"


async def seed_profiles(pool: DbPool, profiles: dict[str, dict[str, Any]]) -> None:
    """Upsert profiles: ``{user: {"timezone": ..., "attrs": {...}}}``."""
    users = sorted(profiles)
    await pool.execute(
        queries.USERS_UPSERT,
        users,
        [profiles[u].get("email") for u in users],
        [profiles[u].get("phone") for u in users],
        [profiles[u].get("timezone") for u in users],
        [profiles[u].get("attrs", {}) for u in users],
    )


@asynccontextmanager
async def virtual_time(settings: Settings, *, skipping: bool) -> AsyncIterator[TimeSkipper]:
    """A client whose workflows run on virtual time: skipped whenever nothing is in flight
    (``skipping``), or only when the test fast-forwards a workflow."""
    client = await client_for(settings)
    yield TimeSkipper(client, config=TimeSkippingConfig(enabled=skipping))


async def launch_journey(
    settings: Settings,
    skipper: TimeSkipper,
    *,
    pool: DbPool,
    redis: aioredis.Redis,
    plan_file: Path,
    users: Path | None,
    options: RunOptions | None = None,
) -> tuple[Launched, WorkflowHandle[Any, PlanRunResult]]:
    plan = read_plan(plan_file, channels=settings.channels_file)
    return await launch(
        settings,
        client=skipper.client,
        pool=pool,
        redis=redis,
        plan=plan,
        plan_file=plan_file,
        audience_file=users,
        options=options or RunOptions(),
    )


def run_handle(client: Client, run_id: str) -> WorkflowHandle[PlanRunWorkflow, PlanRunResult]:
    return client.get_workflow_handle_for(PlanRunWorkflow.run, run_id)


def shard_handle(
    client: Client, run_id: str, shard: int = 0
) -> WorkflowHandle[ShardWorkflow, ShardResult]:
    return client.get_workflow_handle_for(ShardWorkflow.run, shard_workflow_id(run_id, shard))


async def shard_runs(client: Client, run_id: str, shard: int = 0) -> list[WorkflowExecution]:
    """Every run of a shard workflow: one more per continue-as-new."""
    query = f'WorkflowId = "{shard_workflow_id(run_id, shard)}"'
    return [execution async for execution in client.list_workflows(query)]


async def shard_run_inputs(client: Client, run_id: str, shard: int = 0) -> list[int]:
    """The input size in bytes of each run of a shard workflow (what continue-as-new carried)."""
    sizes = []
    for execution in await shard_runs(client, run_id, shard):
        handle = client.get_workflow_handle(execution.id, run_id=execution.run_id)
        started = (await handle.fetch_history()).events[0]
        payloads = started.workflow_execution_started_event_attributes.input.payloads
        sizes.append(sum(len(p.data) for p in payloads))
    return sizes


async def eventually(probe: Callable[[], Awaitable[T]], *, until: Callable[[T], bool]) -> T:
    """Call ``probe`` until its answer satisfies ``until`` (a condition, not a timed wait)."""
    async with asyncio.timeout(120):
        while True:
            answer = await probe()
            if until(answer):
                return answer
            await asyncio.sleep(0.05)


_NOT_YET = (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION)


async def until_shard(
    client: Client, run_id: str, ok: Callable[[ShardSummary], bool], *, shard: int = 0
) -> ShardSummary:
    """Query a shard's progress until ``ok`` holds (a condition, not a timed wait); a shard
    not started yet, or a new run whose first task has not run, is waited for, any other
    error raised."""
    handle = shard_handle(client, run_id, shard)

    async def progress() -> ShardSummary | None:
        try:
            return await handle.query(ShardWorkflow.progress)
        except RPCError as exc:
            if exc.status not in _NOT_YET:
                raise
            return None

    summary = await eventually(progress, until=lambda s: s is not None and ok(s))
    assert summary is not None
    return summary


async def send(client: Client, run_id: str, events: list[JourneyEvent], *, shards: int = 1) -> None:
    await signal_events(client, run_id=run_id, shards=shards, events=events)


def received_by_node(receiver: Receiver) -> dict[str, set[str]]:
    """Users who got a message, by the node in its idempotency key ``run:node:user:entry``."""
    nodes: dict[str, set[str]] = defaultdict(set)
    for key, message in receiver.messages().items():
        node = key.rsplit(":", 3)[1]
        nodes[node].add(str(message["user_id"]))
    return dict(nodes)


async def store_events(pool: DbPool, events: list[JourneyEvent]) -> None:
    """Write events to the events table (what behaviour conditions read)."""
    await pool.execute(
        queries.EVENTS_INSERT,
        [e.event_id for e in events],
        [e.user_id for e in events],
        [e.name for e in events],
        [e.ts for e in events],
        [e.props for e in events],
        [True] * len(events),
    )


async def current_details(handle: WorkflowHandle[Any, Any]) -> str:
    """The live line the Temporal UI shows for a workflow (its current details), read with
    the SDK's built-in metadata query."""
    metadata: WorkflowMetadata = await handle.query(METADATA_QUERY, result_type=WorkflowMetadata)
    details: str = metadata.current_details
    return details
