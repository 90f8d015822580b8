"""Which event names a plan's runs listen for (the ingest routes only those to them), and the
entry that admits arrivals: an event entry, or an API entry seen as one."""

from __future__ import annotations

from journeys.events import api_entry_event
from journeys.plan.entry import ApiEntry, EventEntry
from journeys.plan.models import Plan
from journeys.plan.steps import WaitForEventStep


def listening_entry(plan: Plan) -> EventEntry | None:
    """How arrivals enter ``plan``'s runs, or None when its audience enters at the start.

    An API entry is the event entry of the plan's reserved event (:func:`api_entry_event`):
    a trigger is stored and routed as that event, so both take one path from ingest to
    admission."""
    entry = plan.entry
    if isinstance(entry, EventEntry):
        return entry
    if isinstance(entry, ApiEntry):
        fields = entry.model_dump(mode="json", by_alias=True, exclude={"type"})
        return EventEntry.model_validate({**fields, "event": api_entry_event(plan.id)})
    return None


def listened_events(plan: Plan) -> list[str]:
    """Entry trigger, ``wait_for_event`` steps, exit criteria and goal, sorted, unique."""
    names: set[str] = set()
    entry = listening_entry(plan)
    if entry is not None:
        names.add(entry.event)
    names.update(s.event for s in plan.steps.values() if isinstance(s, WaitForEventStep))
    names.update(c.event for c in plan.exit_criteria if c.event is not None)
    if plan.goal is not None:
        names.add(plan.goal.event)
    return sorted(names)
