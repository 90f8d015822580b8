"""Return on a run's messages: what conversions brought, less what the messages cost and
what the negative events they caused (unsubscribes, uninstalls) are worth.

ROI = (conversion value - message cost - negative value) / message cost, undefined (None)
when the messages cost nothing. An arm's incremental value is its value beyond what the
control arm's users brought, scaled to the arm's size: value - control value x users /
control users.
"""

from __future__ import annotations


def roi(*, value: float, cost: float, negative: float) -> float | None:
    """The ROI of messages that cost ``cost``, brought ``value`` and lost ``negative``."""
    return (value - cost - negative) / cost if cost > 0 else None


def incremental_value(
    *, value: float, users: int, control_value: float, control_users: int
) -> float | None:
    """What an arm of ``users`` brought beyond its control arm; None without control users."""
    if control_users <= 0:
        return None
    return value - control_value * users / control_users
