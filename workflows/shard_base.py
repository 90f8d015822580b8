"""State and shared helpers of the shard interpreter; node handlers build on it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from journeys.contracts.counters import Counters, RunStatus
    from journeys.contracts.pages import CohortSizeInput, CohortSizeOutput
    from journeys.contracts.runs import ShardSummary, WaitingCohort
    from journeys.contracts.shard import Cohort, ShardState
    from journeys.names import exited_key

SMALL_RETRY = RetryPolicy(maximum_interval=timedelta(seconds=30), maximum_attempts=10)
T = TypeVar("T")


class ShardBase:
    """What every node handler of a shard reads and updates: counts and keys only."""

    def __init__(self) -> None:
        self._s: ShardState | None = None
        self._inflight = 0
        self._pages_this_run = 0
        self._last_report = workflow.now()
        self._report_due = False
        """A pass ended: the run hears of it when the shard goes on (else from our result)."""
        self._draining = False
        """Continue-as-new is due: handlers stop at their next safe point and keep state."""

    @property
    def s(self) -> ShardState:
        assert self._s is not None
        return self._s

    @property
    def exited_key(self) -> str:
        return exited_key(self.s.run_id, self.s.shard)

    @property
    def page_exit_key(self) -> str | None:
        """The exited set for page activities to check; None when the plan has no exit
        criteria, so blasts skip a Redis round trip per page."""
        return self.exited_key if self.s.plan.exit_criteria else None

    # --- paging --------------------------------------------------------------------------

    async def _pages(
        self, cohort: Cohort, run_page: Callable[[int], Awaitable[T]]
    ) -> list[T] | None:
        """Run ``run_page`` for each page left in ``cohort`` (at most ``concurrency`` pages of
        the shard in flight, none started while paused); None if it stopped early for a
        cancel or a continue-as-new, with ``cohort.next_page`` where to go on."""
        limits = self.s.plan.limits
        pages = -(-cohort.size // limits.page_size)
        tasks: list[asyncio.Task[T]] = []
        while cohort.next_page < pages:
            await workflow.wait_condition(
                lambda: (
                    self._inflight < limits.concurrency and (not self.s.paused or self.s.cancelled)
                )
            )
            if self.s.cancelled or self._drain_due():
                break
            page = cohort.next_page
            cohort.next_page += 1
            tasks.append(asyncio.create_task(self._counted(run_page(page))))
        await workflow.wait_condition(lambda: all(task.done() for task in tasks))
        for task in tasks:
            error = task.exception()
            if error is not None:
                raise error
        if cohort.next_page < pages:
            return None
        return [task.result() for task in tasks]

    async def _counted(self, page: Awaitable[T]) -> T:
        self._inflight += 1
        self._pages_this_run += 1
        try:
            return await page
        finally:
            self._inflight -= 1

    # --- timers and moving on ------------------------------------------------------------

    async def _sleep_until(self, deadline: datetime, *, summary: str) -> bool:
        """A durable timer that a cancel or a due continue-as-new cuts short; True if the
        deadline was reached."""
        delay = deadline - workflow.now()
        if delay > timedelta(0):
            try:
                await workflow.wait_condition(
                    lambda: self.s.cancelled or self._draining or self._suggested(),
                    timeout=delay,
                    timeout_summary=summary,
                )
            except TimeoutError:
                return True
            self._drain_due()
            return False
        return True

    def _forward(self, *, cohort_id: str, node: str | None, key: str, size: int) -> None:
        """Users of ``key`` go on to ``node``; with no node their journey is complete."""
        if size <= 0:
            return
        if node is None:
            self.s.counters.completed += size
            return
        self.s.cohorts.append(Cohort(id=cohort_id, node=node, key=key, size=size))

    # --- continue-as-new -----------------------------------------------------------------

    def _suggested(self) -> bool:
        limit = self.s.options.continue_as_new_after_pages
        if limit is not None and self._pages_this_run >= limit:
            return True
        return workflow.info().is_continue_as_new_suggested()

    def _drain_due(self) -> bool:
        """True once continue-as-new is due (and from then on for this run)."""
        if not self._draining and self._suggested():
            self._draining = True
        return self._draining

    # --- counters and reports ------------------------------------------------------------

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

    def _node(self, node: str) -> Counters:
        return self.s.nodes.setdefault(node, Counters())

    def _where(self) -> str:
        return f"shard {self.s.shard}/{self.s.shards}"

    def _status(self) -> RunStatus:
        if self.s.cancelled:
            return RunStatus.CANCELLING
        return RunStatus.PAUSED if self.s.paused else RunStatus.RUNNING

    def _summary(self, status: RunStatus) -> ShardSummary:
        nodes = {node: c.model_copy(deep=True) for node, c in self.s.nodes.items()}
        for cohort in self.s.cohorts:
            live = nodes.setdefault(cohort.node, Counters())
            live.waiting += cohort.size - min(cohort.size, cohort.next_page * self._page_size)
        return ShardSummary(
            shard=self.s.shard,
            status=status,
            counters=self.s.counters,
            nodes=nodes,
            inflight=self._inflight,
        )

    def _waits(self) -> list[WaitingCohort]:
        return [
            WaitingCohort(node=c.node, users=c.size, until=c.wake_at, zone=c.zone)
            for c in self.s.cohorts
            if c.wake_at is not None
        ]

    @property
    def _page_size(self) -> int:
        return self.s.plan.limits.page_size

    async def _report_pass(self) -> None:
        """A pass ended. Its counters reach the run at once (history from before the patch),
        or when the shard goes on: a shard that ends now returns them as its result, so its
        last pass costs no signal (five events here, one or more in the run)."""
        if workflow.patched("last-pass-in-result"):
            self._report_due = True
        else:
            await self._report(self._status(), force=True)

    async def _send_due_report(self) -> None:
        if self._report_due:
            self._report_due = False
            await self._report(self._status(), force=True)

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
