"""``journeys schedule``: the Temporal Schedules of plans with a schedule entry."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from typing import Any

import typer
from rich.table import Table
from temporalio.client import (
    ScheduleActionExecutionStartWorkflow,
    ScheduleBackfill,
    ScheduleDescription,
    ScheduleHandle,
    ScheduleOverlapPolicy,
)
from temporalio.service import RPCError, RPCStatusCode

from journeys.audit import AuditRecord
from journeys.errors import InvalidInput, NotFound, Problem
from journeys.plan.models import Plan
from journeys.settings import Settings, get_settings

from .acting import BY, acting, audit
from .connect import database, temporal_client
from .console import out, print_json
from .schedules import launch_schedule, schedule_id

schedule_app = typer.Typer(
    name="schedule",
    help="Recurring plans: one Temporal Schedule per plan with a schedule entry.",
    no_args_is_help=True,
)
_JSON = typer.Option(False, "--json", help="Print JSON.")
_PLAN = typer.Argument(..., metavar="PLAN_ID", help="The plan whose schedule it is.")


def refuse_for_schedules(
    *, audience: Path | None, at: datetime | None, run_key: str | None, wait: bool
) -> None:
    """Options a schedule's runs cannot take: each occurrence is a run of its own."""
    given = {"--audience": audience, "--at / --in": at, "--run-key": run_key, "--wait": wait}
    problems = [
        Problem(flag, "a schedule entry starts a run per occurrence; this option is for one run")
        for flag, value in given.items()
        if value
    ]
    if problems:
        raise InvalidInput("launch", problems)


async def launch_as_schedule(
    settings: Settings, plan: Plan, plan_file: Path, *, as_json: bool, by: str | None = None
) -> None:
    client = await temporal_client(settings)
    async with database(settings) as pool:
        scheduled = await launch_schedule(
            settings, client=client, pool=pool, plan=plan, plan_file=plan_file, by=by
        )
    if as_json:
        print_json(scheduled)
        return
    verb = "scheduled" if scheduled.created else "schedule now starts"
    out.print(f"{verb} [bold]{scheduled.schedule_id}[/] (v{scheduled.version})")
    for when in scheduled.next_runs:
        out.print(f"  next: {when:%Y-%m-%d %H:%M} UTC")
    out.print(f"Temporal UI: {scheduled.ui_url}", soft_wrap=True)


async def _handle(plan_id: str) -> ScheduleHandle:
    client = await temporal_client(get_settings())
    handle = client.get_schedule_handle(schedule_id(plan_id))
    try:
        await handle.describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise NotFound(f"no schedule for plan {plan_id!r}") from None
        raise
    return handle


def _summary(described: ScheduleDescription) -> dict[str, Any]:
    info, schedule = described.info, described.schedule
    recent = []
    for action in info.recent_actions:
        started = action.action
        run = (
            started.workflow_id
            if isinstance(started, ScheduleActionExecutionStartWorkflow)
            else None
        )
        recent.append({"scheduled_at": action.scheduled_at, "run_id": run})
    return {
        "schedule_id": described.id,
        "paused": schedule.state.paused,
        "note": schedule.state.note,
        "cron": list(schedule.spec.cron_expressions),
        "every": [str(i.every) for i in schedule.spec.intervals],
        "time_zone": schedule.spec.time_zone_name,
        "start_at": schedule.spec.start_at,
        "end_at": schedule.spec.end_at,
        "overlap": schedule.policy.overlap.name.lower(),
        "catchup_window": str(schedule.policy.catchup_window),
        "runs": info.num_actions,
        "skipped_overlap": info.num_actions_skipped_overlap,
        "next_runs": list(info.next_action_times[:5]),
        "recent": recent,
    }


