"""The rule language: ``all`` / ``any`` / ``not`` trees over tag and behaviour conditions.

Only the model and its static checks live here; evaluation is in :mod:`journeys.rule_eval`
(in memory, for pages) and :mod:`journeys.rule_sql` (compiled, for segments), which agree.
A tag whose name starts with :data:`ENTRY_PREFIX` (``entry.reason``) reads a property of the
event that brought the user into an event-triggered journey.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PlainSerializer,
    PlainValidator,
    RootModel,
    Tag,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from journeys.durations import PositiveDuration, format_duration, parse_duration

ENTRY_PREFIX = "entry."
"""Tag names with this prefix read the entry event's properties (pass-through fields)."""

TagOp = Literal[
    "eq",
    "ne",
    "gt",
    "gte",
    "lt",
    "lte",
    "in",
    "not_in",
    "contains",
    "exists",
    "between",
    "anniversary",
]
TAG_OPS: tuple[str, ...] = get_args(TagOp)
RULE_FORMS = ("all", "any", "not", "tag", "event")
ANNIVERSARY_UNITS = ("day", "week", "month")
"""``{tag: birthday, op: anniversary, value: week}``: the date's month and day fall today, this
week (Monday to Sunday) or this month, in the zone of the moment the rule is evaluated at."""


@dataclass(frozen=True, order=True)
class RelativeDate:
    """``T-7d`` / ``T+1d``: a moment relative to when the rule is evaluated."""

    offset: timedelta

    def __str__(self) -> str:
        sign = "-" if self.offset < timedelta(0) else "+"
        return f"T{sign}{format_duration(abs(self.offset))}"


_RELATIVE = re.compile(r"T([+-])((?:\d+(?:ms|w|d|h|m|s))+)")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}.*")
Scalar = bool | int | float | str | datetime | date | RelativeDate


def _parse_scalar(value: object) -> Scalar:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(
                f"date-time {value.isoformat()} needs a UTC offset, like 2025-06-01T09:00:00+08:00"
            )
        return value
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("numbers must be finite")
    if isinstance(value, bool | int | float | date | RelativeDate):
        return value
    if not isinstance(value, str):
        raise ValueError(f"must be a text, number, boolean or date, got {type(value).__name__}")
    if match := _RELATIVE.fullmatch(value):
        offset = parse_duration(match.group(2))
        return RelativeDate(-offset if match.group(1) == "-" else offset)
    if _DATE.fullmatch(value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise ValueError(f'bad date "{value}"') from None
    if _DATETIME.fullmatch(value):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f'bad date-time "{value}"') from None
        return _parse_scalar(moment)
    return value


def parse_value(value: object) -> Scalar | list[Scalar] | None:
    """Read a rule operand: a scalar, a list of scalars, a date or a relative date (``T-7d``)."""
    if value is None:
        return None
    if isinstance(value, list | tuple):
        return [_parse_scalar(item) for item in value]
    if isinstance(value, dict):
        raise ValueError("must be a single value or a list, not a mapping")
    return _parse_scalar(value)


def _value_to_json(value: Any) -> Any:
    if isinstance(value, list):
        return [_value_to_json(item) for item in value]
    if isinstance(value, RelativeDate):
        return str(value)
    if isinstance(value, date):  # datetime too
        return value.isoformat()
    return value


Value = Annotated[
    Any,
    PlainValidator(parse_value),
    PlainSerializer(_value_to_json, when_used="json"),
    WithJsonSchema(
        {
            "description": "a value, a list of values, a date-time or a relative date (T-7d)",
            "anyOf": [
                {"type": ["string", "number", "boolean", "null"]},
                {"type": "array", "items": {"type": ["string", "number", "boolean"]}},
            ],
        }
    ),
]
"""A rule operand after :func:`parse_value`."""


def _show(value: object) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_show(item) for item in value) + "]"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(_value_to_json(value))


def _order_kind(value: object) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return "number"
    for kind in (datetime, date, RelativeDate):  # datetime before date: it is a subclass
        if isinstance(value, kind):
            return kind.__name__
    return None


def check_operand(op: str, value: object) -> None:
    """Raise ``ValueError`` if ``value`` cannot be the operand of ``op``."""
    if op == "anniversary":
        if value not in ANNIVERSARY_UNITS:
            raise ValueError(f"op anniversary takes day, week or month, got {_show(value)}")
    elif op == "exists":
        if value is not None and not isinstance(value, bool):
            raise ValueError(f"op exists takes true, false or nothing, got {_show(value)}")
    elif op in ("in", "not_in"):
        if not isinstance(value, list) or not value:
            raise ValueError(f"op {op} needs a non-empty list")
    elif op == "between":
        if not isinstance(value, list) or len(value) != 2:
            raise ValueError("op between needs a list [low, high]")
        low, high = value
        kinds = {_order_kind(low), _order_kind(high)}
        if None in kinds:
            raise ValueError(
                f"op between needs numbers, date-times or relative dates, got {_show(value)}"
            )
        if len(kinds) != 1:
            raise ValueError(f"op between needs two values of the same kind, got {_show(value)}")
        if low > high:
            raise ValueError(f"op between needs low <= high, got {_show(value)}")
    elif value is None:
        raise ValueError(f"op {op} needs a value")
    elif isinstance(value, list):
        raise ValueError(f"op {op} needs a single value, got a list")
    elif op in ("gt", "gte", "lt", "lte") and _order_kind(value) is None:
        raise ValueError(
            f"op {op} needs a number, date-time or relative date like T-7d, got {_show(value)}"
        )


