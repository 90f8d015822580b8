"""``journeys launch`` / ``status`` / ``pause`` / ``resume`` / ``cancel`` / ``rate``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import typer
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle

from journeys.audit import AuditAction, AuditRecord
from journeys.contracts.runs import (
    ControlSignal,
    PlanRunResult,
    RateUpdate,
    RateUpdateResult,
    RunProgress,
)
from journeys.errors import InvalidInput, JourneysError, NotFound, Problem
from journeys.names import parse_run_id
from journeys.plan.entry import ScheduleEntry
from journeys.plan.models import Plan
from journeys.settings import Settings, get_settings
from workflows import search
from workflows.plan_run import PlanRunWorkflow

from .acting import BY, acting, audit
from .channel_rate import paced_channel, per_second_of, set_channel_rate
from .connect import database, redis_client, temporal_client
from .console import err, out, print_json
from .delayed_runs import cancel_waiting, start_delay, waiting_start
from .dry_run import dry_run, dry_run_view
from .launching import launch as start_run
from .plan_files import plan_warnings, read_plan
from .progress_view import progress_table, result_table
from .run_state import snapshot
from .schedule_commands import launch_as_schedule, refuse_for_schedules


def launch(
    plan_file: Path = typer.Argument(..., metavar="PLAN", help="Plan file (YAML or JSON)."),
    audience: Path | None = typer.Option(None, help="User ids (CSV or one per line)."),
    at: datetime | None = typer.Option(None, help="Start time, ISO 8601 with an offset."),
    start_in: str | None = typer.Option(
        None, "--in", metavar="DURATION", help="Start after this long, e.g. 2h or 30m."
    ),
    run_key: str | None = typer.Option(None, help="Names the run (default: a timestamp)."),
    wait: bool = typer.Option(False, "--wait", help="Wait for the run and print its summary."),
    channels: Path | None = typer.Option(None, help="Channels file (default JOURNEYS_CHANNELS)."),
    dry: bool = typer.Option(
        False, "--dry-run", help="Run it all now, waits compressed; render, deliver nothing."
    ),
    by: str | None = BY,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Start a run of PLAN (publishing it first if it changed); prints the run id. Under the
    policy's ``approval: required`` only an approved version starts (a dry run previews any)."""
    if at is not None and at.tzinfo is None:
        raise InvalidInput("--at", [Problem("--at", "give an offset, e.g. 2026-11-23T09:00+08:00")])
    if start_in is not None:
        if at is not None:
            raise InvalidInput("--in", [Problem("--in", "give --at or --in, not both")])
        at = datetime.now(UTC) + start_delay(start_in)
    plan = read_plan(plan_file, channels=channels)
    actor = acting(by)
    # said before anything starts, on stderr so that --json output stays one JSON document
    for warning in plan_warnings(plan, plan_file, channels=channels):
        err.print(f"  ! {warning}", style="yellow", markup=False, soft_wrap=True)
    settings = get_settings()
    if dry:
        refuse_for_dry_runs(at=at, run_key=run_key)
        asyncio.run(
            launch_dry(settings, plan, plan_file, audience=audience, as_json=as_json, by=actor)
        )
        return
    if isinstance(plan.entry, ScheduleEntry):
        refuse_for_schedules(audience=audience, at=at, run_key=run_key, wait=wait)
        asyncio.run(launch_as_schedule(settings, plan, plan_file, as_json=as_json, by=actor))
        return

    async def go() -> None:
        client = await temporal_client(settings)
        async with database(settings) as pool, redis_client(settings) as redis:
            launched, handle = await start_run(
                settings,
                client=client,
                pool=pool,
                redis=redis,
                plan=plan,
                plan_file=plan_file,
                audience_file=audience,
                at=at,
                run_key=run_key,
                by=actor,
            )
        if not wait:
            if as_json:
                print_json(launched)
            else:
                out.print(f"launched [bold]{launched.run_id}[/]")
                out.print(f"Temporal UI: {launched.ui_url}", soft_wrap=True)
            return
        result = await handle.result()
        if as_json:
            print_json(
                {
                    "launched": launched.model_dump(mode="json"),
                    "result": result.model_dump(mode="json"),
                }
            )
        else:
            out.print(f"launched [bold]{launched.run_id}[/]")
            out.print(result_table(result))

    asyncio.run(go())


def refuse_for_dry_runs(*, at: datetime | None, run_key: str | None) -> None:
    """A dry run starts now under a key of its own: the options of a real run do not apply."""
    for flag, given in (("--at/--in", at is not None), ("--run-key", run_key is not None)):
        if given:
            raise InvalidInput("--dry-run", [Problem(flag, "a dry run starts now, as its own run")])


async def launch_dry(
    settings: Settings,
    plan: Plan,
    plan_file: Path,
    *,
    audience: Path | None,
    as_json: bool,
    by: str | None = None,
) -> None:
    """``launch --dry-run``: run it, then print what each node did."""
    client = await temporal_client(settings)
    async with database(settings) as pool, redis_client(settings) as redis:
        report = await dry_run(
            settings,
            client=client,
            pool=pool,
            redis=redis,
            plan=plan,
            plan_file=plan_file,
            audience_file=audience,
            by=by,
        )
    if as_json:
        print_json(report)
    else:
        out.print(dry_run_view(report, plan))


async def _handle(client: Client, run_id: str) -> WorkflowHandle[PlanRunWorkflow, PlanRunResult]:
    handle: WorkflowHandle[PlanRunWorkflow, PlanRunResult] = client.get_workflow_handle(
        run_id, result_type=PlanRunResult
    )
    try:
        await handle.describe()
    except Exception as exc:
        raise NotFound(f"no run {run_id!r}") from exc
    return handle


