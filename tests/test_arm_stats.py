"""Arms compared with statsmodels: the two-proportion z-test against a published worked
example, the Wilson interval against its closed form, and the edge cases a small or empty
arm brings."""

from __future__ import annotations

import math

import pytest
from scipy.stats import chi2_contingency, norm

from journeys.arm_stats import ArmCounts, compare_arms, two_proportion_p


def test_the_z_test_matches_a_published_worked_example() -> None:
    # straightdraw.github.io/probstat (the z-proportion test, "Example: Voting"): Fulton 281
    # for, 192 against; Gwinnett 214 for, 229 against; z = 3.3683 from rounded proportions
    fulton = ArmCounts(arm="fulton", users=281 + 192, converted=281)
    gwinnett = ArmCounts(arm="gwinnett", users=214 + 229, converted=214, control=True)
    p = two_proportion_p(fulton, gwinnett)
    assert p is not None
    z = norm.isf(p / 2)
    assert abs(z - 3.3683) < 1e-3
    # the same test as a 2x2 chi-square without continuity correction: z squared
    chi2, chi_p, _, _ = chi2_contingency([[281, 192], [214, 229]], correction=False)
    assert math.isclose(z * z, chi2, rel_tol=1e-9) and math.isclose(p, chi_p, rel_tol=1e-9)


def test_arms_get_rates_intervals_lift_and_p_values_against_the_control() -> None:
    arms = [
        ArmCounts(arm="control", control=True, users=1000, converted=50),
        ArmCounts(arm="coupon", users=1000, converted=80),
        ArmCounts(arm="nobody", users=0, converted=0),
    ]
    control, coupon, nobody = compare_arms(arms)
    assert (control.rate, coupon.rate, nobody.rate) == (0.05, 0.08, None)
    assert control.lift is None and control.p_value is None
    assert coupon.lift == pytest.approx(0.6)  # 8% against 5%
    assert coupon.p_value is not None and coupon.p_value < 0.01
    assert nobody.ci_low is None and nobody.p_value is None
    # the Wilson score interval, from its closed form
    n, k, z = 1000, 80, norm.isf(0.025)
    phat = k / n
    centre = (phat + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    assert coupon.ci_low == pytest.approx(centre - half) and coupon.ci_high == pytest.approx(
        centre + half
    )


def test_a_test_with_no_variance_has_no_p_value() -> None:
    none_converted = [
        ArmCounts(arm="a", control=True, users=10, converted=0),
        ArmCounts(arm="b", users=12, converted=0),
    ]
    control, other = compare_arms(none_converted)
    assert other.p_value is None and other.lift is None  # a control that converted none
    assert control.ci_low == 0.0 and control.ci_high is not None and control.ci_high > 0


def test_the_interval_holds_its_rate_at_none_and_all_converted() -> None:
    none, every = compare_arms(
        [ArmCounts(arm="none", users=12, converted=0), ArmCounts(arm="all", users=9, converted=9)]
    )
    assert none.ci_low == none.rate == 0.0 and none.ci_high is not None and none.ci_high > 0
    assert every.ci_high == every.rate == 1.0 and every.ci_low is not None and every.ci_low < 1
