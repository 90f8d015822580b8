"""``POST /v1/plans/{plan_id}/entries``: enter users into a running plan now."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from journeys.errors import EventsRefused, NotFound, NotListening
from journeys.triggers import TriggerReport

from .body import BodyRefused, read_json, refused
from .openapi import ENTRIES_BODY, Refusal
from .service import EventIngest


def add_entry_routes(
    app: FastAPI, *, ingest: Callable[[], EventIngest], max_body_bytes: int
) -> None:
    """The route on ``app``; ``ingest`` gives the ingest path the app opened at start-up."""

    @app.post(
        "/v1/plans/{plan_id}/entries",
        status_code=202,
        response_model=None,
        responses={
            202: {"model": TriggerReport, "description": "Stored and routed to the plan."},
            404: {"model": Refusal, "description": "No such plan: nothing was stored."},
            409: {
                "model": Refusal,
                "description": "The plan has no running run that takes API entries: "
                "nothing was stored.",
            },
            413: {"model": Refusal, "description": "The body is over the size limit."},
            503: {"model": Refusal, "description": "Redis lost its data: nothing was stored."},
            422: {"model": Refusal, "description": "Malformed: nothing was stored."},
        },
        openapi_extra=ENTRIES_BODY,
    )
    async def post_entries(plan_id: str, request: Request) -> Response:
        """Enter users (at most 1,000) into the running runs of ``plan_id``, each with a
        context the plan reads as ``entry.*``; idempotent by ``request_id``."""
        try:
            body = await read_json(request, max_bytes=max_body_bytes)
        except BodyRefused as exc:
            return refused([(-1, "body", exc.reason)], status=exc.status)
        try:
            report = await ingest().enter(plan_id, body)
        except EventsRefused as exc:
            return refused(exc.refused)
        except NotFound as exc:
            return refused([(-1, "plan_id", str(exc))], status=404)
        except NotListening as exc:
            return refused([(-1, "plan_id", str(exc))], status=409)
        return JSONResponse(report.model_dump(), status_code=202)
