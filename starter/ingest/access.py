"""Access to the HTTP API: an API key with the route's scope, within the key's own rate.

A pure ASGI middleware (no per-request wrapping of bodies), so the decide route's latency
pays only for a cached lookup. While no key is active the API is open; once one is, every
route but health, metrics and the schema answers 401 without a valid key, 403 when the key
lacks the route's scope (``admin`` has them all), and 429 past the key's rate.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from activities.api_keys import ApiKey, ApiKeyStore, has_scope
from activities.rate_limit import RateLimiter
from journeys.api_keys import scope_for
from journeys.audit import key_actor

KEY_SCOPE = "journeys.api_key"
"""Where the gate leaves the request's checked key for the routes (the ASGI scope)."""
OPEN_CALLER = "api"


class KeyGate:
    """Checks each request's key before the app sees it."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        keys: Callable[[], ApiKeyStore | None],
        limiter: Callable[[], RateLimiter | None],
    ) -> None:
        self.app = app
        self._keys = keys
        self._limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        store = self._keys() if scope["type"] == "http" else None
        needed = scope_for(scope["path"]) if store is not None else None
        if store is None or needed is None or not await store.required():
            await self.app(scope, receive, send)
            return
        given = _key(scope)
        if given is None:
            await _refuse(send, 401, "an API key is required (Authorization: Bearer KEY)")
            return
        key = await store.check(given)
        if key is None:
            await _refuse(send, 401, "unknown or revoked API key")
            return
        if not has_scope(key, needed):
            await _refuse(send, 403, f"key {key.key_id} lacks the scope {needed}")
            return
        limiter = self._limiter()
        if key.rate is not None and limiter is not None:
            granted, wait = await limiter.take(
                f"apikey:{key.key_id}", want=1, default=key.rate, expires=False
            )
            if not granted:
                seconds = max(1, math.ceil(wait.total_seconds()))
                await _refuse(send, 429, f"key {key.key_id} is over its rate of {key.rate:g}/s",
                              retry_after=seconds)  # fmt: skip
                return
        scope[KEY_SCOPE] = key
        await self.app(scope, receive, send)


def caller(scope: Scope) -> str:
    """Who made a request, for the audit log: its API key, or ``api`` while the API is open."""
    key = scope.get(KEY_SCOPE)
    return key_actor(key.name) if isinstance(key, ApiKey) else OPEN_CALLER


def _key(scope: Scope) -> str | None:
    headers: list[tuple[bytes, bytes]] = scope["headers"]
    for name, value in headers:
        text = value.decode("latin-1").strip()
        if name == b"authorization":
            scheme, _, token = text.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
        elif name == b"x-api-key" and text:
            return text
    return None


async def _refuse(send: Send, status: int, reason: str, *, retry_after: int | None = None) -> None:
    body = json.dumps({"errors": [{"index": -1, "field": "api key", "reason": reason}]}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    if retry_after is not None:
        headers.append((b"retry-after", str(retry_after).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
