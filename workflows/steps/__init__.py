"""One handler per step kind, and the one table that picks it.

Each handler takes the shard's context, a cohort and its step, and returns True when the
cohort is done at the node (its users went on, or their journey ended) or False when it stopped
early for a cancel or a continue-as-new, with its state kept in the cohort. The match below is
exhaustive: a step kind without a handler fails mypy at ``assert_never``.
"""

from __future__ import annotations

from typing import assert_never

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from journeys.contracts.shard import Cohort
    from journeys.plan.steps import (
        AbSplitStep,
        BranchStep,
        CheckStep,
        DecideStep,
        ExitStep,
        SendStep,
        UpdateStep,
        WaitForEventStep,
        WaitStep,
        WaitUntilStep,
        WebhookStep,
    )

from workflows.context import ShardContext
from workflows.steps import exit_step, route, send, wait, wait_for_event, wait_until


async def run_step(ctx: ShardContext, cohort: Cohort) -> bool:
    """Run ``cohort`` at its node by the node's kind; True once it is done there."""
    step = ctx.plan.steps[cohort.node]
    match step:
        case SendStep() | WebhookStep():
            return await send.run(ctx, cohort, step)
        case BranchStep() | AbSplitStep() | UpdateStep() | DecideStep() | CheckStep():
            return await route.run(ctx, cohort, step)
        case WaitStep():
            return await wait.run(ctx, cohort, step)
        case WaitUntilStep():
            return await wait_until.run(ctx, cohort, step)
        case WaitForEventStep():
            return await wait_for_event.run(ctx, cohort, step)
        case ExitStep():
            return await exit_step.run(ctx, cohort, step)
        case _:
            assert_never(step)
