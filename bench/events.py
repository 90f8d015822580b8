"""Scenario ``events``: event-to-send latency of an event-triggered journey with no wait.

For each shape in :data:`RUNS` (shards, ``flush_every``), a plan whose entry is the event
``bench_ping`` and whose only step sends to the ``inbox`` channel runs with a worker in this
process and the ingest API in its own (``journeys serve``), as they are deployed. Then,
against the same run:

- **steady**: events of fresh users go through the Python client over HTTP at :data:`RATE`
  events/s for :data:`DURATION`, a batch every :data:`TICK`. Each event's ``ts`` is the moment
  its batch was *due* (not when it went out), so a stalled sender cannot hide latency. Latency
  = the inbox row's ``created_at`` (PostgreSQL's clock, same machine) minus that ``ts``.
- **ceiling**: :data:`CEILING_EVENTS` events as fast as :data:`CEILING_SENDERS` concurrent
  senders of :data:`CEILING_BATCH` can post them; the ceiling is events over the time from the
  first post to the last inbox row (end to end), beside the ingest API's own acceptance rate.

The sizes given to ``python -m bench`` do not apply: the load is a rate, not an audience.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import redis.asyncio as aioredis
import yaml
from rich.console import Console
from rich.table import Table
from temporalio.client import Client, WorkflowHandle

from activities.db.pool import DbPool
from journeys.contracts.runs import ControlSignal, RunOptions
from journeys.names import listeners_key
from journeys.plan.models import Plan
from journeys.settings import Settings
from starter.client import Journeys
from starter.connect import database, redis_client
from starter.launching import launch
from starter.plan_files import read_plan
from starter.stack.probes import free_port
from tests.engine import client_for, for_test, settings_env, worker_running
from workflows.plan_run import PlanRunWorkflow

from .blast import CHANNEL, forget_run, write_channels
from .results import save

EVENT = "bench_ping"
RUNS = (  # (shards, flush_every): the default shard count, then wider runs for comparison
    (1, timedelta(milliseconds=200)),
    (4, timedelta(milliseconds=200)),
    (4, timedelta(seconds=1)),
)
RATE = 200  # events/s
DURATION = timedelta(seconds=60)
TICK = timedelta(milliseconds=50)
CEILING_EVENTS = 20_000
CEILING_SENDERS = 4
CEILING_BATCH = 500
DRAIN = timedelta(minutes=3)  # how long the last sends may take to arrive


async def run(settings: Settings, sizes: list[int]) -> dict[str, Any]:
    """Measure steady latency and the ceiling, print the table, write the JSON result."""
    del sizes
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-events-") as tmp:
        own = for_test(settings, write_channels(Path(tmp)))
        async with ingest_api(own) as url:
            for shards, flush_every in RUNS:
                plan_file = write_event_plan(Path(tmp), shards=shards, flush_every=flush_every)
                rows += await measure(own, plan_file, url=url, shape=(shards, flush_every))
    Console(width=160).print(latency_table(rows))
    return save(
        "events",
        rows=rows,
        tick_ms=TICK / timedelta(milliseconds=1),
    )


Post = Callable[[Journeys, str, list[tuple[str, datetime]]], Awaitable[object]]
"""Sends one batch of (user, due time) to the run's plan: as events, or as API entries."""


async def post_events(journeys: Journeys, plan_id: str, batch: list[tuple[str, datetime]]) -> None:
    del plan_id  # events find every run that listens for their name
    await journeys.send_events(
        [{"user_id": user, "name": EVENT, "ts": due.isoformat()} for user, due in batch]
    )


async def launch_listening(
    settings: Settings,
    plan_file: Path,
    *,
    pool: DbPool,
    redis: aioredis.Redis,
    listens_for: str = EVENT,
) -> tuple[Client, Plan, str, WorkflowHandle[Any, Any]]:
    """Launch ``plan_file`` and return once its run listens for ``listens_for``."""
    client = await client_for(settings)
    plan = read_plan(plan_file, channels=settings.channels_file)
    launched, handle = await launch(
        settings,
        client=client,
        pool=pool,
        redis=redis,
        plan=plan,
        plan_file=plan_file,
        options=RunOptions(),
    )
    async with asyncio.timeout(60):
        while True:  # a poll of Redis; nothing here to wait on
            if await redis.hget(listeners_key(listens_for), launched.run_id):
                break
            await asyncio.sleep(0.05)
    return client, plan, launched.run_id, handle


