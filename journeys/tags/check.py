"""A plan's rules checked against the tag registry: every problem with its path.

A tag a rule reads must exist and be published; a disabled tag is refused in a new plan
version but keeps working in the versions that already use it. The operator must suit the
tag's type (only numbers and dates compare) and each value must be of that type (an enum's
among its declared values). A pass-through tag is only known at call time, so no segment can
select on it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Literal

from journeys.errors import Problem
from journeys.plan.models import Plan
from journeys.plan.rule_sites import RuleSite, rule_sites, tag_leaves
from journeys.rules import ENTRY_PREFIX, RelativeDate, TagCondition
from journeys.tags.model import TagDefinition, TagKind

TagState = Literal["draft", "published", "disabled"]

OPS_BY_TYPE: dict[str, tuple[str, ...]] = {
    "number": ("eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "between", "exists"),
    "string": ("eq", "ne", "in", "not_in", "contains", "exists"),
    "enum": ("eq", "ne", "in", "not_in", "exists"),
    "bool": ("eq", "ne", "exists"),
    "datetime": ("eq", "ne", "gt", "gte", "lt", "lte", "between", "exists", "anniversary"),
    "list": ("contains", "exists"),
}
PLAN_TAG_KINDS: tuple[TagKind, ...] = ("user", "custom")
"""What a plan's rules may read: its users' tags and the entry event's fields."""
_KIND_NOUN = {
    "user": "a user tag",
    "item": "an item tag",
    "order": "an order tag",
    "custom": "a pass-through field",
}
_NOUN = {
    "number": "a number",
    "string": "a text",
    "bool": "true or false",
    "datetime": "a date, a date-time or a relative date like T-7d",
    "list": "a text, number or boolean element",
}


@dataclass(frozen=True)
class RegisteredTag:
    """One tag as the registry holds it."""

    name: str
    state: TagState
    live: TagDefinition | None
    live_version: int
    draft: TagDefinition | None = None


def rule_tag_problems(
    plan: Plan, registry: Mapping[str, RegisteredTag], *, allow_disabled: bool
) -> list[Problem]:
    """What is wrong with the tags ``plan``'s rules read (``registry`` holds at least those)."""
    return site_tag_problems(rule_sites(plan), registry, allow_disabled=allow_disabled)


def site_tag_problems(
    sites: Iterable[RuleSite],
    registry: Mapping[str, RegisteredTag],
    *,
    allow_disabled: bool,
    kinds: Collection[TagKind] = PLAN_TAG_KINDS,
    kinds_why: str = "decisions read it, plans cannot",
) -> list[Problem]:
    """What is wrong with the tags the rules at ``sites`` read; a tag of a kind outside
    ``kinds`` is refused for ``kinds_why``."""
    problems: list[Problem] = []
    for site in sites:
        for path, leaf in tag_leaves(site.rule, site.path):
            if leaf.tag.startswith(ENTRY_PREFIX):
                continue
            problems.extend(
                _leaf_problems(
                    path,
                    leaf,
                    registry.get(leaf.tag),
                    site.segment,
                    allow_disabled,
                    kinds,
                    kinds_why,
                )
            )
    return problems


def _leaf_problems(
    path: str,
    leaf: TagCondition,
    tag: RegisteredTag | None,
    segment: bool,
    allow_disabled: bool,
    kinds: Collection[TagKind],
    kinds_why: str,
) -> list[Problem]:
    where = f"{path}.tag"
    if tag is None:
        return [Problem(where, f'tag "{leaf.tag}" is not in the registry (journeys tags define)')]
    if tag.live is None:
        return [Problem(where, f'tag "{leaf.tag}" is a draft; publish it before rules use it')]
    if tag.state == "disabled" and not allow_disabled:
        reason = f'tag "{leaf.tag}" is disabled: only plan versions that already use it may'
        return [Problem(where, reason)]
    definition = tag.live
    if definition.whose not in kinds:
        return [Problem(where, f'tag "{leaf.tag}" is {_KIND_NOUN[definition.whose]}: {kinds_why}')]
    if segment and definition.passed_through:
        reason = f'tag "{leaf.tag}" is passed through at call time; a segment cannot read it'
        return [Problem(where, reason)]
    allowed = OPS_BY_TYPE[definition.type]
    if leaf.op not in allowed:
        article = "an" if definition.type == "enum" else "a"
        reason = (
            f"op {leaf.op} does not suit {article} {definition.type} tag (use {', '.join(allowed)})"
        )
        return [Problem(f"{path}.op", reason)]
    if leaf.op in ("exists", "anniversary"):
        return []  # their operands were checked with the rule
    values = leaf.value if isinstance(leaf.value, list) else [leaf.value]
    return [
        Problem(f"{path}.value", why)
        for value in values
        if (why := _value_problem(definition, value)) is not None
    ]


def _value_problem(definition: TagDefinition, value: object) -> str | None:
    kind = definition.type
    if kind == "enum":
        declared = definition.values or []
        if value in declared:
            return None
        return f"{_show(value)} is not one of the declared values: {', '.join(declared)}"
    if _fits(kind, value):
        return None
    return f"a {kind} tag takes {_NOUN[kind]}, got {_show(value)}"


def _fits(kind: str, value: object) -> bool:
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "string":
        return isinstance(value, str)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "datetime":
        return isinstance(value, date | RelativeDate)
    return isinstance(value, str | int | float)  # a list's element (bool is an int)


def _show(value: object) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
