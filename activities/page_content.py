"""What a page's messages say: each user's profile and entry event, through the template.

Shared by both delivery paths (:mod:`activities.delivery`): the inbox's one-statement write
and the claim-send-settle of every other provider.
"""

from __future__ import annotations

from typing import Any

from activities.channels.message import Message, Recipient
from activities.channels.render import Rendered, user_fields
from activities.channels.runtime import ChannelRuntime
from activities.db import queries
from activities.db.params import json_list
from activities.db.pool import DbPool
from activities.journey.facts import entry_props
from journeys.contracts.pages import DeliverPageInput


class PageContent:
    """Looks up what templates read and renders a page; built once per worker."""

    def __init__(self, *, pool: DbPool, channels: ChannelRuntime) -> None:
        self._pool = pool
        self._channels = channels

    async def profiles(self, users: list[str]) -> dict[str, Any]:
        """The profile rows of the page's users that have one."""
        rows = await self._pool.fetch(queries.USERS_BY_IDS, json_list(users))
        return {r["user_id"]: r for r in rows}

    async def render(
        self, data: DeliverPageInput, entries: dict[str, int], profiles: dict[str, Any]
    ) -> dict[str, Rendered]:
        """Each user's rendered message, or why it could not be rendered."""
        events = await entry_props(self._pool, data.run_id, entries)  # {{ event.* }}
        users = list(entries)
        page = [(_fields(user, profiles.get(user)), events.get(user)) for user in users]
        results = await self._channels.render_page(
            data.channel, data.template, vars=dict(data.vars), users=page
        )
        return dict(zip(users, results, strict=True))


def _fields(user: str, row: Any) -> dict[str, Any]:
    if row is None:
        return user_fields(user)
    return user_fields(
        user, email=row["email"], phone=row["phone"], timezone=row["timezone"], attrs=row["attrs"]
    )


def page_message(
    data: DeliverPageInput, *, key: str, user: str, row: Any, content: dict[str, str]
) -> Message:
    """The message of ``user`` (profile ``row``) on the page ``data``, rendered as ``content``."""
    return Message(
        idempotency_key=key,
        run_id=data.run_id,
        node_id=data.node,
        channel=data.channel,
        template=data.template,
        user_id=user,
        to=recipient(user, row),
        content=content,
        data=dict(data.vars),
    )


def recipient(user: str, row: Any) -> Recipient:
    """The provider's view of a user: contact points and attributes from the profile row."""
    if row is None:
        return Recipient(user_id=user)
    return Recipient(
        user_id=user,
        email=row["email"],
        phone=row["phone"],
        timezone=row["timezone"],
        attrs=row["attrs"] or {},
    )
