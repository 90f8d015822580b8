"""When users enter a plan: now, at a moment, on a schedule, when an event arrives, or when
a caller asks."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from journeys.durations import Duration, PositiveDuration, within
from journeys.plan.common import AwareDateTime, PlanModel
from journeys.rules import EventName, PropertyFilter, Rule
from journeys.schedule import Cron, TimeZoneName


class ImmediateEntry(PlanModel):
    """The whole audience enters when the run starts."""

    type: Literal["immediate"] = "immediate"


class AtEntry(PlanModel):
    """The whole audience enters at one moment."""

    type: Literal["at"] = "at"
    at: AwareDateTime


class ScheduleEntry(PlanModel):
    """One run per occurrence of ``cron`` or of ``every``, between ``start`` and ``end``."""

    type: Literal["schedule"] = "schedule"
    cron: Cron | None = None
    every: Annotated[Duration, within(minimum=timedelta(minutes=1))] | None = None
    start: AwareDateTime | None = None
    end: AwareDateTime | None = None
    timezone: TimeZoneName | None = None
    """Zone of the cron fields; the plan's time zone when left out."""
    overlap: Literal["skip", "buffer_one", "allow_all"] = "skip"
    """An occurrence due while the last one still runs: skipped, one kept waiting, or run
    beside it."""
    catchup_window: Annotated[
        Duration, within(minimum=timedelta(minutes=1), maximum=timedelta(days=7))
    ] = timedelta(hours=1)
    """Occurrences missed (the service was down) still start if at most this late."""

    @model_validator(mode="after")
    def _one_rule(self) -> ScheduleEntry:
        if (self.cron is None) == (self.every is None):
            raise ValueError("give exactly one of cron or every")
        if self.start is not None and self.end is not None and self.start >= self.end:
            raise ValueError("start must be before end")
        return self


class Window(PlanModel):
    """When an event-triggered plan listens; open-ended on a side left out."""

    start: AwareDateTime | None = None
    end: AwareDateTime | None = None

    @model_validator(mode="after")
    def _order(self) -> Window:
        if self.start is None and self.end is None:
            raise ValueError("needs start and/or end")
        if self.start is not None and self.end is not None and self.start >= self.end:
            raise ValueError("start must be before end")
        return self


class _Admission(PlanModel):
    """Who of the arriving users enters, and how arrivals are batched: what event entries
    and API entries share."""

    rule: Rule | None = None
    reentry: Literal["once", "after_cooldown", "when_absent"] = "when_absent"
    """``once`` ever; again ``after_cooldown``; or whenever not already in the journey."""
    cooldown: PositiveDuration | None = Field(default=None, validate_default=True)
    daily_limit: int | None = Field(default=None, ge=1)
    flush_every: Annotated[Duration, within(maximum=timedelta(hours=1))] = timedelta(seconds=1)
    flush_size: int = Field(default=500, ge=1, le=10_000)
    window: Window | None = None

    @field_validator("cooldown")
    @classmethod
    def _cooldown(cls, value: timedelta | None, info: ValidationInfo) -> Any:
        reentry = info.data.get("reentry")
        if reentry == "after_cooldown" and value is None:
            raise ValueError("required when reentry is after_cooldown")
        if reentry not in (None, "after_cooldown") and value is not None:
            raise ValueError("only used when reentry is after_cooldown")
        return value


class EventEntry(_Admission):
    """A user enters when ``event`` arrives (matching ``where`` and ``rule``).

    Entry events are buffered and become one cohort every ``flush_every`` or ``flush_size``
    users, whichever comes first.
    """

    type: Literal["event"] = "event"
    event: EventName
    where: PropertyFilter | None = None


class ApiEntry(_Admission):
    """A user enters when a caller asks (``POST /v1/plans/{id}/entries``, ``journeys
    trigger``, ``Journeys.trigger``), with a context object that templates and rules read as
    ``entry.*``; the same entry rule, re-entry rule, daily limit and batching as events."""

    type: Literal["api"] = "api"


Entry = Annotated[
    ImmediateEntry | AtEntry | ScheduleEntry | EventEntry | ApiEntry,
    Field(discriminator="type"),
]
"""How users enter, discriminated on ``type``."""
