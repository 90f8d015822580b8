"""``wait_for_event`` nodes: the cohort waits up to its window; users whose event arrives
move on at once (in batches, one per events signal handled) along ``on_event``; when the
window closes, everyone left goes along ``on_timeout``."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from journeys.contracts.journey import (
        CatchEventsInput,
        CatchEventsOutput,
        CloseWaitInput,
        CloseWaitOutput,
    )
    from journeys.contracts.shard import Cohort
    from journeys.events import JourneyEvent
    from journeys.names import cohort_key
    from journeys.plan.entry import EventEntry
    from journeys.plan.steps import WaitForEventStep

from workflows.inbox import next_batch, too_big_to_carry
from workflows.journey_events import BATCH_EVENTS
from workflows.shard_base import SMALL_RETRY, ShardBase

BOUNDED = "bounded-wait-inbox"
"""Patch: a waiting cohort's events go to ``catch_events`` in bounded batches, and a
continue-as-new carries no more of them than :func:`too_big_to_carry` allows."""


class EventWaitHandler(ShardBase):
    """Handles ``wait_for_event`` steps for the shard interpreter."""

    async def _wait_for_event(self, cohort: Cohort, step: WaitForEventStep) -> bool:
        if cohort.wake_at is None:
            cohort.wake_at = workflow.now() + step.within  # from now on the signal feeds inbox
        prefix = f"{cohort.id}>{cohort.node}"
        caught_key = cohort_key(self.s.run_id, self.s.shard, f"{prefix}.caught")
        workflow.set_current_details(
            f"{self._where()} · {cohort.size} users at {cohort.node} waiting for {step.event}"
        )
        while True:
            reached = await self._next_arrivals(cohort)
            if (
                self._draining
                and not self.s.cancelled
                and too_big_to_carry(cohort.inbox)
                and workflow.patched(BOUNDED)
            ):
                await self._catch(cohort, step, prefix=prefix, caught_key=caught_key)
                continue  # until what is left can be carried
            if self.s.cancelled or self._draining:
                return False
            if cohort.inbox:
                await self._catch(cohort, step, prefix=prefix, caught_key=caught_key)
                continue
            if reached:
                break
        out_key = cohort_key(self.s.run_id, self.s.shard, f"{prefix}.timeout")
        closed = await workflow.execute_activity(
            "close_wait",
            CloseWaitInput(
                cohort_key=cohort.key,
                caught_key=caught_key,
                exited_key=self.exited_key,
                out_key=out_key,
            ),
            result_type=CloseWaitOutput,
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=SMALL_RETRY,
            summary=f"{self._where()} · close {cohort.node}",
        )
        counters = self._node(cohort.node)
        counters.entered += cohort.size
        counters.exited += closed.exited
        self.s.counters.exited += closed.exited
        counters.routes["timeout"] = counters.routes.get("timeout", 0) + closed.timed_out
        self._forward(
            cohort_id=f"{prefix}.timeout", node=step.on_timeout, key=out_key, size=closed.timed_out
        )
        return True

    async def _next_arrivals(self, cohort: Cohort) -> bool:
        """Wait for events, the window's end, a cancel or a due continue-as-new; True once
        the window has closed."""
        assert cohort.wake_at is not None
        left = cohort.wake_at - workflow.now()
        if left <= timedelta(0):
            return True
        try:
            await workflow.wait_condition(
                lambda: (
                    bool(cohort.inbox) or self.s.cancelled or self._draining or self._suggested()
                ),
                timeout=left,
                timeout_summary=f"window of {cohort.node} · {cohort.size} users",
            )
        except TimeoutError:
            return True
        self._drain_due()
        return False

    def _keyed(self, step: WaitForEventStep, events: list[JourneyEvent]) -> dict[str, Any]:
        """The fields of a keyed wait: only event-triggered entries have an entry event."""
        if step.match_entry is None or not isinstance(self.s.plan.entry, EventEntry):
            return {}
        values: dict[str, list[Any]] = {}
        for event in events:
            if step.match_entry in event.props:
                values.setdefault(event.user_id, []).append(event.props[step.match_entry])
        return {"run_id": self.s.run_id, "match_entry": step.match_entry, "values": values}

    async def _catch(
        self, cohort: Cohort, step: WaitForEventStep, *, prefix: str, caught_key: str
    ) -> None:
        """Move the users of the oldest events on, as one batch cohort."""
        events = next_batch(cohort.inbox, most=BATCH_EVENTS)
        if len(events) < len(cohort.inbox) and not workflow.patched(BOUNDED):
            events = list(cohort.inbox)  # history from before the bound: all at once
        batch_id = f"{prefix}.e{cohort.caught}"
        batch_key = cohort_key(self.s.run_id, self.s.shard, batch_id)
        out = await workflow.execute_activity(
            "catch_events",
            CatchEventsInput(
                cohort_key=cohort.key,
                caught_key=caught_key,
                batch_key=batch_key,
                exited_key=self.exited_key,
                users=sorted({event.user_id for event in events}),
                **self._keyed(step, events),
            ),
            result_type=CatchEventsOutput,
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=SMALL_RETRY,
            summary=f"{self._where()} · {len(events)} {step.event} at {cohort.node}",
        )
        del cohort.inbox[: len(events)]  # kept until done: a continue-as-new carries them
        if out.caught:
            cohort.caught += 1
            counters = self._node(cohort.node)
            counters.routes["event"] = counters.routes.get("event", 0) + out.caught
            self._forward(cohort_id=batch_id, node=step.on_event, key=batch_key, size=out.caught)
            await self._report(self._status())
