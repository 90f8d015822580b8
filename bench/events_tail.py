"""Scenario ``events_tail``: the steady shape of ``events``, run after run, with task timings.

Issue 20 asks for 10 consecutive runs of the steady 200 events/s shape with 1 and 4 shards,
each with p99 under 1 s, through the shard's continue-as-new. Each trial is a fresh run of
the bench's event plan, fed for :data:`DURATION` (long enough that every shard continues as
new at least once); afterwards every shard's histories are read back for what the workflow
tasks did: the slowest task (scheduled to completed), failed tasks by cause, and where each
run continued as new. ``BENCH_TRIALS`` sets the trials per shard count (default 10).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from temporalio.api.enums.v1 import EventType, WorkflowTaskFailedCause
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from journeys.contracts.runs import ControlSignal
from journeys.names import shard_workflow_id
from journeys.settings import Settings
from starter.client import Journeys
from starter.connect import database, redis_client
from tests.engine import for_test, worker_running
from workflows.plan_run import PlanRunWorkflow

from .blast import forget_run, write_channels
from .events import (
    RATE,
    collect,
    ingest_api,
    launch_listening,
    post_events,
    steady,
    write_event_plan,
)
from .results import save

DURATION = timedelta(seconds=90)
SHARD_COUNTS = tuple(int(n) for n in os.environ.get("BENCH_SHARDS", "1,4").split(","))
FLUSH = timedelta(milliseconds=200)
console = Console(highlight=False)


@dataclass
class TaskTimings:
    """What the workflow tasks of one shard's runs did."""

    runs: int = 0
    tasks: int = 0
    slowest_s: float = 0.0
    slowest_at_event: int = 0
    slowest_run: int = 0
    failed: dict[str, int] = field(default_factory=dict)
    around_failure: list[str] = field(default_factory=list)
    """The workflow-task events near the first failed task: id, kind, ms after the failure."""
    run_events: list[int] = field(default_factory=list)
    handovers_s: list[float] = field(default_factory=list)
    """Seconds into the trial at which each run continued as new."""


async def run(settings: Settings, sizes: list[int]) -> dict[str, Any]:
    """TRIALS steady runs per shard count; print the table, write the JSON result."""
    del sizes
    trials = int(os.environ.get("BENCH_TRIALS", "10"))
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-events-tail-") as tmp:
        own = for_test(settings, write_channels(Path(tmp)))
        async with ingest_api(own) as url, worker_running(own):
            for shards in SHARD_COUNTS:
                for trial in range(1, trials + 1):
                    plan_file = write_event_plan(Path(tmp), shards=shards, flush_every=FLUSH)
                    row = await one_trial(own, plan_file, url=url, shards=shards)
                    row["trial"] = trial
                    console.print(trial_line(row))
                    rows.append(row)
    console.print(trials_table(rows))
    return save("events_tail", rows=rows, duration_s=DURATION.total_seconds())


async def one_trial(
    settings: Settings, plan_file: Path, *, url: str, shards: int
) -> dict[str, Any]:
    """One fresh run fed at RATE for DURATION; latency and the shards' task timings."""
    async with redis_client(settings) as redis, database(settings) as pool:
        client, plan, run_id, handle = await launch_listening(
            settings, plan_file, pool=pool, redis=redis
        )
        started = datetime.now(UTC)
        async with Journeys(url) as journeys:

            async def send(batch: list[tuple[str, datetime]]) -> None:
                await post_events(journeys, plan.id, batch)

            due = await steady(send, run_id, duration=DURATION)
        row = await collect(pool, run_id, due, label=f"steady {RATE}/s", shape=(shards, FLUSH))
        created = await _created(pool, run_id)
        row["slow_due_s"] = slow_window(due, created, started=started)
        row["worst_seconds"] = worst_seconds(due, created, started=started)
        await handle.signal(PlanRunWorkflow.cancel, ControlSignal())
        await handle.result()
        timings = [
            await task_timings(client, shard_workflow_id(run_id, k), started=started)
            for k in range(shards)
        ]
        row["shard_tasks"] = [asdict(t) for t in timings]
        await forget_run(pool, run_id)
    return row


async def _created(pool: Any, run_id: str) -> dict[str, datetime]:
    rows = await pool.fetch(
        "SELECT user_id, created_at FROM inbox WHERE starts_with(message_id, $1)", f"{run_id}:"
    )
    return {r["user_id"]: r["created_at"] for r in rows}


def slow_window(
    due: dict[str, datetime], created: dict[str, datetime], *, started: datetime
) -> list[float]:
    """Seconds into the trial of the first and last event that took over a second."""
    late = sorted(
        (at - started).total_seconds()
        for user, at in due.items()
        if user in created and (created[user] - at) > timedelta(seconds=1)
    )
    return [round(late[0], 1), round(late[-1], 1)] if late else []


