"""Every rule of a plan with where it sits, and whether a segment (SQL) or a page reads it."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from journeys.plan.audience import Audience, SegmentAudience, SetAudience
from journeys.plan.entry import ApiEntry, EventEntry
from journeys.plan.models import Plan
from journeys.plan.steps import BranchStep
from journeys.rules import (
    ENTRY_PREFIX,
    AllOf,
    AnyOf,
    EventCondition,
    NotRule,
    Rule,
    TagCondition,
)


@dataclass(frozen=True)
class RuleSite:
    """A rule, its dotted path in the plan file, and whether it selects a segment in SQL."""

    path: str
    rule: Rule
    segment: bool


def rule_sites(plan: Plan) -> list[RuleSite]:
    """The plan's rules in file order: audience, entry, steps, exit criteria."""
    sites: list[RuleSite] = []
    if plan.audience is not None:
        sites.extend(_audience_sites(plan.audience, "audience"))
    if isinstance(plan.entry, EventEntry | ApiEntry) and plan.entry.rule is not None:
        sites.append(RuleSite("entry.rule", plan.entry.rule, segment=False))
    for step_id, step in plan.steps.items():
        if isinstance(step, BranchStep):
            for index, branch in enumerate(step.branches):
                path = f"steps.{step_id}.branches.{index}.rule"
                sites.append(RuleSite(path, branch.rule, segment=False))
    for index, criterion in enumerate(plan.exit_criteria):
        if criterion.rule is not None:
            sites.append(RuleSite(f"exit_criteria.{index}.rule", criterion.rule, segment=False))
    return sites


def _audience_sites(audience: Audience, path: str) -> Iterator[RuleSite]:
    if isinstance(audience, SegmentAudience):
        yield RuleSite(f"{path}.rule", audience.rule, segment=True)
    elif isinstance(audience, SetAudience):
        for index, member in enumerate(audience.of):
            yield from _audience_sites(member, f"{path}.of.{index}")


def rule_leaves(rule: Rule, path: str) -> Iterator[tuple[str, TagCondition | EventCondition]]:
    """Each leaf condition of ``rule`` with its dotted path, in file order."""
    if isinstance(rule, AllOf | AnyOf):
        form, children = ("all", rule.all) if isinstance(rule, AllOf) else ("any", rule.any)
        for index, child in enumerate(children):
            yield from rule_leaves(child, f"{path}.{form}.{index}")
    elif isinstance(rule, NotRule):
        yield from rule_leaves(rule.not_, f"{path}.not")
    else:
        yield path, rule


def tag_leaves(rule: Rule, path: str) -> Iterator[tuple[str, TagCondition]]:
    """Each tag condition of ``rule`` with its dotted path."""
    for where, leaf in rule_leaves(rule, path):
        if isinstance(leaf, TagCondition):
            yield where, leaf


def rule_tags(rules: Iterable[Rule]) -> list[str]:
    """The registry tags ``rules`` read (``entry.*`` reads the entry event, not a tag), sorted."""
    return sorted(
        {
            leaf.tag
            for rule in rules
            for _, leaf in tag_leaves(rule, "")
            if not leaf.tag.startswith(ENTRY_PREFIX)
        }
    )


def plan_tags(plan: Plan) -> list[str]:
    """The registry tags every rule of ``plan`` reads, sorted."""
    return rule_tags(site.rule for site in rule_sites(plan))
