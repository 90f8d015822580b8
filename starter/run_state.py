"""A run's live state: the run's own counters, refreshed from its running shards."""

from __future__ import annotations

from typing import Any

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle

from journeys.contracts.counters import RunStatus
from journeys.contracts.runs import PlanRunResult, RunProgress, ShardSummary
from journeys.names import shard_workflow_id

_LIVE = (RunStatus.RUNNING, RunStatus.PAUSED, RunStatus.CANCELLING)


async def live_progress(client: Client, handle: WorkflowHandle[Any, Any]) -> RunProgress:
    """The run's ``progress``, with each unfinished shard's counters queried from the shard.

    The run hears from its shards only now and then (its history stays bounded); a query
    costs no history, so the exact live numbers come from the shards themselves.
    """
    progress: RunProgress = await handle.query("progress", result_type=RunProgress)
    fresh: list[ShardSummary] = []
    for summary in progress.per_shard:
        if summary.status in _LIVE:
            shard = client.get_workflow_handle(shard_workflow_id(progress.run_id, summary.shard))
            summary = await shard.query("progress", result_type=ShardSummary)
        fresh.append(summary)
    totals = progress.totals.model_copy(deep=True)
    for old, new in zip(progress.per_shard, fresh, strict=True):
        totals.delivered += new.counters.delivered - old.counters.delivered
        totals.cancelled += new.counters.cancelled - old.counters.cancelled
        totals.retrying += new.counters.retrying - old.counters.retrying
        for mine, theirs, before in (
            (totals.skipped, new.counters.skipped, old.counters.skipped),
            (totals.failed, new.counters.failed, old.counters.failed),
        ):
            for reason in sorted(set(theirs) | set(before)):
                mine[reason] = mine.get(reason, 0) + theirs.get(reason, 0) - before.get(reason, 0)
    return progress.model_copy(update={"per_shard": fresh, "totals": totals})


async def snapshot(client: Client, handle: WorkflowHandle[Any, Any]) -> RunProgress | PlanRunResult:
    """Live progress while the run goes, its result once it has ended."""
    if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
        return await live_progress(client, handle)
    result: PlanRunResult = await handle.result()
    return result
