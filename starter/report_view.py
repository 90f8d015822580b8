"""A run's report as rich tables: the funnel, its send nodes, each split's arms."""

from __future__ import annotations

from datetime import timedelta

from rich.console import Group
from rich.table import Table

from journeys.arm_stats import ArmResult

from .plan_report import PlanReport
from .report import RunReport


def report_view(report: RunReport) -> Group:
    """The report as rich tables: the run and its funnel, its send nodes, each split's arms."""
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    for label, value in (
        ("run", report.run_id),
        ("plan", f"{report.plan_id} v{report.version} · {report.status.value}"),
        ("targeted", f"{report.targeted:,}"),
        ("delivered", f"{report.delivered:,}" + _receipts(report.receipts)),
        ("opened", f"{report.opened:,}"),
        ("clicked", f"{report.clicked:,}"),
        ("converted", f"{report.converted:,} users · value {report.value:,.2f}"),
        ("negative", f"{report.negative:,} · value {report.negative_value:,.2f}"),
        ("cost", f"{report.cost:,.2f}"),
        ("ROI", _ratio(report.roi, why=True)),
    ):
        head.add_row(label, value)
    rows = [
        {
            "node": n.node,
            "channel": n.channel,
            "sent": f"{n.sent:,}" + _receipts(n.receipts),
            "skipped": _counts(n.skipped),
            "deferred": _some(n.deferred),
            "failed": _counts(n.failed),
            "pending": _some(n.pending),
            "opened": _some(n.opened),
            "clicked": _some(n.clicked),
            "negative": _some(n.negative),
            "cost": _some(n.cost, "{:,.2f}"),
        }
        for n in report.nodes
    ]
    parts: list[Table] = [head, _table("sends", rows, keep=("node", "channel", "sent"))]
    for node, arms in report.splits.items():
        arm_rows = [
            {
                "arm": a.arm + (" (control)" if a.control else ""),
                "users": f"{a.users:,}",
                "converted": f"{a.converted:,}",
                "rate (95% CI)": _rate(a),
                "lift": "" if a.lift is None else f"{a.lift:+.1%}",
                "p-value": "" if a.p_value is None else f"{a.p_value:.4f}",
                "value": _some(a.value, "{:,.2f}"),
                "incremental": (
                    "" if a.incremental_value is None else f"{a.incremental_value:+,.2f}"
                ),
                "clicked": _some(a.clicked),
                "negative": _some(a.negative),
                "cost": _some(a.cost, "{:,.2f}"),
                "ROI": "" if a.roi is None else _ratio(a.roi),
            }
            for a in arms
        ]
        table = _table(f"arms of {node}", arm_rows, keep=("arm", "users", "converted"))
        decided = report.winners.get(node)
        if decided is not None:
            how = "won" if decided.significant else "no arm won: the fallback"
            table.caption = (
                f"winner by {decided.metric}: {decided.arm} ({how}), decided "
                f"{decided.decided_at:%Y-%m-%d %H:%M} UTC; {decided.sent_to_winner:,} more "
                "users sent there (not in the figures above)"
            )
        parts.append(table)
    return Group(*parts)


def _table(title: str, rows: list[dict[str, str]], *, keep: tuple[str, ...]) -> Table:
    """A table of ``rows`` without the columns that are empty in every row (but ``keep``),
    so a report fits a terminal: most runs have no deferrals, failures or costs."""
    columns = [
        c
        for c in (rows[0] if rows else dict.fromkeys(keep))
        if c in keep or any(r[c] for r in rows)
    ]
    table = Table(*columns, title=title)
    for row in rows:
        table.add_row(*(row[c] for c in columns))
    return table


def _some(value: float, form: str = "{:,}") -> str:
    """``value`` formatted, or empty when it is 0."""
    return form.format(value) if value else ""


def _receipts(receipts: int) -> str:
    return f" ({receipts:,} confirmed)" if receipts else ""


def _ratio(value: float | None, *, why: bool = False) -> str:
    if value is None:
        return "- (no message cost)" if why else "-"
    return f"{value:+.1%}"


def _rate(arm: ArmResult) -> str:
    if arm.rate is None or arm.ci_low is None or arm.ci_high is None:
        return ""
    return f"{arm.rate:.2%} ({arm.ci_low:.2%} to {arm.ci_high:.2%})"


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k or '-'} {v}" for k, v in sorted(counts.items()))


def plan_report_view(report: PlanReport) -> Group:
    """A plan's runs, oldest first: when each was due and started, how long it took, its
    success rate, skips and failures, and its funnel; then the totals and the trend."""
    runs = Table(
        "run", "v", "status", "due", "start delay", "duration", "targeted", "delivered",
        "success", "skipped", "failed", "clicked", "converted", "value", "ROI",
        title=f"runs of {report.plan_id}",
    )  # fmt: skip
    for r in report.runs:
        runs.add_row(
            r.run_id.rsplit("/", 1)[-1], str(r.version), r.status,
            r.due_at.strftime("%Y-%m-%d %H:%M"), _span(r.start_delay), _span(r.duration),
            f"{r.targeted:,}", f"{r.delivered:,}",
            "" if r.success_rate is None else f"{r.success_rate:.1%}",
            _counts(r.skipped), _counts(r.failed), f"{r.clicked:,}", f"{r.converted:,}",
            f"{r.value:,.2f}", _ratio(r.roi),
        )  # fmt: skip
    totals = Table.grid(padding=(0, 2))
    totals.add_column(style="bold")
    totals.add_column()
    trend = report.success_trend
    for label, value in (
        ("runs", f"{len(report.runs)}"),
        ("targeted", f"{report.targeted:,}"),
        ("delivered", f"{report.delivered:,}"),
        ("converted", f"{report.converted:,} users · value {report.value:,.2f}"),
        ("cost", f"{report.cost:,.2f} · negative {report.negative_value:,.2f}"),
        ("ROI", _ratio(report.roi, why=True)),
        ("success trend", "" if trend is None else f"{trend:+.1%} (oldest to newest shown)"),
    ):
        totals.add_row(label, value)
    return Group(runs, totals, report_view(report.combined))


def _span(span: timedelta | None) -> str:
    if span is None:
        return ""
    seconds = span.total_seconds()
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"
