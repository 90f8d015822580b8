"""The HTTP ingest API that ``journeys serve`` runs.

``POST /v1/events`` takes ``{"events": [...]}`` (at most 1,000) and answers 202 with what it
did, or 422 with one entry per problem (``index``, ``field``, ``reason``) and nothing stored;
a body over the configured size gets 413. ``POST /v1/suppressions`` (and ``/remove``) marks
users suppressed, or allowed as test users, from ``{"user_ids": [...], "channel": "*"}``.
``GET /healthz`` checks PostgreSQL, Redis and Temporal; ``GET /metrics`` counts in the
Prometheus text format.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import redis.asyncio as aioredis
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import ValidationError
from temporalio.client import Client

from activities.controls.suppression import SuppressionStore
from journeys.errors import EventsRefused
from journeys.event_checks import MAX_PROPS_DEPTH
from journeys.events import MAX_BODY_BYTES, MAX_PROBLEMS, MAX_PROPS_BYTES
from journeys.policy import Suppression

from .body import BodyRefused, read_json
from .openapi import EVENTS_BODY, Health, Refusal, install_openapi
from .service import EventIngest, IngestReport
from .suppressions import SUPPRESSIONS_BODY, SuppressionChange, SuppressionsChanged


def create_app(
    connect: Callable[[], Awaitable[tuple[Any, aioredis.Redis, Client]]],
    *,
    max_props_bytes: int = MAX_PROPS_BYTES,
    max_props_depth: int = MAX_PROPS_DEPTH,
    max_body_bytes: int = MAX_BODY_BYTES,
    linger: timedelta = timedelta(0),
    suppression: Suppression | None = None,
    channels: frozenset[str] | None = None,
) -> FastAPI:
    """The ASGI app; ``connect`` opens the pool, Redis and the Temporal client at start-up."""
    counts: Counter[str] = Counter()
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        pool, redis, client = await connect()
        state.update(pool=pool, redis=redis, client=client)
        state["ingest"] = EventIngest(
            pool=pool,
            redis=redis,
            client=client,
            max_props_bytes=max_props_bytes,
            max_props_depth=max_props_depth,
            linger=linger,
            suppression=suppression,
        )
        state["suppressions"] = SuppressionStore(pool=pool, redis=redis)
        try:
            yield
        finally:
            await redis.aclose()
            await pool.close()

    app = FastAPI(title="Journeys ingest", version="1", lifespan=lifespan)
    install_openapi(app, max_props_depth=max_props_depth, max_props_bytes=max_props_bytes)

    @app.post(
        "/v1/events",
        status_code=202,
        response_model=None,
        responses={
            202: {"model": IngestReport, "description": "Stored and routed."},
            413: {"model": Refusal, "description": "The body is over the size limit."},
            422: {"model": Refusal, "description": "Malformed: nothing was stored."},
        },
        openapi_extra=EVENTS_BODY,
    )
    async def post_events(request: Request) -> Response:
        """Store a batch of events and route them to the journeys that listen for them."""
        try:
            body = await read_json(request, max_bytes=max_body_bytes)
        except BodyRefused as exc:
            counts["refused_batches"] += 1
            return _refused([(-1, "body", exc.reason)], status=exc.status)
        if not isinstance(body, dict) or not isinstance(body.get("events"), list):
            counts["refused_batches"] += 1
            return _refused([(-1, "events", 'expected {"events": [...]}')])
        raw = body["events"]
        unknown = sorted(str(key) for key in body if key != "events")
        if unknown:
            counts["refused_batches"] += 1
            return _refused([(-1, unknown[0][:100], "unknown field")])
        try:
            report = await state["ingest"].ingest(raw)
        except EventsRefused as exc:
            counts["refused_batches"] += 1
            counts["refused_events"] += len({index for index, _, _ in exc.refused})
            return _refused(exc.refused)
        counts["accepted_events"] += report.accepted
        counts["duplicate_events"] += report.duplicates
        counts["routed_events"] += report.routed
        return JSONResponse(report.model_dump(), status_code=202)

    @app.post(
        "/v1/suppressions",
        response_model=None,
        responses={
            200: {"model": SuppressionsChanged, "description": "Marked (PostgreSQL, Redis)."},
            413: {"model": Refusal, "description": "The body is over the size limit."},
            422: {"model": Refusal, "description": "Malformed: nothing was marked."},
        },
        openapi_extra=SUPPRESSIONS_BODY,
    )
    async def post_suppressions(request: Request) -> Response:
        """Suppress users (on one channel, or all), or allow them as test users."""
        change = await _suppression_change(
            request, max_body_bytes=max_body_bytes, channels=channels
        )
        if isinstance(change, Response):
            return change
        added = await state["suppressions"].add(
            change.user_ids,
            channel=change.channel,
            list_name="allow" if change.allow else "suppress",
            reason=change.reason,
            source="api",
        )
        return JSONResponse(SuppressionsChanged(changed=added).model_dump())

    @app.post(
        "/v1/suppressions/remove",
        response_model=None,
        responses={
            200: {"model": SuppressionsChanged, "description": "Unmarked."},
            413: {"model": Refusal, "description": "The body is over the size limit."},
            422: {"model": Refusal, "description": "Malformed: nothing was changed."},
        },
        openapi_extra=SUPPRESSIONS_BODY,
    )
    async def remove_suppressions(request: Request) -> Response:
        """Lift marks (the same channel they were added on)."""
        change = await _suppression_change(
            request, max_body_bytes=max_body_bytes, channels=channels
        )
        if isinstance(change, Response):
            return change
        removed = await state["suppressions"].remove(
            change.user_ids,
            channel=change.channel,
            list_name="allow" if change.allow else "suppress",
        )
        return JSONResponse(SuppressionsChanged(changed=removed).model_dump())

    @app.get(
        "/healthz",
        response_model=None,
        responses={
            200: {"model": Health, "description": "Every service answers."},
            503: {"model": Health, "description": "A service does not answer."},
        },
    )
    async def healthz() -> JSONResponse:
        """Whether PostgreSQL, Redis and Temporal answer."""
        checks = await asyncio.gather(
            state["pool"].fetchval("SELECT 1"),
            state["redis"].ping(),
            state["client"].service_client.check_health(),
            return_exceptions=True,
        )
        names = ("postgres", "redis", "temporal")
        report = {
            name: not isinstance(c, BaseException) for name, c in zip(names, checks, strict=True)
        }
        return JSONResponse(report, status_code=200 if all(report.values()) else 503)

    @app.get("/metrics", response_class=PlainTextResponse)
    async def metrics() -> PlainTextResponse:
        """Counters in the Prometheus text format."""
        lines = []
        for name in sorted(counts):
            lines += [
                f"# TYPE journeys_ingest_{name} counter",
                f"journeys_ingest_{name} {counts[name]}",
            ]
        return PlainTextResponse("\n".join(lines) + "\n")

    return app


async def _suppression_change(
    request: Request, *, max_body_bytes: int, channels: frozenset[str] | None
) -> SuppressionChange | Response:
    """The body as a :class:`SuppressionChange`, or the 4xx answer refusing it (a channel
    the channels file does not declare, too: a mark on it would stop nothing)."""
    try:
        body = await read_json(request, max_bytes=max_body_bytes)
    except BodyRefused as exc:
        return _refused([(-1, "body", exc.reason)], status=exc.status)
    try:
        change = SuppressionChange.model_validate(body)
    except ValidationError as exc:
        return _refused(
            [(-1, ".".join(map(str, e["loc"])) or "body", e["msg"]) for e in exc.errors()]
        )
    if channels is not None and change.channel != "*" and change.channel not in channels:
        return _refused([(-1, "channel", f"no channel {change.channel!r} in the channels file")])
    return change


def _refused(problems: list[tuple[int, str, str]], *, status: int = 422) -> Response:
    # ASCII JSON: a field name quoting the sender's lone surrogate must not fail the answer
    errors = [{"index": i, "field": f, "reason": r} for i, f, r in problems[:MAX_PROBLEMS]]
    if len(problems) > MAX_PROBLEMS:
        more = f"{len(problems) - MAX_PROBLEMS} more problems not listed"
        errors.append({"index": -1, "field": "events", "reason": more})
    body = json.dumps({"errors": errors}, ensure_ascii=True)
    return Response(body, status_code=status, media_type="application/json")
