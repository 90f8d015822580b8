"""A run's report as charts (``journeys report RUN --png FILE``) and as one self-contained
page (``--html FILE``): the funnel as bars, each arm's rate with its 95% interval, and
conversions hour by hour.

matplotlib draws them (its object API, no pyplot: no global figure state in a process that
may draw twice), imported here only, so the CLI starts without it. The PNG carries the
figures it shows as JSON in its ``Description`` text chunk; the page embeds the PNG, the
report's tables and the report itself as JSON, and loads nothing from a network.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from .report import RunReport
from .report_view import report_view

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def write_png(report: RunReport, path: Path) -> None:
    """The report's charts as a PNG at ``path``."""
    path.write_bytes(_png(report))


def write_html(report: RunReport, path: Path) -> None:
    """The report as one HTML page at ``path``: charts, tables and the data as JSON."""
    image = base64.b64encode(_png(report)).decode("ascii")
    console = Console(record=True, width=160, file=io.StringIO(), color_system="truecolor")
    console.print(report_view(report))
    tables = console.export_html(inline_styles=True, code_format="{code}")
    data = report.model_dump_json(indent=1).replace("</", "<\\/")  # stays inside its script
    title = html.escape(f"Journeys report: {report.run_id}")
    path.write_text(
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{title}</title><style>body{{font-family:sans-serif;margin:2em}}"
        "pre{font-family:monospace;font-size:13px;line-height:1.25}</style></head><body>"
        f"<h1>{title}</h1>"
        f'<img alt="funnel, arms and conversions over time" src="data:image/png;base64,{image}">'
        f"<pre>{tables}</pre>"
        f'<script type="application/json" id="report">{data}</script>'
        "</body></html>\n",
        encoding="utf-8",
    )


def chart_figures(report: RunReport) -> dict[str, object]:
    """The numbers the charts show (also the PNG's ``Description``)."""
    return {
        "run_id": report.run_id,
        "funnel": dict(_funnel(report)),
        "arms": {
            f"{node}/{arm.arm}": [arm.rate, arm.ci_low, arm.ci_high]
            for node, arms in report.splits.items()
            for arm in arms
        },
        "timeline": [[p.at.isoformat(), p.conversions] for p in report.timeline],
    }


def _funnel(report: RunReport) -> list[tuple[str, int]]:
    return [
        ("targeted", report.targeted),
        ("delivered", report.delivered),
        ("opened", report.opened),
        ("clicked", report.clicked),
        ("converted", report.converted),
    ]


def _png(report: RunReport) -> bytes:
    figure = _figure(report)
    out = io.BytesIO()
    description = json.dumps(chart_figures(report), separators=(",", ":"))
    figure.savefig(
        out,
        format="png",
        dpi=100,
        metadata={"Title": f"Journeys report: {report.run_id}", "Description": description},
    )
    return out.getvalue()


def _figure(report: RunReport) -> Figure:
    from matplotlib.figure import Figure
    from matplotlib.ticker import PercentFormatter

    figure = Figure(figsize=(13, 4.2), layout="constrained")
    funnel, arms, timeline = figure.subplots(1, 3)
    steps = _funnel(report)
    bars = funnel.barh([name for name, _ in steps][::-1], [n for _, n in steps][::-1])
    funnel.bar_label(bars, labels=[f"{n:,}" for _, n in steps][::-1], padding=3)
    funnel.set_title("funnel (users, messages)")
    funnel.margins(x=0.2)
    points = [
        (f"{node}\n{a.arm}{' (control)' if a.control else ''}", a)
        for node, split in report.splits.items()
        for a in split
        if a.rate is not None and a.ci_low is not None and a.ci_high is not None
    ]
    if points:
        rates = [a.rate or 0.0 for _, a in points]
        # the interval's ends can miss the rate by a rounding error (0 of n converted)
        errors = [
            [max(0.0, r - (a.ci_low or 0.0)) for r, (_, a) in zip(rates, points, strict=True)],
            [max(0.0, (a.ci_high or 0.0) - r) for r, (_, a) in zip(rates, points, strict=True)],
        ]
        arms.errorbar(range(len(points)), rates, yerr=errors, fmt="o", capsize=6)
        arms.set_xticks(range(len(points)), [label for label, _ in points])
        for x, rate in enumerate(rates):
            arms.annotate(f"{rate:.1%}", (x, rate), textcoords="offset points", xytext=(8, 0))
        arms.set_xlim(-0.5, len(points) - 0.5)
        arms.yaxis.set_major_formatter(PercentFormatter(1.0))
    else:
        arms.text(0.5, 0.5, "no A/B split", ha="center", va="center", transform=arms.transAxes)
    arms.set_title("conversion rate per arm (95% CI)")
    if report.timeline:
        hours = [p.at for p in report.timeline]
        timeline.bar(hours, [p.conversions for p in report.timeline], width=1 / 30)
        timeline.tick_params(axis="x", labelrotation=30)
    else:
        timeline.text(
            0.5, 0.5, "no conversions", ha="center", va="center", transform=timeline.transAxes
        )
    timeline.set_title("conversions per hour (UTC)")
    return figure
