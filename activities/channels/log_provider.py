"""The ``log`` provider: a dry run that logs each message instead of delivering it."""

from __future__ import annotations

import logging

from .message import Message, SendResult, sent

logger = logging.getLogger("journeys.channels.log")


class LogSender:
    """Logs one INFO line per message and reports it SENT."""

    async def send(self, messages: list[Message]) -> list[SendResult]:
        """Log every message; nothing leaves the process."""
        for message in messages:
            logger.info(
                "dry run: %s/%s to %s [%s] %s",
                message.channel,
                message.template,
                message.user_id,
                message.idempotency_key,
                message.content,
            )
        return [sent(m) for m in messages]

    async def aclose(self) -> None:
        """Nothing to close."""
