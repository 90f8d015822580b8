"""The delivery controls one send step checks, compiled from the plan and the policy.

The workflow compiles them (pure code, :func:`journeys.delivery_controls.controls_for`) and
hands them to each page, so a page's activity needs neither the plan's limits nor the
policy file, and the history of the run shows what every page was checked against.
"""

from __future__ import annotations

from datetime import time, timedelta
from typing import Literal

from pydantic import BaseModel, Field


class CapRule(BaseModel):
    """At most ``max`` marketing messages per user per rolling ``per``; on ``channel`` only,
    or on every channel (None). ``plan`` counts only that plan's messages (a plan cap)."""

    max: int
    per: timedelta
    channel: str | None = None
    plan: str | None = None
    reason: str
    """What a user it stops is skipped for: ``cap``, ``channel_cap`` or ``plan_cap``."""


class QuietRule(BaseModel):
    """No sends between ``start`` and ``end`` local time."""

    start: time
    end: time
    mode: Literal["defer", "drop"]
    zone: str | None = None
    """Everyone's zone (the plan's); None: each user's profile zone, else ``fallback``."""
    fallback: str = "UTC"
    max_defer: timedelta


class SpendRule(BaseModel):
    """A budget (one run of a plan) or a quota (the workspace): messages or money."""

    key: str
    """The Redis hash counting what was spent (fields ``n`` and ``c``)."""
    max_messages: int | None = None
    max_cost: float | None = None
    reason: str
    """``budget`` or ``quota``."""


class Controls(BaseModel):
    """Everything one send step's pages are checked against, in the documented order:
    suppression, quiet hours, plan cap, channel and global caps, budget, quota."""

    plan_id: str
    transactional: bool = False
    """Exempt from caps and quiet hours, never from suppression, budget or quota."""
    caps: list[CapRule] = Field(default_factory=list)
    """The plan cap first, then the caps of the plan and of the policy."""
    quiet: QuietRule | None = None
    budget: SpendRule | None = None
    quota: SpendRule | None = None
    history: timedelta = timedelta(days=35)
    """How long sends are remembered; no cap looks further back."""
    priority: int = 50
    arbitration: timedelta = timedelta(0)
    """How long a capped send bids before it confirms, so that a plan of higher priority
    reaching the same user meanwhile takes the slot (0: first come, first served)."""
