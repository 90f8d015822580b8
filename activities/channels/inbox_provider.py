"""The ``inbox`` provider: in-app messages written to the inbox table that the app reads."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from activities.db import queries
from activities.db.params import json_list
from activities.db.pool import DbPool
from journeys.channels_config import InboxProvider
from journeys.contracts import failures

from .message import Message, SendResult, failed, sent

_COLUMNS = frozenset({"title", "body"})


@dataclass(frozen=True, slots=True)
class InboxPage:
    """A page for :meth:`InboxSender.deliver`: the lists hold one item per user, in order;
    a user's ``contents`` item is None when its message could not be rendered, and its
    ``reasons`` item says why."""

    run_id: str
    node_id: str
    channel: str
    template: str
    attempt: int
    vars: dict[str, Any]
    keys: Sequence[str]
    users: Sequence[str]
    entries: Sequence[int]
    contents: Sequence[dict[str, str] | None]
    reasons: Sequence[str | None]


class InboxSender:
    """Writes a page of messages with one INSERT; the message id is the idempotency key."""

    def __init__(self, config: InboxProvider, *, pool: DbPool | None) -> None:
        self._config = config
        self._pool = pool

    async def send(self, messages: list[Message]) -> list[SendResult]:
        """Insert every message (a replay adds no row); all SENT, or all failed together."""
        if not messages:
            return []
        if self._pool is None:
            reason = "inbox provider needs a database pool"
            return [
                failed(m, retryable=False, category=failures.INBOX, reason=reason) for m in messages
            ]
        data = _DataJson(expires=self._expires())
        try:
            rows = [self._row(m, data) for m in messages]
            await self._pool.execute(queries.INBOX_INSERT, *zip(*rows, strict=True))
        except Exception as exc:  # the database being unwell is worth another try later
            reason = f"inbox write failed: {type(exc).__name__}: {exc}"
            return [
                failed(m, retryable=True, category=failures.INBOX, reason=reason) for m in messages
            ]
        return [sent(m, m.idempotency_key) for m in messages]

    async def deliver(self, page: InboxPage, *, new: bool = False) -> list[Any]:
        """Record and write a page in one statement (``INBOX_DELIVER``): a delivery row per
        user, settled, with the inbox row of each rendered message. Returns the delivery rows
        not sent just now (``idempotency_key, status, attempts, reason``): render failures,
        and rows that existed before, unchanged. A ``new`` page (tried for the first time) is
        first written with plain inserts (``INBOX_DELIVER_NEW``); if any of its rows exists
        after all, nothing was written and the page goes through ``INBOX_DELIVER``. Database
        errors raise: the page is retried whole."""
        if self._pool is None:
            raise RuntimeError("inbox provider needs a database pool")
        pool = self._pool
        data = _DataJson(expires=self._expires())
        titles: list[str | None] = []
        bodies: list[str | None] = []
        datas: list[str | None] = []
        page_title: str | None = None
        page_data: str | None = None
        for content in page.contents:
            if content is None:
                titles.append(None)
                bodies.append(None)
                datas.append(None)
                continue
            title = content.get("title")
            text = data.text(content, page.template, page.run_id, page.node_id, page.vars)
            if page_data is None:  # the first message's title and data are the page's
                page_title, page_data = title, text
            titles.append(None if title == page_title else title)
            bodies.append(content.get("body", ""))
            datas.append(None if text is page_data else text)
        args = (
            *map(json_list, (page.keys, page.users, page.entries, titles, bodies, datas)),
            json_list(page.reasons),
            page.run_id,
            page.node_id,
            page.channel,
            page.attempt,
            self._config.slot,
            page_title,
            page_data,
        )
        if new:
            with contextlib.suppress(asyncpg.UniqueViolationError):
                return list(await pool.fetch(queries.INBOX_DELIVER_NEW, *args))
        return list(await pool.fetch(queries.INBOX_DELIVER, *args))

    async def aclose(self) -> None:
        """The pool belongs to the caller."""

    def _expires(self) -> str:
        return (datetime.now(UTC) + self._config.ttl).isoformat()

    def _row(self, message: Message, data: _DataJson) -> tuple[Any, ...]:
        return (
            message.idempotency_key,
            message.user_id,
            message.channel,
            self._config.slot,
            message.content.get("title"),
            message.content.get("body", ""),
            data.text(
                message.content, message.template, message.run_id, message.node_id, message.data
            ),
        )


class _DataJson:
    """The ``data`` column of inbox rows as JSON text: the content fields beyond title and
    body, plus where the message came from. Rows of one page usually share it, so each
    distinct value is encoded once."""

    def __init__(self, *, expires: str) -> None:
        self._expires = expires
        self._seen: dict[tuple[Any, ...], str] = {}

    def text(
        self,
        content: dict[str, str],
        template: str,
        run_id: str,
        node_id: str,
        vars: dict[str, Any],
    ) -> str:
        extra = (
            ()
            if content.keys() <= _COLUMNS
            else tuple((k, v) for k, v in content.items() if k not in _COLUMNS)
        )
        key = (extra, template, run_id, node_id, id(vars))
        text = self._seen.get(key)
        if text is None:
            fields: dict[str, Any] = dict(extra)
            if "payload" in fields:
                fields["payload"] = json.loads(fields["payload"])
            fields.update(
                template=template,
                run_id=run_id,
                node_id=node_id,
                vars=vars,
                # the table has no expiry column; the app hides rows past this time
                expires_at=self._expires,
            )
            # vars JSON cannot encode (a datetime, say) are stored as their text
            text = self._seen[key] = json.dumps(fields, default=str)
        return text
