"""One trial: the load, a fault while it runs, and the outcome.

The load is a blast of ``users`` users through ``batchpush`` (the tests' HTTP provider,
batches of 50) and, beside it, a running journey entered by event ``fault_ping`` that sends
one message through the same provider; a feed posts those events through the ingest API
for as long as the blast runs. The fault is a coroutine given the :class:`Rig`; it picks its
own moment (by how many messages the provider has accepted, so it lands mid-run however fast
the machine is).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from activities.db.pool import DbPool
from journeys.contracts.runs import ControlSignal, RunOptions
from journeys.settings import Settings
from starter.connect import database, redis_client
from starter.stack.devstack import DevStack
from tests.engine import start_blast, write_ids, write_plan
from tests.receiver import Receiver
from workflows.plan_run import PlanRunWorkflow

from ..events import launch_listening
from .feed import EventFeed
from .outcome import Outcome, tally
from .rig import IngestApi, Worker

EVENT = "fault_ping"
DRAIN = timedelta(minutes=5)
"""How long the event journey may take to send what was accepted, once the blast is over."""
GIVE_UP = timedelta(seconds=60)
"""How long the feed goes on retrying its unanswered batches once the blast is over."""


@dataclass
class Rig:
    """What a fault may break."""

    stack: DevStack
    settings: Settings
    worker: Worker
    api: IngestApi
    receiver: Receiver
    users: int
    baseline: int = 0
    """Messages the provider had accepted before this trial."""

    async def accepted(self, count: int) -> None:
        """Return once the provider has accepted ``count`` distinct messages this trial."""
        total = self.baseline + count
        if not await asyncio.to_thread(self.receiver.wait_for_messages, total, within=600):
            raise RuntimeError(f"faults: the provider never reached {count:,} messages")


Fault = Callable[[Rig], Awaitable[str]]


@dataclass(frozen=True)
class Shape:
    """How the load's plans page and retry. The full harness keeps the product's defaults
    where they matter (a dead worker's page is retried after 30 s); the tests' short forms
    shrink them so that a fault lands mid-run with a few thousand users."""

    shards: int = 8
    page_size: int = 1000
    concurrency: int = 4
    retry_backoff: timedelta = timedelta(seconds=10)
    """The first wait before a failed user is tried again (3 attempts in all)."""
    heartbeat: timedelta = timedelta(seconds=30)

    def limits(self) -> dict[str, Any]:
        backoff = f"{round(self.retry_backoff.total_seconds() * 1000)}ms"
        return {
            "page_size": self.page_size,
            "concurrency": self.concurrency,
            "retry": {"attempts": 3, "backoff": backoff},
        }


async def trial(
    rig: Rig,
    fault: Fault,
    *,
    scenario: str,
    number: int,
    rate: int,
    directory: Path,
    shape: Shape = Shape(),
    give_up: timedelta = GIVE_UP,
    drain: timedelta = DRAIN,
) -> Outcome:
    """Run the load with ``fault`` and count what every user got."""
    prefix = f"f{uuid.uuid4().hex[:6]}"
    settings = rig.settings
    blast_plan = write_plan(directory, channel="batchpush", shards=shape.shards, **shape.limits())
    ids = write_ids(directory, rig.users, prefix=f"{prefix}-b")
    rig.baseline, repeats = len(rig.receiver.messages()), rig.receiver.repeats
    started = time.perf_counter()
    async with redis_client(settings) as redis, database(settings) as pool:
        _, _, event_run, event_handle = await launch_listening(
            settings, _event_plan(directory, shape), pool=pool, redis=redis, listens_for=EVENT
        )
        feed = EventFeed(rig.api.url, event=EVENT, prefix=prefix, rate=rate)
        stop = asyncio.Event()
        feeding = asyncio.create_task(feed.run(stop, give_up_after=give_up))
        launched, handle = await start_blast(
            settings,
            pool=pool,
            redis=redis,
            plan_file=blast_plan,
            ids_file=ids,
            options=RunOptions(page_heartbeat_timeout=shape.heartbeat),
        )
    what = await fault(rig)
    _say(started, f"fault done: {what}")
    blast_run = await _finished(handle)
    _say(started, f"blast {blast_run[:200]}")
    stop.set()
    await feeding
    _say(started, f"feed stopped: {len(feed.accepted)} accepted, {feed.answers}")
    async with database(settings) as pool:
        await _drained(pool, event_handle, event_run, len(feed.accepted), within=drain)
        _say(started, f"event run drained: {await _statuses(pool, event_run)}")
        event_status = await _finished(event_handle, cancel=True)
        blast_users = {f"{prefix}-b-{n:06d}" for n in range(1, rig.users + 1)}
        accepted = rig.receiver.by_user()
        blast = await tally(pool, launched.run_id, blast_users, accepted)
        events = await tally(pool, event_run, feed.accepted, accepted)
        stored = await pool.fetchval(
            "SELECT count(*) FROM events WHERE event_id = ANY($1::text[])",
            [f"{user}:1" for user in feed.accepted],
        )
    return Outcome(
        scenario=scenario,
        trial=number,
        fault=what,
        blast=blast,
        events=events,
        events_stored=stored,
        blast_run=blast_run,
        event_run="cancelled" if event_status == "completed" else event_status,
        repeats=rig.receiver.repeats - repeats,
        feed_retries=feed.retries,
        seconds=round(time.perf_counter() - started, 1),
    )


def _event_plan(directory: Path, shape: Shape) -> Path:
    """Entry on :data:`EVENT` for anyone, one message through ``batchpush``."""
    plan_id = f"faults-events-{uuid.uuid4().hex[:6]}"
    body: dict[str, Any] = {
        "id": plan_id,
        "name": "Fault harness: event journey",
        "shards": 2,
        "audience": {"source": "all"},
        "entry": {
            "type": "event",
            "event": EVENT,
            "flush_every": "200ms",
            "window": {"end": (datetime.now(UTC) + timedelta(hours=2)).isoformat()},
        },
        "steps": {"hello": {"type": "send", "channel": "batchpush", "template": "hello"}},
        "limits": shape.limits(),
    }
    path = directory / f"{plan_id}.yaml"
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


async def _finished(handle: WorkflowHandle[Any, Any], *, cancel: bool = False) -> str:
    """``completed`` or the failure's message, waiting out a Temporal server that is down."""
    while True:
        try:
            if cancel:
                try:
                    await handle.signal(PlanRunWorkflow.cancel, ControlSignal())
                except RPCError as exc:
                    if exc.status != RPCStatusCode.NOT_FOUND:
                        raise
                cancel = False  # sent, or the run had ended already (failed)
            await handle.result()
            return "completed"
        except WorkflowFailureError as exc:
            return "failed: " + " <- ".join(_messages(exc))
        except RPCError:  # the server is restarting: ask again
            await asyncio.sleep(1)


def _messages(error: BaseException | None) -> list[str]:
    """The messages of a failure and its causes, outermost first."""
    out: list[str] = []
    while error is not None and len(out) < 6:
        out.append(getattr(error, "message", None) or str(error))
        error = getattr(error, "cause", None) or error.__cause__
    return out


async def _drained(
    pool: DbPool,
    handle: WorkflowHandle[Any, Any],
    run_id: str,
    expected: int,
    *,
    within: timedelta,
) -> None:
    """Wait until the event run has a final row for ``expected`` users, has ended (failed),
    or ``within`` passed."""
    deadline = time.perf_counter() + within.total_seconds()
    while time.perf_counter() < deadline:
        with contextlib.suppress(RPCError):
            if (await handle.describe()).status != WorkflowExecutionStatus.RUNNING:
                return
        with contextlib.suppress(OSError):
            done = await pool.fetchval(
                "SELECT count(*) FROM deliveries WHERE run_id = $1 AND status = ANY($2)",
                run_id,
                ["sent", "failed", "dead"],
            )
            if done >= expected:
                return
        await asyncio.sleep(1)


async def _statuses(pool: DbPool, run_id: str) -> dict[str, int]:
    rows = await pool.fetch(
        "SELECT status, count(*) AS n FROM deliveries WHERE run_id = $1 GROUP BY status", run_id
    )
    return {r["status"]: r["n"] for r in rows}


def _say(started: float, what: str) -> None:
    """Progress on stderr, so a trial that hangs shows where."""
    print(f"faults: {time.perf_counter() - started:6.1f} s {what}", file=sys.stderr, flush=True)
