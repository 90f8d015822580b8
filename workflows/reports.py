"""What a shard tells about itself: its summary (the ``progress`` query, signals to its run)
and the budgeted progress signals."""

from __future__ import annotations

from typing import TYPE_CHECKING

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from journeys.contracts.counters import Counters, RunStatus
    from journeys.contracts.runs import ShardSummary, WaitingCohort
    from journeys.progress import merge_waits

from workflows import run_signals

if TYPE_CHECKING:
    from workflows.context import ShardContext


class Reports:
    """The shard's summaries and its progress signals to the run."""

    def __init__(self, ctx: ShardContext) -> None:
        self._ctx = ctx
        self._last = workflow.now()
        self._due = False
        """A pass ended: the run hears of it when the shard goes on (else from our result)."""

    def status(self) -> RunStatus:
        state = self._ctx.state
        if state.cancelled:
            return RunStatus.CANCELLING
        return RunStatus.PAUSED if state.paused else RunStatus.RUNNING

    def summary(
        self, status: RunStatus, *, waits: list[WaitingCohort] | None = None
    ) -> ShardSummary:
        """Counters as they stand, with the users standing at each node (``waiting``, a
        level, per node and in all) and ``waits``."""
        state, page_size = self._ctx.state, self._ctx.page_size
        nodes = {node: c.model_copy(deep=True) for node, c in state.nodes.items()}
        waiting = 0
        for cohort in state.cohorts:
            paged = min(cohort.size, cohort.next_page * page_size)
            standing = cohort.size - paged - cohort.left
            nodes.setdefault(cohort.node, Counters()).waiting += standing
            waiting += standing
        counters = state.counters.model_copy(update={"waiting": waiting})
        return ShardSummary(
            shard=state.shard,
            status=status,
            counters=counters,
            nodes=nodes,
            inflight=self._ctx.inflight,
            waits=waits or [],
        )

    def waits(self) -> list[WaitingCohort]:
        """Cohorts held by a timer: where, how many, until when."""
        return [
            WaitingCohort(node=c.node, users=c.size - c.left, until=c.wake_at, zone=c.zone)
            for c in self._ctx.state.cohorts
            if c.wake_at is not None
        ]

    async def pass_ended(self) -> None:
        """A pass ended. Its counters reach the run at once (history from before the patch),
        or when the shard goes on: a shard that ends now returns them as its result, so its
        last pass costs no signal (five events here, one or more in the run)."""
        if workflow.patched("last-pass-in-result"):
            self._due = True
        else:
            await self.send(force=True)

    async def send_due(self) -> None:
        """Send the report a pass left due, now that the shard goes on."""
        if self._due:
            self._due = False
            await self.send(force=True)

    async def send(self, *, force: bool = False) -> None:
        """Tell the run our counters: at most every ``progress_every`` and within our share
        of ``progress_budget`` (each signal is an event in the run's history)."""
        parent = workflow.info().parent
        if parent is None:
            return
        state, now = self._ctx.state, workflow.now()
        if not force and now - self._last < state.options.progress_every:
            return
        if state.reports_sent >= max(1, state.options.progress_budget // state.shards):
            return
        self._last = now
        state.reports_sent += 1
        summary = self.summary(self.status(), waits=merge_waits(self.waits()))
        await run_signals.shard_progress(parent.workflow_id, summary)
