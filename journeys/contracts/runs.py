"""What runs take, answer and return: the run's input, progress, result, and controls."""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel, Field

from journeys.contracts.counters import Counters, RunStatus
from journeys.policy import Policy


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
    dry_run: bool = False
    """``journeys launch --dry-run``: timers fire at once, sends and webhooks are rendered
    and logged (no provider, no ledger row), updates and A/B assignments are not written,
    no event reaches the run."""


class PlanRunInput(BaseModel):
    """Start one run of one pinned plan version."""

    plan_id: str
    version: int
    run_key: str
    audience: AudienceRef = AudienceRef()
    options: RunOptions = RunOptions()
    policy: Policy | None = None
    """The workspace policy as the launch read it; the run keeps it to its end."""
    delivery_controls: bool = False
    """Its sends pass the delivery gate. Every launch sets it; runs launched before the
    gate existed lack it and go on as they were launched, unchecked."""


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
    """Cohorts waiting on a timer: each cohort in the shard's own progress query, merged per
    node and zone in what the shard reports to its run."""


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
    waits: list[WaitingCohort] = Field(default_factory=list)
    """Users held by timers, per node and zone, with the earliest wake-up."""


class PlanRunResult(BaseModel):
    """What a finished run did."""

    run_id: str
    status: RunStatus
    totals: Counters
    shards: int
    duration: timedelta


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
