"""ShardWorkflow: moves the cohorts of one shard through the plan's step graph.

State is counts and Redis keys only. Pages of a cohort run as activities with bounded
concurrency; control signals take effect at the next page boundary; the workflow
continues-as-new (carrying every cohort and its page cursor) when Temporal suggests it.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ApplicationError

from workflows.send_step import SendHandler  # workflow code: re-imported in the sandbox

with workflow.unsafe.imports_passed_through():
    from journeys.plan.steps import ExitStep, SendStep
    from workflows import search
    from workflows.models import (
        ControlSignal,
        RunStatus,
        ShardInput,
        ShardResult,
        ShardSummary,
    )


@workflow.defn(name="ShardWorkflow")
class ShardWorkflow(SendHandler):
    """The interpreter of one shard of one run; each node kind is a handler it inherits."""

    @workflow.run
    async def run(self, data: ShardInput) -> ShardResult:
        self._s = data
        while self.s.cohorts and not self.s.cancelled:
            cohort = self.s.cohorts[0]
            if cohort.not_before is not None and cohort.not_before > workflow.now():
                delay = cohort.not_before - workflow.now()
                await self._sleep(delay, summary=f"backoff before pass {cohort.attempt}")
                continue
            await workflow.wait_condition(lambda: not self.s.paused or self.s.cancelled)
            if self.s.cancelled:
                break
            step = self.s.plan.steps[cohort.node]
            if isinstance(step, SendStep):
                finished = await self._send(cohort, step)
            elif isinstance(step, ExitStep):
                self._node(cohort.node).entered += cohort.size
                finished = True
            else:
                raise ApplicationError(
                    f"step {cohort.node!r} has type {step.type!r}, "
                    "which this engine version does not run yet",
                    type="UnsupportedStep",
                    non_retryable=True,
                )
            if finished:
                self.s.cohorts.pop(0)
                if isinstance(step, SendStep):
                    self._node(cohort.node).entered += cohort.size if cohort.attempt == 1 else 0
            if self._should_continue_as_new():
                await self._continue_as_new()
        if self.s.cancelled:
            self._cancel_remaining()
        status = RunStatus.CANCELLED if self.s.cancelled else RunStatus.COMPLETED
        search.upsert_status(status)  # the run learns our counters from the result
        return ShardResult(
            shard=self.s.shard, status=status, counters=self.s.counters, nodes=self.s.nodes
        )

    # --- signals and queries ------------------------------------------------------------

    @workflow.signal
    def pause(self, _: ControlSignal) -> None:
        """Stop after the pages in flight."""
        self.s.paused = True

    @workflow.signal
    def resume(self, _: ControlSignal) -> None:
        """Carry on from the next page."""
        self.s.paused = False

    @workflow.signal
    def cancel(self, _: ControlSignal) -> None:
        """Stop after the pages in flight and report the rest as cancelled."""
        self.s.cancelled = True

    @workflow.query
    def progress(self) -> ShardSummary:
        """Live counters of this shard."""
        return self._summary(self._status())

    # --- helpers --------------------------------------------------------------------------

    async def _sleep(self, delay: timedelta, *, summary: str) -> None:
        """A durable timer that a cancel signal cuts short."""
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(
                lambda: self.s.cancelled, timeout=delay, timeout_summary=summary
            )

    def _cancel_remaining(self) -> None:
        page_size = self.s.plan.limits.page_size
        left = sum(c.size - min(c.size, c.next_page * page_size) for c in self.s.cohorts)
        self.s.counters.cancelled += left
        self.s.counters.retrying = 0
        self.s.cohorts = []

    async def _continue_as_new(self) -> None:
        await workflow.wait_condition(lambda: self._inflight == 0)
        await workflow.wait_condition(workflow.all_handlers_finished)
        self.s.generation += 1
        workflow.continue_as_new(self.s)
