"""The ``send`` node: page a cohort through a channel, then queue retries and movers-on."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from journeys.names import cohort_key
    from journeys.plan.steps import SendStep
    from workflows.models import Cohort, DeliverPageInput, DeliverPageOutput

from workflows.shard_base import ShardBase

PAGE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=60),
    maximum_attempts=20,
)


class SendHandler(ShardBase):
    """Handles ``send`` steps for the shard interpreter."""

    async def _send(self, cohort: Cohort, step: SendStep) -> bool:
        """Page through ``cohort``; False if it stopped early (continue-as-new or cancel)."""
        limits = self.s.plan.limits
        pages = -(-cohort.size // limits.page_size)
        retry_id = f"{cohort.node}.retry.{cohort.attempt}"
        passed_id = f"{cohort.node}.passed.{cohort.attempt}"
        retried = 0
        tasks: list[asyncio.Task[DeliverPageOutput]] = []

        while cohort.next_page < pages:
            await workflow.wait_condition(
                lambda: (
                    self._inflight < limits.concurrency and (not self.s.paused or self.s.cancelled)
                )
            )
            if self.s.cancelled or self._should_continue_as_new():
                break
            page = cohort.next_page
            cohort.next_page += 1
            tasks.append(asyncio.create_task(self._page(cohort, step, page, retry_id, passed_id)))
        await workflow.wait_condition(lambda: self._inflight == 0)
        for task in tasks:
            if task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
            retried += task.result().retry
        if cohort.next_page < pages:
            return False
        await self._after_pass(
            cohort, step, retried=retried, retry_id=retry_id, passed_id=passed_id
        )
        return True

    async def _page(
        self, cohort: Cohort, step: SendStep, page: int, retry_id: str, passed_id: str
    ) -> DeliverPageOutput:
        self._inflight += 1
        self._pages_this_run += 1
        try:
            limits = self.s.plan.limits
            result: DeliverPageOutput = await workflow.execute_activity(
                "deliver_page",
                DeliverPageInput(
                    run_id=self.s.run_id,
                    plan_id=self.s.plan.id,
                    shard=self.s.shard,
                    shards=self.s.shards,
                    node=cohort.node,
                    channel=step.channel,
                    template=step.template,
                    vars=dict(step.vars),
                    cohort_key=cohort.key,
                    page=page,
                    page_size=limits.page_size,
                    attempt=cohort.attempt,
                    max_attempts=limits.retry.attempts,
                    retry_key=cohort_key(self.s.run_id, self.s.shard, retry_id),
                    passed_key=(
                        cohort_key(self.s.run_id, self.s.shard, passed_id) if step.next else None
                    ),
                    rate_scope=self.s.run_id if limits.rate is not None else None,
                ),
                result_type=DeliverPageOutput,
                start_to_close_timeout=timedelta(minutes=10),
                heartbeat_timeout=self.s.options.page_heartbeat_timeout,
                retry_policy=PAGE_RETRY,
                summary=f"{self._where()} · send {cohort.node} · page {page + 1}",
            )
            self.s.counters.add(result.counters)
            self._node(cohort.node).add(result.counters)
            workflow.set_current_details(
                f"{self._where()} · send {cohort.node} · page {page + 1} · "
                f"{self.s.counters.delivered} delivered"
            )
            await self._report(self._status())
            return result
        finally:
            self._inflight -= 1

    async def _after_pass(
        self, cohort: Cohort, step: SendStep, *, retried: int, retry_id: str, passed_id: str
    ) -> None:
        """Queue the retry cohort (with backoff) and the next node's cohort of this pass."""
        retry = self.s.plan.limits.retry
        if retried:
            key = cohort_key(self.s.run_id, self.s.shard, retry_id)
            size = await self._cohort_size(key)
            backoff = retry.backoff * (2 ** (cohort.attempt - 1))
            self.s.cohorts.append(
                Cohort(
                    id=retry_id,
                    node=cohort.node,
                    key=key,
                    size=size,
                    attempt=cohort.attempt + 1,
                    not_before=workflow.now() + backoff,
                )
            )
        if step.next:
            key = cohort_key(self.s.run_id, self.s.shard, passed_id)
            size = await self._cohort_size(key)
            if size:
                self.s.cohorts.append(Cohort(id=passed_id, node=step.next, key=key, size=size))
        self.s.counters.retrying = sum(c.size for c in self.s.cohorts if c.attempt > 1)
        await self._report(self._status(), force=True)
