"""``journeys report RUN`` (the funnel of a run, its sends and its arms compared) and
``journeys report PLAN --runs N`` (the plan's last runs: the execution view)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer

from journeys.channels_config import channels_at
from journeys.settings import Settings, get_settings

from .connect import database, temporal_client
from .console import out, print_json
from .plan_report import PlanReport, plan_report
from .report import RunReport, run_report
from .report_view import plan_report_view, report_view


def report(
    target: str = typer.Argument(
        ..., metavar="RUN|PLAN", help="A run id (plan/ID/vN/KEY), or a plan id for its runs."
    ),
    runs: int = typer.Option(
        10, "--runs", min=1, max=100, help="With a plan id: how many of its last runs."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    png: Path | None = typer.Option(
        None, "--png", metavar="FILE", help="Also write the charts as a PNG."
    ),
    page: Path | None = typer.Option(
        None, "--html", metavar="FILE", help="Also write the report as one HTML page."
    ),
) -> None:
    """What a run did (funnel, sends, arms, cost and ROI), or a plan's last runs.

    For RUN: targeted, delivered, skips by reason, opens, clicks, conversions, negative
    events, cost and ROI, and each A/B arm's rate with its 95% interval, lift against the
    control, p-value and ROI; message costs are the channels file's. For PLAN: each of its
    last runs with when it was due and started, how long it took, its success rate, skips,
    failures and funnel, then the totals, the trend, and their funnel and arms added up
    (which --png and --html draw)."""
    settings = get_settings()
    if "/" not in target:
        across = asyncio.run(_plan(settings, target, runs))
        _draw(across.combined, png=png, page=page)
        if as_json:
            print_json(across)
        else:
            out.print(plan_report_view(across))
        return
    got = asyncio.run(_run(settings, target))
    _draw(got, png=png, page=page)
    if as_json:
        print_json(got)
    else:
        out.print(report_view(got))


def _draw(got: RunReport, *, png: Path | None, page: Path | None) -> None:
    if png is None and page is None:
        return
    from .report_charts import write_html, write_png  # matplotlib: only when drawing

    if png is not None:
        write_png(got, png)
    if page is not None:
        write_html(got, page)


def _costs(settings: Settings) -> dict[str, float]:
    channels = channels_at(settings.channels_file)
    return channels.costs() if channels else {}


async def _run(settings: Settings, run_id: str) -> RunReport:
    client = await temporal_client(settings)
    async with database(settings) as pool:
        return await run_report(pool, client, run_id, costs=_costs(settings))


async def _plan(settings: Settings, plan_id: str, runs: int) -> PlanReport:
    client = await temporal_client(settings)
    async with database(settings) as pool:
        return await plan_report(pool, client, plan_id, runs=runs, costs=_costs(settings))


def register(app: typer.Typer) -> None:
    """Add ``report`` to the CLI."""
    app.command()(report)
