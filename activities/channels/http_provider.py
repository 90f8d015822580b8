"""The ``http`` provider: signed JSON requests, one per message or one per batch of them.

Per message, the body is the message object (see :func:`wire_message`) and the
``Idempotency-Key`` header is the message's key. In batch mode the body is
``{"messages": [...]}`` and the key is ``batch-`` plus a digest of the sorted message keys, so
a retried batch carries the same key. With a ``secret``, the signature header holds
``sha256=<hex HMAC-SHA256(secret, body)>``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from typing import Any

import httpx

from journeys.channels_config import HttpProvider
from journeys.contracts import failures
from journeys.durations import format_duration
from journeys.redact import redact

from .message import Message, SendResult, failed, sent

MAX_CONNECTIONS = 16
# statuses that say "not now" rather than "never", besides every 5xx
_RETRY_STATUSES = frozenset({408, 425, 429})


def make_client() -> httpx.AsyncClient:
    """The one client a runtime shares between its http channels; timeouts are per request."""
    limits = httpx.Limits(
        max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_CONNECTIONS
    )
    return httpx.AsyncClient(limits=limits, follow_redirects=False)


def wire_message(message: Message, *, channel_type: str) -> dict[str, Any]:
    """The JSON object a provider receives for one message."""
    content: dict[str, Any] = dict(message.content)
    if "payload" in content:
        # the renderer hands payload over as JSON text; receivers want the object itself
        content["payload"] = json.loads(content["payload"])
    return {
        "idempotency_key": message.idempotency_key,
        "channel": message.channel,
        "type": channel_type,
        "template": message.template,
        "user_id": message.user_id,
        "to": message.to.model_dump(exclude={"attrs"}),
        "content": content,
        "data": message.data,
    }


def batch_key(messages: list[Message]) -> str:
    """The ``Idempotency-Key`` of a batch: stable for the same set of messages."""
    keys = "\n".join(sorted(m.idempotency_key for m in messages))
    return "batch-" + hashlib.sha256(keys.encode()).hexdigest()[:32]


def signature(secret: str, body: bytes) -> str:
    """The signature header value for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _failure(response: httpx.Response) -> tuple[bool, str, str]:
    """Whether a non-2xx answer is worth retrying, its category and its whole story."""
    status = response.status_code
    retry = status in _RETRY_STATUSES or status >= 500
    return retry, failures.http_status(status), f"HTTP {status}: {response.text[:500]}"


def _connect_failure(exc: BaseException) -> str:
    """Why a connection failed; the refusal itself sits a few causes down the chain."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        cause = cause.__cause__ or cause.__context__
    return f"cannot connect: {type(exc).__name__}"


def _provider_id(data: Any) -> str | None:
    if isinstance(data, dict) and data.get("id") is not None:
        return str(data["id"])
    return None


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


class HttpSender:
    """Sends a channel's messages to its http provider through the runtime's shared client."""

    def __init__(
        self,
        config: HttpProvider,
        *,
        channel_type: str,
        client: httpx.AsyncClient,
        slots: asyncio.Semaphore,
    ) -> None:
        self._config = config
        self._type = channel_type
        self._client = client
        # One semaphore per client, sized to its pool: requests queue here, cheaply, and never
        # inside httpcore, whose pool rescans every queued request on each assignment.
        self._slots = slots
        seconds = config.timeout.total_seconds()
        # waiting for a pooled connection is our own congestion, not the provider being slow
        self._timeout = httpx.Timeout(seconds, pool=None)

    async def send(self, messages: list[Message]) -> list[SendResult]:
        """Send a page concurrently; one result per message, in order."""
        size = self._config.batch_size

        async def one(chunk: list[Message]) -> list[SendResult]:
            async with self._slots:
                if size == 1:
                    return [await self._send_one(chunk[0])]
                return await self._send_batch(chunk)

        chunks = [messages[i : i + size] for i in range(0, len(messages), size)]
        parts = await asyncio.gather(*(one(chunk) for chunk in chunks))
        return [result for part in parts for result in part]

    async def aclose(self) -> None:
        """Nothing of its own to close: the runtime owns the client."""

    async def _send_one(self, message: Message) -> SendResult:
        try:
            body = self._encode(wire_message(message, channel_type=self._type))
        except (TypeError, ValueError) as exc:
            reason = f"cannot encode message: {exc}"
            return failed(message, retryable=False, category=failures.BAD_MESSAGE, reason=reason)
        answer = await self._post(body, message.idempotency_key)
        if isinstance(answer, tuple):
            category, reason = answer
            return failed(message, retryable=True, category=category, reason=reason)
        if answer.is_success:
            return sent(message, _provider_id(_json(answer)))
        retryable, category, reason = _failure(answer)
        return failed(message, retryable=retryable, category=category, reason=reason)

    async def _send_batch(self, chunk: list[Message]) -> list[SendResult]:
        try:
            objects = [wire_message(m, channel_type=self._type) for m in chunk]
            body = self._encode({"messages": objects})
        except (TypeError, ValueError) as exc:
            reason = f"cannot encode batch: {exc}"
            return [
                failed(m, retryable=False, category=failures.BAD_MESSAGE, reason=reason)
                for m in chunk
            ]
        answer = await self._post(body, batch_key(chunk))
        if isinstance(answer, tuple):
            category, reason = answer
            return [failed(m, retryable=True, category=category, reason=reason) for m in chunk]
        if not answer.is_success:
            retryable, category, reason = _failure(answer)
            return [failed(m, retryable=retryable, category=category, reason=reason) for m in chunk]
        return _batch_results(chunk, _json(answer))

    @staticmethod
    def _encode(obj: Any) -> bytes:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()

    async def _post(self, body: bytes, key: str) -> httpx.Response | tuple[str, str]:
        """The response, or the category and reason there is none (always worth a retry)."""
        headers = {
            **self._config.headers,
            "Content-Type": "application/json",
            "Idempotency-Key": key,
        }
        if self._config.secret is not None:
            headers[self._config.signature_header] = signature(self._config.secret, body)
        try:
            return await self._client.request(
                self._config.method,
                self._config.url,
                content=body,
                headers=headers,
                timeout=self._timeout,
            )
        except httpx.TimeoutException:
            return failures.TIMEOUT, f"timeout after {format_duration(self._config.timeout)}"
        except httpx.ConnectError as exc:
            return failures.CONNECTION, _connect_failure(exc)
        except httpx.RequestError as exc:  # the connection broke, or the answer was garbled
            return failures.CONNECTION, redact(f"{type(exc).__name__}: {exc}")


def _batch_results(chunk: list[Message], data: Any) -> list[SendResult]:
    """Per-message outcomes of an accepted batch from its ``results`` list, when there is one."""
    if not isinstance(data, dict) or "results" not in data:
        return [sent(m) for m in chunk]
    entries = data["results"] if isinstance(data["results"], list) else []
    by_key = {
        entry["idempotency_key"]: entry
        for entry in entries
        if isinstance(entry, dict) and isinstance(entry.get("idempotency_key"), str)
    }
    results: list[SendResult] = []
    for message in chunk:
        entry = by_key.get(message.idempotency_key)
        if entry is None:
            reason = "missing from batch response"
            category = failures.BAD_ANSWER
            results.append(failed(message, retryable=True, category=category, reason=reason))
        elif entry.get("status") == "sent":
            results.append(sent(message, _provider_id(entry)))
        else:
            reason = str(entry.get("error") or "rejected by provider")[:500]
            retry = entry.get("retryable") is True
            results.append(
                failed(message, retryable=retry, category=failures.REJECTED, reason=reason)
            )
    return results
