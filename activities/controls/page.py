"""The gate as a send page uses it: its controls, its clock, its users' zones and price."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis

from activities.channels.message import Outcome, SendResult
from activities.channels.runtime import ChannelRuntime
from activities.controls.gate import ARBITRATION, Deferral, DeliveryGate, Verdict
from journeys.contracts.controls import Controls
from journeys.contracts.pages import DeferredGroup, DeliverPageInput


class PageGate:
    """Checks a page's users and gives back what failed sends reserved."""

    def __init__(self, *, redis: aioredis.Redis, channels: ChannelRuntime) -> None:
        self._gate = DeliveryGate(redis)
        self._channels = channels

    def _cost(self, channel: str) -> float:
        config = self._channels.channel(channel)
        return 0.0 if config is None else config.cost

    def _controls(self, data: DeliverPageInput) -> Controls | None:
        return self.controls_for(data.controls, channel=data.channel)

    def controls_for(self, controls: Controls | None, *, channel: str) -> Controls | None:
        """The controls a send through ``channel`` is checked by; a webhook channel's calls
        (a coupon grant, a CRM update) are not messages to a person, so they are checked
        like transactional ones: suppression and budgets, no caps or quiet hours, and they
        count toward no cap."""
        config = self._channels.channel(channel)
        if controls is not None and config is not None and config.type == "webhook":
            return controls.model_copy(update={"transactional": True})
        return controls

    async def check(
        self, data: DeliverPageInput, entries: Mapping[str, int], profiles: Mapping[str, Any]
    ) -> Verdict:
        """The page's verdict; every user passes when the step has no controls."""
        controls = self._controls(data)
        if controls is None:
            return Verdict(passed=list(entries))
        zones = {u: (row["timezone"] if (row := profiles.get(u)) else None) for u in entries}
        return await self._gate.check(
            controls,
            channel=data.channel,
            run_id=data.run_id,
            node=data.node,
            entries=entries,
            zones=zones,
            now=data.now or datetime.now(UTC),
            cost=self._cost(data.channel),
            confirm=data.confirm,
            recheck=data.attempt > 1,  # a retry pass: suppressed or quiet since?
        )

    async def release(self, data: DeliverPageInput, entries: Sequence[tuple[str, int]]) -> None:
        """Messages of the page that failed for good give their reservations back."""
        await self.release_for(
            data.controls, channel=data.channel, run_id=data.run_id, node=data.node, entries=entries
        )

    async def release_for(
        self,
        controls: Controls | None,
        *,
        channel: str,
        run_id: str,
        node: str,
        entries: Sequence[tuple[str, int]],
    ) -> int:
        """Give back what messages of (``run_id``, ``node``) reserve; returns how many held."""
        checked = self.controls_for(controls, channel=channel)
        if checked is None or not entries:
            return 0
        return await self._gate.release(
            checked,
            channel=channel,
            run_id=run_id,
            node=node,
            entries=entries,
            cost=self._cost(channel),
        )


@dataclass(slots=True)
class Gated:
    """What the gate did to a page's open rows."""

    rows: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Key -> (status, reason) of every message the gate stopped."""
    counts: Counter[tuple[str, str | None]] = field(default_factory=Counter)
    skipped: list[str] = field(default_factory=list)
    """Users skipped: they go on to the next node."""
    deferred: dict[str, Deferral] = field(default_factory=dict)


def stopped_users(verdict: Verdict | None) -> dict[str, tuple[str, str]]:
    """User -> (status, reason) of each user the gate did not pass."""
    if verdict is None:
        return {}
    stopped = {u: ("skipped", reason) for u, reason in verdict.skipped.items()}
    stopped.update({u: ("deferred", d.reason) for u, d in verdict.deferred.items()})
    return stopped


def gated_rows(verdict: Verdict | None, open_rows: list[tuple[str, str]]) -> Gated:
    gated = Gated()
    if verdict is None:
        return gated
    stopped = stopped_users(verdict)
    for key, user in open_rows:
        if user not in stopped:
            continue
        status, reason = stopped[user]
        gated.rows[key] = stopped[user]
        if status == "skipped":
            gated.counts[status, reason] += 1
            gated.skipped.append(user)
        else:
            gated.deferred[user] = verdict.deferred[user]
    return gated


def given_up(
    data: DeliverPageInput,
    todo: list[tuple[str, str]],
    outcomes: dict[str, SendResult],
    entries: dict[str, int],
) -> list[tuple[str, int]]:
    """(user, entry) of each message that failed for good: permanent, or out of passes."""
    last_pass = data.attempt >= data.max_attempts
    return [
        (u, entries[u])
        for k, u in todo
        if (outcome := outcomes[k].outcome) is Outcome.PERMANENT
        or (outcome is not Outcome.SENT and last_pass)
    ]


def deferred_groups(
    data: DeliverPageInput, deferred: dict[str, Deferral]
) -> list[tuple[DeferredGroup, list[str]]]:
    """Deferred users by release time and reason, earliest first, each group with its cohort
    id; bids come back to confirm."""
    if not deferred or data.deferred_prefix is None:
        return []
    by_release: dict[tuple[datetime, str], list[str]] = {}
    for user, deferral in deferred.items():
        by_release.setdefault((deferral.release, deferral.reason), []).append(user)
    groups = []
    for (release, reason), members in sorted(by_release.items()):
        confirm = reason == ARBITRATION
        # a page's bids confirm on their own, one window after they were placed
        mark = f"a{data.page}." if confirm else ""
        cohort = f"{data.deferred_prefix}.{mark}{int(release.timestamp() * 1000)}"
        group = DeferredGroup(cohort=cohort, release=release, users=len(members), confirm=confirm)
        groups.append((group, members))
    return groups
