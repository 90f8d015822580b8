"""User events as product services send them, and the checks every event passes.

An event is refused (never half-accepted) when it breaks a rule here, so a malformed event
is an error for its sender and can never fail a workflow downstream.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from itertools import islice

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError, field_validator

from journeys.event_checks import MAX_PROPS_DEPTH, id_problem, parse_ts, props_problems
from journeys.rules import EventName

MAX_PROPS_BYTES = 16 * 1024
"""Default largest ``props`` object (as compact JSON; ``JOURNEYS_EVENT_PROPS_MAX_BYTES``):
events ride in signals and history."""
PROPS_BYTES_CEILING = 64 * 1024
"""No setting goes above this: one event must fit a signal far below Temporal's 2 MiB."""

MAX_USER_ID = 200


def checked_user_id(value: str) -> str:
    """``value`` when it can be an event's ``user_id`` (a pydantic validator for the other
    endpoints that name users); else :class:`ValueError` with the reason."""
    if not value or len(value) > MAX_USER_ID:
        raise ValueError(f"user ids are 1 to {MAX_USER_ID} characters")
    reason = id_problem(value)
    if reason is not None:
        raise ValueError(reason)
    return value


API_ENTRY_PREFIX = "_entry:"
"""Event names reserved for API entries: the sender of ``POST /v1/events`` cannot use them."""


def api_entry_event(plan_id: str) -> str:
    """The event a trigger of ``plan_id`` is stored and routed as (``_entry:{plan_id}``);
    rules may read it as a behaviour ("triggered into the plan in the last 30 days")."""
    return f"{API_ENTRY_PREFIX}{plan_id}"


class JourneyEvent(BaseModel):
    """One thing a user did: ``order_cancelled`` with ``{order_id, reason}``, say."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    user_id: str = Field(min_length=1, max_length=MAX_USER_ID)
    name: EventName
    ts: datetime | None = None
    """When it happened (with an offset); the receiver's clock when left out."""
    props: dict[str, JsonValue] = Field(default_factory=dict)
    event_id: str | None = Field(default=None, min_length=1, max_length=200)
    """The sender's id for de-duplication: a second event with the same id is dropped."""

    @field_validator("user_id", "event_id")
    @classmethod
    def _id(cls, value: str | None) -> str | None:
        reason = None if value is None else id_problem(value)
        if reason is not None:
            raise ValueError(reason)
        return value

    @field_validator("ts", mode="before")
    @classmethod
    def _instant(cls, value: object) -> object:
        # JSON carries ts as text, checked strictly (no numbers, no naive or odd forms);
        # Python callers may pass an aware datetime
        if isinstance(value, datetime):
            if value.tzinfo is None or value.utcoffset() is None:
                raise ValueError("needs a UTC offset, like 2026-06-01T09:00:00+08:00")
            return value
        return None if value is None else parse_ts(value)


class EventBatch(BaseModel):
    """Events for one shard of one run: the payload of the shard's ``events`` signal."""

    events: list[JourneyEvent]


MAX_PROBLEMS = 100
"""Problems reported for one batch at the most (one more says there were more)."""
MAX_BATCH = 1_000
"""Events in one request or call."""
MAX_BODY_BYTES = 4 * 1024 * 1024
"""Default largest ingest request body (``JOURNEYS_INGEST_MAX_BODY_BYTES``): a full batch of
typical events is far smaller; a sender of bigger ones splits its batches."""
BODY_BYTES_CEILING = 64 * 1024 * 1024


def take_batch(events: Sequence[JourneyEvent], *, most: int, max_bytes: int) -> list[JourneyEvent]:
    """The first of ``events``: at most ``most`` of them and ``max_bytes`` as JSON (always
    at least one), so a batch fits a signal or an activity input whatever the events carry."""
    batch: list[JourneyEvent] = []
    size = 0
    for event in events[:most]:
        weight = len(event.model_dump_json())
        if batch and size + weight > max_bytes:
            break
        batch.append(event)
        size += weight
    return batch


class EventProblem(BaseModel):
    """Why event ``index`` of a batch was refused."""

    index: int
    field: str
    reason: str


def parse_events(
    raw: Sequence[object],
    *,
    now: datetime,
    max_props_bytes: int = MAX_PROPS_BYTES,
    max_props_depth: int = MAX_PROPS_DEPTH,
) -> tuple[list[JourneyEvent], list[EventProblem]]:
    """Validate a batch; events without ``ts`` get ``now``. Either every event is good (and
    the problems list is empty) or the problems name each bad event, field and reason."""
    events: list[JourneyEvent] = []
    problems: list[EventProblem] = []
    if len(raw) > MAX_BATCH:
        problems.append(
            EventProblem(index=-1, field="events", reason=f"{len(raw)} events, at most {MAX_BATCH}")
        )
        return [], problems
    for index, item in enumerate(raw):
        if len(problems) > MAX_PROBLEMS:
            break  # the sender has enough to fix; the rest is not worth the work
        if not isinstance(item, Mapping):
            problems.append(EventProblem(index=index, field="", reason="must be a JSON object"))
            continue
        props = item.get("props")
        if isinstance(props, Mapping):
            found = list(islice(props_problems(props, max_depth=max_props_depth), MAX_PROBLEMS))
            for where, reason in found:
                problems.append(EventProblem(index=index, field=where, reason=reason))
            if found:
                continue
        try:
            event = JourneyEvent.model_validate(item)
        except ValidationError as exc:
            for error in exc.errors():
                where = ".".join(str(part) for part in error["loc"]) or "event"
                reason = error["msg"].removeprefix("Value error, ")
                problems.append(EventProblem(index=index, field=where, reason=reason))
            continue
        if event.name.startswith(API_ENTRY_PREFIX):
            reason = "is reserved for API entries (POST /v1/plans/{plan_id}/entries)"
            problems.append(EventProblem(index=index, field="name", reason=reason))
            continue
        size = len(json.dumps(event.props, separators=(",", ":")).encode())
        if size > max_props_bytes:
            reason = f"is {size} bytes as JSON, at most {max_props_bytes}"
            problems.append(EventProblem(index=index, field="props", reason=reason))
            continue
        events.append(event if event.ts is not None else event.model_copy(update={"ts": now}))
    return events, problems
