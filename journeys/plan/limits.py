"""Delivery limits of a plan: paging, speed, caps, quiet hours, budgets, priority, retries."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from journeys.durations import Duration, PositiveDuration, Rate, within
from journeys.plan.common import ChannelName, PlanModel
from journeys.schedule import TimeOfDay


class Cap(PlanModel):
    """At most ``max`` messages per user per rolling ``per``, on one channel or (null) on all."""

    channel: ChannelName | None = None
    max: int = Field(ge=1)
    per: PositiveDuration


class PlanCap(PlanModel):
    """At most ``max`` messages from this plan per user per rolling ``per`` (once per 7d)."""

    max: int = Field(ge=1)
    per: PositiveDuration


class QuietHours(PlanModel):
    """No sends between ``start`` and ``end`` (may wrap midnight): defer to ``end`` or drop.

    ``timezone: user`` reads each user's profile zone (the policy's fallback zone, else the
    plan's, when a profile has none); ``plan`` uses the plan's zone for everyone. A message
    that would wait longer than ``max_defer`` is dropped instead."""

    start: TimeOfDay
    end: TimeOfDay
    mode: Literal["defer", "drop"] = "defer"
    timezone: Literal["user", "plan"] = "user"
    max_defer: Annotated[Duration, within(maximum=timedelta(days=2))] = timedelta(hours=12)

    @model_validator(mode="after")
    def _not_empty(self) -> QuietHours:
        if self.start == self.end:
            raise ValueError("start and end are the same time")
        return self


class ChannelSpend(PlanModel):
    """What may be spent on ``channel``: ``max_messages``, or ``max_cost`` in the channel's
    ``cost`` units (exactly one)."""

    channel: ChannelName
    max_messages: int | None = Field(default=None, ge=1)
    max_cost: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _one_limit(self) -> ChannelSpend:
        if (self.max_messages is None) == (self.max_cost is None):
            raise ValueError("give exactly one of max_messages or max_cost")
        return self


class Budget(ChannelSpend):
    """What one run of this plan may send through ``channel``; the rest are skipped with
    reason ``budget``."""


class Retry(PlanModel):
    """How often a failed page of sends is retried as a cohort, and the first backoff."""

    attempts: int = Field(default=3, ge=1, le=20)
    backoff: PositiveDuration = timedelta(minutes=5)


class Limits(PlanModel):
    """Every limit is optional; the defaults suit a plan of a few million users."""

    page_size: int = Field(default=100, ge=1, le=1000)
    concurrency: int = Field(default=4, ge=1, le=64)
    """Page activities in flight per shard."""
    rate: Rate | None = None
    caps: list[Cap] = Field(default_factory=list)
    plan_cap: PlanCap | None = None
    quiet_hours: QuietHours | None = None
    budget: list[Budget] = Field(default_factory=list)
    priority: int = Field(default=50, ge=0, le=100)
    """Higher wins when several plans reach the same user at the same moment."""
    retry: Retry = Retry()

    @field_validator("budget")
    @classmethod
    def _one_budget_per_channel(cls, budgets: list[Budget]) -> list[Budget]:
        names = [budget.channel for budget in budgets]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"one budget per channel, repeated: {', '.join(repeated)}")
        return budgets
