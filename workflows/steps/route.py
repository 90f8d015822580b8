"""``branch``, ``ab_split``, ``update``, ``decide`` and ``check``: route the cohort page by
page, then send each route's users on (a control arm's journey ends there). An ab_split with
a winning path holds some users back for the winner (:mod:`workflows.steps.winning`)."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from journeys.contracts.shard import Cohort
    from journeys.plan.steps import AbSplitStep, BranchStep, CheckStep, DecideStep, UpdateStep
    from journeys.route_names import HOLD, parse_route

from workflows.context import ShardContext
from workflows.routing import route_cohort
from workflows.steps import winning

RoutingStep = BranchStep | AbSplitStep | UpdateStep | DecideStep | CheckStep


async def run(ctx: ShardContext, cohort: Cohort, step: RoutingStep) -> bool:
    """Route every page of ``cohort``; False if it stopped early (state kept)."""
    winner = step.winner if isinstance(step, AbSplitStep) else None
    winner_arm = test_share = None
    if winner is not None and isinstance(step, AbSplitStep):
        if cohort.awaiting_winner:
            winner_arm = await winning.held_winner(ctx, cohort, step, winner)
            if winner_arm is None:
                return False
        else:
            winner_arm, test_share = await winning.pass_options(ctx, cohort, step, winner)
    prefix = await route_cohort(
        ctx,
        cohort,
        step,
        winner_arm=winner_arm,
        test_share=test_share,
        count_entry=not cohort.awaiting_winner,  # counted when they were held
    )
    if prefix is None:
        return False
    counters = ctx.node(cohort.node)
    for route in sorted(cohort.routes):
        size = cohort.routes[route]
        cohort_id = f"{prefix}.{route}"
        if route == HOLD and winner is not None:
            winning.hold(ctx, cohort_id=cohort_id, node=cohort.node, size=size, winner=winner)
            continue
        label, node, control = _way(step, route)
        counters.routes[label] = counters.routes.get(label, 0) + size
        if control:
            counters.completed += size
        ctx.forward(cohort_id=cohort_id, node=node, key=ctx.key(cohort_id), size=size)
    return True


def _way(step: RoutingStep, name: str) -> tuple[str, str | None, bool]:
    """(label for counters, next node, is the control arm) of route ``name``."""
    route = parse_route(name)
    if isinstance(step, CheckStep) and route.kind == "failed":
        return "failed", step.on_failure, False
    if isinstance(step, BranchStep | DecideStep | CheckStep):
        if route.kind == "else":
            return "else", step.else_, False
        way = step.branches[route.index]
        return way.name, way.next, False
    if isinstance(step, AbSplitStep):
        arm = step.arms[route.index]
        return arm.name, arm.next, arm.control
    return name, step.next, False
