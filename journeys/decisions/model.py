"""The decision engine's files (seed 004): scenes and their instances.

A **scene** is a system that asks for decisions (payment, traffic, promotion). It declares
which ids every call carries (``keys``), the pass-through fields callers promise to send
with their types, the metrics its experiments watch, whether A/B tests are allowed, and the
JSON Schema every decision must satisfy::

    scene: payment
    keys: [user]
    fields: {channel: string, amount: number}
    metrics: [order_paid]
    decision_schema:
      type: object
      required: [instalments]
      properties: {instalments: {type: integer, enum: [3, 6, 12]}}

An **instance** is one place a decision acts (one checkout, one page slot): its strategies in
priority order, each a rule and a decision or an A/B experiment whose groups carry their own
decision and share, and the default when no strategy's rule holds::

    instance: checkout-instalments
    scene: payment
    default: {instalments: 3}
    strategies:
      - name: low-risk
        rule: {tag: risk_level, op: eq, value: low}
        experiment:
          groups:
            - {name: control, share: 50, control: true, decision: {instalments: 3}}
            - {name: test, share: 50, decision: {instalments: 6}}
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, JsonValue, ValidationError, field_validator, model_validator

from journeys.errors import DecisionRefused, Problem
from journeys.plan.common import PlanModel, Text, slug
from journeys.plan.problems import problems_from_error, sorted_problems
from journeys.plan.source import load_checked
from journeys.rules import EventName, PropertyName, Rule

SLUG = r"[a-z0-9][a-z0-9_-]{0,62}"
SceneId = Annotated[str, slug("scene id", SLUG, "lowercase letters, digits, - and _")]
InstanceId = Annotated[str, slug("instance id", SLUG, "lowercase letters, digits, - and _")]
Name = Annotated[str, slug("name", SLUG, "lowercase letters, digits, - and _")]
Key = Literal["user", "item", "order"]
FieldType = Literal["string", "number", "bool"]
MAX_STRATEGIES = 100
MAX_GROUPS = 20


def _users_only() -> list[Key]:
    return ["user"]


class Scene(PlanModel):
    """A system that asks for decisions, and what its calls promise."""

    scene: SceneId
    description: str = ""
    keys: list[Key] = Field(default_factory=_users_only, min_length=1)
    """The ids every call carries; the first is what A/B groups are drawn by."""
    fields: dict[PropertyName, FieldType] = Field(default_factory=dict)
    """Pass-through fields every call sends, by type: custom tags read them."""
    metrics: list[EventName] = Field(default_factory=list)
    """Events counted per group in the report (the first is the conversion)."""
    ab: bool = True
    """Whether this scene's instances may run A/B experiments."""
    decision_schema: dict[str, JsonValue]
    """The JSON Schema every decision of the scene's instances satisfies."""

    @field_validator("keys")
    @classmethod
    def _unique_keys(cls, keys: list[Key]) -> list[Key]:
        if len(set(keys)) != len(keys):
            raise ValueError("keys must be unique")
        return keys


class Group(PlanModel):
    """One group of an experiment: its share of the buckets and its decision."""

    name: Name
    share: int = Field(ge=0, le=100)
    """Percent of the callers who reach the strategy."""
    decision: JsonValue
    control: bool = False


class Experiment(PlanModel):
    """An A/B test inside a strategy; groups take consecutive slices of the buckets."""

    salt: Text | None = None
    """The hash salt (default: instance and strategy); a new salt draws new groups."""
    groups: list[Group] = Field(min_length=2, max_length=MAX_GROUPS)

    @model_validator(mode="after")
    def _groups(self) -> Experiment:
        names = [g.name for g in self.groups]
        if len(set(names)) != len(names):
            raise ValueError("group names must be unique")
        total = sum(g.share for g in self.groups)
        if total != 100:
            raise ValueError(f"group shares sum to {total}, must be 100")
        if sum(g.control for g in self.groups) > 1:
            raise ValueError("at most one group is the control")
        return self


class Strategy(PlanModel):
    """A rule and what to decide for the callers it holds for."""

    name: Name
    rule: Rule | None = None
    """Tag conditions (no rule: every caller)."""
    decision: JsonValue = None
    experiment: Experiment | None = None

    @model_validator(mode="after")
    def _one_outcome(self) -> Strategy:
        if (self.decision is None) == (self.experiment is None):
            raise ValueError("a strategy has a decision or an experiment, one of them")
        return self


class Instance(PlanModel):
    """One place a decision acts, with its strategies in priority order."""

    instance: InstanceId
    scene: SceneId
    description: str = ""
    default: JsonValue
    """The decision when no strategy's rule holds."""
    strategies: list[Strategy] = Field(default_factory=list, max_length=MAX_STRATEGIES)

    @field_validator("strategies")
    @classmethod
    def _unique(cls, strategies: list[Strategy]) -> list[Strategy]:
        names = [s.name for s in strategies]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"strategy names must be unique: {', '.join(repeated)}")
        return strategies

    def salt(self, strategy: Strategy) -> str:
        """The hash salt of ``strategy``'s experiment."""
        assert strategy.experiment is not None
        return strategy.experiment.salt or f"{self.instance}:{strategy.name}"


DecisionFile = Scene | Instance


def check_decision_file(data: object) -> tuple[DecisionFile | None, list[Problem]]:
    """A parsed scene or instance file as its model, or every problem with its path."""
    if not isinstance(data, dict) or not ({"scene", "instance"} & set(data)):
        where = "" if not isinstance(data, dict) else "instance"
        return None, [Problem(where, "a scene file has a scene: id, an instance file instance:")]
    model: type[Scene] | type[Instance] = Instance if "instance" in data else Scene
    try:
        return model.model_validate(data), []
    except ValidationError as exc:
        return None, sorted_problems(problems_from_error(exc))


def load_decision_file(path: Path) -> DecisionFile:
    """Read a scene or instance file, checked on its own; raise :class:`DecisionRefused`
    with every problem and its path."""
    model = load_checked(path, check_decision_file, refused=DecisionRefused)
    assert isinstance(model, Scene | Instance)  # what check_decision_file returns
    return model
