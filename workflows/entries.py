"""Entries of event-triggered plans: entry events are buffered by the ``events`` signal and
admitted as one cohort at most every ``flush_every`` (sooner once ``flush_size`` users wait),
so one timer and one activity serve many users. The interval counts from the last admission:
when admitting takes longer than the interval (under load), the next batch goes at once
instead of waiting a full interval more. The loop runs until the entry window closes."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import datetime

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from journeys.contracts.journey import AdmitEntriesInput
    from journeys.contracts.shard import Cohort
    from journeys.plan.entry import EventEntry

from workflows import activity_calls as calls
from workflows import dead_keys
from workflows.context import ShardContext
from workflows.inbox import next_batch, too_big_to_carry


def entries_done(ctx: ShardContext) -> bool:
    """No more users will enter: the plan has no event entry, or its window closed."""
    return ctx.event_entry is None or ctx.state.entries_closed


async def entry_loop(ctx: ShardContext) -> None:
    """Admit buffered entry events as cohorts at the plan's first step."""
    state, entry = ctx.state, ctx.event_entry
    if entry is None:
        return
    flushed_at: datetime | None = None
    while not state.entries_closed:
        await _until(ctx, lambda: bool(state.entry_inbox), state.entries_until)
        if ctx.draining:
            await _admit_backlog(ctx, entry)
            return
        if state.cancelled or _past(state.entries_until):
            state.entries_closed = True
            state.entry_inbox.clear()  # after the window: nobody enters
            return
        flush_at = (flushed_at or workflow.now()) + entry.flush_every
        if state.entries_until is not None:
            flush_at = min(flush_at, state.entries_until)
        await _until_flush(ctx, entry, flush_at)
        if ctx.draining:
            await _admit_backlog(ctx, entry)
            return
        if state.entry_inbox:
            flushed_at = workflow.now()
            await _admit(ctx, entry)
        ctx.drain_due()


async def _until_flush(ctx: ShardContext, entry: EventEntry, flush_at: datetime) -> None:
    # Every signal wakes the workflow with a new now(): under load the batch goes with the
    # first signal past flush_at instead of the timer, which the server may fire up to a
    # second late.
    state = ctx.state
    await _until(
        ctx, lambda: len(state.entry_inbox) >= entry.flush_size or _past(flush_at), flush_at
    )


async def _until(ctx: ShardContext, ready: Callable[[], bool], deadline: datetime | None) -> None:
    """Wait for ``ready()``, ``deadline``, a cancel or a due continue-as-new."""

    def done() -> bool:
        return bool(ready()) or ctx.stopping() or ctx.suggested()

    if deadline is None:
        await workflow.wait_condition(done)
    elif deadline > workflow.now():
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(
                done, timeout=deadline - workflow.now(), timeout_summary="entries"
            )
    ctx.drain_due()


def _past(moment: datetime | None) -> bool:
    return moment is not None and workflow.now() >= moment


async def _admit_backlog(ctx: ShardContext, entry: EventEntry) -> None:
    """Before a continue-as-new: admit waiting events until what is left is small, so the
    next run's input carries cohorts (keys), not a flood of events."""
    while too_big_to_carry(ctx.state.entry_inbox) and not ctx.state.cancelled:
        await _admit(ctx, entry)


async def _admit(ctx: ShardContext, entry: EventEntry) -> None:
    state = ctx.state
    events = next_batch(state.entry_inbox, most=entry.flush_size)
    batch = f"in{state.entry_batches}"
    key = ctx.key(batch)
    collecting = dead_keys.collecting(ctx)
    drop_keys = list(state.dead_keys) if collecting else []
    drop_marks = [f"in{state.entry_batches - 1}"] if collecting and state.entry_batches else []
    ctx.events_busy += 1
    try:
        out = await calls.admit_entries(
            AdmitEntriesInput(
                run_id=state.run_id,
                shard=state.shard,
                batch=batch,
                cohort_key=key,
                state_key=state.state_key,
                entry=entry,
                events=events,
                live_keys=sorted({c.key for c in state.cohorts}),
                drop_keys=drop_keys,
                drop_marks=drop_marks,
                audience_key=state.eligible_key,
                exited_key=ctx.page_exit_key,
                timezone=state.plan.timezone,
                now=workflow.now(),
            ),
            summary=f"{ctx.where} · admit {len(events)} {entry.event}",
        )
    finally:
        ctx.events_busy -= 1
    del state.entry_inbox[: len(events)]
    del state.dead_keys[: len(drop_keys)]  # keys that died meanwhile wait for the next batch
    state.entry_batches += 1
    for reason in sorted(out.refused):
        label = f"entry: {reason}"
        state.counters.skipped[label] = state.counters.skipped.get(label, 0) + out.refused[reason]
    if out.admitted:
        state.last_entry_at = workflow.now()
        state.counters.targeted += out.admitted
        state.cohorts.append(
            Cohort(id=batch, node=state.plan.start_step, key=key, size=out.admitted)
        )
        await ctx.reports.send()
