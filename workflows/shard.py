"""ShardWorkflow: moves the cohorts of one shard through the plan's step graph.

State is counts and Redis keys only. Pages of a cohort run as activities with bounded
concurrency; control signals take effect at the next page boundary; the workflow
continues-as-new (carrying every cohort and its page cursor) when Temporal suggests it.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from journeys.names import cohort_key
    from journeys.plan.steps import ExitStep, SendStep
    from workflows import search
    from workflows.models import (
        Cohort,
        CohortSizeInput,
        CohortSizeOutput,
        ControlSignal,
        Counters,
        DeliverPageInput,
        DeliverPageOutput,
        RunStatus,
        ShardInput,
        ShardResult,
        ShardSummary,
    )

PAGE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=60),
    maximum_attempts=20,
)
SMALL_RETRY = RetryPolicy(maximum_interval=timedelta(seconds=30), maximum_attempts=10)


@workflow.defn(name="ShardWorkflow")
class ShardWorkflow:
    """The interpreter of one shard of one run."""

    def __init__(self) -> None:
        self._s: ShardInput | None = None
        self._inflight = 0
        self._pages_this_run = 0
        self._last_report = workflow.now()
        self._errors: list[BaseException] = []

    @property
    def s(self) -> ShardInput:
        assert self._s is not None
        return self._s

    @workflow.run
    async def run(self, data: ShardInput) -> ShardResult:
        self._s = data
        self._last_report = workflow.now()
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
        await self._report(status, force=True)
        search.upsert_status(status)
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

    # --- send -----------------------------------------------------------------------------

    async def _send(self, cohort: Cohort, step: SendStep) -> bool:
        """Page through ``cohort``; False if it stopped early (continue-as-new or cancel)."""
        limits = self.s.plan.limits
        pages = -(-cohort.size // limits.page_size)
        retry_id = f"{cohort.node}.retry.{cohort.attempt}"
        passed_id = f"{cohort.node}.passed.{cohort.attempt}"
        retried = 0
        tasks: list[asyncio.Task[DeliverPageOutput]] = []

        while cohort.next_page < pages:
            await workflow.wait_condition(
                lambda: (
                    self._inflight < limits.concurrency and (not self.s.paused or self.s.cancelled)
                )
            )
            if self.s.cancelled or self._should_continue_as_new():
                break
            page = cohort.next_page
            cohort.next_page += 1
            tasks.append(asyncio.create_task(self._page(cohort, step, page, retry_id, passed_id)))
        await workflow.wait_condition(lambda: self._inflight == 0)
        for task in tasks:
            if task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
            retried += task.result().retry
        if cohort.next_page < pages:
            return False
        await self._after_pass(
            cohort, step, retried=retried, retry_id=retry_id, passed_id=passed_id
        )
        return True

    async def _page(
        self, cohort: Cohort, step: SendStep, page: int, retry_id: str, passed_id: str
    ) -> DeliverPageOutput:
        self._inflight += 1
        self._pages_this_run += 1
        try:
            limits = self.s.plan.limits
            result: DeliverPageOutput = await workflow.execute_activity(
                "deliver_page",
                DeliverPageInput(
                    run_id=self.s.run_id,
                    plan_id=self.s.plan.id,
                    shard=self.s.shard,
                    shards=self.s.shards,
                    node=cohort.node,
                    channel=step.channel,
                    template=step.template,
                    vars=dict(step.vars),
                    cohort_key=cohort.key,
                    page=page,
                    page_size=limits.page_size,
                    attempt=cohort.attempt,
                    max_attempts=limits.retry.attempts,
                    retry_key=cohort_key(self.s.run_id, self.s.shard, retry_id),
                    passed_key=(
                        cohort_key(self.s.run_id, self.s.shard, passed_id) if step.next else None
                    ),
                    rate_scope=self.s.run_id if limits.rate is not None else None,
                ),
                result_type=DeliverPageOutput,
                start_to_close_timeout=timedelta(minutes=10),
                heartbeat_timeout=self.s.options.page_heartbeat_timeout,
                retry_policy=PAGE_RETRY,
                summary=f"{self._where()} · send {cohort.node} · page {page + 1}",
            )
            self.s.counters.add(result.counters)
            self._node(cohort.node).add(result.counters)
            workflow.set_current_details(
                f"{self._where()} · send {cohort.node} · page {page + 1} · "
                f"{self.s.counters.delivered} delivered"
            )
            await self._report(self._status())
            return result
        finally:
            self._inflight -= 1

    async def _after_pass(
        self, cohort: Cohort, step: SendStep, *, retried: int, retry_id: str, passed_id: str
    ) -> None:
        """Queue the retry cohort (with backoff) and the next node's cohort of this pass."""
        retry = self.s.plan.limits.retry
        if retried:
            key = cohort_key(self.s.run_id, self.s.shard, retry_id)
            size = await self._cohort_size(key)
            backoff = retry.backoff * (2 ** (cohort.attempt - 1))
            self.s.cohorts.append(
                Cohort(
                    id=retry_id,
                    node=cohort.node,
                    key=key,
                    size=size,
                    attempt=cohort.attempt + 1,
                    not_before=workflow.now() + backoff,
                )
            )
        if step.next:
            key = cohort_key(self.s.run_id, self.s.shard, passed_id)
            size = await self._cohort_size(key)
            if size:
                self.s.cohorts.append(Cohort(id=passed_id, node=step.next, key=key, size=size))
        self.s.counters.retrying = sum(c.size for c in self.s.cohorts if c.attempt > 1)
        await self._report(self._status(), force=True)

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

    def _should_continue_as_new(self) -> bool:
        limit = self.s.options.continue_as_new_after_pages
        if limit is not None and self._pages_this_run >= limit:
            return True
        return workflow.info().is_continue_as_new_suggested()

    async def _continue_as_new(self) -> None:
        await workflow.wait_condition(lambda: self._inflight == 0)
        await workflow.wait_condition(workflow.all_handlers_finished)
        self.s.generation += 1
        workflow.continue_as_new(self.s)

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
        """Tell the run our counters, at most every ``progress_every`` (signals cost history)."""
        parent = workflow.info().parent
        if parent is None:
            return
        now = workflow.now()
        if not force and now - self._last_report < self.s.options.progress_every:
            return
        self._last_report = now
        await workflow.get_external_workflow_handle(parent.workflow_id).signal(
            "shard_progress", self._summary(status)
        )
