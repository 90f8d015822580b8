"""State and shared helpers of the shard interpreter; node handlers build on it."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from workflows.models import (
        CohortSizeInput,
        CohortSizeOutput,
        Counters,
        RunStatus,
        ShardInput,
        ShardSummary,
    )

SMALL_RETRY = RetryPolicy(maximum_interval=timedelta(seconds=30), maximum_attempts=10)


class ShardBase:
    """What every node handler of a shard reads and updates: counts and keys only."""

    def __init__(self) -> None:
        self._s: ShardInput | None = None
        self._inflight = 0
        self._pages_this_run = 0
        self._last_report = workflow.now()

    @property
    def s(self) -> ShardInput:
        assert self._s is not None
        return self._s

    async def _cohort_size(self, key: str) -> int:
        out = await workflow.execute_activity(
            "cohort_size",
            CohortSizeInput(key=key),
            result_type=CohortSizeOutput,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=SMALL_RETRY,
        )
        size: int = out.size
        return size

    def _should_continue_as_new(self) -> bool:
        limit = self.s.options.continue_as_new_after_pages
        if limit is not None and self._pages_this_run >= limit:
            return True
        return workflow.info().is_continue_as_new_suggested()

    def _node(self, node: str) -> Counters:
        return self.s.nodes.setdefault(node, Counters())

    def _where(self) -> str:
        return f"shard {self.s.shard}/{self.s.shards}"

    def _status(self) -> RunStatus:
        if self.s.cancelled:
            return RunStatus.CANCELLING
        return RunStatus.PAUSED if self.s.paused else RunStatus.RUNNING

    def _summary(self, status: RunStatus) -> ShardSummary:
        return ShardSummary(
            shard=self.s.shard,
            status=status,
            counters=self.s.counters,
            nodes=self.s.nodes,
            inflight=self._inflight,
        )

    async def _report(self, status: RunStatus, *, force: bool = False) -> None:
        """Tell the run our counters: at most every ``progress_every`` and within our share
        of ``progress_budget`` (each signal is an event in the run's history)."""
        parent = workflow.info().parent
        if parent is None:
            return
        now = workflow.now()
        if not force and now - self._last_report < self.s.options.progress_every:
            return
        if self.s.reports_sent >= max(1, self.s.options.progress_budget // self.s.shards):
            return
        self._last_report = now
        self.s.reports_sent += 1
        await workflow.get_external_workflow_handle(parent.workflow_id).signal(
            "shard_progress", self._summary(status)
        )
