"""Entries of event-triggered plans: entry events are buffered by the ``events`` signal and
admitted as one cohort at most every ``flush_every`` (sooner once ``flush_size`` users wait),
so one timer and one activity serve many users. The interval counts from the last admission:
when admitting takes longer than the interval (under load), the next batch goes at once
instead of waiting a full interval more. The loop runs until the entry window closes."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import datetime, timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from journeys.contracts.journey import AdmitEntriesInput, AdmitEntriesOutput
    from journeys.contracts.shard import Cohort
    from journeys.names import cohort_key
    from journeys.plan.entry import EventEntry

from workflows.inbox import next_batch, too_big_to_carry
from workflows.journey_events import JourneyEventsHandler
from workflows.shard_base import SMALL_RETRY


class EntryHandler(JourneyEventsHandler):
    """Admits buffered entry events as cohorts at the plan's first step."""

    @property
    def _event_entry(self) -> EventEntry | None:
        entry = self.s.plan.entry
        return entry if isinstance(entry, EventEntry) else None

    def _entries_done(self) -> bool:
        return self._event_entry is None or self.s.entries_closed

    async def _entry_loop(self) -> None:
        entry = self._event_entry
        if entry is None:
            return
        flushed_at: datetime | None = None
        while not self.s.entries_closed:
            await self._until(lambda: bool(self.s.entry_inbox), self.s.entries_until)
            if self._draining:
                await self._admit_backlog(entry)
                return
            if self.s.cancelled or self._past(self.s.entries_until):
                self.s.entries_closed = True
                self.s.entry_inbox.clear()  # after the window: nobody enters
                return
            flush_at = (flushed_at or workflow.now()) + entry.flush_every
            if self.s.entries_until is not None:
                flush_at = min(flush_at, self.s.entries_until)
            await self._until_flush(entry, flush_at)
            if self._draining:
                await self._admit_backlog(entry)
                return
            if self.s.entry_inbox:
                flushed_at = workflow.now()
                await self._admit(entry)
            self._drain_due()

    async def _until_flush(self, entry: EventEntry, flush_at: datetime) -> None:
        # Every signal wakes the workflow with a new now(): under load the batch goes with the
        # first signal past flush_at instead of the timer, which the server may fire up to a
        # second late.
        await self._until(
            lambda: len(self.s.entry_inbox) >= entry.flush_size or self._past(flush_at), flush_at
        )

    async def _until(self, ready: Callable[[], bool], deadline: datetime | None) -> None:
        """Wait for ``ready()``, ``deadline``, a cancel or a due continue-as-new."""

        def done() -> bool:
            return bool(ready()) or self.s.cancelled or self._draining or self._suggested()

        if deadline is None:
            await workflow.wait_condition(done)
        elif deadline > workflow.now():
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    done, timeout=deadline - workflow.now(), timeout_summary="entries"
                )
        self._drain_due()

    def _past(self, moment: datetime | None) -> bool:
        return moment is not None and workflow.now() >= moment

    async def _admit_backlog(self, entry: EventEntry) -> None:
        """Before a continue-as-new: admit waiting events until what is left is small, so
        the next run's input carries cohorts (keys), not a flood of events."""
        while too_big_to_carry(self.s.entry_inbox) and not self.s.cancelled:
            await self._admit(entry)

    async def _admit(self, entry: EventEntry) -> None:
        events = next_batch(self.s.entry_inbox, most=entry.flush_size)
        batch = f"in{self.s.entry_batches}"
        key = cohort_key(self.s.run_id, self.s.shard, batch)
        self._events_busy += 1
        try:
            out = await workflow.execute_activity(
                "admit_entries",
                AdmitEntriesInput(
                    run_id=self.s.run_id,
                    shard=self.s.shard,
                    batch=batch,
                    cohort_key=key,
                    entry=entry,
                    events=events,
                    live_keys=sorted({c.key for c in self.s.cohorts}),
                    audience_key=self.s.eligible_key,
                    exited_key=self.page_exit_key,
                    timezone=self.s.plan.timezone,
                    now=workflow.now(),
                ),
                result_type=AdmitEntriesOutput,
                start_to_close_timeout=timedelta(seconds=60),
                retry_policy=SMALL_RETRY,
                summary=f"{self._where()} · admit {len(events)} {entry.event}",
            )
        finally:
            self._events_busy -= 1
        del self.s.entry_inbox[: len(events)]
        self.s.entry_batches += 1
        for reason in sorted(out.refused):
            label = f"entry: {reason}"
            self.s.counters.skipped[label] = (
                self.s.counters.skipped.get(label, 0) + out.refused[reason]
            )
        if out.admitted:
            self.s.last_entry_at = workflow.now()
            self.s.counters.targeted += out.admitted
            self.s.cohorts.append(
                Cohort(id=batch, node=self.s.plan.start_step, key=key, size=out.admitted)
            )
            await self._report(self._status())
