"""Payloads of the journey-graph activities: event waits, exits, goals and entries.

Like every workflow payload they hold keys, counts and small event batches.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field, JsonValue

from journeys.events import JourneyEvent
from journeys.plan.entry import EventEntry
from journeys.plan.models import Goal


class CatchEventsInput(BaseModel):
    """Move the users of a waiting cohort whose event arrived into a batch cohort."""

    cohort_key: str
    caught_key: str
    """Everyone caught so far at this wait (so nobody moves on twice)."""
    batch_key: str
    exited_key: str
    users: list[str]
    run_id: str | None = None
    match_entry: str | None = None
    """Keyed wait: a user is caught only by an event whose property ``match_entry`` equals the
    one of the entry event that brought them in (the same order id)."""
    values: dict[str, list[JsonValue]] = Field(default_factory=dict)
    """Keyed wait: user -> the ``match_entry`` values of the events that arrived."""


class CatchEventsOutput(BaseModel):
    """Users newly caught into ``batch_key``."""

    caught: int


class CloseWaitInput(BaseModel):
    """The window closed: who is left goes to ``out_key``."""

    cohort_key: str
    caught_key: str
    exited_key: str
    out_key: str


class CloseWaitOutput(BaseModel):
    """Users timed out (in ``out_key``) and users dropped because they had exited."""

    timed_out: int
    exited: int


class MarkExitedInput(BaseModel):
    """Users an exit event removed from one shard of a run."""

    exited_key: str
    users: list[str]


class MarkExitedOutput(BaseModel):
    """How many were not marked already."""

    marked: int


class RecordConversionsInput(BaseModel):
    """Goal events that reached a shard: record the ones that convert."""

    run_id: str
    audience_key: str
    """The run's entry cohort: only users who entered can convert."""
    goal: Goal
    entered_at: datetime
    events: list[JourneyEvent]
    send_nodes: list[str]
    split_nodes: list[str]
    now: datetime
    """Stands in for events without a timestamp."""
    by_entry: bool = False
    """Event-triggered: each entry has its own window (from ``journey_entries``)."""


class RecordConversionsOutput(BaseModel):
    """New conversions, in all and per arm."""

    converted: int = 0
    value: float = 0.0
    by_arm: dict[str, int] = Field(default_factory=dict)


class AdmitEntriesInput(BaseModel):
    """A shard's buffered entry events, to become the cohort at ``cohort_key``."""

    run_id: str
    shard: int
    batch: str
    """Unique per shard and deterministic (``in{n}``): a retried admission reuses its result."""
    cohort_key: str
    state_key: str | None = None
    """The shard's mark (:func:`journeys.names.run_state_key`), checked after the write; None
    for runs set up before marks existed."""
    entry: EventEntry
    events: list[JourneyEvent]
    live_keys: list[str] = Field(default_factory=list)
    """Keys of the shard's live cohorts: users in them are in the journey now."""
    drop_keys: list[str] = Field(default_factory=list)
    """Keys of cohorts that left the shard, deleted with the write (:mod:`workflows.dead_keys`)."""
    drop_marks: list[str] = Field(default_factory=list)
    """Earlier batches whose results the shard has recorded: their marks go with the write."""
    audience_key: str | None = None
    """Only users in this set may enter (the plan has an audience)."""
    exited_key: str | None = None
    timezone: str = "UTC"
    """The plan's zone: the daily limit's days are its days."""
    now: datetime

    def zone_info(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class AdmitEntriesOutput(BaseModel):
    """Users admitted, and users refused by reason."""

    admitted: int = 0
    refused: dict[str, int] = Field(default_factory=dict)
