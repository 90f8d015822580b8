"""Inputs and outputs of the workflows, their signals, queries and updates, and activities.

Every payload holds counts and Redis keys, never user lists, so histories stay small at any
audience size.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, Field

from journeys.events import JourneyEvent
from journeys.plan.models import Plan
from journeys.rules import Rule


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


class WaitingCohort(BaseModel):
    """Users of a shard held by a timer: where, in which zone, until when."""

    node: str
    users: int
    until: datetime
    zone: str | None = None


class ShardSummary(BaseModel):
    """One shard as the run sees it."""

    shard: int
    status: RunStatus
    counters: Counters
    nodes: dict[str, Counters] = Field(default_factory=dict)
    inflight: int = 0
    """Page activities running now (0 once a pause has taken effect)."""
    waits: list[WaitingCohort] = Field(default_factory=list)
    """Cohorts waiting on a timer (filled in by the shard's own progress query)."""


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
    """Users of one shard standing at one node: a Redis sorted set, known by key and size.

    Everything a node needs to resume after continue-as-new lives here: the page cursor, the
    routes counted so far, the timer's deadline, the events waiting to be matched.
    """

    id: str
    """Unique in the shard and deterministic: ``{parent id}>{node}.{route}``."""
    node: str
    key: str
    size: int
    attempt: int = 1
    next_page: int = 0
    not_before: datetime | None = None
    """Retry backoff: the pass starts no earlier."""
    wake_at: datetime | None = None
    """The timer of a wait, wait_until or wait_for_event node, once armed."""
    zone: str | None = None
    """wait_until in users' own zones: the zone this sub-cohort waits in."""
    routes: dict[str, int] = Field(default_factory=dict)
    """Route -> users written so far by this cohort's routing pages."""
    exited: int = 0
    """Users dropped by exit criteria on the pages done so far."""
    caught: int = 0
    """wait_for_event: batches of arrivals moved on so far."""
    inbox: list[JourneyEvent] = Field(default_factory=list)
    """wait_for_event: events received and not matched yet."""


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
    entered_at: datetime | None = None
    """When the audience entered (the goal window starts here)."""
    exit_inbox: list[JourneyEvent] = Field(default_factory=list)
    goal_inbox: list[JourneyEvent] = Field(default_factory=list)
    entry_inbox: list[JourneyEvent] = Field(default_factory=list)
    """Event-triggered plans: entry events waiting for the next flush."""
    entry_batches: int = 0
    """Entry batches admitted so far (the next cohort is ``in{entry_batches}``)."""
    entries_until: datetime | None = None
    """The entry window's end (None: open until the run is cancelled)."""
    entries_closed: bool = False
    last_entry_at: datetime | None = None
    eligible_key: str | None = None
    """Only members of this set may enter (the plan's audience, materialised)."""


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
    exited_key: str | None = None
    """Users in this set are skipped (an exit criterion removed them)."""
    exit_rules: list[Rule] = Field(default_factory=list)
    """Plan-level exit rules, checked on the page's users before sending."""
    now: datetime | None = None
    """The workflow's clock, for rules with relative dates and windows."""


class DeliverPageOutput(BaseModel):
    """How the page's users came out; ``retry`` went to ``retry_key`` for a later pass."""

    counters: Counters
    retry: int = 0
    passed: int = 0
    """Users delivered or skipped: they go on to the next node."""


class CohortSizeInput(BaseModel):
    """A cohort's Redis key."""

    key: str


class CohortSizeOutput(BaseModel):
    """Its member count."""

    size: int


class ListenersInput(BaseModel):
    """A run and the event names it listens for."""

    run_id: str
    shards: int
    events: list[str]


class ListenersOutput(BaseModel):
    """How many names were written or removed."""

    events: int


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
