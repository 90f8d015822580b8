"""A run's live state: the run's own counters, refreshed from its running shards."""

from __future__ import annotations

from typing import Any

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle

from journeys.contracts.counters import RunStatus
from journeys.contracts.runs import PlanRunResult, RunProgress, ShardSummary
from journeys.names import shard_workflow_id
from journeys.progress import merge_waits
from workflows.plan_run import PlanRunWorkflow
from workflows.shard import ShardWorkflow

_LIVE = (RunStatus.RUNNING, RunStatus.PAUSED, RunStatus.CANCELLING)


async def live_progress(client: Client, handle: WorkflowHandle[Any, Any]) -> RunProgress:
    """The run's ``progress``, with each unfinished shard's counters queried from the shard.

    The run hears from its shards only now and then (its history stays bounded); a query
    costs no history, so the exact live numbers come from the shards themselves.
    """
    progress = await handle.query(PlanRunWorkflow.progress)
    fresh: list[ShardSummary] = []
    for summary in progress.per_shard:
        if summary.status in _LIVE:
            shard = client.get_workflow_handle(shard_workflow_id(progress.run_id, summary.shard))
            summary = await shard.query(ShardWorkflow.progress)
        fresh.append(summary)
    totals = progress.totals.model_copy(deep=True)
    for old, new in zip(progress.per_shard, fresh, strict=True):
        totals.delivered += new.counters.delivered - old.counters.delivered
        totals.cancelled += new.counters.cancelled - old.counters.cancelled
        totals.retrying += new.counters.retrying - old.counters.retrying
        totals.deferred += new.counters.deferred - old.counters.deferred
        totals.waiting += new.counters.waiting - old.counters.waiting
        for mine, theirs, before in (
            (totals.skipped, new.counters.skipped, old.counters.skipped),
            (totals.failed, new.counters.failed, old.counters.failed),
            (totals.deferred_by, new.counters.deferred_by, old.counters.deferred_by),
        ):
            for reason in sorted(set(theirs) | set(before)):
                mine[reason] = mine.get(reason, 0) + theirs.get(reason, 0) - before.get(reason, 0)
    waits = merge_waits(wait for summary in fresh for wait in summary.waits)
    return progress.model_copy(update={"per_shard": fresh, "totals": totals, "waits": waits})


async def snapshot(client: Client, handle: WorkflowHandle[Any, Any]) -> RunProgress | PlanRunResult:
    """Live progress while the run goes, its result once it has ended."""
    if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
        return await live_progress(client, handle)
    result: PlanRunResult = await handle.result()
    return result


async def final_progress(handle: WorkflowHandle[Any, Any]) -> RunProgress:
    """The ``progress`` of a run that has ended: its counters per shard and node as they
    stood at the end (a query of a closed workflow replays it)."""
    progress: RunProgress = await handle.query(PlanRunWorkflow.progress)
    return progress