@schedule_app.command("list")
def list_schedules(as_json: bool = _JSON) -> None:
    """Every plan's schedule: paused or not, its next runs."""

    async def go() -> list[dict[str, Any]]:
        client = await temporal_client(get_settings())
        found = []
        async for listed in await client.list_schedules():
            if listed.id.startswith("plan/"):
                described = await client.get_schedule_handle(listed.id).describe()
                found.append(_summary(described))
        return sorted(found, key=lambda s: str(s["schedule_id"]))

    rows = asyncio.run(go())
    if as_json:
        print_json(rows)
        return
    table = Table("schedule", "state", "rule", "next run", "runs")
    for row in rows:
        rule = ", ".join(row["cron"] + [f"every {e}" for e in row["every"]])
        nxt = row["next_runs"][0].strftime("%Y-%m-%d %H:%M") if row["next_runs"] else "-"
        state = "paused" if row["paused"] else "active"
        table.add_row(row["schedule_id"], state, rule, nxt, str(row["runs"]))
    out.print(table)


@schedule_app.command()
def show(plan_id: str = _PLAN, as_json: bool = _JSON) -> None:
    """A plan's schedule: its rule, policy, next runs and the runs it started."""

    async def go() -> dict[str, Any]:
        return _summary(await (await _handle(plan_id)).describe())

    summary = asyncio.run(go())
    if as_json:
        print_json(summary)
        return
    for key, value in summary.items():
        out.print(f"{key:<16} {value}", soft_wrap=True)


@schedule_app.command()
def pause(plan_id: str = _PLAN, by: str | None = BY) -> None:
    """No more occurrences start until it is resumed."""
    actor = acting(by)
    asyncio.run(_act(plan_id, lambda h: h.pause(note=f"paused by {actor}")))
    audit(AuditRecord(actor=actor, action="pause", plan_id=plan_id, subject=schedule_id(plan_id)))
    out.print(f"schedule of {plan_id} paused")


@schedule_app.command()
def resume(plan_id: str = _PLAN, by: str | None = BY) -> None:
    """Occurrences start again."""
    actor = acting(by)
    asyncio.run(_act(plan_id, lambda h: h.unpause(note=f"resumed by {actor}")))
    audit(AuditRecord(actor=actor, action="resume", plan_id=plan_id, subject=schedule_id(plan_id)))
    out.print(f"schedule of {plan_id} resumed")


@schedule_app.command()
def trigger(plan_id: str = _PLAN) -> None:
    """Start one occurrence now (beside any that runs)."""
    asyncio.run(_act(plan_id, lambda h: h.trigger(overlap=ScheduleOverlapPolicy.ALLOW_ALL)))
    out.print(f"schedule of {plan_id} triggered: a run starts now")


@schedule_app.command()
def backfill(
    plan_id: str = _PLAN,
    start: datetime = typer.Option(..., help="From (ISO 8601 with an offset)."),
    end: datetime = typer.Option(..., help="To (ISO 8601 with an offset)."),
) -> None:
    """Run the occurrences that fell between START and END (they run beside each other)."""
    problems = [
        Problem(flag, "give an offset, e.g. 2026-11-23T09:00+08:00")
        for flag, value in (("--start", start), ("--end", end))
        if value.tzinfo is None
    ]
    if not problems and start >= end:
        problems.append(Problem("--end", "must be after --start"))
    if problems:
        raise InvalidInput("schedule backfill", problems)
    window = ScheduleBackfill(start_at=start, end_at=end, overlap=ScheduleOverlapPolicy.ALLOW_ALL)
    asyncio.run(_act(plan_id, lambda h: h.backfill(window)))
    out.print(f"schedule of {plan_id}: occurrences from {start} to {end} started")


@schedule_app.command()
def delete(plan_id: str = _PLAN) -> None:
    """Delete the schedule (runs it started go on; the plan and its versions stay)."""
    asyncio.run(_act(plan_id, lambda h: h.delete()))
    out.print(f"schedule of {plan_id} deleted")


async def _act(plan_id: str, action: Any) -> None:
    handle = await _handle(plan_id)
    await action(handle)


def register(app: typer.Typer) -> None:
    """Add the ``schedule`` command group to ``app``."""
    app.add_typer(schedule_app)
