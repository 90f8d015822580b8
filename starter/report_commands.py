"""``journeys report RUN``: the funnel of a run, its sends and its arms compared."""

from __future__ import annotations

import asyncio

import typer

from journeys.channels_config import channels_at
from journeys.settings import get_settings

from .connect import database, temporal_client
from .console import out, print_json
from .report import RunReport, run_report
from .report_view import report_view


def report(
    run_id: str = typer.Argument(..., metavar="RUN", help="Run id (plan/ID/vN/KEY)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """What RUN did: targeted, delivered, skips by reason, opens, clicks, conversions,
    negative events, cost and ROI, and each A/B arm's rate with its 95% interval, lift
    against the control, p-value and ROI. Message costs are the channels file's."""

    async def go() -> RunReport:
        settings = get_settings()
        channels = channels_at(settings.channels_file)
        costs = {name: c.cost for name, c in channels.channels.items()} if channels else {}
        client = await temporal_client(settings)
        async with database(settings) as pool:
            return await run_report(pool, client, run_id, costs=costs)

    got = asyncio.run(go())
    if as_json:
        print_json(got)
    else:
        out.print(report_view(got))


def register(app: typer.Typer) -> None:
    """Add ``report`` to the CLI."""
    app.command()(report)
