"""A tag's definition: its type, where its value comes from, and how long a computed value
may be reused.

Tags are defined in a YAML file (``journeys tags define tags.yaml``), one mapping per tag::

    tags:
      level: {type: enum, values: [bronze, silver, gold], description: Membership level}
      birthday: {type: datetime}
      orders_30d:
        type: number
        source: {event: order_paid, aggregate: count, within: 30d}
      vip_list: {type: bool, source: {list: vip-2026}}
      channel: {type: string, source: {field: channel}}

The source is a profile attribute (the default, named like the tag), an uploaded list
(membership, a bool), an aggregate of an event over a window (a number), or a pass-through
field the caller gives (an event-triggered journey's entry event, later a decision request).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from journeys.durations import Duration, PositiveDuration, within
from journeys.errors import InvalidInput, Problem
from journeys.plan.common import AudienceName, PlanModel
from journeys.plan.problems import problems_from_error, sorted_problems
from journeys.plan.source import load_checked
from journeys.rules import EventName, PropertyFilter, PropertyName, TagName

TagType = Literal["number", "string", "enum", "bool", "datetime", "list"]
TagKind = Literal["user", "item", "order", "custom"]
"""Whose value a tag is (seed 004): a user's (by user id), an item's (by sku), an order's (by
order id), or a custom field the caller passes through."""
Aggregate = Literal["count", "sum", "min", "max", "avg"]
DEFAULT_CACHE_TTL = timedelta(minutes=3)
"""How long a computed tag's value (a list or an aggregate) is reused unless it says."""
MAX_WINDOW = timedelta(days=3660)


class TagsInvalid(InvalidInput):
    """A tags file with problems (all of them, with their paths)."""


class AttributeSource(PlanModel):
    """A profile attribute (``users.attrs``; ``email``, ``phone``, ``timezone`` columns too)."""

    attribute: PropertyName


class ListSource(PlanModel):
    """Membership of an uploaded audience (``journeys audience upload``): a bool."""

    list: AudienceName


class AggregateSource(PlanModel):
    """An aggregate of a user's events of one name (matching ``where``) over ``within``:
    ``count`` (0 when none), or the ``sum`` / ``min`` / ``max`` / ``avg`` of a number
    property (no value when no event has one)."""

    event: EventName
    aggregate: Aggregate = "count"
    property: PropertyName | None = None
    where: PropertyFilter | None = None
    within: Annotated[PositiveDuration, within(maximum=MAX_WINDOW)]

    @model_validator(mode="after")
    def _property(self) -> AggregateSource:
        if self.aggregate == "count" and self.property is not None:
            raise ValueError("count counts events; it takes no property")
        if self.aggregate != "count" and self.property is None:
            raise ValueError(f"{self.aggregate} needs the number property it reads")
        return self


class FieldSource(PlanModel):
    """A pass-through field: given by the caller at call time, never stored."""

    field: PropertyName


_SOURCE_KEYS = {"attribute": "attribute", "list": "list", "event": "aggregate", "field": "field"}


def _source_kind(data: Any) -> str | None:
    if isinstance(data, dict):
        found = [kind for key, kind in _SOURCE_KEYS.items() if key in data]
        return found[0] if len(found) == 1 else None
    kinds: dict[type, str] = {
        AttributeSource: "attribute",
        ListSource: "list",
        AggregateSource: "aggregate",
        FieldSource: "field",
    }
    return kinds.get(type(data))


TagSource = Annotated[
    Annotated[AttributeSource, Tag("attribute")]
    | Annotated[ListSource, Tag("list")]
    | Annotated[AggregateSource, Tag("aggregate")]
    | Annotated[FieldSource, Tag("field")],
    Discriminator(
        _source_kind,
        custom_error_type="tag_source",
        custom_error_message="a source needs one of the keys: attribute, list, event, field",
    ),
]


class TagDefinition(PlanModel):
    """What a tag is; ``source`` defaults to the profile attribute of the tag's name."""

    type: TagType
    kind: TagKind | None = None
    """Whose value this is; a pass-through field is ``custom``, anything else ``user`` unless
    it says (item and order tags read the attributes of the catalog's items and orders)."""
    values: list[Annotated[str, Field(min_length=1, max_length=200)]] | None = None
    source: TagSource | None = None
    description: str = ""
    cache_ttl: Annotated[Duration, within(positive=False, maximum=timedelta(days=1))] | None = None

    @field_validator("values")
    @classmethod
    def _unique(cls, values: list[str] | None) -> list[str] | None:
        if values is not None:
            if not values:
                raise ValueError("an enum needs at least one value")
            if len(set(values)) != len(values):
                raise ValueError("values must be unique")
        return values

    @model_validator(mode="after")
    def _consistent(self) -> TagDefinition:
        if self.type == "enum" and self.values is None:
            raise ValueError("an enum tag declares its values")
        if self.type != "enum" and self.values is not None:
            raise ValueError(f"only enum tags declare values, this one is {self.type}")
        if isinstance(self.source, ListSource) and self.type != "bool":
            raise ValueError("a list tag says whether the user is in the list: type bool")
        if isinstance(self.source, AggregateSource) and self.type != "number":
            raise ValueError("an event aggregate is a number: type number")
        if self.cache_ttl is not None and not self.computed:
            raise ValueError("cache_ttl is for computed tags (a list or an event aggregate)")
        if self.passed_through != (self.kind == "custom") and self.kind is not None:
            raise ValueError(
                "a custom tag is a pass-through field (source: {field: ...}), and a "
                "pass-through field is a custom tag"
            )
        if self.kind in ("item", "order") and self.computed:
            raise ValueError(f"an {self.kind} tag reads an attribute of the {self.kind}")
        return self

    @property
    def whose(self) -> TagKind:
        """The tag's kind, with its default filled in."""
        if self.kind is not None:
            return self.kind
        return "custom" if self.passed_through else "user"

    @property
    def computed(self) -> bool:
        """Whether the value is computed (and cached) rather than read as it is stored."""
        return isinstance(self.source, ListSource | AggregateSource)

    @property
    def passed_through(self) -> bool:
        """Whether the caller gives the value (no segment can read it)."""
        return isinstance(self.source, FieldSource)

    def attribute(self, name: str) -> str | None:
        """The profile attribute this tag reads, or None when it reads no attribute."""
        if self.source is None:
            return name
        return self.source.attribute if isinstance(self.source, AttributeSource) else None

    def ttl(self) -> timedelta:
        """How long a computed value is reused (0: computed every time)."""
        return DEFAULT_CACHE_TTL if self.cache_ttl is None else self.cache_ttl


class TagsFile(PlanModel):
    """A file of tag definitions by name."""

    tags: dict[TagName, TagDefinition] = Field(min_length=1)


def check_tags_file(data: object) -> tuple[TagsFile | None, list[Problem]]:
    """Validate a parsed tags file; the model only when nothing is wrong."""
    try:
        return TagsFile.model_validate(data), []
    except ValidationError as exc:
        return None, sorted_problems(problems_from_error(exc))


def definition_of(body: object) -> TagDefinition:
    """A stored definition (JSON from the registry) as the model."""
    return TagDefinition.model_validate(body)


def load_tags_file(path: Path) -> TagsFile:
    """Read and validate a tags file; raise :class:`TagsInvalid` listing every problem."""
    return load_checked(path, check_tags_file, refused=TagsInvalid)
