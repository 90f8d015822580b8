"""Engagement: which message a receipt, an open, a click or a negative event belongs to.

The channels file maps engagement events per channel (``engagement: {clicked:
push_clicked}``), the policy names the negative events with their cost
(``negative_events``). The ingest path hands every accepted event to :class:`EngagementStore`,
which records one ``engagements`` row per message and kind: the message is the one whose
idempotency key the event carries (the channel's ``key`` property), else the user's last
message sent within the window before the event. The app's inbox calls record opens and
clicks of in-app messages directly (:meth:`EngagementStore.inbox`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from activities.db import queries
from activities.db.pool import DbPool
from journeys.channels_config import ChannelsFile
from journeys.events import JourneyEvent
from journeys.policy import Policy

INBOX_READ, INBOX_CLICK = "inbox_read", "inbox_click"


@dataclass(frozen=True)
class EngagementRule:
    """What an event name means: its kind, the channels whose messages it may belong to
    (None: any), the property that carries the message key, how far back the last
    message may be, and (negative events) its cost."""

    kind: str
    channels: tuple[str, ...] | None
    key: str | None
    window: timedelta
    cost: float | None = None


@dataclass(frozen=True)
class EngagementMap:
    """Every event name that says something about a message, with what it says."""

    rules: dict[str, list[EngagementRule]] = field(default_factory=dict)

    @classmethod
    def of(cls, channels: ChannelsFile | None, policy: Policy | None) -> EngagementMap:
        """The map of a channels file and a policy (either may be missing)."""
        grouped: dict[tuple[str, str, str, timedelta], list[str]] = defaultdict(list)
        for name, channel in sorted((channels.channels if channels else {}).items()):
            mapping = channel.engagement
            if mapping is None:
                continue
            for kind in ("delivered", "opened", "clicked"):
                event = getattr(mapping, kind)
                if event is not None:
                    grouped[(event, kind, mapping.key, mapping.window)].append(name)
        rules: dict[str, list[EngagementRule]] = defaultdict(list)
        for (event, kind, key, window), names in sorted(grouped.items()):
            rules[event].append(EngagementRule(kind, tuple(names), key, window))
        for negative in policy.negative_events if policy else []:
            rules[negative.name].append(
                EngagementRule("negative", None, "message_id", negative.window, negative.cost)
            )
        return cls(dict(rules))


@dataclass(frozen=True)
class InboxMarked:
    """An inbox message the app read or clicked, and when it was first read."""

    message_id: str
    read_at: datetime


class EngagementStore:
    """Records engagement rows in PostgreSQL; built once per ingest process."""

    def __init__(self, *, pool: DbPool, engagement: EngagementMap | None = None) -> None:
        self._pool = pool
        self._map = engagement or EngagementMap()

    async def record(self, events: Sequence[JourneyEvent]) -> None:
        """Attribute each of ``events`` that the map names to its message (at most one row
        per message and kind: a repeated click is the same fact)."""
        batches: dict[tuple[str, int], list[JourneyEvent]] = defaultdict(list)
        for event in events:
            for n, _ in enumerate(self._map.rules.get(event.name, ())):
                batches[(event.name, n)].append(event)
        for (name, n), batch in sorted(batches.items(), key=lambda item: item[0]):
            rule = self._map.rules[name][n]
            keyed = [(e, _key(e, rule)) for e in batch]
            with_key = [(e, k) for e, k in keyed if k is not None]
            without = [e for e, k in keyed if k is None]
            head = (rule.kind, name, rule.cost)
            channels = list(rule.channels) if rule.channels is not None else None
            if with_key:
                await self._pool.execute(
                    queries.ENGAGEMENT_BY_KEY,
                    *head,
                    [e.user_id for e, _ in with_key],
                    [e.ts for e, _ in with_key],
                    channels,
                    [k for _, k in with_key],
                )
            if without:
                await self._pool.execute(
                    queries.ENGAGEMENT_LAST_MESSAGE,
                    *head,
                    [e.user_id for e in without],
                    [e.ts for e in without],
                    channels,
                    rule.window,
                )

    async def inbox(self, *, message_id: str, user_id: str, clicked: bool) -> InboxMarked | None:
        """Mark ``user_id``'s inbox message read (and, ``clicked``, clicked); None when the
        user has no such message."""
        kinds, names = ["opened"], [INBOX_READ]
        if clicked:  # a click on a message shows it was seen
            kinds.append("clicked")
            names.append(INBOX_CLICK)
        row = await self._pool.fetchrow(queries.INBOX_ENGAGE, message_id, user_id, kinds, names)
        return None if row is None else InboxMarked(row["message_id"], row["read_at"])


def _key(event: JourneyEvent, rule: EngagementRule) -> str | None:
    value = event.props.get(rule.key) if rule.key else None
    return value if isinstance(value, str) and value else None