def status(
    run_id: str = typer.Argument(..., metavar="RUN", help="Run id (plan/ID/vN/KEY)."),
    watch: bool = typer.Option(False, "--watch", help="Refresh until the run ends."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Live progress of RUN per shard and node."""
    settings = get_settings()

    async def go() -> None:
        client = await temporal_client(settings)
        handle = await _handle(client, run_id)
        waiting = await waiting_start(handle)
        if waiting is not None:
            if as_json:
                print_json({"run_id": run_id, "status": "waiting", "starts_at": waiting.starts_at})
            else:
                out.print(
                    f"{run_id} waits to start at {waiting.starts_at:%Y-%m-%d %H:%M:%S} UTC "
                    f"(`journeys cancel {run_id}` cancels it)",
                    soft_wrap=True,
                )
            return
        kind = (await handle.describe()).typed_search_attributes.get(search.KIND)
        if not watch:
            state = await snapshot(client, handle)
            if as_json:
                print_json(state.model_dump(mode="json") | {"kind": kind})
            else:
                out.print(
                    progress_table(state, kind=kind)
                    if isinstance(state, RunProgress)
                    else result_table(state, kind=kind)
                )
            return
        from rich.live import Live

        with Live(console=out, auto_refresh=False) as live:
            while True:
                state = await snapshot(client, handle)
                view = (
                    progress_table(state, kind=kind)
                    if isinstance(state, RunProgress)
                    else result_table(state, kind=kind)
                )
                live.update(view, refresh=True)
                if isinstance(state, PlanRunResult):
                    return
                await asyncio.sleep(1)

    asyncio.run(go())


def _control(
    run_id: str,
    control: Callable[[PlanRunWorkflow, ControlSignal], None],
    *,
    name: AuditAction,
    by: str | None,
) -> None:
    settings = get_settings()
    actor = acting(by)

    async def go() -> None:
        client = await temporal_client(settings)
        handle = await _handle(client, run_id)
        status = (await handle.describe()).status
        if status != WorkflowExecutionStatus.RUNNING:
            ended = status.name.lower() if status is not None else "unknown"
            raise JourneysError(f"run {run_id} has already ended ({ended})")
        await handle.signal(control, ControlSignal())

    asyncio.run(go())
    _audit_run(actor, name, run_id)
    out.print(f"{name} sent to {run_id}; it takes effect at the next page boundary")


def _audit_run(
    actor: str, action: AuditAction, run_id: str, *, detail: dict[str, str | float] | None = None
) -> None:
    parsed = parse_run_id(run_id)
    audit(
        AuditRecord(
            actor=actor,
            action=action,
            run_id=run_id,
            plan_id=parsed[0] if parsed else None,
            version=parsed[1] if parsed else None,
            detail=dict(detail or {}),
        )
    )


def pause(run_id: str = typer.Argument(..., metavar="RUN"), by: str | None = BY) -> None:
    """Pause RUN: nothing more is sent after the pages in flight."""
    _control(run_id, PlanRunWorkflow.pause, name="pause", by=by)


def resume(run_id: str = typer.Argument(..., metavar="RUN"), by: str | None = BY) -> None:
    """Resume RUN where it stopped."""
    _control(run_id, PlanRunWorkflow.resume, name="resume", by=by)


def cancel(run_id: str = typer.Argument(..., metavar="RUN"), by: str | None = BY) -> None:
    """Cancel RUN: it stops after the pages in flight and reports what it did; a run that
    has not started yet is cancelled before it does anything."""
    settings = get_settings()
    actor = acting(by)

    async def before_start() -> datetime | None:
        client = await temporal_client(settings)
        handle = await _handle(client, run_id)
        waiting = await waiting_start(handle)
        if waiting is None:
            return None
        async with redis_client(settings) as redis:
            return waiting.starts_at if await cancel_waiting(handle, redis, waiting) else None

    starts_at = asyncio.run(before_start())
    if starts_at is not None:
        _audit_run(actor, "cancel", run_id, detail={"before_start": starts_at.isoformat()})
        out.print(
            f"{run_id} cancelled before it started (it was to start at {starts_at:%H:%M:%S} UTC)"
        )
        return
    _control(run_id, PlanRunWorkflow.cancel, name="cancel", by=actor)


def rate(
    target: str = typer.Argument(..., metavar="RUN|CHANNEL", help="A run id or a channel name."),
    value: str | None = typer.Argument(
        None, metavar="RATE", help="e.g. 200/s, 1000/m, or 0 for unlimited"
    ),
    reset: bool = typer.Option(False, "--reset", help="A channel: back to the channels file's."),
    by: str | None = BY,
) -> None:
    """Change RUN's rate limit, or CHANNEL's (shared by every plan), while they go."""
    settings = get_settings()
    actor = acting(by)
    channel = paced_channel(target, settings.channels_file)
    if channel is not None:
        now = set_channel_rate(channel, value=value, reset=reset)
        detail = {"per_second": now, "reset": reset}
        audit(AuditRecord(actor=actor, action="rate", subject=channel.name, detail=detail))
        return
    if value is None or reset:
        raise JourneysError("give a RATE for a run (--reset is for channels)")
    per_second = per_second_of(value)

    async def go() -> RateUpdateResult:
        client = await temporal_client(settings)
        handle = await _handle(client, target)
        return await handle.execute_update(
            PlanRunWorkflow.set_rate, RateUpdate(per_second=per_second)
        )

    result = asyncio.run(go())
    _audit_run(actor, "rate", target, detail={"per_second": result.per_second})
    out.print(f"rate of {target} is now {result.per_second:g}/s")


def register(app: typer.Typer) -> None:
    """Add the run commands to ``app``."""
    app.command()(launch)
    app.command()(status)
    app.command()(pause)
    app.command()(resume)
    app.command()(cancel)
    app.command()(rate)
