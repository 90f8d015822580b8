"""The HTTP ingest API that ``journeys serve`` runs.

``POST /v1/events`` takes ``{"events": [...]}`` (at most 1,000) and answers 202 with what it
did, or 422 with one entry per problem (``index``, ``field``, ``reason``) and nothing stored;
a body over the configured size gets 413. ``POST /v1/plans/{plan_id}/entries`` enters users
into a running plan with an API entry (``{"request_id": ..., "entries": [{"user_id": ...,
"context": {...}}]}``). ``POST /v1/suppressions`` (and ``/remove``) marks
users suppressed, or allowed as test users, from ``{"user_ids": [...], "channel": "*"}``.
``POST /v1/inbox/read`` (and ``/click``) record what the app's user did with an
in-app message. ``POST /v1/decide`` answers a decision instance for one caller.
``POST /v1/plans/{plan_id}/versions/{version}/approval`` approves a version as its API key.
``GET /healthz`` checks PostgreSQL, Redis and Temporal; ``GET /metrics`` counts in the
Prometheus text format. Once an API key exists, the other routes need one
(:mod:`starter.ingest.access`).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import redis.asyncio as aioredis
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from temporalio.client import Client

from activities.api_keys import ApiKeyStore
from activities.controls.suppression import SuppressionStore
from activities.decisions import DecisionService
from activities.engagement import EngagementMap, EngagementStore
from activities.rate_limit import RateLimiter
from activities.redis_epoch import ensure_epoch
from journeys.errors import EventsRefused, RedisLost
from journeys.event_checks import MAX_PROPS_DEPTH
from journeys.events import MAX_BODY_BYTES, MAX_PROPS_BYTES
from journeys.policy import Suppression

from .access import KeyGate
from .approvals import add_approval_route
from .body import BodyRefused, read_json, refused
from .decide import add_decide_route
from .entries import add_entry_routes
from .inbox import add_inbox_routes
from .openapi import EVENTS_BODY, Health, Refusal, install_openapi
from .service import EventIngest, IngestReport
from .suppressions import add_suppression_routes


def create_app(
    connect: Callable[[], Awaitable[tuple[Any, aioredis.Redis, Client]]],
    *,
    max_props_bytes: int = MAX_PROPS_BYTES,
    max_props_depth: int = MAX_PROPS_DEPTH,
    max_body_bytes: int = MAX_BODY_BYTES,
    linger: timedelta = timedelta(0),
    suppression: Suppression | None = None,
    channels: frozenset[str] | None = None,
    engagement: EngagementMap | None = None,
    freeze: bool = False,
) -> FastAPI:
    """The ASGI app; ``connect`` opens the pool, Redis and the Temporal client at start-up.
    ``freeze`` (a process of its own: ``journeys serve``) moves what start-up made out of
    the collector's way once it has started, so full collections stay short; they showed as
    latency spikes on the decide route. Never in a process that serves it among others (a
    test): what it holds then would never be collected."""
    counts: Counter[str] = Counter()
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        pool, redis, client = await connect()
        state.update(pool=pool, redis=redis, client=client)
        guard = await ensure_epoch(pool, redis)  # refuses to start on a Redis that lost it all
        state["ingest"] = EventIngest(
            pool=pool,
            redis=redis,
            client=client,
            max_props_bytes=max_props_bytes,
            max_props_depth=max_props_depth,
            linger=linger,
            suppression=suppression,
            engagement=engagement,
            guard=guard,
        )
        state["engagement"] = EngagementStore(pool=pool, engagement=engagement)
        state["suppressions"] = SuppressionStore(pool=pool, redis=redis)
        state["decisions"] = decisions = DecisionService(pool=pool, redis=redis)
        state["keys"] = ApiKeyStore(pool)
        state["limiter"] = RateLimiter(redis)
        recording = asyncio.create_task(decisions.recorder.run())
        if freeze:
            gc.collect()
            gc.freeze()
        try:
            yield
        finally:
            recording.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await recording  # its last flush writes what is buffered
            await redis.aclose()
            await pool.close()

    app = FastAPI(title="Journeys ingest", version="1", lifespan=lifespan)

    async def redis_lost(_: Request, exc: Exception) -> Response:
        """Any route that found Redis without its data: nothing was stored, so the sender
        retries once ``journeys recover redis`` has run."""
        counts["redis_lost_refusals"] += 1
        return refused([(-1, "redis", str(exc))], status=503)

    app.add_exception_handler(RedisLost, redis_lost)
    install_openapi(app, max_props_depth=max_props_depth, max_props_bytes=max_props_bytes)
    app.add_middleware(
        KeyGate, keys=lambda: state.get("keys"), limiter=lambda: state.get("limiter")
    )

    @app.post(
        "/v1/events",
        status_code=202,
        response_model=None,
        responses={
            202: {"model": IngestReport, "description": "Stored and routed."},
            413: {"model": Refusal, "description": "The body is over the size limit."},
            422: {"model": Refusal, "description": "Malformed: nothing was stored."},
            503: {"model": Refusal, "description": "Redis lost its data: nothing was stored."},
        },
        openapi_extra=EVENTS_BODY,
    )
    async def post_events(request: Request) -> Response:
        """Store a batch of events and route them to the journeys that listen for them."""
        try:
            body = await read_json(request, max_bytes=max_body_bytes)
        except BodyRefused as exc:
            counts["refused_batches"] += 1
            return refused([(-1, "body", exc.reason)], status=exc.status)
        if not isinstance(body, dict) or not isinstance(body.get("events"), list):
            counts["refused_batches"] += 1
            return refused([(-1, "events", 'expected {"events": [...]}')])
        raw = body["events"]
        unknown = sorted(str(key) for key in body if key != "events")
        if unknown:
            counts["refused_batches"] += 1
            return refused([(-1, unknown[0][:100], "unknown field")])
        try:
            report = await state["ingest"].ingest(raw)
        except EventsRefused as exc:
            counts["refused_batches"] += 1
            counts["refused_events"] += len({index for index, _, _ in exc.refused})
            return refused(exc.refused)
        counts["accepted_events"] += report.accepted
        counts["duplicate_events"] += report.duplicates
        counts["routed_events"] += report.routed
        return JSONResponse(report.model_dump(), status_code=202)

    add_entry_routes(app, ingest=lambda: state["ingest"], max_body_bytes=max_body_bytes)
    add_inbox_routes(app, store=lambda: state["engagement"], max_body_bytes=max_body_bytes)
    add_decide_route(app, service=lambda: state["decisions"], max_body_bytes=max_body_bytes)
    add_approval_route(app, pool=lambda: state["pool"])
    add_suppression_routes(
        app,
        store=lambda: state["suppressions"],
        max_body_bytes=max_body_bytes,
        channels=channels,
    )

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
        decisions: DecisionService | None = state.get("decisions")
        if decisions is not None:
            counts["decide_cache_hits"] = decisions.stats.hits
            counts["decide_cache_misses"] = decisions.stats.misses
            counts["decide_cache_shared_hits"] = decisions.stats.shared_hits
        for name in sorted(counts):
            lines += [
                f"# TYPE journeys_ingest_{name} counter",
                f"journeys_ingest_{name} {counts[name]}",
            ]
        return PlainTextResponse("\n".join(lines) + "\n")

    return app
