"""ShardContext: what every step handler of a shard reads and changes.

It holds the shard's one state model (:class:`ShardState`, carried whole across
continue-as-new) and the little that lives only in this run of the workflow: pages in flight,
whether a continue-as-new is due, event activities busy. Handlers page cohorts, sleep, move
users on and count through it, so each handler reads top to bottom without knowing the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TypeVar

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from journeys.contracts.counters import Counters
    from journeys.contracts.pages import CohortSizeInput
    from journeys.contracts.shard import Cohort, ShardState
    from journeys.names import cohort_key, exited_key
    from journeys.plan.entry import EventEntry
    from journeys.plan.listening import listening_entry
    from journeys.plan.models import Plan

from workflows import activity_calls as calls
from workflows import dead_keys
from workflows.reports import Reports

T = TypeVar("T")


class ShardContext:
    """The state of one shard and the operations handlers share."""

    def __init__(self, state: ShardState) -> None:
        self.state = state
        self.inflight = 0
        """Page activities running now, across all cohorts of the shard."""
        self.pages_this_run = 0
        self.draining = False
        """Continue-as-new is due: handlers stop at their next safe point and keep state."""
        self.events_busy = 0
        """Event activities (exits, goals, entries) running now."""
        self.reports = Reports(self)
        self._entry_for: Plan | None = None
        self._entry: EventEntry | None = None

    # --- what the shard is -----------------------------------------------------------------

    @property
    def plan(self) -> Plan:
        return self.state.plan

    @property
    def where(self) -> str:
        """The shard as summaries name it (no "7/16": the UI renders it as a fraction)."""
        return f"shard {self.state.shard} of {self.state.shards}"

    @property
    def page_size(self) -> int:
        return self.plan.limits.page_size

    @property
    def exited_key(self) -> str:
        return exited_key(self.state.run_id, self.state.shard)

    @property
    def page_exit_key(self) -> str | None:
        """The exited set for page activities to check; None when the plan has no exit
        criteria, so blasts skip a Redis round trip per page."""
        return self.exited_key if self.plan.exit_criteria else None

    @property
    def event_entry(self) -> EventEntry | None:
        """How arrivals enter (an API entry seen as its reserved event's entry), or None."""
        if self._entry_for is not self.plan:  # a plan is swapped only by a continue-as-new
            self._entry_for, self._entry = self.plan, listening_entry(self.plan)
        return self._entry

    def key(self, cohort_id: str) -> str:
        """The Redis key of cohort ``cohort_id`` of this shard."""
        return cohort_key(self.state.run_id, self.state.shard, cohort_id)

    def node(self, node: str) -> Counters:
        """The counters of ``node``."""
        return self.state.nodes.setdefault(node, Counters())

    def count_arrival(self, cohort: Cohort) -> None:
        """Count ``cohort``'s users as entered at its node, once (a zone's cohort was counted
        by the split that made it)."""
        if not cohort.arrival_counted and cohort.zone is None:
            cohort.arrival_counted = True
            self.node(cohort.node).entered += cohort.size

    # --- stopping: pause, cancel, continue-as-new ------------------------------------------

    def stopping(self) -> bool:
        """A cancel or a due continue-as-new: handlers keep their state and return."""
        return self.state.cancelled or self.draining

    def suggested(self) -> bool:
        limit = self.state.options.continue_as_new_after_pages
        if limit is not None and self.pages_this_run >= limit:
            return True
        return workflow.info().is_continue_as_new_suggested()

    def drain_due(self) -> bool:
        """True once continue-as-new is due (and from then on for this run)."""
        if not self.draining and self.suggested():
            self.draining = True
        return self.draining

    # --- paging ----------------------------------------------------------------------------

    async def pages(
        self, cohort: Cohort, run_page: Callable[[int], Awaitable[T]]
    ) -> list[T] | None:
        """Run ``run_page`` for each page left in ``cohort`` (at most ``concurrency`` pages of
        the shard in flight, none started while paused); None if it stopped early for a
        cancel or a continue-as-new, with ``cohort.next_page`` where to go on."""
        limits, state = self.plan.limits, self.state
        pages = -(-cohort.size // limits.page_size)
        tasks: list[asyncio.Task[T]] = []
        while cohort.next_page < pages:
            await workflow.wait_condition(
                lambda: self.inflight < limits.concurrency and (not state.paused or state.cancelled)
            )
            if state.cancelled or self.drain_due():
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
        self.inflight += 1
        self.pages_this_run += 1
        try:
            return await page
        finally:
            self.inflight -= 1

    # --- timers and moving on --------------------------------------------------------------

    async def sleep_until(self, deadline: datetime, *, summary: str) -> bool:
        """A durable timer that a cancel or a due continue-as-new cuts short; True if the
        deadline was reached."""
        delay = deadline - workflow.now()
        if delay > timedelta(0) and not self.state.options.dry_run:  # a dry run compresses
            try:
                await workflow.wait_condition(
                    lambda: self.state.cancelled or self.draining or self.suggested(),
                    timeout=delay,
                    timeout_summary=summary,
                )
            except TimeoutError:
                return True
            self.drain_due()
            return False
        return True

    async def hold(self, cohort: Cohort, next_node: str | None, *, summary: str) -> bool:
        """Sleep until the cohort's deadline, then move it on with the same key; False if a
        cancel or a continue-as-new cut the sleep short."""
        assert cohort.wake_at is not None
        workflow.set_current_details(
            f"{self.where} · {cohort.size} users at {cohort.node} until "
            f"{cohort.wake_at:%Y-%m-%d %H:%M} UTC"
        )
        if not await self.sleep_until(cohort.wake_at, summary=f"{summary} · {cohort.size} users"):
            return False
        self.count_arrival(cohort)  # a cohort armed before arrivals were counted
        self.forward(cohort_id=cohort.id, node=next_node, key=cohort.key, size=cohort.size)
        return True

    def forward(self, *, cohort_id: str, node: str | None, key: str, size: int) -> None:
        """Users of ``key`` go on to ``node``; with no node their journey is complete."""
        if size <= 0:
            return
        if node is None:
            self.state.counters.completed += size
            dead_keys.completed(self, key)
            return
        self.state.cohorts.append(Cohort(id=cohort_id, node=node, key=key, size=size))

    async def cohort_size(self, key: str) -> int:
        out = await calls.cohort_size(
            CohortSizeInput(key=key, state_key=self.state.state_key),
            summary=f"{self.where} · size",
        )
        return out.size