async def measure(
    settings: Settings,
    plan_file: Path,
    *,
    url: str,
    shape: tuple[int, timedelta],
    post: Post = post_events,
    listens_for: str = EVENT,
    scenario: str = "events",
) -> list[dict[str, Any]]:
    """Steady latency and the ceiling against one run of ``plan_file``."""
    async with (
        redis_client(settings) as redis,
        database(settings) as pool,
        worker_running(settings),
    ):
        _, plan, run_id, handle = await launch_listening(
            settings, plan_file, pool=pool, redis=redis, listens_for=listens_for
        )
        rows = []
        async with Journeys(url) as journeys:

            async def send(batch: list[tuple[str, datetime]]) -> None:
                await post(journeys, plan.id, batch)

            seconds = DURATION.total_seconds()
            where = f"{shape[0]} shard(s), flush {shape[1].total_seconds():g} s"
            Console().print(f"{scenario}: {where}, steady {RATE}/s for {seconds:.0f} s ...")
            due = await steady(send, run_id)
            rows.append(await collect(pool, run_id, due, label=f"steady {RATE}/s", shape=shape))
            Console().print(f"{scenario}: {where}, {CEILING_EVENTS:,} at once ...")
            due, accepted_s = await flood(send, run_id)
            row = await collect(pool, run_id, due, label="ceiling", shape=shape)
            row["ingest_events_per_s"] = round(CEILING_EVENTS / accepted_s)
            rows.append(row)
        await handle.signal(PlanRunWorkflow.cancel, ControlSignal())
        await handle.result()
        await forget_run(pool, run_id)
    return rows


