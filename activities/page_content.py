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
from journeys.contracts.pages import DeliverPageInput

Rendered = dict[str, str] | RenderError


class PageContent:
    """Looks up what templates read and renders a page; built once per worker."""

    def __init__(self, *, pool: Any, channels: ChannelRuntime) -> None:
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
        entry_props = await self._entry_props(data.run_id, entries)
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
                rendered[user] = template.render_user(fields, event=entry_props.get(user))
            except RenderError as exc:
                rendered[user] = exc
        return rendered

    async def _entry_props(self, run_id: str, entries: dict[str, int]) -> dict[str, Any]:
        """The props of the event that started each user's entry (``{{ event.* }}`` in
        templates); audience entries (number 0) have none, so blasts skip the query."""
        users = sorted(u for u, n in entries.items() if n > 0)
        if not users:
            return {}
        rows = await self._pool.fetch(
            queries.ENTRIES_PROPS, run_id, users, [entries[u] for u in users]
        )
        return {r["user_id"]: r["props"] or {} for r in rows}


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
