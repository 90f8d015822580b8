"""ShardWorkflow: moves the cohorts of one shard through the plan's step graph.

State is counts and Redis keys only. Every live cohort runs as its own task, so the arms of a
split waiting on different timers, a wait for events and a send all go on side by side. Page
activities of the whole shard share one concurrency bound; control signals take effect at the
next page boundary. When Temporal suggests it, every handler stops at a safe point with its
state in its cohort (page cursor, timer deadline, unmatched events) and the workflow
continues-as-new carrying them all.
"""

from __future__ import annotations

import asyncio

from temporalio import workflow

from workflows.entry_loop import EntryHandler  # workflow code: re-imported
from workflows.event_wait_step import EventWaitHandler
from workflows.inbox import too_big_to_carry
from workflows.send_step import SendHandler
from workflows.wait_steps import WaitHandler

with workflow.unsafe.imports_passed_through():
    from journeys.contracts.counters import RunStatus
    from journeys.contracts.runs import ControlSignal, ShardResult, ShardSummary
    from journeys.contracts.shard import Cohort, ShardState
    from journeys.events import EventBatch
    from journeys.plan.steps import (
        AbSplitStep,
        BranchStep,
        ExitStep,
        SendStep,
        UpdateStep,
        WaitForEventStep,
        WaitStep,
        WaitUntilStep,
        WebhookStep,
    )
    from workflows import search


@workflow.defn(name="ShardWorkflow")
class ShardWorkflow(SendHandler, WaitHandler, EventWaitHandler, EntryHandler):
    """The interpreter of one shard of one run; each node kind is a handler it inherits."""

    @workflow.init
    def __init__(self, data: ShardState) -> None:
        super().__init__()
        self._s = data  # set before any signal handler runs
        self._tasks: dict[str, asyncio.Task[None]] = {}

    @workflow.run
    async def run(self, data: ShardState) -> ShardResult:
        if self.s.entered_at is None:
            self.s.entered_at = workflow.now()
        loops = [
            asyncio.create_task(self._exit_loop()),
            asyncio.create_task(self._goal_loop()),
            asyncio.create_task(self._entry_loop()),
        ]
        await self._drive_cohorts()
        if not self._draining and not self.s.cancelled:
            await self._goal_window()
        if self._draining:
            await loops[2]  # the entry loop admits its backlog first
            await self._send_due_report()
            await self._continue_as_new()
        await workflow.wait_condition(lambda: not self.s.goal_inbox and self._events_busy == 0)
        for loop in loops:
            loop.cancel()
        if self.s.cancelled:
            self._cancel_remaining()
        status = RunStatus.CANCELLED if self.s.cancelled else RunStatus.COMPLETED
        search.upsert_status(status)  # the run learns our counters from the result
        return ShardResult(
            shard=self.s.shard, status=status, counters=self.s.counters, nodes=self.s.nodes
        )

    async def _drive_cohorts(self) -> None:
        """Run a task per live cohort until none is left (or all stopped for a cancel or a
        continue-as-new)."""
        while True:
            if not self._draining and not self.s.cancelled:
                for cohort in list(self.s.cohorts):
                    if cohort.id not in self._tasks:
                        self._tasks[cohort.id] = asyncio.create_task(self._drive(cohort))
            if not self._tasks and (self._entries_done() or self._draining or self.s.cancelled):
                return
            await self._send_due_report()  # the shard goes on
            await workflow.wait_condition(
                lambda: (
                    any(task.done() for task in self._tasks.values())
                    or self._unstarted()
                    or (
                        not self._tasks
                        and (self._entries_done() or self._draining or self.s.cancelled)
                    )
                )
            )
            for cohort_id in [c for c, task in self._tasks.items() if task.done()]:
                self._tasks.pop(cohort_id).result()
            self._drain_due()

    def _unstarted(self) -> bool:
        if self._draining or self.s.cancelled:
            return False
        return any(cohort.id not in self._tasks for cohort in self.s.cohorts)

    async def _drive(self, cohort: Cohort) -> None:
        """Run ``cohort``'s node; once it is done there, it leaves the shard's state."""
        step = self.s.plan.steps[cohort.node]
        done = False
        if isinstance(step, SendStep | WebhookStep):
            done = await self._send(cohort, step)
        elif isinstance(step, BranchStep | AbSplitStep | UpdateStep):
            done = await self._route(cohort, step)
        elif isinstance(step, WaitStep):
            done = await self._wait(cohort, step)
        elif isinstance(step, WaitUntilStep):
            done = await self._wait_until(cohort, step)
        elif isinstance(step, WaitForEventStep):
            done = await self._wait_for_event(cohort, step)
        elif isinstance(step, ExitStep):
            self._node(cohort.node).entered += cohort.size
            self._node(cohort.node).completed += cohort.size
            self.s.counters.completed += cohort.size
            done = True
        if done:
            self.s.cohorts = [c for c in self.s.cohorts if c is not cohort]

    async def _goal_window(self) -> None:
        """Keep measuring conversions until the goal window of the entry closes."""
        goal = self.s.plan.goal
        start = self.s.last_entry_at if self._event_entry is not None else self.s.entered_at
        if goal is None or start is None:
            return
        await self._send_due_report()  # the window may last days
        deadline = start + goal.within
        workflow.set_current_details(
            f"{self._where()} · journeys done · counting {goal.event} until "
            f"{deadline:%Y-%m-%d %H:%M} UTC"
        )
        await self._sleep_until(deadline, summary=f"goal window · {goal.event}")

    # --- signals and queries ------------------------------------------------------------

    @workflow.signal
    def events(self, batch: EventBatch) -> None:
        """User events for this shard (exits, goals, waits); handled by the main loops."""
        self._sort_events(batch)

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
        """Live counters of this shard, with the cohorts waiting on timers."""
        return self._summary(self._status()).model_copy(update={"waits": self._waits()})

    # --- helpers --------------------------------------------------------------------------

    def _cancel_remaining(self) -> None:
        page_size = self._page_size
        left = sum(c.size - min(c.size, c.next_page * page_size) for c in self.s.cohorts)
        self.s.counters.cancelled += left
        self.s.counters.retrying = 0
        self.s.cohorts = []

    async def _continue_as_new(self) -> None:
        await workflow.wait_condition(
            lambda: (
                self._inflight == 0
                and self._events_busy == 0
                and not too_big_to_carry(self.s.exit_inbox)
                and not too_big_to_carry(self.s.goal_inbox)
            )
        )
        await workflow.wait_condition(workflow.all_handlers_finished)
        self.s.generation += 1
        workflow.continue_as_new(self.s)
