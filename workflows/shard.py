"""ShardWorkflow: moves the cohorts of one shard through the plan's step graph.

State is counts and Redis keys only, in one :class:`ShardState`. Every live cohort runs as its
own task through the handler of its node's kind (:mod:`workflows.steps`), so the arms of a
split waiting on different timers, a wait for events and a send all go on side by side. Page
activities of the whole shard share one concurrency bound; control signals take effect at the
next page boundary. When Temporal suggests it, every handler stops at a safe point with its
state in its cohort (page cursor, timer deadline, unmatched events) and the workflow
continues-as-new carrying them all (:mod:`workflows.handover`).
"""

from __future__ import annotations

import asyncio

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from journeys.contracts.counters import RunStatus
    from journeys.contracts.pages import ReleaseCohortInput
    from journeys.contracts.runs import ControlSignal, ShardResult, ShardSummary
    from journeys.contracts.shard import Cohort, ShardState
    from journeys.delivery_controls import controls_for
    from journeys.events import EventBatch
    from journeys.plan.steps import SendStep, WebhookStep

from workflows import activity_calls as calls
from workflows import dead_keys, handover, search
from workflows.context import ShardContext
from workflows.entries import entries_done, entry_loop
from workflows.shard_events import exit_loop, goal_loop, sort_events
from workflows.steps import run_step

ARMED_FIRST = "report-after-arming"
"""Patch: a pass's report waits one turn of the loop, so the cohorts it forwarded have armed
their timers and counted their arrival: the run's view shows them waiting, with deadlines."""
RELEASE_ON_CANCEL = "release-on-cancel"
"""Patch: a cancelled shard's cohorts at send nodes give back what their users reserve."""
LOOPS_FAIL = "event-loops-fail-the-shard"
"""Patch: an event loop (exits, goals, entries) whose activity failed for good fails the
shard. It used to end in silence and leave the shard deaf to those events for the rest of
the run (seen when Redis lost the run's state: entries were accepted and never admitted)."""
_ENDED = {RunStatus.COMPLETED: "finished", RunStatus.CANCELLED: "cancelled"}
"""What a shard's current details say once it ended."""


