"""The plan: audience x entry x a graph of steps x limits x goal.

A plan validated here is self-consistent (its graph is acyclic, references resolve, every step
is reachable); whether its channels and templates exist is checked against a channels file by
:mod:`journeys.plan.validate`. Plans round-trip through
``model_dump(mode="json", by_alias=True)`` so they can be stored as versions and passed to
workflows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field, field_validator, model_validator

from journeys.durations import PositiveDuration
from journeys.plan.audience import Audience
from journeys.plan.common import PlanId, PlanModel, StepId, Text
from journeys.plan.crosscheck import ARRIVALS, entry_type, plan_level_problems
from journeys.plan.entry import Entry
from journeys.plan.graph import graph_problems
from journeys.plan.limits import Limits
from journeys.plan.problems import cross_check_error
from journeys.plan.steps import STEP_TYPES, Step
from journeys.rules import EventName, PropertyFilter, PropertyName, Rule
from journeys.schedule import TimeZoneName

__all__ = ["STEP_TYPES", "ExitCriterion", "Goal", "Plan", "plan_json_schema"]

MAX_SHARDS = 1024


class Goal(PlanModel):
    """A conversion: ``event`` (matching ``where``) within ``within`` of entering.

    ``value_prop`` names the event property holding the conversion's value for ROI.
    """

    event: EventName
    where: PropertyFilter | None = None
    within: PositiveDuration
    value_prop: PropertyName | None = None


class ExitCriterion(PlanModel):
    """Removes a user from wherever they are: on ``event`` (matching ``where``) or by ``rule``."""

    event: EventName | None = None
    where: PropertyFilter | None = None
    rule: Rule | None = None

    @model_validator(mode="after")
    def _one_form(self) -> ExitCriterion:
        if (self.event is None) == (self.rule is None):
            raise ValueError("give exactly one of event or rule")
        if self.where is not None and self.event is None:
            raise ValueError("where only goes with event")
        return self


class Plan(PlanModel):
    """A journey plan as written in a plan file."""

    id: PlanId
    name: Text
    description: str | None = None
    timezone: TimeZoneName = "UTC"
    transactional: bool = False
    """Order and logistics notices: exempt from marketing caps and quiet hours, never from
    suppression or budgets."""
    shards: int = 16
    """Power of two; users land on shard ``mmh3(user_id) & (shards - 1)``. Event-triggered
    plans default to 1: every shard of such a run lives for the whole window and takes a
    signal per ingest request and a batch per flush, so more shards only pay off at rates one
    shard cannot keep up with (see docs/benchmarks.md)."""
    audience: Audience | None = None
    """Left out for an event entry: everyone may enter."""
    entry: Entry
    start: StepId | None = None
    """The first step; defaults to the first step in the file."""
    steps: dict[StepId, Step] = Field(min_length=1)
    limits: Limits = Limits()
    goal: Goal | None = None
    exit_criteria: list[ExitCriterion] = Field(default_factory=list)

    @field_validator("shards")
    @classmethod
    def _power_of_two(cls, value: int) -> int:
        if not 1 <= value <= MAX_SHARDS or value & (value - 1):
            raise ValueError(f"must be a power of two from 1 to {MAX_SHARDS}, got {value}")
        return value

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        # written out explicitly so a stored version does not depend on today's defaults
        if not isinstance(data, Mapping):
            return data
        data = dict(data)
        steps = data.get("steps")
        if data.get("start") is None and isinstance(steps, Mapping) and steps:
            first = next(iter(steps))
            if isinstance(first, str):
                data["start"] = first
        if data.get("audience") is None and entry_type(data) in ARRIVALS:
            data["audience"] = {"source": "all"}
        if data.get("shards") is None and entry_type(data) in ARRIVALS:
            data["shards"] = 1
        plan_id = data.get("id")
        if isinstance(steps, Mapping) and isinstance(plan_id, str):
            data["steps"] = {key: _salted(step, plan_id) for key, step in steps.items()}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Plan:
        document = self.model_dump(by_alias=True)
        problems = graph_problems(document) + plan_level_problems(document)
        if problems:
            raise cross_check_error(problems)
        return self

    @property
    def start_step(self) -> str:
        """The id of the step every user starts at."""
        return self.start or next(iter(self.steps))


def _salted(step: object, plan_id: str) -> object:
    if isinstance(step, Mapping) and step.get("type") == "ab_split" and step.get("salt") is None:
        return {**step, "salt": plan_id}
    return step


def plan_json_schema() -> dict[str, Any]:
    """The JSON Schema of plan files (draft 2020-12), for editors and ``journeys schema``."""
    schema = Plan.model_json_schema(by_alias=True)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://journeys.dev/schema/plan.json",
        **schema,
    }
