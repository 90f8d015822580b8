"""``wait_until``: hold a cohort until a moment or a time of day.

In users' own zones the cohort is first split by zone (a routing pass); each zone's cohort
then comes back to this node and waits for its own local time.
"""

from __future__ import annotations

from datetime import datetime

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from journeys.contracts.shard import Cohort
    from journeys.plan.steps import WaitUntilStep
    from journeys.route_names import parse_route
    from journeys.schedule import next_local_time

from workflows.context import ShardContext
from workflows.routing import route_cohort


async def run(ctx: ShardContext, cohort: Cohort, step: WaitUntilStep) -> bool:
    """Hold ``cohort`` until the step's moment; False if cut short (state kept)."""
    if step.timezone == "user" and cohort.zone is None:
        return await _split_by_zone(ctx, cohort, step)
    if cohort.wake_at is None:
        cohort.wake_at = _moment(ctx, step, cohort.zone)
        ctx.count_arrival(cohort)
    zone = f" ({cohort.zone})" if cohort.zone else ""
    return await ctx.hold(cohort, step.next, summary=f"wait_until {cohort.node}{zone}")


async def _split_by_zone(ctx: ShardContext, cohort: Cohort, step: WaitUntilStep) -> bool:
    """One cohort per zone, back at this node."""
    prefix = await route_cohort(ctx, cohort, step)
    if prefix is None:
        return False
    counters = ctx.node(cohort.node)
    for route in sorted(cohort.routes):
        size, zone = cohort.routes[route], parse_route(route).zone
        counters.routes[zone] = counters.routes.get(zone, 0) + size
        if size:
            cohort_id = f"{prefix}.{route}"
            ctx.state.cohorts.append(
                Cohort(id=cohort_id, node=cohort.node, key=ctx.key(cohort_id), size=size, zone=zone)
            )
    return True


def _moment(ctx: ShardContext, step: WaitUntilStep, zone: str | None) -> datetime:
    now = workflow.now()
    if step.at is not None:
        return max(step.at, now)
    assert step.time is not None  # the model requires at or time
    if zone is None:
        zone = ctx.plan.timezone if step.timezone == "plan" else step.timezone
    return next_local_time(now, at=step.time, zone=zone, weekdays=step.weekdays)
