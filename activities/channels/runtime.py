"""The channel runtime a worker opens once: render templates, send pages, retry briefly.

```python
runtime = await ChannelRuntime.open(path, pool=pool)
content = runtime.render("push", "coupon", recipient=recipient, vars={"amount": 10})
results = await runtime.send("push", messages)
await runtime.aclose()
```
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from activities.db.pool import DbPool
from journeys.channels_config import (
    Channel,
    ChannelsFile,
    HttpProvider,
    InboxProvider,
    JudgementService,
    LogProvider,
    SmtpProvider,
    load_channels,
)
from journeys.contracts import failures
from journeys.template_sandbox import TemplateLimits

from .http_provider import HttpSender
from .inbox_provider import InboxSender
from .isolated import RenderPool
from .log_provider import LogSender
from .message import Message, Outcome, Recipient, Sender, SendResult, failed
from .render import PageUser, PreparedTemplate, Rendered, Renderer
from .smtp_provider import SmtpSender


class ChannelRuntime:
    """Renderers and providers for every channel of one channels file."""

    def __init__(
        self,
        channels: ChannelsFile,
        *,
        pool: DbPool | None,
        limits: TemplateLimits | None = None,
    ) -> None:
        """``pool`` may be None where no channel writes to the inbox (rendering, checks)."""
        self._channels = channels
        self._limits = limits or TemplateLimits()
        self._renderer = Renderer(channels, limits=self._limits)
        self._render_pool: RenderPool | None = None
        self._senders: dict[str, Sender] = {
            name: self._sender(channel, pool=pool) for name, channel in channels.channels.items()
        }

    @classmethod
    async def open(
        cls, channels_file: Path, *, pool: DbPool | None, limits: TemplateLimits | None = None
    ) -> ChannelRuntime:
        """Load and validate ``channels_file`` (raises ``ChannelsInvalid``) and set up providers."""
        channels = await asyncio.to_thread(load_channels, channels_file)
        return cls(channels, pool=pool, limits=limits)

    def channel(self, name: str) -> Channel | None:
        """The configuration of channel ``name``, if there is one."""
        return self._channels.channels.get(name)

    def service(self, name: str) -> JudgementService | None:
        """The judgement service ``name`` that check steps ask, if the file has one."""
        return self._channels.services.get(name)

    def inbox(self, name: str) -> InboxSender | None:
        """The inbox provider of channel ``name``, when it has one: its messages are rows in
        the product's own database, so a page can be recorded and sent in one statement."""
        sender = self._senders.get(name)
        return sender if isinstance(sender, InboxSender) else None

    def prepare(self, channel: str, template: str, *, vars: dict[str, Any]) -> PreparedTemplate:
        """``channel``'s ``template`` with the step's ``vars`` bound, for rendering a page;
        raises :class:`RenderError` for an unknown channel or template."""
        return self._renderer.prepare(channel, template, vars=vars)

    async def render_page(
        self, channel: str, template: str, *, vars: dict[str, Any], users: Sequence[PageUser]
    ) -> list[Rendered]:
        """Each user's rendered fields, or why they could not be rendered, in order. A
        template that runs Jinja code renders in a child process (started the first time one
        does), where a hard deadline and a memory cap hold whatever the template does."""
        if self._renderer.runs_jinja(channel, template):
            if self._render_pool is None:
                self._render_pool = RenderPool(self._channels, limits=self._limits)
            return await self._render_pool.render_page_async(channel, template, vars, users)
        return self._renderer.render_page(channel, template, vars=vars, users=users)

    def render(
        self,
        channel: str,
        template: str,
        *,
        recipient: Recipient,
        vars: dict[str, Any],
        event: dict[str, Any] | None = None,
    ) -> dict[str, str]:
        """The rendered template fields for one recipient (``event``: the props of the event
        that started the user's entry); raises :class:`RenderError`."""
        return self._renderer.render(channel, template, recipient=recipient, vars=vars, event=event)

    async def send(
        self,
        channel: str,
        messages: list[Message],
        *,
        retries: int = 2,
        backoff: timedelta = timedelta(milliseconds=200),
    ) -> list[SendResult]:
        """Send a page through ``channel``; one final result per message, in input order.

        Messages that come back RETRYABLE are sent again, only those, up to ``retries`` more
        times after ``backoff``, ``2 * backoff``, ... Longer outages are the caller's to retry.
        """
        sender = self._senders.get(channel)
        if sender is None:
            reason = f'unknown channel "{channel}"'
            category = failures.UNKNOWN_TEMPLATE
            return [failed(m, retryable=False, category=category, reason=reason) for m in messages]
        final: list[SendResult | None] = [None] * len(messages)
        pending = list(range(len(messages)))
        for attempt in range(max(retries, 0) + 1):
            if not pending:
                break
            if attempt:
                await asyncio.sleep((backoff * 2 ** (attempt - 1)).total_seconds())
            answers = await sender.send([messages[i] for i in pending])
            for index, answer in zip(pending, answers, strict=True):
                final[index] = answer
            pending = [
                i for i, a in zip(pending, answers, strict=True) if a.outcome is Outcome.RETRYABLE
            ]
        return [result for result in final if result is not None]

    async def aclose(self) -> None:
        """Close every provider (and its connections) and the render children."""
        if self._render_pool is not None:
            await asyncio.to_thread(self._render_pool.close)
            self._render_pool = None
        for sender in self._senders.values():
            await sender.aclose()

    def _sender(self, channel: Channel, *, pool: DbPool | None) -> Sender:
        provider = channel.provider
        if isinstance(provider, HttpProvider):
            return HttpSender(provider, channel_type=channel.type)
        if isinstance(provider, SmtpProvider):
            return SmtpSender(provider)
        if isinstance(provider, InboxProvider):
            return InboxSender(provider, pool=pool)
        assert isinstance(provider, LogProvider)
        return LogSender()
