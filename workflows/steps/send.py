"""``send`` and ``webhook``: page a cohort through a channel, retry the users whose delivery
failed (as the same cohort, after backoff), and pass the rest on."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from journeys.contracts.controls import Controls
    from journeys.contracts.pages import DeferredGroup, DeliverPageInput, DeliverPageOutput
    from journeys.contracts.shard import Cohort, HeldGroup
    from journeys.delivery_controls import controls_for
    from journeys.plan.steps import SendStep, WebhookStep

from workflows import activity_calls as calls
from workflows import dead_keys
from workflows.context import ShardContext


async def run(ctx: ShardContext, cohort: Cohort, step: SendStep | WebhookStep) -> bool:
    """Deliver to ``cohort`` pass by pass; False if it stopped early (continue-as-new or
    cancel) with its state in ``cohort``."""
    state = ctx.state
    controls = (
        controls_for(state.plan, state.policy, run_id=state.run_id, channel=step.channel)
        if state.delivery_controls and not state.options.dry_run
        else None  # a run launched before the gate existed goes on as it was launched
    )
    while True:
        if cohort.not_before is not None and cohort.not_before > workflow.now():
            summary = (
                f"backoff before pass {cohort.attempt}"
                if cohort.attempt > 1
                else f"arbitration window · {cohort.size} bids"
                if cohort.confirm
                else f"quiet hours · {cohort.size} users held"
            )
            if not await ctx.sleep_until(cohort.not_before, summary=summary):
                return False
        await workflow.wait_condition(lambda: not state.paused or ctx.stopping())
        if ctx.stopping():
            return False
        outs = await ctx.pages(cohort, lambda page: _page(ctx, cohort, step, controls, page))
        if outs is None:
            return False
        if cohort.attempt == 1 and not cohort.arrival_counted:
            cohort.arrival_counted = True  # a cohort back from quiet hours came in before
            ctx.node(cohort.node).entered += cohort.size
        again = await _after_pass(ctx, cohort, step)
        if not again or ctx.drain_due():
            return not again


def _pass_ids(cohort: Cohort) -> tuple[str, str]:
    """(retry, passed) cohort ids of this pass; deterministic, so retried pages rewrite the
    same keys."""
    base = f"{cohort.id}>{cohort.node}"
    return f"{base}.r{cohort.attempt}", f"{base}.p{cohort.attempt}"


def _deferred_prefix(cohort: Cohort) -> str:
    """Cohort id prefix of the users this pass holds for quiet hours (``.{release}`` each)."""
    return f"{cohort.id}>{cohort.node}.q{cohort.attempt}"


async def _page(
    ctx: ShardContext,
    cohort: Cohort,
    step: SendStep | WebhookStep,
    controls: Controls | None,
    page: int,
) -> DeliverPageOutput:
    state, limits = ctx.state, ctx.plan.limits
    retry_id, passed_id = _pass_ids(cohort)
    result = await calls.deliver_page(
        DeliverPageInput(
            run_id=state.run_id,
            plan_id=state.plan.id,
            shard=state.shard,
            shards=state.shards,
            node=cohort.node,
            channel=step.channel,
            template=step.template,
            vars=dict(step.vars),
            cohort_key=cohort.key,
            state_key=state.state_key,
            page=page,
            timezone=state.plan.timezone,
            page_size=limits.page_size,
            attempt=cohort.attempt,
            max_attempts=limits.retry.attempts,
            retry_key=ctx.key(retry_id),
            passed_key=ctx.key(passed_id) if step.next else None,
            rate_scope=state.run_id if limits.rate is not None else None,
            exited_key=ctx.page_exit_key,
            exit_rules=[c.rule for c in state.plan.exit_criteria if c.rule is not None],
            now=workflow.now(),
            controls=controls,
            deferred_prefix=_deferred_prefix(cohort),
            confirm=cohort.confirm,
            dry_run=state.options.dry_run,
        ),
        heartbeat=state.options.page_heartbeat_timeout,
        summary=f"{ctx.where} · {step.type} {cohort.node} · page {page + 1}",
    )
    state.counters.add(result.counters)
    ctx.node(cohort.node).add(result.counters)
    cohort.retried += result.retry
    _hold(ctx, cohort, result)
    if step.next is None:
        state.counters.completed += result.passed
    workflow.set_current_details(
        f"{ctx.where} · {step.type} {cohort.node} · page {page + 1} · "
        f"{state.counters.delivered} delivered"
    )
    await ctx.reports.send()
    return result


async def _after_pass(ctx: ShardContext, cohort: Cohort, step: SendStep | WebhookStep) -> bool:
    """Pass the delivered on; True if some users wait for another pass (the cohort now stands
    for them, with its backoff)."""
    state, retry = ctx.state, ctx.plan.limits.retry
    retry_id, passed_id = _pass_ids(cohort)
    retry_size = 0
    # counted page by page in the cohort: a pass cut by continue-as-new has only its last
    # pages' outputs here
    if cohort.retried:
        retry_size = await ctx.cohort_size(ctx.key(retry_id))
    if step.next:
        size = await ctx.cohort_size(ctx.key(passed_id))
        ctx.forward(cohort_id=passed_id, node=step.next, key=ctx.key(passed_id), size=size)
    _release_held(ctx, cohort)
    if retry_size:
        backoff = retry.backoff * (2 ** (cohort.attempt - 1))
        done_key = cohort.key
        cohort.key, cohort.size, cohort.next_page = ctx.key(retry_id), retry_size, 0
        dead_keys.bury(ctx, done_key)  # the pass read its last page from the old key
        cohort.attempt += 1
        cohort.not_before = workflow.now() + backoff
    state.counters.retrying = sum(c.size for c in state.cohorts if c.attempt > 1)
    if not retry_size:
        state.counters.retrying -= cohort.size if cohort.attempt > 1 else 0
    await ctx.reports.pass_ended()
    return retry_size > 0


def _hold(ctx: ShardContext, cohort: Cohort, result: DeliverPageOutput) -> None:
    """A page's bids come back to confirm one window after they were placed, as a cohort of
    their own; its users held for quiet hours join the pass's groups (one per release
    time), which come back once the pass is over."""
    for group in result.deferred:
        if group.confirm:
            ctx.state.cohorts.append(_back(ctx, cohort, group, confirm=True))
            continue
        known = next((h for h in cohort.held if h.cohort == group.cohort), None)
        if known is None:
            cohort.held.append(
                HeldGroup(cohort=group.cohort, release=group.release, users=group.users)
            )
        else:
            known.users += group.users


def _release_held(ctx: ShardContext, cohort: Cohort) -> None:
    """Users held back come back to this node as one cohort per release time, each behind
    its own timer (``not_before``), carried across continue-as-new like any."""
    for group in sorted(cohort.held, key=lambda g: (g.release, g.cohort)):
        ctx.state.cohorts.append(_back(ctx, cohort, group))
    cohort.held = []
    cohort.retried = 0


def _back(
    ctx: ShardContext, cohort: Cohort, group: HeldGroup | DeferredGroup, *, confirm: bool = False
) -> Cohort:
    """Held users of ``cohort`` back at its node at their release (counted there already)."""
    return Cohort(
        id=group.cohort,
        node=cohort.node,
        key=ctx.key(group.cohort),
        size=group.users,
        not_before=group.release,
        arrival_counted=True,
        confirm=confirm,
    )
