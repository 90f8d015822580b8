"""``journeys publish`` / ``approve`` / ``versions`` / ``rollback``: immutable plan versions."""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer
from rich.table import Table

from activities.db import plan_store
from journeys.errors import ServiceUnavailable
from journeys.plan.entry import ScheduleEntry
from journeys.plan.models import Plan
from journeys.policy import Policy, policy_at
from journeys.settings import get_settings

from .acting import BY, acting
from .connect import database, temporal_client
from .console import err, out, print_json
from .launching import needs_approval
from .plan_files import read_plan
from .schedules import update_schedule


def publish(
    plan_file: Path = typer.Argument(..., help="Plan file (YAML or JSON)."),
    channels: Path | None = typer.Option(None, help="Channels file (default JOURNEYS_CHANNELS)."),
    by: str | None = BY,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Validate PLAN and store it as a new immutable version (unless unchanged); under the
    policy's ``approval: required`` it waits for someone else's `journeys approve`."""
    plan = read_plan(plan_file, channels=channels)
    actor = acting(by)
    policy = _policy()

    async def go() -> plan_store.VersionInfo:
        async with database(get_settings()) as pool:
            return await plan_store.publish(pool, plan, source=str(plan_file), by=actor)

    info = asyncio.run(go())
    pending = needs_approval(info, policy)
    if as_json:
        print_json(info.model_dump(mode="json") | {"awaiting_approval": pending})
    elif info.created:
        out.print(f"[green]published[/] {info.plan_id} v{info.version}" + _pending_note(pending))
    else:
        out.print(
            f"unchanged: {info.plan_id} v{info.version} is already this plan"
            + _pending_note(pending)
        )
    if isinstance(plan.entry, ScheduleEntry) and info.created and not pending:
        asyncio.run(_repoint_schedule(plan, info.version))


def _policy() -> Policy | None:
    return policy_at(get_settings().policy_file)


def _pending_note(pending: bool) -> str:
    return "; [yellow]awaiting approval[/] (journeys approve)" if pending else ""


def approve(
    plan_id: str = typer.Argument(..., help="Plan id."),
    version: int = typer.Option(..., "--version", help="The version to approve."),
    by: str | None = BY,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Approve a version of PLAN_ID so it may launch; the approver is not its publisher."""
    actor = acting(by)

    async def go() -> tuple[plan_store.VersionInfo, Plan]:
        async with database(get_settings()) as pool:
            info = await plan_store.approve(pool, plan_id, version, by=actor)
            return info, await plan_store.load(pool, plan_id, version)

    info, plan = asyncio.run(go())
    if as_json:
        print_json(info)
    else:
        out.print(f"[green]approved[/] {plan_id} v{version} by {actor}")
    if isinstance(plan.entry, ScheduleEntry):
        asyncio.run(_repoint_schedule(plan, version))


async def _repoint_schedule(plan: Plan, version: int) -> None:
    """A scheduled plan's later occurrences start the version just published."""
    settings = get_settings()
    try:
        client = await temporal_client(settings)
    except ServiceUnavailable as exc:
        err.print(f"  ! schedule not updated ({exc}): `journeys launch` points it at v{version}")
        return
    if await update_schedule(settings, client=client, plan=plan, version=version):
        err.print(f"  schedule plan/{plan.id} now starts v{version}")


def versions(
    plan_id: str = typer.Argument(..., help="Plan id."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List the published versions of PLAN_ID, with who published and approved each."""

    async def go() -> list[plan_store.VersionInfo]:
        async with database(get_settings()) as pool:
            return await plan_store.versions(pool, plan_id)

    found = asyncio.run(go())
    policy = _policy()
    if as_json:
        print_json([v.model_dump(mode="json") | {"launchable": not needs_approval(v, policy)}
                    for v in found])  # fmt: skip
        return
    table = Table("version", "published", "by", "approved", "checksum", "source", "note",
                  title=plan_id)  # fmt: skip
    for v in found:
        if v.approved_at is not None:
            approval = f"{v.approved_by} {v.approved_at:%Y-%m-%d %H:%M}"
        else:
            approval = "[yellow]awaiting[/]" if needs_approval(v, policy) else "-"
        table.add_row(
            str(v.version),
            v.published_at.strftime("%Y-%m-%d %H:%M:%S %Z"),
            v.published_by or "",
            approval,
            v.checksum[:12],
            v.source or "",
            v.note or "",
        )
    out.print(table)


def rollback(
    plan_id: str = typer.Argument(..., help="Plan id."),
    to: int = typer.Option(..., "--to", help="The version to publish again."),
    by: str | None = BY,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Publish an older version again as the newest; runs already going keep theirs. Under
    approval the new version waits for approval like any other."""
    actor = acting(by)

    async def go() -> plan_store.VersionInfo:
        async with database(get_settings()) as pool:
            return await plan_store.rollback(pool, plan_id, to=to, by=actor)

    info = asyncio.run(go())
    pending = needs_approval(info, _policy())
    if as_json:
        print_json(info.model_dump(mode="json") | {"awaiting_approval": pending})
    else:
        out.print(
            f"[green]published[/] {info.plan_id} v{info.version} (= v{to})" + _pending_note(pending)
        )


def register(app: typer.Typer) -> None:
    """Add the version commands to ``app``."""
    app.command()(publish)
    app.command()(approve)
    app.command()(versions)
    app.command()(rollback)
