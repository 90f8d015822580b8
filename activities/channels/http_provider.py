"""The ``http`` provider: signed JSON requests, one per message or one per batch of them.

Per message, the body is the message object (see :func:`wire_message`) and the
``Idempotency-Key`` header is the message's key. In batch mode the body is
``{"messages": [...]}`` and the key is ``batch-`` plus a digest of the sorted message keys, so
a retried batch carries the same key. With a ``secret``, the signature header holds
``sha256=<hex HMAC-SHA256(secret, body)>``.

Each channel has its own aiohttp session holding up to the channel's ``connections``
keep-alive connections (docs/decisions.md, "The blast engine": aiohttp posts about 7x what httpx
does on the same machine and receiver).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import urllib.request
from base64 import b64encode
from dataclasses import dataclass
from typing import Any

import aiohttp
import yarl

from journeys.channels_config import HttpProvider
from journeys.contracts import failures
from journeys.durations import format_duration
from journeys.redact import redact

from .message import Message, SendResult, failed, sent

# statuses that say "not now" rather than "never", besides every 5xx
_RETRY_STATUSES = frozenset({408, 425, 429})
_REASON_CHARS = 500


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


def encode(obj: object) -> bytes:
    """A request body: compact JSON, UTF-8."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def batch_key(messages: list[Message]) -> str:
    """The ``Idempotency-Key`` of a batch: stable for the same set of messages."""
    keys = "\n".join(sorted(m.idempotency_key for m in messages))
    return "batch-" + hashlib.sha256(keys.encode()).hexdigest()[:32]


def signature(secret: str, body: bytes) -> str:
    """The signature header value for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class _Answer:
    """A provider's answer, read whole before its connection goes back to the pool."""

    status: int
    body: bytes

    @property
    def is_success(self) -> bool:
        return 200 <= self.status < 300

    def text(self) -> str:
        return self.body[: _REASON_CHARS * 4].decode("utf-8", "replace")[:_REASON_CHARS]

    def json(self) -> Any:
        if not self.body:
            return None
        try:
            return json.loads(self.body)
        except ValueError:
            return None


def _failure(answer: _Answer) -> tuple[bool, str, str]:
    """Whether a non-2xx answer is worth retrying, its category and its whole story."""
    status = answer.status
    retry = status in _RETRY_STATUSES or status >= 500
    return retry, failures.http_status(status), f"HTTP {status}: {answer.text()}"


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


class HttpSender:
    """Sends a channel's messages to its http provider over the channel's own connections."""

    def __init__(self, config: HttpProvider, *, channel_type: str) -> None:
        self._config = config
        self._type = channel_type
        self._session: aiohttp.ClientSession | None = None
        # Requests wait for a connection here, before their timeout starts: waiting on our
        # own pool is congestion of ours, not the provider being slow.
        self._slots = asyncio.Semaphore(config.connections)
        self._timeout = aiohttp.ClientTimeout(total=config.timeout.total_seconds())
        self._url, self._headers = _split_credentials(config.url, config.headers)
        self._proxy = _env_proxy(self._url)

    async def send(self, messages: list[Message]) -> list[SendResult]:
        """Send a page concurrently; one result per message, in order."""
        size = self._config.batch_size
        chunks = [messages[i : i + size] for i in range(0, len(messages), size)]
        parts: list[list[SendResult]] = [[] for _ in chunks]
        queue = list(range(len(chunks) - 1, -1, -1))

        async def lane() -> None:
            # A few lanes that each post chunk after chunk, rather than a task per message:
            # at thousands of messages a second the tasks cost as much as the requests.
            while queue:
                index = queue.pop()
                async with self._slots:
                    if size == 1:
                        parts[index] = [await self._send_one(chunks[index][0])]
                    else:
                        parts[index] = await self._send_batch(chunks[index])

        lanes = min(len(chunks), self._config.connections)
        await asyncio.gather(*(lane() for _ in range(lanes)))
        return [result for part in parts for result in part]

    async def aclose(self) -> None:
        """Close the channel's connections."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _open(self) -> aiohttp.ClientSession:
        """The session, opened on the first send: inside the worker's running loop."""
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._config.connections, limit_per_host=0, ttl_dns_cache=300
            )
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=self._timeout, auto_decompress=True
            )
        return self._session

    async def _send_one(self, message: Message) -> SendResult:
        try:
            body = encode(wire_message(message, channel_type=self._type))
        except (TypeError, ValueError) as exc:
            reason = f"cannot encode message: {exc}"
            return failed(message, retryable=False, category=failures.BAD_MESSAGE, reason=reason)
        answer = await self._post(body, message.idempotency_key)
        if isinstance(answer, tuple):
            category, reason = answer
            return failed(message, retryable=True, category=category, reason=reason)
        if answer.is_success:
            return sent(message, _provider_id(answer.json()))
        retryable, category, reason = _failure(answer)
        return failed(message, retryable=retryable, category=category, reason=reason)

    async def _send_batch(self, chunk: list[Message]) -> list[SendResult]:
        try:
            objects = [wire_message(m, channel_type=self._type) for m in chunk]
            body = encode({"messages": objects})
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
        return _batch_results(chunk, answer.json())

    async def _request(self, body: bytes, headers: dict[str, str]) -> _Answer:
        async with self._open().request(
            self._config.method,
            self._url,
            data=body,
            headers=headers,
            proxy=self._proxy,
            allow_redirects=False,
        ) as response:
            return _Answer(response.status, await response.read())

    async def _post(self, body: bytes, key: str) -> _Answer | tuple[str, str]:
        """The response, or the category and reason there is none (always worth a retry)."""
        headers = {
            **self._headers,
            "Content-Type": "application/json",
            "Idempotency-Key": key,
        }
        if self._config.secret is not None:
            headers[self._config.signature_header] = signature(self._config.secret, body)
        try:
            # No retry of its own here: a broken kept-alive connection may have carried the
            # whole request, and a provider without Idempotency-Key support would get it
            # twice. The runtime sends retryable failures again after its backoff.
            return await self._request(body, headers)
        except TimeoutError:
            return failures.TIMEOUT, f"timeout after {format_duration(self._config.timeout)}"
        except aiohttp.ClientConnectorError as exc:
            return failures.CONNECTION, _connect_failure(exc)
        except aiohttp.ClientError as exc:  # the connection broke, or the answer was garbled
            return failures.CONNECTION, redact(f"{type(exc).__name__}: {exc}")


def _split_credentials(url: str, headers: dict[str, str]) -> tuple[yarl.URL, dict[str, str]]:
    """The URL without its user and password, and the channel's headers with those as basic
    auth, unless the channel sets ``Authorization`` itself (aiohttp refuses to send both)."""
    parsed = yarl.URL(url)
    if parsed.user is None or any(name.lower() == "authorization" for name in headers):
        return parsed.with_user(None), dict(headers)
    pair = f"{parsed.user}:{parsed.password or ''}".encode()
    return parsed.with_user(None), {**headers, "Authorization": "Basic " + b64encode(pair).decode()}


def _env_proxy(url: yarl.URL) -> yarl.URL | None:
    """The proxy ``HTTP(S)_PROXY`` and ``NO_PROXY`` give ``url``, as httpx honoured them.
    Read once per channel: aiohttp's ``trust_env`` reads them, and ``.netrc``, per request."""
    if url.host is None or urllib.request.proxy_bypass(url.host):
        return None
    proxy = urllib.request.getproxies().get(url.scheme)
    return yarl.URL(proxy) if proxy else None


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
