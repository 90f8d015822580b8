"""``POST /v1/suppressions`` and ``/v1/suppressions/remove``: mark and unmark users."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from activities.controls.suppression import ListName, SuppressionStore
from journeys.event_checks import ID_PATTERN
from journeys.events import MAX_USER_ID, checked_user_id

from .access import caller
from .body import read_model, refused
from .openapi import Refusal

CHANNEL_PATTERN = r"^(\*|[a-z0-9][a-z0-9_-]{0,62})$"
MAX_USERS = 1000
MAX_REASON = 200


class SuppressionChange(BaseModel):
    """Users to mark or unmark: suppressed on ``channel`` (``*``: all), or allowed."""

    model_config = ConfigDict(extra="forbid", strict=True)  # as the schema says: no coercion

    user_ids: list[Annotated[str, AfterValidator(checked_user_id)]] = Field(
        min_length=1, max_length=MAX_USERS
    )
    channel: str = Field(default="*", pattern=CHANNEL_PATTERN)
    allow: bool = False
    """The allow list of test users instead of the suppression list."""
    reason: str | None = Field(default=None, max_length=MAX_REASON)


SUPPRESSIONS_SCHEMA: dict[str, object] = {
    "type": "object",
    "description": "Users to mark, or to unmark: suppressed on `channel` (`*`: every "
    "channel; one of the channels file's), or allowed as test users.",
    "required": ["user_ids"],
    "additionalProperties": False,
    "properties": {
        "user_ids": {
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_USERS,
            "items": {
                "type": "string",
                "minLength": 1,
                "maxLength": MAX_USER_ID,
                "pattern": ID_PATTERN,
            },
        },
        "channel": {"type": "string", "pattern": CHANNEL_PATTERN, "default": "*"},
        "allow": {"type": "boolean", "default": False},
        "reason": {"anyOf": [{"type": "string", "maxLength": MAX_REASON}, {"type": "null"}]},
    },
}
SUPPRESSIONS_BODY: dict[str, object] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": SUPPRESSIONS_SCHEMA}},
    }
}
"""``openapi_extra`` of the suppression routes: the handler reads its body itself."""


class SuppressionsChanged(BaseModel):
    """How many marks were added or removed (the rest were so already)."""

    changed: int


def add_suppression_routes(
    app: FastAPI,
    *,
    store: Callable[[], SuppressionStore],
    max_body_bytes: int,
    channels: frozenset[str] | None,
) -> None:
    """Both routes on ``app``; ``store`` gives the store the app opened at start-up."""
    for path, remove, done in (
        ("/v1/suppressions", False, "Marked (PostgreSQL, Redis)."),
        ("/v1/suppressions/remove", True, "Unmarked."),
    ):
        app.add_api_route(
            path,
            _handler(store, remove=remove, max_body_bytes=max_body_bytes, channels=channels),
            methods=["POST"],
            response_model=None,
            responses={
                200: {"model": SuppressionsChanged, "description": done},
                413: {"model": Refusal, "description": "The body is over the size limit."},
                422: {"model": Refusal, "description": "Malformed: nothing was changed."},
            },
            openapi_extra=SUPPRESSIONS_BODY,
        )


def _handler(
    store: Callable[[], SuppressionStore],
    *,
    remove: bool,
    max_body_bytes: int,
    channels: frozenset[str] | None,
) -> Callable[[Request], Awaitable[Response]]:
    async def change_marks(request: Request) -> Response:
        change = await _change(request, max_body_bytes=max_body_bytes, channels=channels)
        if isinstance(change, Response):
            return change
        list_name: ListName = "allow" if change.allow else "suppress"
        if remove:
            changed = await store().remove(
                change.user_ids,
                channel=change.channel,
                list_name=list_name,
                actor=caller(request.scope),
            )
        else:
            changed = await store().add(
                change.user_ids,
                channel=change.channel,
                list_name=list_name,
                reason=change.reason,
                source="api",
                actor=caller(request.scope),
            )
        return JSONResponse(SuppressionsChanged(changed=changed).model_dump())

    change_marks.__doc__ = (
        "Lift marks (the same channel they were added on)."
        if remove
        else "Suppress users (on one channel, or all), or allow them as test users."
    )
    return change_marks


async def _change(
    request: Request, *, max_body_bytes: int, channels: frozenset[str] | None
) -> SuppressionChange | Response:
    """The body as a :class:`SuppressionChange`, or the 4xx answer refusing it (a channel
    the channels file does not declare, too: a mark on it would stop nothing)."""
    change = await read_model(request, SuppressionChange, max_bytes=max_body_bytes)
    if isinstance(change, Response):
        return change
    if channels is not None and change.channel != "*" and change.channel not in channels:
        return refused([(-1, "channel", f"no channel {change.channel!r} in the channels file")])
    return change
