"""The signal a shard sends its run, as a typed call.

A shard cannot name ``PlanRunWorkflow.shard_progress`` by reference (the run's module imports
the shard's), so the name lives here, once: the run declares its handler with it and shards
call it only through :func:`shard_progress`.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from journeys.contracts.runs import ShardSummary

SHARD_PROGRESS = "shard_progress"


async def shard_progress(run_workflow_id: str, summary: ShardSummary) -> None:
    """Send ``summary`` to the run workflow ``run_workflow_id``."""
    await workflow.get_external_workflow_handle(run_workflow_id).signal(SHARD_PROGRESS, summary)
