"""The step kinds of a plan graph, discriminated on ``type``.

A step without ``next`` ends the journey of the users who reach it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal, Protocol, TypeVar, get_args

from pydantic import (
    AfterValidator,
    Field,
    JsonValue,
    ValidationInfo,
    field_validator,
    model_validator,
)

from journeys.decisions.model import InstanceId
from journeys.durations import Duration, within
from journeys.plan.common import AwareDateTime, ChannelName, PlanModel, StepId, TemplateName, Text
from journeys.rules import EventName, PropertyFilter, PropertyName, Rule
from journeys.schedule import TimeOfDay, Weekday, check_time_zone

_A_YEAR = timedelta(days=365)


class _Named(Protocol):
    name: str


_N = TypeVar("_N", bound=_Named)


def _named_once(branches: list[_N]) -> list[_N]:
    """A branching step's branch names are its route labels: each once."""
    _reject_repeats("branch", [branch.name for branch in branches])
    return branches


WaitDuration = Annotated[Duration, within(maximum=_A_YEAR)]


class SendStep(PlanModel):
    """Deliver ``template`` of ``channel`` to every user of the cohort."""

    type: Literal["send"] = "send"
    channel: ChannelName
    template: TemplateName
    vars: dict[str, JsonValue] = Field(default_factory=dict)
    next: StepId | None = None


class WaitStep(PlanModel):
    """Hold the cohort for a fixed time."""

    type: Literal["wait"] = "wait"
    duration: WaitDuration
    next: StepId | None = None


def _check_zone_choice(value: object) -> str:
    if value in ("plan", "user"):
        return str(value)
    return check_time_zone(value)


class WaitUntilStep(PlanModel):
    """Hold the cohort until a moment, or the next ``time`` (on one of ``weekdays``).

    ``timezone`` is ``plan`` (the plan's zone), ``user`` (each user's own zone, with
    ``fallback_timezone`` for users without one) or an IANA name.
    """

    type: Literal["wait_until"] = "wait_until"
    at: AwareDateTime | None = None
    time: TimeOfDay | None = None
    weekdays: list[Weekday] | None = None
    timezone: str = "plan"
    fallback_timezone: str | None = None
    next: StepId | None = None

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return _check_zone_choice(value)

    @field_validator("fallback_timezone")
    @classmethod
    def _fallback(cls, value: str | None) -> str | None:
        return None if value is None else check_time_zone(value)

    @field_validator("weekdays")
    @classmethod
    def _weekdays(cls, days: list[str] | None) -> list[str] | None:
        if days is not None:
            if not days:
                raise ValueError("must have at least 1 item (leave it out for every day)")
            repeated = sorted({day for day in days if days.count(day) > 1})
            if repeated:
                raise ValueError(f"{', '.join(repeated)} listed more than once")
        return days

    @model_validator(mode="after")
    def _one_moment(self) -> WaitUntilStep:
        if (self.at is None) == (self.time is None):
            raise ValueError("give exactly one of at or time")
        if self.at is not None and self.weekdays is not None:
            raise ValueError("weekdays only go with time, not at")
        if self.at is not None and self.timezone != "plan":
            raise ValueError("timezone only goes with time (at already has an offset)")
        if self.fallback_timezone is not None and self.timezone != "user":
            raise ValueError("fallback_timezone is only used when timezone is user")
        return self


class Branch(PlanModel):
    """One way out of a branch step: users matching ``rule`` go to ``next``."""

    name: Text
    rule: Rule
    next: StepId | None = None


class BranchStep(PlanModel):
    """Split the cohort by rules; the first matching branch wins, the rest go to ``else``."""

    type: Literal["branch"] = "branch"
    branches: Annotated[list[Branch], Field(min_length=1), AfterValidator(_named_once)]
    else_: StepId | None = Field(default=None, alias="else")


class Arm(PlanModel):
    """An A/B arm: ``weight`` percent of users; a ``control`` arm receives nothing."""

    name: Text
    weight: int = Field(ge=0, le=100)
    control: bool = False
    next: StepId | None = Field(default=None, validate_default=True)

    @field_validator("next")
    @classmethod
    def _next(cls, value: str | None, info: ValidationInfo) -> str | None:
        control = info.data.get("control")
        if control and value is not None:
            raise ValueError("a control arm receives nothing, so it has no next")
        if control is False and value is None:
            raise ValueError("field required (only a control arm goes without next)")
        return value


class Winner(PlanModel):
    """Pick the winning arm by ``metric`` after ``after`` and send the rest there.

    In a blast only ``test_share`` percent of the audience is split at first; the others
    wait at the split, and after ``after`` go to the best arm that is not the control if it
    beats the runner-up (or, with one such arm, the control) at ``min_confidence``, else to
    ``fallback``. In an event-triggered plan every entrant is split until an arm wins;
    later entrants go to it."""

    metric: Literal["conversion", "click"]
    after: Annotated[Duration, within(maximum=timedelta(days=90))]
    min_confidence: float = Field(default=0.95, ge=0.5, le=0.999)
    test_share: int | None = Field(default=None, ge=1, le=99)
    """Percent of a blast's audience split across the arms at first (default 20)."""
    fallback: Text | None = None
    """The arm the rest go to when no arm wins (default: the first arm that is not the
    control)."""


