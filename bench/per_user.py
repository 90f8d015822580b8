"""Scenario ``per_user``: the one-step blast as a per-user-workflow design runs it.

Dittofeed's shape, written as simply as it does it: every user is a workflow of their own
(``PerUserJourney``) that runs one activity, which claims the user's ``deliveries`` row,
renders the template, sends through the same ``inbox`` channel (one ``inbox`` row) and
settles the row: per user the same database work as Journeys' blast, without batching. The
bench starts one workflow per user on a task queue of its own, with a worker in this process
(the same activity slots as Journeys' worker), and waits for all of them. Then it runs
Journeys' blast on as many users in the same run, for the ratio.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from rich.console import Console
from rich.table import Table
from temporalio import activity, workflow
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker

from activities.channels.message import Message, Outcome, Recipient, idempotency_key
from activities.channels.runtime import ChannelRuntime
from activities.db import queries
from activities.db.pool import DbPool, create_pool
from journeys.settings import Settings
from starter.connect import database, redis_client
from tests.engine import client_for, for_test

from .blast import CHANNEL, forget_run, measure, write_channels
from .results import save

BOUND = timedelta(minutes=10)  # a size whose projected per-user run is longer is skipped
STARTERS = 32  # workflow starts in flight
WAITERS = 256  # result long-polls in flight


class SendOneInput(BaseModel):
    run_id: str
    user_id: str


class SendOneOutput(BaseModel):
    sent: bool


class PerUserActivities:
    """The one activity of the per-user design."""

    def __init__(self, *, pool: DbPool, channels: ChannelRuntime) -> None:
        self._pool = pool
        self._channels = channels

    @activity.defn(name="bench_send_one")
    async def send_one(self, data: SendOneInput) -> SendOneOutput:
        key = idempotency_key(data.run_id, "hello", data.user_id)
        rows = await self._pool.fetch(
            queries.DELIVERIES_CLAIM, [key], [data.user_id], data.run_id, "hello", [0], CHANNEL, 1
        )
        if rows[0]["status"] == "sent":
            return SendOneOutput(sent=True)
        to = Recipient(user_id=data.user_id)
        content = self._channels.render(CHANNEL, "hello", recipient=to, vars={})
        message = Message(
            idempotency_key=key,
            run_id=data.run_id,
            node_id="hello",
            channel=CHANNEL,
            template="hello",
            user_id=data.user_id,
            to=to,
            content=content,
        )
        (result,) = await self._channels.send(CHANNEL, [message])
        status = "sent" if result.outcome is Outcome.SENT else "failed"
        await self._pool.execute(
            queries.DELIVERIES_SETTLE, [key], [status], [result.reason], [result.provider_id], 1
        )
        return SendOneOutput(sent=status == "sent")


@workflow.defn(name="PerUserJourney", sandboxed=False)
class PerUserJourney:
    """One user, one journey, one workflow."""

    @workflow.run
    async def run(self, data: SendOneInput) -> SendOneOutput:
        out: SendOneOutput = await workflow.execute_activity(
            "bench_send_one",
            data,
            result_type=SendOneOutput,
            start_to_close_timeout=timedelta(seconds=60),
        )
        return out


async def run(settings: Settings, sizes: list[int]) -> dict[str, Any]:
    """Per-user workflows vs Journeys' blast at each size; table and JSON."""
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-per-user-") as tmp:
        own = for_test(settings, write_channels(Path(tmp)))
        rate: float | None = None
        for size in sizes:
            if rate is not None and size / rate > BOUND.total_seconds():
                reason = f"projected {size / rate:,.0f} s at {rate:,.0f} users/s, over {BOUND}"
                Console().print(f"per_user: {size:,} skipped: {reason}")
                rows.append({"size": size, "skipped": reason})
                continue
            Console().print(f"per_user: {size:,} workflows ...")
            row = await per_user(own, size)
            rate = row["users_per_s"]
            Console().print(f"per_user: Journeys' blast of {size:,} ...")
            async with redis_client(own) as redis, database(own) as pool:
                blast = await measure(own, pool, redis, size, 1000)
            row["journeys_users_per_s"] = blast["users_per_s"]
            row["journeys_x"] = round(blast["users_per_s"] / row["users_per_s"], 1)
            rows.append(row)
    Console(width=160).print(table(rows))
    return save("per_user", rows=rows, starters=STARTERS)


async def per_user(settings: Settings, size: int) -> dict[str, Any]:
    """Start ``size`` PerUserJourney workflows and wait for every result."""
    run_id = f"bench/per-user/{uuid.uuid4().hex[:8]}"
    queue = f"per-user-{uuid.uuid4().hex[:8]}"
    pool = await create_pool(settings)
    channels = await ChannelRuntime.open(settings.channels_file, pool=pool)
    client = await client_for(settings)
    try:
        activities = PerUserActivities(pool=pool, channels=channels)
        async with Worker(
            client,
            task_queue=queue,
            workflows=[PerUserJourney],
            activities=[activities.send_one],
            max_concurrent_activities=settings.worker_max_activities,
        ):
            started = time.perf_counter()
            sent = await start_all(client, queue, run_id, size)
            seconds = time.perf_counter() - started
        await forget_run(pool, run_id)
    finally:
        await channels.aclose()
        await pool.close()
    if sent != size:
        raise RuntimeError(f"per_user: {sent} of {size} sent")
    return {"size": size, "seconds": round(seconds, 1), "users_per_s": round(size / seconds)}


async def start_all(client: Client, queue: str, run_id: str, size: int) -> int:
    """Start one workflow per user (``STARTERS`` starts in flight, none waiting for the
    previous user's result, as a per-user design enrols users), then count the sends."""
    users = iter(range(size))
    handles: list[WorkflowHandle[Any, SendOneOutput]] = []

    async def starter() -> None:
        for n in users:
            data = SendOneInput(run_id=run_id, user_id=f"pu-{n:07d}")
            handles.append(
                await client.start_workflow(
                    PerUserJourney.run, data, id=f"{run_id}/{data.user_id}", task_queue=queue
                )
            )

    await asyncio.gather(*(starter() for _ in range(STARTERS)))
    waiting = asyncio.Semaphore(WAITERS)

    async def outcome(handle: WorkflowHandle[Any, SendOneOutput]) -> bool:
        async with waiting:
            return (await handle.result()).sent

    return sum(await asyncio.gather(*(outcome(h) for h in handles)))


def table(rows: list[dict[str, Any]]) -> Table:
    out = Table(title="per-user workflows vs Journeys' blast (inbox, same machine and run)")
    for column in ("users", "per-user s", "per-user users/s", "Journeys users/s", "Journeys x"):
        out.add_column(column, justify="right")
    for row in rows:
        if "skipped" in row:
            out.add_row(f"{row['size']:,}", "skipped", row["skipped"], "", "")
            continue
        out.add_row(
            f"{row['size']:,}",
            f"{row['seconds']:,}",
            f"{row['users_per_s']:,}",
            f"{row['journeys_users_per_s']:,}",
            f"{row['journeys_x']}",
        )
    return out
