"""Events that reach a shard: the ``events`` signal sorts them into inboxes (nothing else
happens in the handler), and two loops act on them: exits mark users so every node skips
them, goal events become conversions."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from journeys.contracts.journey import (
        MarkExitedInput,
        MarkExitedOutput,
        RecordConversionsInput,
        RecordConversionsOutput,
    )
    from journeys.events import EventBatch, JourneyEvent
    from journeys.names import run_audience_key
    from journeys.plan.entry import EventEntry
    from journeys.plan.steps import AbSplitStep, SendStep, WaitForEventStep, WebhookStep
    from journeys.rule_eval import property_matches

from workflows.inbox import next_batch, too_big_to_carry
from workflows.shard_base import SMALL_RETRY, ShardBase

BATCH_EVENTS = 1_000
"""Exit or goal events per activity."""


class JourneyEventsHandler(ShardBase):
    """Sorts incoming events and runs the exit and goal loops of a shard."""

    def __init__(self) -> None:
        super().__init__()
        self._events_busy = 0

    def _sort_events(self, batch: EventBatch) -> None:
        plan, now = self.s.plan, workflow.now()
        entry = plan.entry
        for event in batch.events:
            if (
                isinstance(entry, EventEntry)
                and not self.s.entries_closed
                and event.name == entry.event
                and property_matches(entry.where, event.props, now=now)
            ):
                self.s.entry_inbox.append(event)
            if any(
                c.event == event.name and property_matches(c.where, event.props, now=now)
                for c in plan.exit_criteria
            ):
                self.s.exit_inbox.append(event)
            if plan.goal is not None and event.name == plan.goal.event:
                self.s.goal_inbox.append(event)
            for cohort in self.s.cohorts:
                step = plan.steps[cohort.node]
                if (
                    isinstance(step, WaitForEventStep)
                    and cohort.wake_at is not None  # armed: the users are waiting now
                    and step.event == event.name
                    and property_matches(step.where, event.props, now=now)
                ):
                    cohort.inbox.append(event)

    def _due(self, inbox: list[JourneyEvent]) -> bool:
        """Work off ``inbox`` now; while a continue-as-new is due, only what is too much
        to carry (the rest goes along in the next run's input)."""
        if not inbox:
            return False
        return not self._draining or too_big_to_carry(inbox)

    async def _exit_loop(self) -> None:
        """Mark the users of exit events; nodes skip marked users from then on."""
        while True:
            await workflow.wait_condition(lambda: self._due(self.s.exit_inbox))
            events = next_batch(self.s.exit_inbox, most=BATCH_EVENTS)
            self._events_busy += 1
            try:
                await workflow.execute_activity(
                    "mark_exited",
                    MarkExitedInput(
                        exited_key=self.exited_key, users=sorted({e.user_id for e in events})
                    ),
                    result_type=MarkExitedOutput,
                    start_to_close_timeout=timedelta(seconds=60),
                    retry_policy=SMALL_RETRY,
                    summary=f"{self._where()} · {len(events)} exit events",
                )
                del self.s.exit_inbox[: len(events)]
            finally:
                self._events_busy -= 1

    async def _goal_loop(self) -> None:
        """Record conversions of goal events, counted in all and per arm."""
        goal = self.s.plan.goal
        if goal is None:
            return
        steps = self.s.plan.steps
        sends = sorted(n for n, s in steps.items() if isinstance(s, SendStep | WebhookStep))
        splits = sorted(n for n, s in steps.items() if isinstance(s, AbSplitStep))
        while True:
            await workflow.wait_condition(lambda: self._due(self.s.goal_inbox))
            events = next_batch(self.s.goal_inbox, most=BATCH_EVENTS)
            self._events_busy += 1
            try:
                assert self.s.entered_at is not None
                out = await workflow.execute_activity(
                    "record_conversions",
                    RecordConversionsInput(
                        run_id=self.s.run_id,
                        audience_key=run_audience_key(self.s.run_id, self.s.shard),
                        goal=goal,
                        entered_at=self.s.entered_at,
                        events=events,
                        send_nodes=sends,
                        split_nodes=splits,
                        now=workflow.now(),
                        by_entry=isinstance(self.s.plan.entry, EventEntry),
                    ),
                    result_type=RecordConversionsOutput,
                    start_to_close_timeout=timedelta(seconds=60),
                    retry_policy=SMALL_RETRY,
                    summary=f"{self._where()} · {len(events)} {goal.event}",
                )
                del self.s.goal_inbox[: len(events)]
                self._count_conversions(out, splits)
            finally:
                self._events_busy -= 1

    def _count_conversions(self, out: RecordConversionsOutput, splits: list[str]) -> None:
        self.s.counters.converted += out.converted
        self.s.counters.value += out.value
        for arm in sorted(out.by_arm):
            for node in splits:
                step = self.s.plan.steps[node]
                if isinstance(step, AbSplitStep) and any(a.name == arm for a in step.arms):
                    counters = self._node(node)
                    counters.conversions[arm] = counters.conversions.get(arm, 0) + out.by_arm[arm]
                    break