class AbSplitStep(PlanModel):
    """Assign users to arms by ``mmh3(salt + user_id) mod 10000``.

    ``salt`` defaults to the plan id, so assignments are stable across runs and versions.
    """

    type: Literal["ab_split"] = "ab_split"
    salt: Text | None = None
    arms: list[Arm] = Field(min_length=2, max_length=10)
    winner: Winner | None = None

    @model_validator(mode="after")
    def _fallback(self) -> AbSplitStep:
        fallback = self.winner.fallback if self.winner else None
        if fallback is not None:
            arm = next((a for a in self.arms if a.name == fallback), None)
            if arm is None:
                raise ValueError(f"winner.fallback: no arm {fallback!r}")
            if arm.control:
                raise ValueError("winner.fallback: the control arm receives nothing")
        return self

    def fallback_arm(self) -> int:
        """Index of the arm the rest go to when no arm wins."""
        fallback = self.winner.fallback if self.winner else None
        for i, arm in enumerate(self.arms):
            if arm.name == fallback or (fallback is None and not arm.control):
                return i
        raise AssertionError("an ab_split has an arm that is not the control")

    @field_validator("arms")
    @classmethod
    def _arms(cls, arms: list[Arm]) -> list[Arm]:
        total = sum(arm.weight for arm in arms)
        if total != 100:
            raise ValueError(f"weights sum to {total}, must be 100")
        _reject_repeats("arm", [arm.name for arm in arms])
        controls = [arm.name for arm in arms if arm.control]
        if len(controls) > 1:
            raise ValueError(f"at most one control arm, got {', '.join(controls)}")
        return arms


class WaitForEventStep(PlanModel):
    """Wait up to ``within`` for ``event``; arrivals go to ``on_event`` at once, the rest to
    ``on_timeout`` when the window closes. ``match_entry`` names a property that must equal
    the entry event's (the same order id, say)."""

    type: Literal["wait_for_event"] = "wait_for_event"
    event: EventName
    where: PropertyFilter | None = None
    match_entry: PropertyName | None = None
    within: WaitDuration
    on_event: StepId | None = None
    on_timeout: StepId | None = None

    @model_validator(mode="after")
    def _somewhere(self) -> WaitForEventStep:
        if self.on_event is None and self.on_timeout is None:
            raise ValueError("needs on_event and/or on_timeout")
        return self


class UpdateStep(PlanModel):
    """Set profile attributes and add or remove tags."""

    type: Literal["update"] = "update"
    set: dict[PropertyName, JsonValue] | None = Field(default=None, min_length=1)
    tags_add: list[Text] = Field(default_factory=list)
    tags_remove: list[Text] = Field(default_factory=list)
    next: StepId | None = None

    @model_validator(mode="after")
    def _something(self) -> UpdateStep:
        if not self.set and not self.tags_add and not self.tags_remove:
            raise ValueError("needs set, tags_add or tags_remove")
        both = sorted(set(self.tags_add) & set(self.tags_remove))
        if both:
            raise ValueError(f"tags both added and removed: {', '.join(both)}")
        return self


class WebhookStep(PlanModel):
    """Call an external system (grant a coupon, open a call-centre task) through an http channel."""

    type: Literal["webhook"] = "webhook"
    channel: ChannelName
    template: TemplateName
    vars: dict[str, JsonValue] = Field(default_factory=dict)
    next: StepId | None = None


class EntryField(PlanModel):
    """A decision field read from the entry event's property (``{entry: amount}``)."""

    entry: PropertyName


DecisionField = EntryField | Annotated[str, Field(max_length=1000)] | bool | int | float


class DecisionBranch(PlanModel):
    """Users whose decision is ``when`` (or whose decision's ``key`` is) go to ``next``."""

    name: Text
    when: JsonValue
    next: StepId | None = None


class DecideStep(PlanModel):
    """Route each user by what a decision instance decides for them (seed 004's engine):
    the first branch whose ``when`` equals the decision (its ``key``, when the decisions are
    objects) wins; the rest go to ``else``."""

    type: Literal["decide"] = "decide"
    instance: InstanceId
    key: PropertyName | None = None
    """Compare this property of the decision (an object) instead of the whole decision."""
    fields: dict[PropertyName, DecisionField] = Field(default_factory=dict)
    """The scene's pass-through fields: a constant, or ``{entry: prop}`` of the entry event."""
    branches: Annotated[list[DecisionBranch], Field(min_length=1), AfterValidator(_named_once)]
    else_: StepId | None = Field(default=None, alias="else")


class CheckStep(PlanModel):
    """Ask an external judgement service (risk control, a recommender; the channels file's
    ``services``) about the cohort, a page of users per request, and route each user by the
    ``answer`` field of their result: the first branch whose ``when`` equals it wins, other
    answers and users left out of the results go to ``else``, and when the service stays
    down through its attempts the page goes to ``on_failure`` (the fallback)."""

    type: Literal["check"] = "check"
    service: ChannelName
    answer: PropertyName = "verdict"
    attrs: list[PropertyName] = Field(default_factory=list, max_length=50)
    """Profile attributes sent with each user (only these: the service sees nothing else)."""
    branches: Annotated[list[DecisionBranch], Field(min_length=1), AfterValidator(_named_once)]
    else_: StepId | None = Field(default=None, alias="else")
    on_failure: StepId | None = None


class ExitStep(PlanModel):
    """End the journey of the users who reach it."""

    type: Literal["exit"] = "exit"
    reason: Text | None = None


def _reject_repeats(kind: str, names: list[str]) -> None:
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"{kind} names must be unique, repeated: {', '.join(repeated)}")


StepModel = (
    SendStep
    | WaitStep
    | WaitUntilStep
    | BranchStep
    | AbSplitStep
    | WaitForEventStep
    | UpdateStep
    | WebhookStep
    | DecideStep
    | CheckStep
    | ExitStep
)
Step = Annotated[StepModel, Field(discriminator="type")]
"""One node of the plan graph, discriminated on ``type``."""

STEP_TYPES: tuple[str, ...] = tuple(
    sorted(cls.model_fields["type"].default for cls in get_args(StepModel))
)
"""Every step kind, sorted."""
