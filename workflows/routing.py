"""The routing pass shared by ``branch``, ``ab_split``, ``update`` and the zone split of a
``wait_until`` in users' own zones: pages write each user to one route's sub-cohort
(``{prefix}.{route}``); the handler then sends every route on."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from journeys.contracts.pages import RoutePageInput, RoutePageOutput
    from journeys.contracts.shard import Cohort
    from journeys.plan.steps import (
        AbSplitStep,
        BranchStep,
        CheckStep,
        DecideStep,
        UpdateStep,
        WaitUntilStep,
    )

from workflows import activity_calls as calls
from workflows.context import ShardContext

RoutedStep = BranchStep | AbSplitStep | UpdateStep | WaitUntilStep | DecideStep | CheckStep


async def route_cohort(
    ctx: ShardContext,
    cohort: Cohort,
    step: RoutedStep,
    *,
    winner_arm: int | None = None,
    test_share: int | None = None,
    count_entry: bool = True,
) -> str | None:
    """Route every page of ``cohort``, counting who reached the node (unless
    ``count_entry`` is off: held users were counted when held) and who exited; the prefix
    of its route cohorts, or None if it stopped early (state kept in ``cohort``).
    ``winner_arm`` and ``test_share`` are an ab_split's winning path
    (:class:`RoutePageInput`)."""
    prefix = f"{cohort.id}>{cohort.node}"
    outs = await ctx.pages(
        cohort,
        lambda page: _route_page(
            ctx, cohort, step, prefix, page, winner_arm=winner_arm, test_share=test_share
        ),
    )
    if outs is None:
        return None
    counters = ctx.node(cohort.node)
    if count_entry:
        counters.entered += cohort.size
    counters.exited += cohort.exited
    ctx.state.counters.exited += cohort.exited
    return prefix


async def _route_page(
    ctx: ShardContext,
    cohort: Cohort,
    step: RoutedStep,
    prefix: str,
    page: int,
    *,
    winner_arm: int | None,
    test_share: int | None,
) -> RoutePageOutput:
    state = ctx.state
    result = await calls.route_page(
        RoutePageInput(
            run_id=state.run_id,
            shard=state.shard,
            node=cohort.node,
            step=step,
            cohort_key=cohort.key,
            state_key=state.state_key,
            page=page,
            page_size=ctx.page_size,
            out_prefix=prefix,
            exited_key=ctx.page_exit_key,
            exit_rules=[c.rule for c in state.plan.exit_criteria if c.rule is not None],
            now=workflow.now(),
            fallback_zone=state.plan.timezone,
            dry_run=state.options.dry_run,
            winner_arm=winner_arm,
            test_share=test_share,
        ),
        heartbeat=state.options.page_heartbeat_timeout,
        summary=f"{ctx.where} · {step.type} {cohort.node} · page {page + 1}",
    )
    for route in sorted(result.routes):
        cohort.routes[route] = cohort.routes.get(route, 0) + result.routes[route]
    cohort.exited += result.exited
    await ctx.reports.send()
    return result
