"""``journeys report RUN``: the funnel of a run, its sends and its arms compared."""

from __future__ import annotations

import asyncio

import typer

from journeys.settings import get_settings

from .connect import database, temporal_client
from .console import out, print_json
from .report import RunReport, report_view, run_report


def report(
    run_id: str = typer.Argument(..., metavar="RUN", help="Run id (plan/ID/vN/KEY)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """What RUN did: targeted, delivered, skips by reason, conversions, and each A/B arm's
    rate with its 95% interval, lift against the control and p-value."""

    async def go() -> RunReport:
        settings = get_settings()
        client = await temporal_client(settings)
        async with database(settings) as pool:
            return await run_report(pool, client, run_id)

    got = asyncio.run(go())
    if as_json:
        print_json(got)
    else:
        out.print(report_view(got))


def register(app: typer.Typer) -> None:
    """Add ``report`` to the CLI."""
    app.command()(report)
