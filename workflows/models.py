"""Inputs and outputs of the workflows, their signals, queries and updates, and activities.

Every payload holds counts and Redis keys, never user lists, so histories stay small at any
audience size.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, Field

from journeys.plan.models import Plan


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
    """Per-user outcomes; at the end delivered + skipped + failed + cancelled = targeted."""

    targeted: int = 0
    entered: int = 0
    """Users who reached the node (node counters only)."""
    delivered: int = 0
    skipped: dict[str, int] = Field(default_factory=dict)
    failed: dict[str, int] = Field(default_factory=dict)
    retrying: int = 0
    cancelled: int = 0

    def add(self, other: Counters) -> None:
        """Add ``other`` into this one (retrying is a level, not a sum: callers set it)."""
        self.targeted += other.targeted
        self.entered += other.entered
        self.delivered += other.delivered
        self.cancelled += other.cancelled
        for mine, theirs in ((self.skipped, other.skipped), (self.failed, other.failed)):
            for reason in sorted(theirs):
                mine[reason] = mine.get(reason, 0) + theirs[reason]

    @property
    def settled(self) -> int:
        """Users with a final outcome."""
        return (
            self.delivered + sum(self.skipped.values()) + sum(self.failed.values()) + self.cancelled
        )


class AudienceRef(BaseModel):
    """Where a run's audience comes from when the launcher resolved it already."""

    preloaded: bool = False
    """The launcher wrote the ids into the run's own shard keys (``--audience FILE``)."""
    saved: str | None = None
    """A saved audience name, used instead of the plan's audience."""


class RunOptions(BaseModel):
    """Tuning that is not part of the plan."""

    max_parallel_shards: int = Field(default=16, ge=1, le=1024)
    progress_every: timedelta = timedelta(seconds=2)
    """Least time between two progress signals of a shard to its run."""
    progress_budget: int = Field(default=1_200, ge=1)
    """Progress signals the run accepts in all (shared out among shards): its history stays
    bounded however long the run; live numbers come from querying the shards themselves."""
    continue_as_new_after_pages: int | None = None
    """Force continue-as-new after this many pages (tests); None = when Temporal suggests."""
    page_heartbeat_timeout: timedelta = timedelta(seconds=30)
    """How soon a page on a dead worker is retried elsewhere."""


class PlanRunInput(BaseModel):
    """Start one run of one pinned plan version."""

    plan_id: str
    version: int
    run_key: str
    audience: AudienceRef = AudienceRef()
    options: RunOptions = RunOptions()


class ShardSummary(BaseModel):
    """One shard as the run sees it."""

    shard: int
    status: RunStatus
    counters: Counters
    nodes: dict[str, Counters] = Field(default_factory=dict)
    inflight: int = 0
    """Page activities running now (0 once a pause has taken effect)."""


class RunProgress(BaseModel):
    """The ``progress`` query's answer: live counters per shard and in total."""

    run_id: str
    plan_id: str
    version: int
    status: RunStatus
    shards: int
    totals: Counters
    per_shard: list[ShardSummary]
    started_at: datetime | None = None


class PlanRunResult(BaseModel):
    """What a finished run did."""

    run_id: str
    status: RunStatus
    totals: Counters
    shards: int
    duration: timedelta


class Cohort(BaseModel):
    """Users of one shard standing at one node: a Redis sorted set, known by key and size."""

    id: str
    node: str
    key: str
    size: int
    attempt: int = 1
    next_page: int = 0
    not_before: datetime | None = None


class ShardInput(BaseModel):
    """Start (or continue) one shard's interpreter; carries all state across continue-as-new."""

    run_id: str
    plan: Plan
    version: int
    shard: int
    shards: int
    cohorts: list[Cohort]
    counters: Counters = Counters()
    nodes: dict[str, Counters] = Field(default_factory=dict)
    options: RunOptions = RunOptions()
    paused: bool = False
    cancelled: bool = False
    generation: int = 0
    reports_sent: int = 0


class ShardResult(BaseModel):
    """What one shard did."""

    shard: int
    status: RunStatus
    counters: Counters
    nodes: dict[str, Counters]


class ControlSignal(BaseModel):
    """pause / resume / cancel: take effect at the next page boundary."""

    reason: str | None = None


class RateUpdate(BaseModel):
    """A new plan-level rate while the run is going (messages per second; 0 = unlimited)."""

    per_second: float = Field(ge=0)


class RateUpdateResult(BaseModel):
    """The rate now in force."""

    per_second: float


# --- activity payloads -------------------------------------------------------------------


class LoadPlanInput(BaseModel):
    """Which pinned plan version to load."""

    plan_id: str
    version: int


class LoadPlanOutput(BaseModel):
    """The plan as that version stored it."""

    plan: Plan


class MaterialiseInput(BaseModel):
    """Put the run's audience into its shard keys and set its rate limit."""

    run_id: str
    plan: Plan
    audience: AudienceRef


class MaterialiseOutput(BaseModel):
    """Users per shard of the run's entry cohort."""

    per_shard: list[int]


class DeliverPageInput(BaseModel):
    """One page of one cohort at one ``send`` node."""

    run_id: str
    plan_id: str
    shard: int
    shards: int
    node: str
    channel: str
    template: str
    vars: dict[str, object] = Field(default_factory=dict)
    cohort_key: str
    page: int
    page_size: int
    attempt: int
    max_attempts: int
    retry_key: str
    passed_key: str | None = None
    """Where users who got through go, to form the next node's cohort (None: the journey ends)."""
    rate_scope: str | None = None


class DeliverPageOutput(BaseModel):
    """How the page's users came out; ``retry`` went to ``retry_key`` for a later pass."""

    counters: Counters
    retry: int = 0


class CohortSizeInput(BaseModel):
    """A cohort's Redis key."""

    key: str


class CohortSizeOutput(BaseModel):
    """Its member count."""

    size: int


class CleanupInput(BaseModel):
    """Delete a run's Redis working keys."""

    run_id: str


class CleanupOutput(BaseModel):
    """How many keys were deleted."""

    deleted: int


class SetRateInput(BaseModel):
    """Write a run's token-bucket rate."""

    scope: str
    per_second: float


class SetRateOutput(BaseModel):
    """The rate written."""

    per_second: float