NAME_PATTERN = r"[A-Za-z_][A-Za-z0-9_.:-]{0,99}"
"""Tag, event and property names (whole string)."""
_NAME = re.compile(NAME_PATTERN)


def check_name(value: str, *, kind: str) -> str:
    """Return ``value`` if it is a usable tag / event / property name, else raise."""
    if not _NAME.fullmatch(value):
        # quoted as valid UTF-8: a lone surrogate in the message would fail whoever shows it
        shown = value[:120].encode("utf-8", "backslashreplace").decode("utf-8")
        raise ValueError(
            f'bad {kind} "{shown}": use letters, digits, "_", ".", ":" and "-", '
            "starting with a letter or _ (at most 100)"
        )
    return value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _named(kind: str) -> AfterValidator:
    return AfterValidator(lambda value: check_name(value, kind=kind))


TagName = Annotated[str, _named("tag name")]
EventName = Annotated[str, _named("event name")]
PropertyName = Annotated[str, _named("property name")]


class PropertyTest(RootModel[dict[TagOp, Value]]):
    """The tests on one event property, all of which must hold.

    Written as a value (``price_too_low``: equals), a list (one of) or ``{gte: 100, lt: 500}``.
    """

    model_config = ConfigDict(frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, PropertyTest):
            return data.root
        if not isinstance(data, dict):
            data = {"in" if isinstance(data, list | tuple) else "eq": data}
        if not data:
            raise ValueError("needs at least one operator, e.g. {gte: 10}")
        tests: dict[str, Any] = {}
        for op, operand in data.items():
            if op not in TAG_OPS:
                raise ValueError(f'unknown operator "{op}" (use one of: {", ".join(TAG_OPS)})')
            tests[op] = parse_value(operand)
            check_operand(op, tests[op])
        return tests


PropertyFilter = dict[PropertyName, PropertyTest]
"""Event property filters: ``{reason: price_too_low, amount: {gte: 100}}``."""


class TagCondition(_Model):
    """``{tag: city, op: eq, value: Beijing}``; ``exists`` may leave out the value."""

    tag: TagName
    op: TagOp
    value: Value = Field(default=None, validate_default=True)

    @field_validator("value")
    @classmethod
    def _operand(cls, value: Any, info: ValidationInfo) -> Any:
        op = info.data.get("op")
        if op is not None:
            check_operand(op, value)
        return value


class CountBounds(_Model):
    """How many matching events: ``{gte: 1}``, ``{lte: 0}`` (never), ``{gte: 2, lte: 5}``."""

    gte: int | None = Field(default=None, ge=0)
    lte: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _order(self) -> CountBounds:
        if self.gte is None and self.lte is None:
            raise ValueError("needs gte and/or lte")
        if self.gte is not None and self.lte is not None and self.gte > self.lte:
            raise ValueError(f"gte {self.gte} is more than lte {self.lte}")
        return self


class EventCondition(_Model):
    """A behaviour: the user did ``event`` (matching ``where``) ``count`` times ``within``."""

    event: EventName
    where: PropertyFilter | None = None
    within: PositiveDuration | None = None
    count: CountBounds = CountBounds(gte=1)


class AllOf(_Model):
    """Every child rule holds."""

    all: list[Rule] = Field(min_length=1)


class AnyOf(_Model):
    """At least one child rule holds."""

    any: list[Rule] = Field(min_length=1)


class NotRule(_Model):
    """The child rule does not hold."""

    not_: Rule = Field(alias="not")


_FORM_OF_CLASS: dict[type[BaseModel], str] = {
    AllOf: "all",
    AnyOf: "any",
    NotRule: "not",
    TagCondition: "tag",
    EventCondition: "event",
}


def _rule_form(data: Any) -> str | None:
    """Which rule form a value is: the one key among ``all any not tag event`` it has."""
    if isinstance(data, dict):
        found = [form for form in RULE_FORMS if form in data]
        return found[0] if len(found) == 1 else None
    return _FORM_OF_CLASS.get(type(data))


Rule = Annotated[
    Annotated[AllOf, Tag("all")]
    | Annotated[AnyOf, Tag("any")]
    | Annotated[NotRule, Tag("not")]
    | Annotated[TagCondition, Tag("tag")]
    | Annotated[EventCondition, Tag("event")],
    Discriminator(
        _rule_form,
        custom_error_type="rule_form",
        custom_error_message="a rule needs exactly one of the keys: all, any, not, tag, event",
    ),
]
"""A rule tree node."""

AllOf.model_rebuild()
AnyOf.model_rebuild()
NotRule.model_rebuild()


def iter_conditions(rule: Rule) -> list[TagCondition | EventCondition]:
    """The leaf conditions of a rule, depth first in file order."""
    if isinstance(rule, AllOf | AnyOf):
        children = rule.all if isinstance(rule, AllOf) else rule.any
        return [leaf for child in children for leaf in iter_conditions(child)]
    if isinstance(rule, NotRule):
        return iter_conditions(rule.not_)
    return [rule]
