"""``POST /v1/inbox/read`` and ``/v1/inbox/click``: the app reports what its user did with an
in-app message (read once; a click also reads), for the report's opens and clicks. The
message id travels in the body: ids hold ``/`` and ``:``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from activities.engagement import EngagementStore
from journeys.event_checks import ID_PATTERN
from journeys.events import MAX_USER_ID
from journeys.inbox import MAX_MESSAGE_ID, InboxAction, InboxActionDone

from .body import read_model, refused
from .openapi import Refusal

INBOX_BODY: dict[str, object] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["user_id", "message_id"],
                    "additionalProperties": False,
                    "properties": {
                        "user_id": {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": MAX_USER_ID,
                            "pattern": ID_PATTERN,
                        },
                        "message_id": {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": MAX_MESSAGE_ID,
                            "pattern": "^[^\\x00]+$",
                        },
                    },
                }
            }
        },
    }
}


def add_inbox_routes(
    app: FastAPI, *, store: Callable[[], EngagementStore], max_body_bytes: int
) -> None:
    """Both routes on ``app``; ``store`` gives the engagement store opened at start-up."""
    for action, clicked, done in (
        ("read", False, "Marked read (the first read's time stays)."),
        ("click", True, "Marked clicked, and read."),
    ):
        app.add_api_route(
            f"/v1/inbox/{action}",
            _handler(store, clicked=clicked, max_body_bytes=max_body_bytes),
            methods=["POST"],
            response_model=None,
            responses={
                200: {"model": InboxActionDone, "description": done},
                404: {"model": Refusal, "description": "The user has no such message."},
                413: {"model": Refusal, "description": "The body is over the size limit."},
                422: {"model": Refusal, "description": "Malformed: nothing was changed."},
            },
            openapi_extra=INBOX_BODY,
        )


def _handler(
    store: Callable[[], EngagementStore], *, clicked: bool, max_body_bytes: int
) -> Callable[[Request], Awaitable[Response]]:
    async def inbox_action(request: Request) -> Response:
        asked = await read_model(request, InboxAction, max_bytes=max_body_bytes)
        if isinstance(asked, Response):
            return asked
        done = await store().inbox(
            message_id=asked.message_id, user_id=asked.user_id, clicked=clicked
        )
        if done is None:
            return refused([(-1, "message_id", "the user has no such message")], status=404)
        answer = InboxActionDone(message_id=done.message_id, read_at=done.read_at, clicked=clicked)
        return JSONResponse(answer.model_dump(mode="json"))

    inbox_action.__doc__ = (
        "The user clicked the in-app message (it is read, too)."
        if clicked
        else "The user read the in-app message."
    )
    return inbox_action
