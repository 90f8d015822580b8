"""``POST /v1/decide``: which decision an instance makes for this caller, now.

200 with ``{instance, version, decision, strategy, group}`` (and ``explain`` when asked);
404 for an instance with no published version; 422 naming each problem: a malformed body,
an id the scene's calls carry but this one lacks, a missing pass-through field, a field of
the wrong type or one the scene does not know.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from activities.decisions import DecisionService
from journeys.decisions.contracts import MAX_FIELDS, DecideAnswer, DecideRequest
from journeys.decisions.model import SLUG
from journeys.errors import DecisionRefused, NotFound
from journeys.event_checks import ID_PATTERN
from journeys.events import MAX_USER_ID
from journeys.rules import NAME_PATTERN

from .body import read_model, refused
from .openapi import Refusal

_ID: dict[str, object] = {
    "anyOf": [
        {"type": "string", "minLength": 1, "maxLength": MAX_USER_ID, "pattern": ID_PATTERN},
        {"type": "null"},
    ]
}
DECIDE_SCHEMA: dict[str, object] = {
    "type": "object",
    "description": "One caller: the instance, the ids its scene's calls carry, and the "
    "pass-through fields the scene promises.",
    "required": ["instance"],
    "additionalProperties": False,
    "properties": {
        "instance": {"type": "string", "pattern": f"^{SLUG}$"},
        "user_id": _ID,
        "item_id": _ID,
        "order_id": _ID,
        "fields": {
            "type": "object",
            "maxProperties": MAX_FIELDS,
            "propertyNames": {"pattern": f"^{NAME_PATTERN}$"},
            "additionalProperties": {
                "anyOf": [
                    {"type": "string", "maxLength": 1000},
                    {"type": "number"},
                    {"type": "boolean"},
                    {"type": "null"},
                ]
            },
        },
        "explain": {"type": "boolean", "default": False},
    },
}
DECIDE_BODY: dict[str, object] = {
    "requestBody": {"required": True, "content": {"application/json": {"schema": DECIDE_SCHEMA}}}
}
"""``openapi_extra`` of the route: the handler reads its body itself."""


def add_decide_route(
    app: FastAPI, *, service: Callable[[], DecisionService], max_body_bytes: int
) -> None:
    """The route on ``app``; ``service`` gives the service built at start-up."""

    async def post_decide(request: Request) -> Response:
        """Decide for one caller: the live strategy whose rule holds, its A/B group."""
        asked = await read_model(request, DecideRequest, max_bytes=max_body_bytes)
        if isinstance(asked, Response):
            return asked
        try:
            answer = await service().decide(asked)
        except NotFound as exc:
            return refused([(-1, "instance", str(exc))], status=404)
        except DecisionRefused as exc:
            return refused([(-1, p.path, p.reason) for p in exc.problems])
        hidden = {"explain"} if answer.explain is None else set()
        return JSONResponse(answer.model_dump(mode="json", exclude=hidden))

    app.add_api_route(
        "/v1/decide",
        post_decide,
        methods=["POST"],
        response_model=None,
        responses={
            200: {"model": DecideAnswer, "description": "Decided (and recorded)."},
            404: {"model": Refusal, "description": "No published instance of that id."},
            413: {"model": Refusal, "description": "The body is over the size limit."},
            422: {"model": Refusal, "description": "Malformed, or not what the scene takes."},
        },
        openapi_extra=DECIDE_BODY,
    )
