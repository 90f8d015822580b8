"""The arms of a run's splits in its report: users, conversions and value from the split's
assignments, and the messages, clicks and negative events of each arm's own path.

The statistics are :func:`journeys.arm_stats.compare_arms`'s; ROI and the value beyond the
control are :mod:`journeys.roi`'s.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from activities.db import queries
from activities.db.pool import DbPool
from journeys.arm_stats import ArmCounts, compare_arms
from journeys.plan.graph import arm_paths
from journeys.plan.models import Plan
from journeys.plan.steps import AbSplitStep
from journeys.roi import incremental_value, roi

from .report_models import ArmReport, NodeFunnel


async def split_reports(
    pool: DbPool,
    run_id: str,
    *,
    costs: Mapping[str, float],
    plan: Plan | None,
    nodes: list[NodeFunnel],
) -> dict[str, list[ArmReport]]:
    """Each split's arms. An arm's messages, clicks and negative events are those of the
    steps only its path leads to (the treatment it adds; what every arm got before the
    split is in none), read from the nodes' figures; a split whose winner sent more users
    down those paths reads them per assigned user instead."""
    users, converted = await asyncio.gather(
        pool.fetch(queries.REPORT_ARM_USERS, run_id),
        pool.fetch(queries.REPORT_ARM_CONVERSIONS, run_id),
    )
    won = {(r["node_id"], r["arm"]): (int(r["converted"]), float(r["value"])) for r in converted}
    arms: dict[str, list[tuple[ArmCounts, float]]] = defaultdict(list)
    for row in users:
        hits, value = won.get((row["node_id"], row["arm"]), (0, 0.0))
        counts = ArmCounts(
            arm=row["arm"], control=row["control"], users=int(row["users"]), converted=hits
        )
        arms[row["node_id"]].append((counts, value))
    by_node = {n.node: n for n in nodes}
    splits: dict[str, list[ArmReport]] = {}
    for node, got in sorted(arms.items()):
        paths = _arm_paths(plan, node)
        if plan is not None and _has_winner(plan, node):
            extras = await _assigned_extras(pool, run_id, node, paths, costs)
        else:
            extras = {arm: _path_extras(paths.get(arm, set()), by_node) for arm in paths}
        splits[node] = compared(
            [(counts, value, extras.get(counts.arm, Extras())) for counts, value in got]
        )
    return splits


@dataclass
class Extras:
    """What an arm's own path sent and what became of it."""

    messages: int = 0
    cost: float = 0.0
    clicked: int = 0
    negative: int = 0
    negative_value: float = 0.0


def compared(arms: Sequence[tuple[ArmCounts, float, Extras]]) -> list[ArmReport]:
    """The arms of one split (counts, conversion value, own-path figures) as reports: the
    statistics against the control, ROI, and value beyond the control."""
    control = next(((c, v) for c, v, _ in arms if c.control), None)
    results = compare_arms([c for c, _, _ in arms])
    return [
        ArmReport(
            **result.model_dump(),
            value=value,
            messages=extra.messages,
            cost=extra.cost,
            clicked=extra.clicked,
            negative=extra.negative,
            negative_value=extra.negative_value,
            roi=roi(value=value, cost=extra.cost, negative=extra.negative_value),
            incremental_value=(
                None
                if control is None or counts.control
                else incremental_value(
                    value=value,
                    users=counts.users,
                    control_value=control[1],
                    control_users=control[0].users,
                )
            ),
        )
        for result, (counts, value, extra) in zip(results, arms, strict=True)
    ]


def _arm_paths(plan: Plan | None, node: str) -> dict[str, set[str]]:
    step = plan.steps.get(node) if plan is not None else None
    if plan is None or not isinstance(step, AbSplitStep):
        return {}
    raw = {sid: s.model_dump(by_alias=True, mode="json") for sid, s in plan.steps.items()}
    arms = {arm.name: arm.next for arm in step.arms}
    return arm_paths(raw, arms, start=plan.start_step, split=node)


def _has_winner(plan: Plan, node: str) -> bool:
    step = plan.steps.get(node)
    return isinstance(step, AbSplitStep) and step.winner is not None


def _path_extras(path: set[str], by_node: Mapping[str, NodeFunnel]) -> Extras:
    extra = Extras()
    for node in sorted(path & set(by_node)):
        funnel = by_node[node]
        extra.messages += funnel.sent
        extra.cost += funnel.cost
        extra.clicked += funnel.clicked
        extra.negative += funnel.negative
        extra.negative_value += funnel.negative_value
    return extra


async def _assigned_extras(
    pool: DbPool,
    run_id: str,
    node: str,
    paths: Mapping[str, set[str]],
    costs: Mapping[str, float],
) -> dict[str, Extras]:
    own = sorted(set().union(*paths.values())) if paths else []
    messaged, engaged = await asyncio.gather(
        pool.fetch(queries.REPORT_ARM_MESSAGES, run_id, node, own),
        pool.fetch(queries.REPORT_ARM_ENGAGEMENT, run_id, node, own),
    )
    extras: dict[str, Extras] = defaultdict(Extras)
    for row in messaged:
        extra = extras[row["arm"]]
        extra.messages += int(row["sent"])
        extra.cost += int(row["sent"]) * costs.get(row["channel"], 0.0)
    for row in engaged:
        extra = extras[row["arm"]]
        if row["kind"] == "clicked":
            extra.clicked = int(row["messages"])
        elif row["kind"] == "negative":
            extra.negative, extra.negative_value = int(row["messages"]), float(row["cost"])
    return extras
