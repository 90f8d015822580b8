"""Per-user outcome counters and the status of a run or shard."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field


class RunStatus(StrEnum):
    """What a run or shard is doing; mirrored in the JourneyStatus search attribute."""

    STARTING = "starting"
    RUNNING = "running"
    PAUSED = "paused"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"
    COMPLETED = "completed"
    FAILED = "failed"


class Counters(BaseModel):
    """Per-user outcomes. For a one-step blast, at the end delivered + skipped + failed +
    cancelled = targeted; in a journey the message counts sum over its send nodes and each
    user's journey ends once: completed, exited, failed or cancelled."""

    targeted: int = 0
    entered: int = 0
    """Users who reached the node (node counters only)."""
    delivered: int = 0
    skipped: dict[str, int] = Field(default_factory=dict)
    failed: dict[str, int] = Field(default_factory=dict)
    retrying: int = 0
    deferred: int = 0
    """Users held back so far, for quiet hours or an arbitration window (each settles once
    later: sent, skipped...)."""
    deferred_by: dict[str, int] = Field(default_factory=dict)
    """:attr:`deferred` by reason (``quiet_hours``, ``arbitration``); empty in counters
    recorded before it was kept."""
    cancelled: int = 0
    exited: int = 0
    """Users an exit criterion removed (counted where they were caught)."""
    completed: int = 0
    """Journeys that reached an end of the graph (an exit step, a step without next, the
    control arm)."""
    waiting: int = 0
    """Users standing at the node now (a level, filled in by the progress query)."""
    routes: dict[str, int] = Field(default_factory=dict)
    """Branch, arm or time zone -> users sent that way (branch, ab_split, wait_until nodes)."""
    converted: int = 0
    value: float = 0.0
    """Sum of the goal events' value property."""
    conversions: dict[str, int] = Field(default_factory=dict)
    """Arm -> conversions (ab_split node counters)."""

    def add(self, other: Counters) -> None:
        """Add ``other`` into this one (retrying and waiting are levels: callers set them)."""
        self.targeted += other.targeted
        self.entered += other.entered
        self.delivered += other.delivered
        self.deferred += other.deferred
        self.cancelled += other.cancelled
        self.exited += other.exited
        self.completed += other.completed
        self.converted += other.converted
        self.value += other.value
        for mine, theirs in (
            (self.skipped, other.skipped),
            (self.failed, other.failed),
            (self.routes, other.routes),
            (self.conversions, other.conversions),
            (self.deferred_by, other.deferred_by),
        ):
            for reason in sorted(theirs):
                mine[reason] = mine.get(reason, 0) + theirs[reason]

    @property
    def ended(self) -> int:
        """Users whose journey is over: each user ends once (completed, exited, failed or
        cancelled); for a one-step blast this equals :attr:`settled`."""
        return self.completed + self.exited + sum(self.failed.values()) + self.cancelled

    @property
    def settled(self) -> int:
        """Users with a final outcome."""
        return (
            self.delivered + sum(self.skipped.values()) + sum(self.failed.values()) + self.cancelled
        )
