"""Plan-level checks that span sections (entry vs audience, steps, exit criteria).

Like the graph checks they read the raw document, so they are reported together with every
other problem even when some sections fail validation.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from journeys.errors import Problem
from journeys.plan.graph import step_path
from journeys.rules import ENTRY_PREFIX

ARRIVALS = ("event", "api")
"""Entry types whose users arrive one by one during the run (an event, a caller)."""


def entry_type(document: Mapping[str, object]) -> str | None:
    """The entry ``type`` as written, if it is a string."""
    entry = document.get("entry")
    kind = entry.get("type") if isinstance(entry, Mapping) else None
    return kind if isinstance(kind, str) else None


def _rule_tags(rule: object, path: str) -> Iterator[tuple[str, str]]:
    """``(path, tag name)`` of every tag condition in a raw rule, paths as in pydantic errors."""
    if not isinstance(rule, Mapping):
        return
    for form in ("all", "any"):
        children = rule.get(form)
        if isinstance(children, list):
            for index, child in enumerate(children):
                yield from _rule_tags(child, f"{path}.{form}.{index}")
    if "not" in rule:
        yield from _rule_tags(rule["not"], f"{path}.not")
    if isinstance(tag := rule.get("tag"), str):
        yield f"{path}.tag", tag


def _plan_rules(document: Mapping[str, object]) -> Iterator[tuple[str, object]]:
    """Rules evaluated on users already in the journey: branch rules and exit criteria."""
    steps = document.get("steps")
    for step_id, step in steps.items() if isinstance(steps, Mapping) else ():
        branches = step.get("branches") if isinstance(step, Mapping) else None
        for index, branch in enumerate(branches if isinstance(branches, list) else []):
            if isinstance(branch, Mapping):
                yield f"{step_path(step_id, step)}.branches.{index}.rule", branch.get("rule")
    criteria = document.get("exit_criteria")
    for index, criterion in enumerate(criteria if isinstance(criteria, list) else []):
        if isinstance(criterion, Mapping):
            yield f"exit_criteria.{index}.rule", criterion.get("rule")


_NOT_FOR_TRANSACTIONAL = ("caps", "plan_cap", "quiet_hours")


def plan_level_problems(document: Mapping[str, object]) -> list[Problem]:
    """A missing audience, ``match_entry`` and ``entry.*`` tags without an event entry,
    marketing limits on a transactional plan."""
    problems: list[Problem] = _transactional_problems(document)
    kind = entry_type(document)
    problems += _winner_problems(document, kind)
    if document.get("audience") is None and kind not in ARRIVALS:
        problems.append(Problem("audience", "required unless entry is event or api"))
    if kind is None or kind in ARRIVALS:
        return problems
    steps = document.get("steps")
    for step_id, step in steps.items() if isinstance(steps, Mapping) else ():
        if isinstance(step, Mapping) and step.get("match_entry") is not None:
            path = f"{step_path(step_id, step)}.match_entry"
            problems.append(Problem(path, f"needs an event or api entry (entry type is {kind})"))
    for rule_path, rule in _plan_rules(document):
        for path, tag in _rule_tags(rule, rule_path):
            if tag.startswith(ENTRY_PREFIX):
                reason = f'tag "{tag}" reads the entry event, but the entry type is {kind}'
                problems.append(Problem(path, reason))
    return problems


def _transactional_problems(document: Mapping[str, object]) -> list[Problem]:
    """A transactional plan skips caps and quiet hours, so its own would never act."""
    limits = document.get("limits")
    if document.get("transactional") is not True or not isinstance(limits, Mapping):
        return []
    reason = "a transactional plan is exempt from caps and quiet hours; remove it or the flag"
    problems = [
        Problem(f"limits.{name}", reason)
        for name in _NOT_FOR_TRANSACTIONAL
        if limits.get(name) not in (None, [], {})
    ]
    if limits.get("priority", 50) != 50:
        problems.append(Problem("limits.priority", "a transactional plan competes for no slot"))
    return problems


def _winner_problems(document: Mapping[str, object], kind: str | None) -> list[Problem]:
    """A winning path needs what its metric counts, and holds back only a blast's users."""
    problems: list[Problem] = []
    steps = document.get("steps")
    for step_id, step in steps.items() if isinstance(steps, Mapping) else ():
        winner = step.get("winner") if isinstance(step, Mapping) else None
        if not isinstance(winner, Mapping):
            continue
        path = f"{step_path(step_id, step)}.winner"
        if winner.get("metric") == "conversion" and document.get("goal") is None:
            problems.append(Problem(f"{path}.metric", "conversion needs the plan's goal"))
        if kind in ARRIVALS and winner.get("test_share") is not None:
            reason = (
                "holds back a blast's audience; an event-triggered plan splits every "
                "entrant until an arm wins"
            )
            problems.append(Problem(f"{path}.test_share", reason))
    return problems
