"""PlanRunWorkflow: one run of one pinned plan version.

Materialises the audience into shard keys, starts one ShardWorkflow per non-empty shard
(bounded parallelism), forwards pause / resume / cancel, answers ``progress`` from the
counters the shards report, deletes the run's Redis keys at the end and returns a summary.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError, ChildWorkflowError, FailureError
from temporalio.workflow import ChildWorkflowHandle, ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from journeys.contracts.counters import Counters, RunStatus
    from journeys.contracts.run_setup import (
        CleanupInput,
        ListenersInput,
        LoadPlanInput,
        MaterialiseInput,
        SealRunStateInput,
        SetRateInput,
    )
    from journeys.contracts.runs import (
        ControlSignal,
        PlanRunInput,
        PlanRunResult,
        RateUpdate,
        RateUpdateResult,
        RunProgress,
        ShardResult,
        ShardSummary,
    )
    from journeys.contracts.shard import Cohort, ShardState
    from journeys.names import run_audience_key, run_state_key, shard_workflow_id
    from journeys.plan.audience import AllAudience
    from journeys.plan.listening import listened_events, listening_entry
    from journeys.plan.models import Plan
    from journeys.progress import add_shard, details_line, merge_waits, node_totals

from workflows import activity_calls as calls
from workflows import run_signals, search
from workflows.shard import ShardWorkflow


@workflow.defn(name="PlanRunWorkflow")
class PlanRunWorkflow:
    """The parent of a run's shard workflows."""

    def __init__(self) -> None:
        self._input: PlanRunInput | None = None
        self._plan: Plan | None = None
        self._status = RunStatus.STARTING
        self._per_shard: list[int] = []
        self._shards: dict[int, ShardSummary] = {}
        self._children: dict[int, ChildWorkflowHandle[ShardWorkflow, ShardResult]] = {}
        self._controls: list[Callable[[ShardWorkflow, ControlSignal], None]] = []
        """Control signals to relay to the running shards, oldest first."""
        self._paused = False
        self._cancelled = False
        self._unstarted_cancelled = 0
        self._started = 0
        self._failures: list[str] = []
        self._sealed = False

    @workflow.run
    async def run(self, data: PlanRunInput) -> PlanRunResult:
        self._input = data
        run_id = workflow.info().workflow_id
        started = workflow.now()
        loaded = await calls.load_plan_version(
            LoadPlanInput(plan_id=data.plan_id, version=data.version),
            summary=f"load {data.plan_id} v{data.version}",
        )
        self._plan = plan = loaded.plan
        # Mark the shards in Redis before anything of them is written: their reads check the
        # marks, so a Redis that lost its data fails the run instead of emptying it.
        self._sealed = workflow.patched("run-state-marks")
        if self._sealed:
            await calls.seal_run_state(
                SealRunStateInput(
                    run_id=run_id, shards=plan.shards, preloaded=data.audience.preloaded
                ),
                summary="mark the shards' Redis state",
            )
        if self._everyone_may_enter(plan, data):
            self._per_shard = [0] * plan.shards  # users come with their entry events
        else:
            materialised = await calls.materialise_audience(
                MaterialiseInput(
                    run_id=run_id,
                    plan=plan,
                    audience=data.audience,
                    as_of=(search.scheduled_at() if workflow.patched("occurrence-as-of") else None),
                    dry_run=data.options.dry_run,
                ),
                summary=f"materialise audience into {plan.shards} shards",
            )
            self._per_shard = materialised.per_shard
        # Runs recorded before the registry existed did not register; keep their history.
        listening = listened_events(plan) if workflow.patched("event-registry") else []
        if data.options.dry_run:
            listening = []  # real events must not move a dry run, nor it record conversions
        self._set_status(RunStatus.PAUSED if self._paused else RunStatus.RUNNING)
        forwarder = asyncio.create_task(self._forward_controls())
        by_event = listening_entry(plan) is not None  # every shard listens for entries
        waits = [
            asyncio.create_task(self._run_shard(k, size))
            for k, size in enumerate(self._per_shard)
            if size > 0 or by_event
        ]
        if listening:
            # Listen once the first shards run: an event routed to a shard that has not
            # started would find no workflow and act nowhere.
            first = min(len(waits), self._shard_limit(plan))
            await workflow.wait_condition(
                lambda: self._started >= first or self._cancelled or all(w.done() for w in waits)
            )
            await calls.register_listeners(
                ListenersInput(run_id=run_id, shards=plan.shards, events=listening),
                summary=f"register for {', '.join(listening)}",
            )
        await asyncio.gather(*waits)
        forwarder.cancel()
        if listening:
            await calls.unregister_listeners(
                ListenersInput(run_id=run_id, shards=plan.shards, events=listening),
                summary=f"unregister for {', '.join(listening)}",
            )
        await calls.cleanup_run(CleanupInput(run_id=run_id), summary="delete the run's Redis keys")
        if self._failures:
            self._set_status(RunStatus.FAILED)
            raise ApplicationError(
                f"{len(self._failures)} shard(s) failed: {'; '.join(self._failures)}",
                type="ShardsFailed",
                non_retryable=True,
            )
        self._set_status(RunStatus.CANCELLED if self._cancelled else RunStatus.COMPLETED)
        return PlanRunResult(
            run_id=run_id,
            status=self._status,
            totals=self._totals(),
            shards=plan.shards,
            duration=workflow.now() - started,
        )

    async def _run_shard(self, k: int, size: int) -> None:
        """Start shard ``k`` when a slot is free, wait for it, record its result."""
        assert self._input is not None and self._plan is not None
        by_event = listening_entry(self._plan) is not None
        limit = self._shard_limit(self._plan)
        await workflow.wait_condition(lambda: len(self._children) < limit or self._cancelled)
        if self._cancelled:
            self._unstarted_cancelled += size
            return
        run_id = workflow.info().workflow_id
        plan, data = self._plan, self._input
        handle = await workflow.start_child_workflow(
            ShardWorkflow.run,
            ShardState(
                run_id=run_id,
                plan=plan,
                version=data.version,
                shard=k,
                shards=plan.shards,
                cohorts=[]
                if by_event
                else [
                    Cohort(
                        id="entry", node=plan.start_step, key=run_audience_key(run_id, k), size=size
                    )
                ],
                counters=Counters(targeted=0 if by_event else size),
                options=data.options,
                policy=data.policy,
                delivery_controls=data.delivery_controls,
                paused=self._paused,
                state_key=run_state_key(run_id, k) if self._sealed else None,
                **self._entry_fields(plan, data, run_id, k),
            ),
            id=shard_workflow_id(run_id, k),
            search_attributes=search.run_attributes(
                plan_id=plan.id,
                version=data.version,
                run_key=data.run_key,
                status=RunStatus.RUNNING.value,
                shard=k,
                transactional=plan.transactional if workflow.patched("journey-kind") else None,
            ),
            static_summary=f"shard {k} of {plan.shards} · {plan.id} v{data.version} · {size} users",
            static_details=(
                f"Shard {k} of {plan.shards} of run {run_id}: the users with "
                f"mmh3(user_id) & {plan.shards - 1} == {k}. Its `progress` query has live "
                "counts per node and the cohorts waiting on timers."
            ),
            parent_close_policy=ParentClosePolicy.TERMINATE,
        )
        self._children[k] = handle
        self._started += 1
        self._shards[k] = ShardSummary(
            shard=k, status=RunStatus.RUNNING, counters=Counters(targeted=size)
        )
        try:
            result = await handle
            self._shards[k] = ShardSummary(
                shard=k, status=result.status, counters=result.counters, nodes=result.nodes
            )
            self._show_details()
        except ChildWorkflowError as exc:
            self._failures.append(f"shard {k}: {_failure_text(exc)}")
            self._shards[k] = self._shards[k].model_copy(update={"status": RunStatus.FAILED})
        finally:
            del self._children[k]

    async def _forward_controls(self) -> None:
        """Relay control signals to running shards (handlers only queue them)."""
        while True:
            await workflow.wait_condition(lambda: bool(self._controls))
            control = self._controls.pop(0)
            for k in sorted(self._children):
                await self._children[k].signal(control, ControlSignal())

    # --- signals, queries, updates ----------------------------------------------------------

    @workflow.signal
    def pause(self, _: ControlSignal) -> None:
        """Pause every shard after its pages in flight."""
        if self._cancelled:
            return
        self._paused = True
        self._controls.append(ShardWorkflow.pause)
        self._set_status(RunStatus.PAUSED)

    @workflow.signal
    def resume(self, _: ControlSignal) -> None:
        """Resume every shard where it stopped."""
        if self._cancelled:
            return
        self._paused = False
        self._controls.append(ShardWorkflow.resume)
        self._set_status(RunStatus.RUNNING)

    @workflow.signal
    def cancel(self, _: ControlSignal) -> None:
        """Stop every shard after its pages in flight; start no more."""
        self._cancelled = True
        self._controls.append(ShardWorkflow.cancel)
        self._set_status(RunStatus.CANCELLING)

    @workflow.signal(name=run_signals.SHARD_PROGRESS)
    def shard_progress(self, summary: ShardSummary) -> None:
        """A shard's latest counters (sent every few seconds while it works)."""
        if summary.shard in self._children:
            self._shards[summary.shard] = summary
            self._show_details()

    @workflow.update
    async def set_rate(self, update: RateUpdate) -> RateUpdateResult:
        """Change the plan's rate limit for this run; every worker sees it at once."""
        out = await calls.set_rate(
            SetRateInput(scope=workflow.info().workflow_id, per_second=update.per_second),
            summary=f"rate {update.per_second:g}/s",
        )
        return RateUpdateResult(per_second=out.per_second)

    @workflow.query
    def progress(self) -> RunProgress:
        """Live counters per shard and in total."""
        assert self._input is not None
        return RunProgress(
            run_id=workflow.info().workflow_id,
            plan_id=self._input.plan_id,
            version=self._input.version,
            status=self._status,
            shards=len(self._per_shard),
            totals=self._totals(),
            per_shard=[self._shards[k] for k in sorted(self._shards)],
            waits=merge_waits(w for k in sorted(self._shards) for w in self._shards[k].waits),
        )

    # --- helpers ----------------------------------------------------------------------------

    def _shard_limit(self, plan: Plan) -> int:
        """Shards running at once; every shard of an event-triggered run lives as long as
        its window, so all of them."""
        assert self._input is not None
        if listening_entry(plan) is not None:
            return plan.shards
        return self._input.options.max_parallel_shards

    @staticmethod
    def _everyone_may_enter(plan: Plan, data: PlanRunInput) -> bool:
        """An event-triggered run with no audience to check entries against."""
        return (
            listening_entry(plan) is not None
            and isinstance(plan.audience, AllAudience)
            and not data.audience.preloaded
            and data.audience.saved is None
        )

    def _entry_fields(self, plan: Plan, data: PlanRunInput, run_id: str, k: int) -> dict[str, Any]:
        """ShardState fields of an event-triggered run: the window and who may enter."""
        entry = listening_entry(plan)
        if entry is None:
            return {}
        return {
            "entries_until": entry.window.end if entry.window is not None else None,
            "eligible_key": (
                None if self._everyone_may_enter(plan, data) else run_audience_key(run_id, k)
            ),
        }

    def _totals(self) -> Counters:
        # event-triggered shards count their own entries
        by_event = self._plan is not None and listening_entry(self._plan) is not None
        totals = Counters(targeted=sum(self._per_shard))
        for k in sorted(self._shards):
            part = self._shards[k].counters
            add_shard(totals, part if by_event else part.model_copy(update={"targeted": 0}))
        totals.cancelled += self._unstarted_cancelled
        return totals

    def _set_status(self, status: RunStatus) -> None:
        self._status = status
        search.upsert_status(status.value)
        self._show_details()

    def _show_details(self) -> None:
        """The run's live line in the UI: what it did so far and where its users stand."""
        summaries = [self._shards[k] for k in sorted(self._shards)]
        workflow.set_current_details(
            details_line(self._status, self._totals(), node_totals(summaries))
        )


def _failure_text(error: BaseException) -> str:
    """A child's failure down to its root cause ("Activity task failed: Redis lost ..."):
    the outer messages alone do not say what went wrong."""
    messages: list[str] = []
    cause = error.__cause__
    while isinstance(cause, FailureError) and len(messages) < 4:
        messages.append(cause.message)
        cause = cause.__cause__
    return ": ".join(messages) or str(error)