@workflow.defn(name="ShardWorkflow")
class ShardWorkflow:
    """The interpreter of one shard of one run."""

    @workflow.init
    def __init__(self, data: ShardState) -> None:
        self._ctx = ShardContext(data)  # before any signal handler runs
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._loops: list[asyncio.Task[None]] = []
        self._loops_fail = False

    @workflow.run
    async def run(self, data: ShardState) -> ShardResult:
        ctx, state = self._ctx, self._ctx.state
        if state.entered_at is None:
            state.entered_at = workflow.now()
        if state.generation > 0:
            await handover.reopen(ctx)
        loops = [
            asyncio.create_task(exit_loop(ctx)),
            asyncio.create_task(goal_loop(ctx)),
            asyncio.create_task(entry_loop(ctx)),
        ]
        self._loops, self._loops_fail = loops, workflow.patched(LOOPS_FAIL)
        await self._drive_cohorts()
        if not ctx.draining and not state.cancelled:
            await self._goal_window()
        if ctx.draining:
            await loops[2]  # the entry loop admits its backlog first
            await ctx.reports.send_due()
            await handover.continue_as_new(ctx)
        await workflow.wait_condition(lambda: not state.goal_inbox and ctx.events_busy == 0)
        for loop in loops:
            loop.cancel()
        if state.cancelled:
            if workflow.patched(RELEASE_ON_CANCEL):
                await self._release_reserved()
            self._cancel_remaining()
        status = RunStatus.CANCELLED if state.cancelled else RunStatus.COMPLETED
        search.upsert_status(status)  # the run learns our counters from the result
        workflow.set_current_details(
            f"{ctx.where} · {_ENDED[status]} · {state.counters.delivered} delivered"
        )
        return ShardResult(
            shard=state.shard, status=status, counters=state.counters, nodes=state.nodes
        )

    async def _drive_cohorts(self) -> None:
        """Run a task per live cohort until none is left (or all stopped for a cancel or a
        continue-as-new)."""
        ctx, state = self._ctx, self._ctx.state
        while True:
            if not ctx.stopping():
                for cohort in list(state.cohorts):
                    if cohort.id not in self._tasks:
                        self._tasks[cohort.id] = asyncio.create_task(self._drive(cohort))
            if not self._tasks and (entries_done(ctx) or ctx.stopping()):
                return
            if workflow.patched(ARMED_FIRST):
                await asyncio.sleep(0)  # new cohorts arm their timers, count their arrival
            await ctx.reports.send_due()  # the shard goes on
            await workflow.wait_condition(
                lambda: (
                    any(task.done() for task in self._tasks.values())
                    or self._unstarted()
                    or (not self._tasks and (entries_done(ctx) or ctx.stopping()))
                    or self._loop_failure() is not None
                )
            )
            failure = self._loop_failure()
            if failure is not None:
                raise failure
            for cohort_id in [c for c, task in self._tasks.items() if task.done()]:
                self._tasks.pop(cohort_id).result()
            ctx.drain_due()

    def _loop_failure(self) -> BaseException | None:
        """The error an event loop ended with (under :data:`LOOPS_FAIL`), if one did."""
        if not self._loops_fail:
            return None
        for loop in self._loops:
            if loop.done() and not loop.cancelled() and loop.exception() is not None:
                return loop.exception()
        return None

    def _unstarted(self) -> bool:
        if self._ctx.stopping():
            return False
        return any(cohort.id not in self._tasks for cohort in self._ctx.state.cohorts)

    async def _drive(self, cohort: Cohort) -> None:
        """Run ``cohort``'s node; once it is done there, it leaves the shard's state."""
        if await run_step(self._ctx, cohort):
            state = self._ctx.state
            state.cohorts = [c for c in state.cohorts if c is not cohort]
            dead_keys.left(self._ctx, cohort)

    async def _goal_window(self) -> None:
        """Keep measuring conversions until the goal window of the entry closes."""
        ctx, state = self._ctx, self._ctx.state
        goal = ctx.plan.goal
        start = state.last_entry_at if ctx.event_entry is not None else state.entered_at
        if goal is None or start is None:
            return
        await ctx.reports.send_due()  # the window may last days
        deadline = start + goal.within
        workflow.set_current_details(
            f"{ctx.where} · journeys done · counting {goal.event} until "
            f"{deadline:%Y-%m-%d %H:%M} UTC"
        )
        await ctx.sleep_until(deadline, summary=f"goal window · {goal.event}")

    # --- signals and queries ------------------------------------------------------------

    @workflow.signal
    def events(self, batch: EventBatch) -> None:
        """User events for this shard (exits, goals, waits); handled by the main loops."""
        sort_events(self._ctx, batch)

    @workflow.signal
    def pause(self, _: ControlSignal) -> None:
        """Stop after the pages in flight."""
        self._ctx.state.paused = True

    @workflow.signal
    def resume(self, _: ControlSignal) -> None:
        """Carry on from the next page."""
        self._ctx.state.paused = False

    @workflow.signal
    def cancel(self, _: ControlSignal) -> None:
        """Stop after the pages in flight and report the rest as cancelled."""
        self._ctx.state.cancelled = True

    @workflow.query
    def progress(self) -> ShardSummary:
        """Live counters of this shard, with the cohorts waiting on timers."""
        reports = self._ctx.reports
        return reports.summary(reports.status(), waits=reports.waits())

    # --- ending -------------------------------------------------------------------------

    async def _release_reserved(self) -> None:
        """Users waiting at a send node (for a retry pass, or held back on one) still hold
        the slots and the price an earlier pass reserved: a cancelled run gives them back.
        Members on pages this pass already ran keep theirs (they were sent or queued)."""
        ctx, state = self._ctx, self._ctx.state
        if not state.delivery_controls:
            return
        for cohort in list(state.cohorts):
            step = ctx.plan.steps.get(cohort.node)
            if not isinstance(step, SendStep | WebhookStep):
                continue
            await calls.release_cohort(
                ReleaseCohortInput(
                    run_id=state.run_id,
                    node=cohort.node,
                    channel=step.channel,
                    cohort_key=cohort.key,
                    from_rank=cohort.next_page * ctx.page_size,
                    controls=controls_for(
                        state.plan, state.policy, run_id=state.run_id, channel=step.channel
                    ),
                ),
                summary=f"{ctx.where} · cancelled: give back {cohort.node}'s reservations",
            )

    def _cancel_remaining(self) -> None:
        state, page_size = self._ctx.state, self._ctx.page_size
        left = sum(c.size - min(c.size, c.next_page * page_size) for c in state.cohorts)
        state.counters.cancelled += left
        state.counters.retrying = 0
        state.cohorts = []
