"""The ``inbox`` provider: in-app messages written to the inbox table that the app reads."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from activities.db import queries
from journeys.channels_config import InboxProvider

from .message import Message, SendResult, failed, sent

_COLUMNS = ("title", "body")


class InboxSender:
    """Writes a page of messages with one INSERT; the message id is the idempotency key."""

    def __init__(self, config: InboxProvider, *, pool: Any) -> None:
        self._config = config
        self._pool = pool

    async def send(self, messages: list[Message]) -> list[SendResult]:
        """Insert every message (a replay adds no row); all SENT, or all failed together."""
        if not messages:
            return []
        if self._pool is None:
            reason = "inbox provider needs a database pool"
            return [failed(m, retryable=False, reason=reason) for m in messages]
        expires = (datetime.now(UTC) + self._config.ttl).isoformat()
        try:
            rows = [self._row(m, expires) for m in messages]
            await self._pool.execute(queries.INBOX_INSERT, *zip(*rows, strict=True))
        except Exception as exc:  # the database being unwell is worth another try later
            reason = f"inbox write failed: {type(exc).__name__}: {exc}"
            return [failed(m, retryable=True, reason=reason) for m in messages]
        return [sent(m, m.idempotency_key) for m in messages]

    async def aclose(self) -> None:
        """The pool belongs to the caller."""

    def _row(self, message: Message, expires: str) -> tuple[Any, ...]:
        extra: dict[str, Any] = {k: v for k, v in message.content.items() if k not in _COLUMNS}
        if "payload" in extra:
            extra["payload"] = json.loads(extra["payload"])
        data = {
            **extra,
            "template": message.template,
            "run_id": message.run_id,
            "node_id": message.node_id,
            "vars": message.data,
            # the table has no expiry column; the app hides rows past this time
            "expires_at": expires,
        }
        # vars the jsonb codec cannot encode (a datetime, say) are stored as their text
        data = json.loads(json.dumps(data, default=str))
        return (
            message.idempotency_key,
            message.user_id,
            message.channel,
            self._config.slot,
            message.content.get("title"),
            message.content.get("body", ""),
            data,
        )
