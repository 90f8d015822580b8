"""``exit``: the journey of every user of the cohort ends here."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from journeys.contracts.shard import Cohort
    from journeys.plan.steps import ExitStep

from workflows.context import ShardContext


async def run(ctx: ShardContext, cohort: Cohort, step: ExitStep) -> bool:
    """Count the cohort as completed at the node; always done."""
    counters = ctx.node(cohort.node)
    counters.entered += cohort.size
    counters.completed += cohort.size
    ctx.state.counters.completed += cohort.size
    return True
