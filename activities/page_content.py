"""What a page's messages say: each user's profile and entry event, through the template.

Shared by both delivery paths (:mod:`activities.delivery`): the inbox's one-statement write
and the claim-send-settle of every other provider.
"""

from __future__ import annotations

from typing import Any

from activities.channels.message import Recipient
from activities.channels.render import RenderError, user_fields
from activities.channels.runtime import ChannelRuntime
from activities.db import queries
from activities.db.params import json_list
from activities.db.pool import DbPool
from activities.journey.facts import entry_props
from journeys.contracts.pages import DeliverPageInput

Rendered = dict[str, str] | RenderError


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
        try:
            template = self._channels.prepare(data.channel, data.template, vars=dict(data.vars))
        except RenderError as exc:
            return dict.fromkeys(entries, exc)
        rendered: dict[str, Rendered] = {}
        for user in entries:
            row = profiles.get(user)
            fields = (
                user_fields(user)
                if row is None
                else user_fields(
                    user,
                    email=row["email"],
                    phone=row["phone"],
                    timezone=row["timezone"],
                    attrs=row["attrs"],
                )
            )
            try:
                rendered[user] = template.render_user(fields, event=events.get(user))
            except RenderError as exc:
                rendered[user] = exc
        return rendered


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
