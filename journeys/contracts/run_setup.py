"""Payloads of a run's own activities: load the plan, materialise the audience, listen for
events, set the rate, clean up."""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel

from journeys.contracts.runs import AudienceRef
from journeys.plan.models import Plan


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
    as_of: datetime | None = None
    """When rules of a ``per_run`` audience are evaluated: a scheduled run's occurrence time
    (a catch-up or backfill of yesterday selects yesterday's birthdays); now when None."""
    dry_run: bool = False
    """A dry run: a ``snapshot`` audience is evaluated for it alone, never saved (the plan's
    first real run makes the snapshot)."""


class MaterialiseOutput(BaseModel):
    """Users per shard of the run's entry cohort."""

    per_shard: list[int]


class ListenersInput(BaseModel):
    """A run and the event names it listens for."""

    run_id: str
    shards: int
    events: list[str]


class ListenersOutput(BaseModel):
    """How many names were written or removed."""

    events: int


class SealRunStateInput(BaseModel):
    """Mark a run's shards as set up in Redis (:func:`journeys.names.run_state_key`)."""

    run_id: str
    shards: int
    preloaded: bool = False
    """The launcher loaded the audience and marked the shards: check the marks instead (a
    mark written now could hide an audience Redis lost since)."""


class SealRunStateOutput(BaseModel):
    """The marks' keys, one per shard."""

    keys: list[str]


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


SIGNAL_HOLD = timedelta(seconds=3)
"""How long a shard's hold on its signals lasts at most: the ingest API resumes after it even
if the new run never reopened them (its worker died mid-handover)."""

SIGNAL_DRAIN = timedelta(milliseconds=500)
"""How long a hold waits at most for the signals that passed before it was set to land."""


class HoldSignalsInput(BaseModel):
    """A shard is about to continue as new: senders of its signals wait until it reopens."""

    run_id: str
    shard: int
    hold: timedelta = SIGNAL_HOLD
    drain: timedelta = SIGNAL_DRAIN


class HoldSignalsOutput(BaseModel):
    """The hold is set; ``drained`` once no signal that passed before it was still on its way."""

    held: bool
    drained: bool = True


class OpenSignalsInput(BaseModel):
    """A shard's new run is up: its signals may flow again."""

    run_id: str
    shard: int


class OpenSignalsOutput(BaseModel):
    """Whether a hold was still set (False once it expired)."""

    was_held: bool