@asynccontextmanager
async def ingest_api(settings: Settings) -> AsyncIterator[str]:
    """``journeys serve`` in a process of its own; its base URL once it answers."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "starter.cli",
        "serve",
        "--port",
        str(port),
        env=settings_env(settings),
    )
    url = f"http://{settings.ingest_host}:{port}"
    try:
        async with httpx.AsyncClient(base_url=url) as http, asyncio.timeout(60):
            while True:
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get("/healthz")).status_code == 200:
                        break
                await asyncio.sleep(0.1)
        yield url
    finally:
        process.terminate()
        await process.wait()


def user_of(run_id: str, n: int) -> str:
    return f"{run_id[-8:]}-{n:07d}"


Send = Callable[[list[tuple[str, datetime]]], Coroutine[Any, Any, None]]


async def steady(
    send: Send,
    run_id: str,
    *,
    duration: timedelta = DURATION,
    rate: int = RATE,
    users: int | None = None,
) -> dict[str, datetime]:
    """``rate`` events/s for ``duration``; the due time of each event.

    Open loop, as many product services are: a batch goes every tick whether or not the
    previous ones were answered (the API holds each request until its signal went out).
    Each event is a new user, keyed by user id; with ``users``, events cycle through that
    many users and are keyed ``user:n``, the user's n-th event (its entry number, which ends
    the message id, when every event enters).
    """
    per_tick = round(rate * TICK.total_seconds())
    ticks = round(duration / TICK)
    start_wall, start = datetime.now(UTC), time.perf_counter()
    due: dict[str, datetime] = {}
    posts: list[asyncio.Task[Any]] = []
    for tick in range(ticks):
        offset = tick * TICK.total_seconds()
        await asyncio.sleep(max(0.0, start + offset - time.perf_counter()))
        at = start_wall + timedelta(seconds=offset)
        numbers = range(tick * per_tick, (tick + 1) * per_tick)
        batch = [(user_of(run_id, n if users is None else n % users), at) for n in numbers]
        posts.append(asyncio.create_task(send(batch)))
        if users is None:
            due.update(batch)
        else:
            keys = (f"{u}:{n // users + 1}" for (u, _), n in zip(batch, numbers, strict=True))
            due.update((key, at) for key in keys)
    await asyncio.gather(*posts)
    return due


async def flood(send: Send, run_id: str) -> tuple[dict[str, datetime], float]:
    """``CEILING_EVENTS`` events as fast as they are accepted; due times and the seconds the
    ingest API took to accept them all."""
    base = 10_000_000  # apart from the steady users
    queue = list(range(base, base + CEILING_EVENTS, CEILING_BATCH))
    due: dict[str, datetime] = {}
    started = time.perf_counter()

    async def sender() -> None:
        while queue:
            first = queue.pop(0)
            at = datetime.now(UTC)
            batch = [(user_of(run_id, first + k), at) for k in range(CEILING_BATCH)]
            await send(batch)
            due.update(batch)

    await asyncio.gather(*(sender() for _ in range(CEILING_SENDERS)))
    return due, time.perf_counter() - started


async def collect(
    pool: DbPool,
    run_id: str,
    due: dict[str, datetime],
    *,
    label: str,
    shape: tuple[int, timedelta],
) -> dict[str, Any]:
    """Wait for every user's inbox row; latency percentiles and the end-to-end rate."""
    users = list(due)
    deadline = time.perf_counter() + DRAIN.total_seconds()
    while True:
        rows = await pool.fetch(
            "SELECT user_id, created_at FROM inbox WHERE user_id = ANY($1::text[])"
            " AND starts_with(message_id, $2)",
            users,
            f"{run_id}:",
        )
        if len(rows) >= len(users) or time.perf_counter() > deadline:
            break
        await asyncio.sleep(0.5)
    if len(rows) < len(users):
        raise RuntimeError(f"{label}: {len(users) - len(rows)} of {len(users)} sends missing")
    latencies = sorted((r["created_at"] - due[r["user_id"]]).total_seconds() for r in rows)
    first, last = min(due.values()), max(r["created_at"] for r in rows)
    return {
        "label": label,
        "shards": shape[0],
        "flush_every_ms": round(shape[1] / timedelta(milliseconds=1)),
        "events": len(users),
        "p50_ms": _ms(percentile(latencies, 50)),
        "p95_ms": _ms(percentile(latencies, 95)),
        "p99_ms": _ms(percentile(latencies, 99)),
        "max_ms": _ms(latencies[-1]),
        "end_to_end_events_per_s": round(len(users) / (last - first).total_seconds()),
    }


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    rank = max(1, round(p / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def write_event_plan(directory: Path, *, shards: int, flush_every: timedelta) -> Path:
    """Entry on ``EVENT`` for anyone, one send to the inbox, open for an hour."""
    plan_id = f"bench-events-{uuid.uuid4().hex[:6]}"
    body = {
        "id": plan_id,
        "name": "Event latency bench",
        "shards": shards,
        "audience": {"source": "all"},
        "entry": {
            "type": "event",
            "event": EVENT,
            "flush_every": f"{round(flush_every / timedelta(milliseconds=1))}ms",
            "window": {"end": (datetime.now(UTC) + timedelta(hours=1)).isoformat()},
        },
        "steps": {"hello": {"type": "send", "channel": CHANNEL, "template": "hello"}},
    }
    path = directory / f"{plan_id}.yaml"
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


def latency_table(
    rows: list[dict[str, Any]], *, title: str = "events: event-to-send latency"
) -> Table:
    table = Table(title=f"{title} (ingest API to inbox row)")
    for column in (
        "load",
        "shards",
        "flush ms",
        "events",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "max ms",
        "end-to-end ev/s",
    ):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(
            row["label"],
            str(row["shards"]),
            f"{row['flush_every_ms']:,}",
            f"{row['events']:,}",
            *(f"{row[k]:,}" for k in ("p50_ms", "p95_ms", "p99_ms", "max_ms")),
            f"{row['end_to_end_events_per_s']:,}",
        )
    return table
