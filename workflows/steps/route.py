"""``branch``, ``ab_split`` and ``update``: route the cohort page by page, then send each
route's users on (a control arm's journey ends there)."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from journeys.contracts.shard import Cohort
    from journeys.plan.steps import AbSplitStep, BranchStep, UpdateStep
    from journeys.route_names import parse_route

from workflows.context import ShardContext
from workflows.routing import route_cohort


async def run(
    ctx: ShardContext, cohort: Cohort, step: BranchStep | AbSplitStep | UpdateStep
) -> bool:
    """Route every page of ``cohort``; False if it stopped early (state kept)."""
    prefix = await route_cohort(ctx, cohort, step)
    if prefix is None:
        return False
    counters = ctx.node(cohort.node)
    for route in sorted(cohort.routes):
        size = cohort.routes[route]
        label, node, control = _way(step, route)
        counters.routes[label] = counters.routes.get(label, 0) + size
        if control:
            counters.completed += size
        cohort_id = f"{prefix}.{route}"
        ctx.forward(cohort_id=cohort_id, node=node, key=ctx.key(cohort_id), size=size)
    return True


def _way(step: BranchStep | AbSplitStep | UpdateStep, name: str) -> tuple[str, str | None, bool]:
    """(label for counters, next node, is the control arm) of route ``name``."""
    route = parse_route(name)
    if isinstance(step, BranchStep):
        if route.kind == "else":
            return "else", step.else_, False
        way = step.branches[route.index]
        return way.name, way.next, False
    if isinstance(step, AbSplitStep):
        arm = step.arms[route.index]
        return arm.name, arm.next, arm.control
    return name, step.next, False
