"""Runs launched to start later (``--at``, ``--in``): seen and cancelled before they start.

A delayed run is a ``PlanRunWorkflow`` started with a start delay: it exists at once (its id
taken, visible in the UI), but its first workflow task is scheduled only when the delay ends,
so no workflow code runs before. Signals sent meanwhile do not start it early, so a cancel
before the start terminates it (nothing of it ran) and deletes the Redis keys its launch may
have written (an ``--audience`` file is loaded at launch).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import redis.asyncio as aioredis
from temporalio.client import WorkflowHandle

from journeys.durations import parse_duration
from journeys.errors import InvalidInput, Problem
from journeys.names import run_keys_pattern

CANCEL_MARGIN = timedelta(seconds=5)
"""A run due to start sooner than this is cancelled the ordinary way (a signal it reads when
it starts), not terminated: it may start while the terminate is on its way."""


def start_delay(text: str) -> timedelta:
    """``--in``'s duration (``2h``, ``30m``); refuses what is not one, or not positive."""
    try:
        delay = parse_duration(text)
    except ValueError as exc:
        raise InvalidInput("--in", [Problem("--in", str(exc))]) from None
    if delay <= timedelta(0):
        raise InvalidInput("--in", [Problem("--in", "must be longer than zero")])
    return delay


@dataclass(frozen=True)
class Waiting:
    """A run whose start delay has not ended."""

    run_id: str
    starts_at: datetime


async def waiting_start(handle: WorkflowHandle[Any, Any]) -> Waiting | None:
    """The run's start time if its first workflow task is not scheduled yet, else None."""
    first = None
    async for event in handle.fetch_history_events():
        if first is not None:
            return None  # a second event: the first workflow task is scheduled, it started
        first = event
    if first is None:
        return None
    started = first.workflow_execution_started_event_attributes
    backoff = started.first_workflow_task_backoff.ToTimedelta()
    if backoff <= timedelta(0):
        return None
    return Waiting(run_id=handle.id, starts_at=first.event_time.ToDatetime(tzinfo=UTC) + backoff)


async def cancel_waiting(
    handle: WorkflowHandle[Any, Any], redis: aioredis.Redis, waiting: Waiting
) -> bool:
    """Terminate a run that has not started and delete its Redis keys; False (nothing done)
    when it starts within :data:`CANCEL_MARGIN`."""
    if waiting.starts_at - datetime.now(UTC) < CANCEL_MARGIN:
        return False
    await handle.terminate(reason="cancelled before it started")
    async for key in redis.scan_iter(match=run_keys_pattern(waiting.run_id), count=1000):
        await redis.delete(key)
    return True
