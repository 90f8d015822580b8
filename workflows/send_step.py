"""The ``send`` and ``webhook`` nodes: page a cohort through a channel, retry the users whose
delivery failed (as the same cohort, after backoff), and pass the rest on."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from journeys.contracts.pages import DeliverPageInput, DeliverPageOutput
    from journeys.contracts.shard import Cohort
    from journeys.names import cohort_key
    from journeys.plan.steps import SendStep, WebhookStep

from workflows.shard_base import ShardBase

PAGE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=60),
    maximum_attempts=20,
)


class SendHandler(ShardBase):
    """Handles ``send`` and ``webhook`` steps for the shard interpreter."""

    async def _send(self, cohort: Cohort, step: SendStep | WebhookStep) -> bool:
        """Deliver to ``cohort`` pass by pass; False if it stopped early (continue-as-new or
        cancel) with its state in ``cohort``."""
        while True:
            if cohort.not_before is not None and cohort.not_before > workflow.now():
                summary = f"backoff before pass {cohort.attempt}"
                if not await self._sleep_until(cohort.not_before, summary=summary):
                    return False
            await workflow.wait_condition(
                lambda: not self.s.paused or self.s.cancelled or self._draining
            )
            if self.s.cancelled or self._draining:
                return False
            outs = await self._pages(cohort, lambda page: self._page(cohort, step, page))
            if outs is None:
                return False
            if cohort.attempt == 1:
                self._node(cohort.node).entered += cohort.size
            again = await self._after_pass(cohort, step, outs)
            if not again or self._drain_due():
                return not again

    def _keys(self, cohort: Cohort) -> tuple[str, str]:
        """(retry, passed) cohort keys of this pass; deterministic, so retried pages rewrite
        the same keys."""
        base = f"{cohort.id}>{cohort.node}"
        return (
            cohort_key(self.s.run_id, self.s.shard, f"{base}.r{cohort.attempt}"),
            cohort_key(self.s.run_id, self.s.shard, f"{base}.p{cohort.attempt}"),
        )

    async def _page(
        self, cohort: Cohort, step: SendStep | WebhookStep, page: int
    ) -> DeliverPageOutput:
        limits = self.s.plan.limits
        retry_key, passed_key = self._keys(cohort)
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
                retry_key=retry_key,
                passed_key=passed_key if step.next else None,
                rate_scope=self.s.run_id if limits.rate is not None else None,
                exited_key=self.page_exit_key,
                exit_rules=[c.rule for c in self.s.plan.exit_criteria if c.rule is not None],
                now=workflow.now(),
            ),
            result_type=DeliverPageOutput,
            start_to_close_timeout=timedelta(minutes=10),
            heartbeat_timeout=self.s.options.page_heartbeat_timeout,
            retry_policy=PAGE_RETRY,
            summary=f"{self._where()} · {step.type} {cohort.node} · page {page + 1}",
        )
        self.s.counters.add(result.counters)
        self._node(cohort.node).add(result.counters)
        if step.next is None:
            self.s.counters.completed += result.passed
        workflow.set_current_details(
            f"{self._where()} · {step.type} {cohort.node} · page {page + 1} · "
            f"{self.s.counters.delivered} delivered"
        )
        await self._report(self._status())
        return result

    async def _after_pass(
        self, cohort: Cohort, step: SendStep | WebhookStep, outs: list[DeliverPageOutput]
    ) -> bool:
        """Pass the delivered on; True if some users wait for another pass (the cohort now
        stands for them, with its backoff)."""
        retry = self.s.plan.limits.retry
        retry_key, passed_key = self._keys(cohort)
        pass_id = f"{cohort.id}>{cohort.node}.p{cohort.attempt}"
        retry_size = 0
        if sum(out.retry for out in outs):
            retry_size = await self._cohort_size(retry_key)
        if step.next:
            size = await self._cohort_size(passed_key)
            self._forward(cohort_id=pass_id, node=step.next, key=passed_key, size=size)
        if retry_size:
            backoff = retry.backoff * (2 ** (cohort.attempt - 1))
            cohort.key, cohort.size, cohort.next_page = retry_key, retry_size, 0
            cohort.attempt += 1
            cohort.not_before = workflow.now() + backoff
        self.s.counters.retrying = sum(c.size for c in self.s.cohorts if c.attempt > 1)
        if not retry_size:
            self.s.counters.retrying -= cohort.size if cohort.attempt > 1 else 0
        await self._report_pass()
        return retry_size > 0
