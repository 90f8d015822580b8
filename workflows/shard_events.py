"""Events that reach a shard: the ``events`` signal sorts them into inboxes (nothing else
happens in the handler), and two loops act on them: exits mark users so every node skips
them, goal events become conversions."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from journeys.contracts.journey import (
        MarkExitedInput,
        RecordConversionsInput,
        RecordConversionsOutput,
    )
    from journeys.events import EventBatch, JourneyEvent
    from journeys.names import run_audience_key
    from journeys.plan.steps import AbSplitStep, SendStep, WaitForEventStep, WebhookStep
    from journeys.rule_eval import property_matches

from workflows import activity_calls as calls
from workflows.context import ShardContext
from workflows.inbox import BATCH_EVENTS, next_batch, too_big_to_carry


def sort_events(ctx: ShardContext, batch: EventBatch) -> None:
    """Put each event in every inbox it concerns: entries, exits, goals, waiting cohorts."""
    state, plan, now = ctx.state, ctx.plan, workflow.now()
    entry = ctx.event_entry
    for event in batch.events:
        if (
            entry is not None
            and not state.entries_closed
            and event.name == entry.event
            and property_matches(entry.where, event.props, now=now)
        ):
            state.entry_inbox.append(event)
        if any(
            c.event == event.name and property_matches(c.where, event.props, now=now)
            for c in plan.exit_criteria
        ):
            state.exit_inbox.append(event)
        if plan.goal is not None and event.name == plan.goal.event:
            state.goal_inbox.append(event)
        for cohort in state.cohorts:
            step = plan.steps[cohort.node]
            if (
                isinstance(step, WaitForEventStep)
                and cohort.wake_at is not None  # armed: the users are waiting now
                and step.event == event.name
                and property_matches(step.where, event.props, now=now)
            ):
                cohort.inbox.append(event)


def _due(ctx: ShardContext, inbox: list[JourneyEvent]) -> bool:
    """Work off ``inbox`` now; while a continue-as-new is due, only what is too much to carry
    (the rest goes along in the next run's input)."""
    if not inbox:
        return False
    return not ctx.draining or too_big_to_carry(inbox)


async def exit_loop(ctx: ShardContext) -> None:
    """Mark the users of exit events; nodes skip marked users from then on."""
    state = ctx.state
    while True:
        await workflow.wait_condition(lambda: _due(ctx, state.exit_inbox))
        events = next_batch(state.exit_inbox, most=BATCH_EVENTS)
        ctx.events_busy += 1
        try:
            await calls.mark_exited(
                MarkExitedInput(
                    exited_key=ctx.exited_key, users=sorted({e.user_id for e in events})
                ),
                summary=f"{ctx.where} · {len(events)} exit events",
            )
            del state.exit_inbox[: len(events)]
        finally:
            ctx.events_busy -= 1


async def goal_loop(ctx: ShardContext) -> None:
    """Record conversions of goal events, counted in all and per arm."""
    state, goal = ctx.state, ctx.plan.goal
    if goal is None:
        return
    steps = ctx.plan.steps
    sends = sorted(n for n, s in steps.items() if isinstance(s, SendStep | WebhookStep))
    splits = sorted(n for n, s in steps.items() if isinstance(s, AbSplitStep))
    while True:
        await workflow.wait_condition(lambda: _due(ctx, state.goal_inbox))
        events = next_batch(state.goal_inbox, most=BATCH_EVENTS)
        ctx.events_busy += 1
        try:
            assert state.entered_at is not None
            out = await calls.record_conversions(
                RecordConversionsInput(
                    run_id=state.run_id,
                    audience_key=run_audience_key(state.run_id, state.shard),
                    goal=goal,
                    entered_at=state.entered_at,
                    events=events,
                    send_nodes=sends,
                    split_nodes=splits,
                    now=workflow.now(),
                    by_entry=ctx.event_entry is not None,
                ),
                summary=f"{ctx.where} · {len(events)} {goal.event}",
            )
            del state.goal_inbox[: len(events)]
            _count_conversions(ctx, out, splits)
        finally:
            ctx.events_busy -= 1


def _count_conversions(ctx: ShardContext, out: RecordConversionsOutput, splits: list[str]) -> None:
    counters = ctx.state.counters
    counters.converted += out.converted
    counters.value += out.value
    for arm in sorted(out.by_arm):
        for node in splits:
            step = ctx.plan.steps[node]
            if isinstance(step, AbSplitStep) and any(a.name == arm for a in step.arms):
                arms = ctx.node(node).conversions
                arms[arm] = arms.get(arm, 0) + out.by_arm[arm]
                break
