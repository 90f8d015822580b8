"""``journeys publish`` / ``versions`` / ``rollback``: immutable plan versions."""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer
from rich.table import Table

from activities.db import plan_store
from journeys.errors import ServiceUnavailable
from journeys.plan.entry import ScheduleEntry
from journeys.plan.models import Plan
from journeys.settings import get_settings

from .connect import database, temporal_client
from .console import err, out, print_json
from .plan_files import read_plan
from .schedules import update_schedule


def publish(
    plan_file: Path = typer.Argument(..., help="Plan file (YAML or JSON)."),
    channels: Path | None = typer.Option(None, help="Channels file (default JOURNEYS_CHANNELS)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Validate PLAN and store it as a new immutable version (unless unchanged)."""
    plan = read_plan(plan_file, channels=channels)

    async def go() -> plan_store.VersionInfo:
        async with database(get_settings()) as pool:
            return await plan_store.publish(pool, plan, source=str(plan_file))

    info = asyncio.run(go())
    if as_json:
        print_json(info)
    elif info.created:
        out.print(f"[green]published[/] {info.plan_id} v{info.version}")
    else:
        out.print(f"unchanged: {info.plan_id} v{info.version} is already this plan")
    if isinstance(plan.entry, ScheduleEntry) and info.created:
        asyncio.run(_repoint_schedule(plan, info.version))


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
    """List the published versions of PLAN_ID."""

    async def go() -> list[plan_store.VersionInfo]:
        async with database(get_settings()) as pool:
            return await plan_store.versions(pool, plan_id)

    found = asyncio.run(go())
    if as_json:
        print_json(found)
        return
    table = Table("version", "published", "checksum", "source", "note", title=plan_id)
    for v in found:
        table.add_row(
            str(v.version),
            v.published_at.strftime("%Y-%m-%d %H:%M:%S %Z"),
            v.checksum[:12],
            v.source or "",
            v.note or "",
        )
    out.print(table)


def rollback(
    plan_id: str = typer.Argument(..., help="Plan id."),
    to: int = typer.Option(..., "--to", help="The version to publish again."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Publish an older version again as the newest; runs already going keep theirs."""

    async def go() -> plan_store.VersionInfo:
        async with database(get_settings()) as pool:
            return await plan_store.rollback(pool, plan_id, to=to)

    info = asyncio.run(go())
    if as_json:
        print_json(info)
    else:
        out.print(f"[green]published[/] {info.plan_id} v{info.version} (= v{to})")


def register(app: typer.Typer) -> None:
    """Add the version commands to ``app``."""
    app.command()(publish)
    app.command()(versions)
    app.command()(rollback)
