"""``journeys events send`` / ``events load``, ``journeys trigger`` and ``journeys serve``."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import typer

from activities.engagement import EngagementMap
from activities.redis_epoch import ensure_epoch
from journeys.channels_config import channels_at
from journeys.errors import InvalidInput, Problem
from journeys.events import MAX_BATCH
from journeys.policy import policy_at
from journeys.settings import get_settings
from journeys.triggers import TriggerReport

from .connect import database, redis_client, temporal_client
from .console import out, print_json
from .ingest.serve import build_server
from .ingest.service import EventIngest, IngestReport

events_app = typer.Typer(
    name="events", help="Send user events into running journeys.", no_args_is_help=True
)


@asynccontextmanager
async def _ingest_path() -> AsyncIterator[EventIngest]:
    """The ingest path ``journeys serve`` runs, on this process's connections."""
    settings = get_settings()
    policy = policy_at(settings.policy_file)
    engagement = EngagementMap.of(channels_at(settings.channels_file), policy)
    client = await temporal_client(settings)
    async with database(settings) as pool, redis_client(settings) as redis:
        yield EventIngest(
            pool=pool,
            redis=redis,
            client=client,
            max_props_bytes=settings.event_props_max_bytes,
            max_props_depth=settings.event_props_max_depth,
            suppression=policy.suppression if policy is not None else None,
            engagement=engagement,
            guard=await ensure_epoch(pool, redis),
        )


async def _ingest(batches: list[list[Any]]) -> IngestReport:
    total = IngestReport(accepted=0)
    async with _ingest_path() as ingest:
        for batch in batches:
            report = await ingest.ingest(batch)
            total.accepted += report.accepted
            total.duplicates += report.duplicates
            total.routed += report.routed
    return total


def _show(report: IngestReport, *, as_json: bool) -> None:
    if as_json:
        print_json(report)
        return
    out.print(
        f"accepted {report.accepted} · duplicates {report.duplicates} · "
        f"routed to running journeys {report.routed}"
    )


@events_app.command()
def send(
    user: str = typer.Option(..., "--user", help="The user's id."),
    name: str = typer.Option(..., "--name", help="Event name, e.g. order_cancelled."),
    props: str = typer.Option("{}", "--props", help="Properties as a JSON object."),
    ts: str | None = typer.Option(None, "--ts", help="When, ISO 8601 with an offset (now)."),
    event_id: str | None = typer.Option(None, "--event-id", help="For de-duplication."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Send one event."""
    try:
        properties = json.loads(props)
    except ValueError as exc:
        raise InvalidInput("--props", [Problem("", f"not JSON: {exc}")]) from None
    event: dict[str, Any] = {"user_id": user, "name": name, "props": properties}
    if ts is not None:
        event["ts"] = ts
    if event_id is not None:
        event["event_id"] = event_id
    _show(asyncio.run(_ingest([[event]])), as_json=as_json)


@events_app.command()
def load(
    file: Path = typer.Argument(..., help="One JSON event per line."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Send every event of FILE (JSON lines), in batches of 1,000; a bad line stops it all."""
    events: list[Any] = []
    problems: list[Problem] = []
    try:
        lines = file.read_text().splitlines()
    except OSError as exc:
        raise InvalidInput(str(file), [Problem("", exc.strerror or str(exc))]) from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            events.append(json.loads(line))
        except ValueError as exc:
            problems.append(Problem(f"line {number}", f"not JSON: {exc}"))
    if problems:
        raise InvalidInput(str(file), problems)
    batches = [events[i : i + MAX_BATCH] for i in range(0, len(events), MAX_BATCH)]
    _show(asyncio.run(_ingest(batches)), as_json=as_json)


def trigger(
    plan_id: str = typer.Argument(..., metavar="PLAN_ID", help="The plan's id."),
    users: list[str] = typer.Option(..., "--user", help="A user to enter (repeatable)."),
    context: str = typer.Option("{}", "--context", help="What the plan reads as entry.*, JSON."),
    request_id: str | None = typer.Option(
        None, "--request-id", help="Send again with the same id: no one enters twice."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Enter users into the running run of a plan whose entry is api, now."""
    try:
        given = json.loads(context)
    except ValueError as exc:
        raise InvalidInput("--context", [Problem("", f"not JSON: {exc}")]) from None
    body = {
        "request_id": request_id or uuid.uuid4().hex,
        "entries": [{"user_id": user, "context": given} for user in users],
    }

    async def go() -> TriggerReport:
        async with _ingest_path() as ingest:
            return await ingest.enter(plan_id, body)

    report = asyncio.run(go())
    if as_json:
        print_json(report)
        return
    out.print(
        f"accepted {report.accepted} · duplicates {report.duplicates} · "
        f"routed to the plan's running runs {report.routed} (request {body['request_id']})"
    )


def serve(
    port: int | None = typer.Option(None, help="Port (default JOURNEYS_INGEST_PORT)."),
) -> None:
    """Run the HTTP API: events, API entries, suppressions, inbox reads and clicks, decisions."""
    settings = get_settings()
    server = build_server(settings, port=port, freeze=True)
    out.print(
        f"ingest API on http://{settings.ingest_host}:{server.config.port} "
        "(POST /v1/events, /v1/plans/{plan_id}/entries, /v1/suppressions, /v1/inbox/read, "
        "/v1/inbox/click, /v1/decide; GET /healthz, /metrics, /openapi.json)"
    )
    asyncio.run(server.serve())


def register(app: typer.Typer) -> None:
    """Add the event commands to the CLI."""
    app.add_typer(events_app)
    app.command()(trigger)
    app.command()(serve)
