"""``wait_for_event``: the cohort waits up to its window; users whose event arrives move on at
once (in batches, one per events signal handled) along ``on_event``; when the window closes,
everyone left goes along ``on_timeout``."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from pydantic import JsonValue

    from journeys.contracts.journey import CatchEventsInput, CloseWaitInput
    from journeys.contracts.shard import Cohort
    from journeys.events import JourneyEvent
    from journeys.plan.steps import WaitForEventStep

from workflows import activity_calls as calls
from workflows.context import ShardContext
from workflows.inbox import BATCH_EVENTS, next_batch, too_big_to_carry

BOUNDED = "bounded-wait-inbox"
"""Patch: a waiting cohort's events go to ``catch_events`` in bounded batches, and a
continue-as-new carries no more of them than :func:`too_big_to_carry` allows."""


async def run(ctx: ShardContext, cohort: Cohort, step: WaitForEventStep) -> bool:
    """Wait for the event or the window's end; False if cut short (state kept)."""
    state = ctx.state
    if cohort.wake_at is None:
        cohort.wake_at = workflow.now() + step.within  # from now on the signal feeds inbox
        ctx.count_arrival(cohort)  # on arrival: the users waiting here count as entered
    prefix = f"{cohort.id}>{cohort.node}"
    caught_key = ctx.key(f"{prefix}.caught")
    workflow.set_current_details(
        f"{ctx.where} · {cohort.size} users at {cohort.node} waiting for {step.event}"
    )
    while True:
        reached = await _next_arrivals(ctx, cohort)
        if (
            ctx.draining
            and not state.cancelled
            and too_big_to_carry(cohort.inbox)
            and workflow.patched(BOUNDED)
        ):
            await _catch(ctx, cohort, step, prefix=prefix, caught_key=caught_key)
            continue  # until what is left can be carried
        if ctx.stopping():
            return False
        if cohort.inbox:
            await _catch(ctx, cohort, step, prefix=prefix, caught_key=caught_key)
            continue
        if reached:
            break
    out_id = f"{prefix}.timeout"
    closed = await calls.close_wait(
        CloseWaitInput(
            cohort_key=cohort.key,
            caught_key=caught_key,
            exited_key=ctx.exited_key,
            out_key=ctx.key(out_id),
        ),
        summary=f"{ctx.where} · close {cohort.node}",
    )
    ctx.count_arrival(cohort)  # a cohort armed before arrivals were counted
    counters = ctx.node(cohort.node)
    counters.exited += closed.exited
    state.counters.exited += closed.exited
    counters.routes["timeout"] = counters.routes.get("timeout", 0) + closed.timed_out
    ctx.forward(cohort_id=out_id, node=step.on_timeout, key=ctx.key(out_id), size=closed.timed_out)
    return True


async def _next_arrivals(ctx: ShardContext, cohort: Cohort) -> bool:
    """Wait for events, the window's end, a cancel or a due continue-as-new; True once the
    window has closed."""
    assert cohort.wake_at is not None
    left = cohort.wake_at - workflow.now()
    if left <= timedelta(0) or ctx.state.options.dry_run:  # a dry run hears no events
        return True
    try:
        await workflow.wait_condition(
            lambda: bool(cohort.inbox) or ctx.stopping() or ctx.suggested(),
            timeout=left,
            timeout_summary=f"window of {cohort.node} · {cohort.size} users",
        )
    except TimeoutError:
        return True
    ctx.drain_due()
    return False


def _entry_values(step: WaitForEventStep, events: list[JourneyEvent]) -> dict[str, list[JsonValue]]:
    """Keyed wait: user -> the ``match_entry`` values of the events that arrived."""
    assert step.match_entry is not None
    values: dict[str, list[JsonValue]] = {}
    for event in events:
        if step.match_entry in event.props:
            values.setdefault(event.user_id, []).append(event.props[step.match_entry])
    return values


async def _catch(
    ctx: ShardContext, cohort: Cohort, step: WaitForEventStep, *, prefix: str, caught_key: str
) -> None:
    """Move the users of the oldest events on, as one batch cohort."""
    events = next_batch(cohort.inbox, most=BATCH_EVENTS)
    if len(events) < len(cohort.inbox) and not workflow.patched(BOUNDED):
        events = list(cohort.inbox)  # history from before the bound: all at once
    batch_id = f"{prefix}.e{cohort.caught}"
    keyed = step.match_entry is not None and ctx.event_entry is not None  # has an entry event
    out = await calls.catch_events(
        CatchEventsInput(
            cohort_key=cohort.key,
            caught_key=caught_key,
            batch_key=ctx.key(batch_id),
            exited_key=ctx.exited_key,
            users=sorted({event.user_id for event in events}),
            run_id=ctx.state.run_id if keyed else None,
            match_entry=step.match_entry if keyed else None,
            values=_entry_values(step, events) if keyed else {},
        ),
        summary=f"{ctx.where} · {len(events)} {step.event} at {cohort.node}",
    )
    del cohort.inbox[: len(events)]  # kept until done: a continue-as-new carries them
    if out.caught:
        cohort.caught += 1
        cohort.left += out.caught
        counters = ctx.node(cohort.node)
        counters.routes["event"] = counters.routes.get("event", 0) + out.caught
        ctx.forward(cohort_id=batch_id, node=step.on_event, key=ctx.key(batch_id), size=out.caught)
        await ctx.reports.send()
