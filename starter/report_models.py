"""What ``journeys report`` answers: a run's funnel per node, its arms, its money, its
winning paths and conversions over time (filled by :mod:`starter.report`)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from journeys.arm_stats import ArmResult
from journeys.contracts.counters import RunStatus


class NodeFunnel(BaseModel):
    """A send or webhook node's messages by how they ended, and what became of them."""

    node: str
    channel: str = ""
    sent: int = 0
    skipped: dict[str, int] = Field(default_factory=dict)
    deferred: int = 0
    failed: dict[str, int] = Field(default_factory=dict)
    pending: int = 0
    """Rows not settled yet (a run still going)."""
    receipts: int = 0
    """Messages the provider confirmed delivered (a channel's ``engagement.delivered``)."""
    opened: int = 0
    clicked: int = 0
    negative: int = 0
    """Messages a negative event (an unsubscribe...) was attributed to."""
    negative_value: float = 0.0
    cost: float = 0.0


class ArmReport(ArmResult):
    """An arm compared, with what its users' messages cost and brought."""

    value: float = 0.0
    messages: int = 0
    """Messages sent at the arm's own steps (not before the split)."""
    cost: float = 0.0
    clicked: int = 0
    """Clicked messages of the arm's own path (steps only it leads to)."""
    negative: int = 0
    negative_value: float = 0.0
    roi: float | None = None
    incremental_value: float | None = None
    """Value beyond the control arm's, scaled to this arm's users (None for the control)."""


class WinnerDecision(BaseModel):
    """An ab_split's winning path: the arm chosen, whether it won or was the fallback, the
    figures it was chosen on, when, and how many users were sent there after."""

    arm: str
    significant: bool
    metric: str
    decided_at: datetime
    figures: dict[str, object]
    sent_to_winner: int


class ConversionsAt(BaseModel):
    """Conversions in one hour of the run (UTC)."""

    at: datetime
    conversions: int
    value: float


class RunReport(BaseModel):
    """The report of one run."""

    run_id: str
    plan_id: str
    version: int
    status: RunStatus
    targeted: int
    delivered: int
    receipts: int = 0
    opened: int = 0
    clicked: int = 0
    converted: int
    """Users who converted at least once."""
    value: float
    negative: int = 0
    negative_value: float = 0.0
    cost: float = 0.0
    roi: float | None = None
    nodes: list[NodeFunnel]
    splits: dict[str, list[ArmReport]]
    """A/B node -> its arms."""
    timeline: list[ConversionsAt] = Field(default_factory=list)
    winners: dict[str, WinnerDecision] = Field(default_factory=dict)
    """ab_split node -> its winning path's decision (arms count only the users the test
    split)."""
