"""API entries: a caller puts users into a running plan now, each with a context object.

A trigger becomes the plan's reserved entry event (:func:`journeys.events.api_entry_event`)
with the context as its props, so it is stored, de-duplicated, routed and admitted exactly
as an entry event is, and templates, rules and ``match_entry`` read the context as they read
an entry event's properties. The event id comes from the plan, the caller's request id and
the user: a request sent again enters no one twice, and a user named twice in one request
enters once.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from itertools import islice
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, JsonValue, ValidationError

from journeys.event_checks import MAX_PROPS_DEPTH, id_problem, props_problems
from journeys.events import (
    MAX_BATCH,
    MAX_PROBLEMS,
    MAX_PROPS_BYTES,
    MAX_USER_ID,
    EventProblem,
    JourneyEvent,
    api_entry_event,
)

MAX_REQUEST_ID = 200


def _checked_id(value: str) -> str:
    reason = id_problem(value)
    if reason is not None:
        raise ValueError(reason)
    return value


class TriggerEntry(BaseModel):
    """One user to enter, with what the plan reads as ``entry.*``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    user_id: Annotated[str, AfterValidator(_checked_id)] = Field(
        min_length=1, max_length=MAX_USER_ID
    )
    context: dict[str, JsonValue] = Field(default_factory=dict)


class TriggerRequest(BaseModel):
    """The body of ``POST /v1/plans/{plan_id}/entries``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    request_id: Annotated[str, AfterValidator(_checked_id)] = Field(
        min_length=1, max_length=MAX_REQUEST_ID
    )
    """The caller's id of this request: the same request sent again enters no one twice."""
    entries: list[TriggerEntry] = Field(min_length=1, max_length=MAX_BATCH)


class TriggerReport(BaseModel):
    """What happened to an accepted request."""

    accepted: int
    duplicates: int = 0
    """Entries this request id brought before: they did not act again."""
    routed: int = 0
    """Deliveries to the plan's running runs (each then applies its entry rules)."""


def trigger_event_id(plan_id: str, request_id: str, user_id: str) -> str:
    """The stored event's id: one per (plan, request, user)."""
    digest = hashlib.sha256("\0".join((plan_id, request_id, user_id)).encode()).hexdigest()
    return f"trigger-{digest[:40]}"


def parse_trigger(
    plan_id: str,
    raw: object,
    *,
    now: datetime,
    max_props_bytes: int = MAX_PROPS_BYTES,
    max_props_depth: int = MAX_PROPS_DEPTH,
) -> tuple[list[JourneyEvent], list[EventProblem]]:
    """The entry events of request ``raw`` for ``plan_id``, or the problems (index -1: the
    request; else the entry) and no events; contexts pass the checks events' props pass."""
    problems: list[EventProblem] = []
    if isinstance(raw, dict) and isinstance(entries := raw.get("entries"), list):
        for index, item in enumerate(entries[:MAX_BATCH]):
            context = item.get("context") if isinstance(item, dict) else None
            if isinstance(context, dict):
                found = islice(props_problems(context, max_depth=max_props_depth), MAX_PROBLEMS)
                problems += [
                    EventProblem(index=index, field="context" + w.removeprefix("props"), reason=r)
                    for w, r in found
                ]
        if problems:
            return [], problems
    try:
        request = TriggerRequest.model_validate(raw)
    except ValidationError as exc:
        return [], [_problem(error) for error in exc.errors()[:MAX_PROBLEMS]]
    events = []
    for index, entry in enumerate(request.entries):
        size = len(json.dumps(entry.context, separators=(",", ":")).encode())
        if size > max_props_bytes:
            reason = f"is {size} bytes as JSON, at most {max_props_bytes}"
            problems.append(EventProblem(index=index, field="context", reason=reason))
            continue
        events.append(
            JourneyEvent(
                user_id=entry.user_id,
                name=api_entry_event(plan_id),
                ts=now,
                props=entry.context,
                event_id=trigger_event_id(plan_id, request.request_id, entry.user_id),
            )
        )
    return ([], problems) if problems else (events, [])


def _problem(error: object) -> EventProblem:
    assert isinstance(error, dict)
    loc = [str(part) for part in error["loc"]]
    index = -1
    if len(loc) >= 2 and loc[0] == "entries" and loc[1].isdigit():
        index, loc = int(loc[1]), loc[2:]
    reason = str(error["msg"]).removeprefix("Value error, ")
    return EventProblem(index=index, field=".".join(loc) or "body", reason=reason)
