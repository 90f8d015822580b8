"""``journeys test-send PLAN --user U [--step S]``: one step's message, rendered for one test
user's profile and sent through the channel's real provider.

Only users on the allow list of test users (``journeys suppress add U --allow``) can get one,
and not on a channel they are suppressed on, so a typo in ``--user`` never reaches a
customer. The message is no run's: its idempotency key starts with ``test/`` and is new each
time (a provider must not take a second test for a repeat), and no ledger row is written.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from activities.channels.message import Message
from activities.channels.render import RenderError
from activities.channels.runtime import ChannelRuntime
from activities.controls.suppression import EVERY_CHANNEL, SuppressionStore
from activities.db import plan_store, queries
from activities.db.params import json_list
from activities.db.pool import DbPool
from activities.page_content import recipient
from journeys.errors import InvalidInput, JourneysError, Problem
from journeys.plan.common import PLAN_ID_PATTERN
from journeys.plan.models import Plan
from journeys.plan.steps import SendStep, WebhookStep
from journeys.settings import Settings

from .plan_files import read_plan


class NotATestUser(JourneysError):
    """The user is not on the allow list of test users, or is suppressed on the channel."""


class TestSent(BaseModel):
    """What a test send rendered and what the provider answered."""

    plan_id: str
    step: str
    channel: str
    template: str
    user_id: str
    idempotency_key: str
    content: dict[str, str]
    outcome: str
    provider_id: str | None = None
    reason: str | None = None


async def resolve_plan(pool: DbPool, plan: str, *, channels: Path | None) -> Plan:
    """The newest version of plan id ``plan``, or ``plan`` read as a plan file (a path: ids
    have no ``.`` or ``/``)."""
    if not re.fullmatch(PLAN_ID_PATTERN, plan):
        return read_plan(Path(plan), channels=channels)
    newest = (await plan_store.versions(pool, plan))[-1]
    return await plan_store.load(pool, plan, newest.version)


def message_step(plan: Plan, step: str | None) -> tuple[str, SendStep | WebhookStep]:
    """Step ``step`` (a send or webhook), or the plan's first one in file order."""
    sending = {k: s for k, s in plan.steps.items() if isinstance(s, SendStep | WebhookStep)}
    if step is None:
        if not sending:
            raise InvalidInput(plan.id, [Problem("steps", "no send or webhook step to test")])
        step = next(iter(sending))
    if step not in sending:
        known = ", ".join(sending) or "none"
        reason = f"no send or webhook step {step!r} (those of the plan: {known})"
        raise InvalidInput(plan.id, [Problem("--step", reason)])
    return step, sending[step]


async def check_test_user(store: SuppressionStore, user: str, *, channel: str) -> None:
    """Raise :class:`NotATestUser` unless ``user`` is allowed and not suppressed here."""
    marks = await store.entries(user=user)
    if not any(m.list == "allow" for m in marks):
        raise NotATestUser(
            f"{user!r} is not a test user: add them first (journeys suppress add {user} --allow)"
        )
    for mark in marks:
        if mark.list == "suppress" and mark.channel in (channel, EVERY_CHANNEL):
            raise NotATestUser(f"{user!r} is suppressed on {mark.channel}: nothing was sent")


async def test_send(
    settings: Settings,
    *,
    pool: DbPool,
    store: SuppressionStore,
    plan: Plan,
    user: str,
    step: str | None = None,
    context: dict[str, Any] | None = None,
) -> TestSent:
    """Render ``plan``'s step for ``user`` (``context``: what ``entry.*`` reads) and send it."""
    node, chosen = message_step(plan, step)
    await check_test_user(store, user, channel=chosen.channel)
    rows = await pool.fetch(queries.USERS_BY_IDS, json_list([user]))
    to = recipient(user, rows[0] if rows else None)
    runtime = await ChannelRuntime.open(settings.channels_file, pool=pool)
    try:
        try:
            content = runtime.render(
                chosen.channel,
                chosen.template,
                recipient=to,
                vars=dict(chosen.vars),
                event=context or {},
            )
        except RenderError as exc:
            raise InvalidInput(f"steps.{node}", [Problem("template", str(exc))]) from None
        key = f"test/{plan.id}:{node}:{user}:{uuid.uuid4().hex[:12]}"
        message = Message(
            idempotency_key=key,
            run_id=f"test/{plan.id}",
            node_id=node,
            channel=chosen.channel,
            template=chosen.template,
            user_id=user,
            to=to,
            content=content,
            data=dict(chosen.vars),
        )
        [answer] = await runtime.send(chosen.channel, [message])
    finally:
        await runtime.aclose()
    return TestSent(
        plan_id=plan.id,
        step=node,
        channel=chosen.channel,
        template=chosen.template,
        user_id=user,
        idempotency_key=key,
        content=content,
        outcome=answer.outcome.value,
        provider_id=answer.provider_id,
        reason=answer.reason,
    )