def worst_seconds(
    due: dict[str, datetime], created: dict[str, datetime], *, started: datetime, top: int = 5
) -> list[list[float]]:
    """The ``top`` seconds of the trial with the slowest event: [second, its max latency s]."""
    worst: dict[int, float] = {}
    for user, at in due.items():
        if user in created:
            second = int((at - started).total_seconds())
            took = (created[user] - at).total_seconds()
            worst[second] = max(worst.get(second, 0.0), took)
    ranked = sorted(worst.items(), key=lambda item: -item[1])[:top]
    return [[second, round(took, 3)] for second, took in ranked]


async def task_timings(client: Client, workflow_id: str, *, started: datetime) -> TaskTimings:
    """Walk the continue-as-new chain of ``workflow_id`` and time every workflow task."""
    out = TaskTimings()
    histories: list[list[Any]] = []
    run: str | None = None
    while True:
        try:
            history = await client.get_workflow_handle(workflow_id, run_id=run).fetch_history()
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                break
            raise
        histories.insert(0, list(history.events))
        if keep := os.environ.get("BENCH_KEEP_HISTORIES"):
            name = f"{workflow_id.replace('/', '_')}-{len(histories)}.json"
            (Path(keep) / name).write_text(history.to_json())
        run = (
            history.events[0].workflow_execution_started_event_attributes.continued_execution_run_id
            or None
        )
        if run is None:
            break
    for index, events in enumerate(histories):
        out.runs += 1
        out.run_events.append(len(events))
        scheduled: datetime | None = None
        for event in events:
            kind, at = event.event_type, event.event_time.ToDatetime(tzinfo=UTC)
            if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
                out.handovers_s.append(round((at - started).total_seconds(), 1))
            if kind == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
                scheduled = at
            elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
                cause = WorkflowTaskFailedCause.Name(
                    event.workflow_task_failed_event_attributes.cause
                )
                out.failed[cause] = out.failed.get(cause, 0) + 1
                if not out.around_failure:
                    out.around_failure = _around(events, event.event_id, at)
            elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT:
                out.failed["TIMED_OUT"] = out.failed.get("TIMED_OUT", 0) + 1
            if kind in _TASK_ENDS and scheduled is not None:
                out.tasks += 1
                took = (at - scheduled).total_seconds()
                if took > out.slowest_s:
                    out.slowest_s, out.slowest_at_event = round(took, 3), event.event_id
                    out.slowest_run = index
                scheduled = None
    return out


def _around(events: list[Any], event_id: int, at: datetime) -> list[str]:
    near = [e for e in events if event_id - 8 <= e.event_id <= event_id + 12]
    return [
        f"{e.event_id} {EventType.Name(e.event_type).removeprefix('EVENT_TYPE_')} "
        f"{(e.event_time.ToDatetime(tzinfo=UTC) - at).total_seconds() * 1000:+.0f}"
        for e in near
    ]


_TASK_ENDS = (
    EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
    EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED,
    EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT,
)


def trial_line(row: dict[str, Any]) -> str:
    worst = max(row["shard_tasks"], key=lambda t: t["slowest_s"])
    failed = {k: v for t in row["shard_tasks"] for k, v in t["failed"].items()}
    return (
        f"events_tail: {row['shards']} shard(s), trial {row['trial']}: "
        f"p50 {row['p50_ms']:,} p95 {row['p95_ms']:,} p99 {row['p99_ms']:,} "
        f"max {row['max_ms']:,} ms; slowest task {worst['slowest_s']:.2f} s "
        f"(run {worst['slowest_run']}, event {worst['slowest_at_event']}); "
        f"runs {[t['runs'] for t in row['shard_tasks']]}; failed {failed or 'none'}; "
        f"late {row['slow_due_s'] or 'none'}; worst seconds {row['worst_seconds'][:3]}; "
        f"handovers {[t['handovers_s'] for t in row['shard_tasks']]}"
    )


def trials_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title=f"events_tail: steady {RATE}/s for {DURATION.total_seconds():.0f} s")
    for column in ("shards", "trial", "p50 ms", "p95 ms", "p99 ms", "max ms", "slowest task s"):
        table.add_column(column, justify="right")
    table.add_column("runs per shard")
    table.add_column("failed tasks")
    for row in rows:
        tasks = row["shard_tasks"]
        failed = {k: v for t in tasks for k, v in t["failed"].items()}
        table.add_row(
            str(row["shards"]),
            str(row["trial"]),
            *(f"{row[k]:,}" for k in ("p50_ms", "p95_ms", "p99_ms", "max_ms")),
            f"{max(t['slowest_s'] for t in tasks):.2f}",
            ",".join(str(t["runs"]) for t in tasks),
            ", ".join(f"{k} {v}" for k, v in sorted(failed.items())) or "none",
        )
    return table
