"""``journeys decisions report INSTANCE``: what an instance decided, per strategy and group,
and each scene metric per group with the test groups' lift against the control (the arm
statistics of ``journeys report``: Wilson intervals, a two-proportion z-test).

A user counts once per group they were decided into since ``since``, from their first
decision there; they converted on a metric when they did its event within ``window`` after.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel
from rich.console import Group as Stack
from rich.table import Table

from activities.db import decision_store, queries
from activities.db.pool import DbPool
from journeys.arm_stats import ArmCounts, ArmResult, compare_arms


class GroupFigures(BaseModel):
    """One strategy's group (or the strategy, or the default): users and calls."""

    strategy: str | None
    group: str | None
    control: bool
    users: int
    calls: int


class MetricFigures(BaseModel):
    """One metric of one strategy: each group's conversions, interval, lift and p-value."""

    strategy: str | None
    metric: str
    groups: list[ArmResult]


class DecisionReport(BaseModel):
    """An instance's decisions since a moment, and its scene's metrics."""

    instance: str
    scene: str
    since: datetime
    window: timedelta
    groups: list[GroupFigures]
    metrics: list[MetricFigures]


async def decision_report(
    pool: DbPool, instance_id: str, *, since: datetime, window: timedelta
) -> DecisionReport:
    """The report of ``instance_id``'s decisions since ``since``."""
    live = await decision_store.live(pool, instance_id)
    metrics = live.scene.metrics
    first = metrics[0] if metrics else None
    rows = await pool.fetch(queries.DECISION_REPORT, instance_id, since, first, window)
    groups = [
        GroupFigures(strategy=r["strategy"], group=r["grp"], control=r["control"],
                     users=r["users"], calls=r["calls"])
        for r in rows
    ]  # fmt: skip
    figures: list[MetricFigures] = []
    for metric in metrics:
        if metric != first:
            rows = await pool.fetch(queries.DECISION_REPORT, instance_id, since, metric, window)
        by_strategy: dict[str | None, list[ArmCounts]] = {}
        for r in rows:
            arm = r["grp"] or "-"
            counts = ArmCounts(arm=arm, control=r["control"], users=r["users"],
                               converted=r["converted"])  # fmt: skip
            by_strategy.setdefault(r["strategy"], []).append(counts)
        for strategy, arms in by_strategy.items():
            figures.append(
                MetricFigures(strategy=strategy, metric=metric, groups=compare_arms(arms))
            )
    return DecisionReport(
        instance=instance_id, scene=live.scene.scene, since=since, window=window,
        groups=groups, metrics=figures,
    )  # fmt: skip


def report_tables(report: DecisionReport) -> Stack:
    """The groups, then one table per metric and strategy."""
    head = Table("strategy", "group", "users", "calls", title=f"instance {report.instance}")
    for g in report.groups:
        head.add_row(g.strategy or "(default)", (g.group or "-") + (" (control)" * g.control),
                     f"{g.users:,}", f"{g.calls:,}")  # fmt: skip
    parts: list[Table] = [head]
    for m in report.metrics:
        table = Table(
            "group",
            "users",
            "converted",
            "rate [95% CI]",
            "lift",
            "p-value",
            title=f"{m.metric} within {report.window} · {m.strategy or '(default)'}",
        )
        for arm in m.groups:
            rate = "-" if arm.rate is None else (
                f"{arm.rate:.2%} [{arm.ci_low:.2%}, {arm.ci_high:.2%}]"
            )  # fmt: skip
            lift = "-" if arm.lift is None else f"{arm.lift:+.1%}"
            p = "-" if arm.p_value is None else f"{arm.p_value:.3g}"
            table.add_row(arm.arm + (" (control)" * arm.control), f"{arm.users:,}",
                          f"{arm.converted:,}", rate, lift, p)  # fmt: skip
        parts.append(table)
    return Stack(*parts)
