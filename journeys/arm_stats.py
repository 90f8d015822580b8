"""A/B arms compared: each arm's conversion rate with a 95% confidence interval, its lift
against the control arm and the p-value of a two-proportion z-test.

The numbers come from statsmodels (``proportion_confint`` with the Wilson score interval,
which stays inside [0, 1] and holds for small arms; ``proportions_ztest`` with the pooled
variance), not from formulas written here: docs/decisions.md says why. statsmodels is
imported where it is called: it costs 1.5 s, which every ``journeys`` command would pay.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, Field

CONFIDENCE = 0.95


class ArmCounts(BaseModel):
    """What an arm did: users assigned, and how many of them converted."""

    arm: str
    control: bool = False
    users: int = Field(ge=0)
    converted: int = Field(ge=0)


class ArmResult(BaseModel):
    """An arm's rate with its interval, and how it compares with the control arm."""

    arm: str
    control: bool
    users: int
    converted: int
    rate: float | None
    """Converted over users; None for an arm no one was assigned to."""
    ci_low: float | None
    ci_high: float | None
    lift: float | None = None
    """(rate - control rate) / control rate; None for the control, or when it converted none."""
    p_value: float | None = None
    """Two-sided, against the control arm; None where the test is undefined (an empty arm,
    or every user of both arms alike)."""


def compare_arms(arms: list[ArmCounts], *, confidence: float = CONFIDENCE) -> list[ArmResult]:
    """Each of ``arms`` with its interval and, beside a control arm, its lift and p-value."""
    control = next((a for a in arms if a.control), None)
    results = []
    for arm in arms:
        rate = arm.converted / arm.users if arm.users else None
        low, high = _interval(arm, confidence) if arm.users else (None, None)
        result = ArmResult(
            arm=arm.arm,
            control=arm.control,
            users=arm.users,
            converted=arm.converted,
            rate=rate,
            ci_low=low,
            ci_high=high,
        )
        if control is not None and arm is not control and arm.users and control.users:
            base = control.converted / control.users
            result.lift = (rate - base) / base if rate is not None and base else None
            result.p_value = two_proportion_p(arm, control)
        results.append(result)
    return results


def two_proportion_p(first: ArmCounts, second: ArmCounts) -> float | None:
    """The two-sided p-value of the pooled two-proportion z-test, None where undefined."""
    pooled = (first.converted + second.converted) / (first.users + second.users)
    if pooled in (0.0, 1.0):  # no variance: nobody (or everybody) converted in both
        return None
    from statsmodels.stats.proportion import proportions_ztest

    _, p = proportions_ztest([first.converted, second.converted], [first.users, second.users])
    value = float(p)
    return value if math.isfinite(value) else None


def _interval(arm: ArmCounts, confidence: float) -> tuple[float, float]:
    from statsmodels.stats.proportion import proportion_confint

    low, high = proportion_confint(arm.converted, arm.users, alpha=1 - confidence, method="wilson")
    rate = arm.converted / arm.users
    # the closed form's ends are exact at 0 and n successes; the float one misses by 1e-17
    return min(float(low), rate), max(float(high), rate)
