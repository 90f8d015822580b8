"""``wait``: one durable timer per cohort.

The deadline is stored in the cohort (``wake_at``) when the timer is armed, so after a
continue-as-new the timer resumes with exactly the time it had left.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from journeys.contracts.shard import Cohort
    from journeys.plan.steps import WaitStep

from workflows.context import ShardContext


async def run(ctx: ShardContext, cohort: Cohort, step: WaitStep) -> bool:
    """Hold ``cohort`` for the step's duration, then move it on; False if cut short."""
    if cohort.wake_at is None:
        cohort.wake_at = workflow.now() + step.duration
        ctx.count_arrival(cohort)  # on arrival: the users waiting here count as entered
    return await ctx.hold(cohort, step.next, summary=f"wait {cohort.node}")
