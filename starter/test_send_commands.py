"""``journeys test-send``: one step's message to one test user, through the real channel."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import typer
from rich.markup import escape

from activities.controls.suppression import SuppressionStore
from journeys.errors import InvalidInput, Problem
from journeys.settings import get_settings

from .connect import database, redis_client
from .console import out, print_json
from .test_send import TestSent, resolve_plan, test_send


def test_send_command(
    plan: str = typer.Argument(..., metavar="PLAN", help="A plan file, or a published plan id."),
    user: str = typer.Option(..., "--user", help="A user on the allow list of test users."),
    step: str | None = typer.Option(None, "--step", help="A send or webhook step (the first)."),
    context: str = typer.Option("{}", "--context", help="What entry.* reads, as JSON."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Render a step's message for a test user's profile and send it through the channel."""
    try:
        given: Any = json.loads(context)
    except ValueError as exc:
        raise InvalidInput("--context", [Problem("", f"not JSON: {exc}")]) from None
    if not isinstance(given, dict):
        raise InvalidInput("--context", [Problem("", "must be a JSON object")])

    async def go() -> TestSent:
        settings = get_settings()
        async with database(settings) as pool, redis_client(settings) as redis:
            chosen = await resolve_plan(pool, plan, channels=settings.channels_file)
            store = SuppressionStore(pool=pool, redis=redis)
            return await test_send(
                settings, pool=pool, store=store, plan=chosen, user=user, step=step, context=given
            )

    sent = asyncio.run(go())
    if as_json:
        print_json(sent)
    else:
        mark = "[green]✓[/green]" if sent.outcome == "sent" else "[red]✗[/red]"
        out.print(
            f"{mark} {escape(sent.plan_id)} · {escape(sent.step)} → {escape(sent.channel)}/"
            f"{escape(sent.template)} to {escape(sent.user_id)}: {sent.outcome}"
            + (f" ({escape(sent.reason)})" if sent.reason else "")
        )
        for field, text in sent.content.items():
            out.print(f"  {field}: {escape(text)}")
    if sent.outcome != "sent":
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``test-send`` to the CLI."""
    app.command("test-send")(test_send_command)
