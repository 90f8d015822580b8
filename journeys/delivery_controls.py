"""Compile a send step's delivery controls from its plan and the workspace policy.

Pure and deterministic (workflow code calls it): the same plan, policy and channel always
give the same :class:`Controls`.
"""

from __future__ import annotations

from datetime import timedelta

from journeys.contracts.controls import CapRule, Controls, QuietRule, SpendRule
from journeys.names import budget_key, quota_key
from journeys.plan.limits import Cap, QuietHours
from journeys.plan.models import Plan
from journeys.policy import Policy


def controls_for(plan: Plan, policy: Policy | None, *, run_id: str, channel: str) -> Controls:
    """What every page of a send through ``channel`` in run ``run_id`` is checked against."""
    policy = policy or Policy()
    limits = plan.limits
    caps: list[CapRule] = []
    if limits.plan_cap is not None:
        cap = limits.plan_cap
        caps.append(CapRule(max=cap.max, per=cap.per, plan=plan.id, reason="plan_cap"))
    caps += [_cap(c) for c in [*limits.caps, *policy.caps] if c.channel in (None, channel)]
    budget = next((b for b in limits.budget if b.channel == channel), None)
    quota = next((q for q in policy.quotas if q.channel == channel), None)
    return Controls(
        plan_id=plan.id,
        transactional=plan.transactional,
        caps=caps,
        quiet=_quiet(plan, policy, channel),
        budget=None
        if budget is None
        else SpendRule(
            key=budget_key(run_id, channel),
            max_messages=budget.max_messages,
            max_cost=budget.max_cost,
            reason="budget",
        ),
        quota=None
        if quota is None
        else SpendRule(
            key=quota_key(channel),
            max_messages=quota.max_messages,
            max_cost=quota.max_cost,
            reason="quota",
        ),
        history=policy.history,
        priority=limits.priority,
        # only capped marketing sends compete for a slot
        arbitration=policy.arbitration if caps and not plan.transactional else timedelta(0),
    )


def _cap(cap: Cap) -> CapRule:
    reason = "cap" if cap.channel is None else "channel_cap"
    return CapRule(max=cap.max, per=cap.per, channel=cap.channel, reason=reason)


def _quiet(plan: Plan, policy: Policy, channel: str) -> QuietRule | None:
    """The plan's quiet hours, else the policy's for the channel, else its catch-all."""
    rule: QuietHours | None = plan.limits.quiet_hours
    if rule is None:
        by_channel = {q.channel: q for q in policy.quiet_hours}
        rule = by_channel.get(channel, by_channel.get(None))
    if rule is None:
        return None
    return QuietRule(
        start=rule.start,
        end=rule.end,
        mode=rule.mode,
        zone=plan.timezone if rule.timezone == "plan" else None,
        fallback=policy.fallback_zone or plan.timezone,
        max_defer=rule.max_defer,
    )
