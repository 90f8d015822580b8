"""Which event names a plan's runs listen for (the ingest routes only those to them)."""

from __future__ import annotations

from journeys.plan.entry import EventEntry
from journeys.plan.models import Plan
from journeys.plan.steps import WaitForEventStep


def listened_events(plan: Plan) -> list[str]:
    """Entry trigger, ``wait_for_event`` steps, exit criteria and goal, sorted, unique."""
    names: set[str] = set()
    if isinstance(plan.entry, EventEntry):
        names.add(plan.entry.event)
    names.update(s.event for s in plan.steps.values() if isinstance(s, WaitForEventStep))
    names.update(c.event for c in plan.exit_criteria if c.event is not None)
    if plan.goal is not None:
        names.add(plan.goal.event)
    return sorted(names)
