"""The winning path of an ``ab_split``: which arm the rest of the users go to.

The candidates are the arms that send something (never the control). The best candidate by
rate wins if a two-proportion z-test (:func:`journeys.arm_stats.two_proportion_p`) puts it
ahead of the runner-up candidate, or, when it is the only candidate, of the control, with
``p <= 1 - min_confidence``. Ties and empty arms win nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel

from journeys.ab import bucket
from journeys.arm_stats import ArmCounts, two_proportion_p

DEFAULT_TEST_SHARE = 20


class WinnerPick(BaseModel):
    """The best candidate, whether it won, and the numbers that decided it."""

    best: int | None
    """Index of the best candidate arm (None: no candidate has users)."""
    against: int | None
    """Index of the arm it was tested against."""
    p_value: float | None
    significant: bool


def pick_winner(arms: Sequence[ArmCounts], *, min_confidence: float) -> WinnerPick:
    """The pick among ``arms`` (in the split's order)."""
    rate = {i: a.converted / a.users for i, a in enumerate(arms) if a.users > 0}
    candidates = sorted(
        (i for i, a in enumerate(arms) if not a.control and i in rate),
        key=lambda i: (-rate[i], i),
    )
    if not candidates:
        return WinnerPick(best=None, against=None, p_value=None, significant=False)
    best = candidates[0]
    if len(candidates) > 1:
        against: int | None = candidates[1]
    else:
        against = next((i for i, a in enumerate(arms) if a.control and i in rate), None)
    if against is None or rate[best] <= rate[against]:
        return WinnerPick(best=best, against=against, p_value=None, significant=False)
    p = two_proportion_p(arms[best], arms[against])
    significant = p is not None and p <= 1 - min_confidence
    return WinnerPick(best=best, against=against, p_value=p, significant=significant)


def in_test(salt: str, user_id: str, *, share: int) -> bool:
    """Whether ``user_id`` is among the ``share`` percent split at first (a bucket of its
    own, independent of the arm's)."""
    return bucket(f"{salt}:winner-test:", user_id) % 100 < share
