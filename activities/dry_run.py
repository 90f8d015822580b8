"""A dry run's page at a send or webhook step (``journeys launch --dry-run``).

The page's users are found, checked against exits, rendered from their profiles and handed
to the ``log`` provider, exactly as the real page would render them; no provider is
reached, no ledger row written, and no delivery control consulted (a check would reserve).
Those rendered go on to the next node; one message per node is kept in Redis for the command
to print after the run.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta

import redis.asyncio as aioredis

from activities.channels.log_provider import LogSender
from activities.channels.message import Message, idempotency_key
from activities.channels.render import RenderError
from activities.db.pool import DbPool
from activities.journey.facts import admit, page_users
from activities.page_content import PageContent, page_message
from journeys.contracts.counters import Counters
from journeys.contracts.pages import DeliverPageInput, DeliverPageOutput
from journeys.names import dry_samples_key
from journeys.rule_eval import in_zone

SAMPLES_TTL = timedelta(days=1)


async def dry_page(
    data: DeliverPageInput,
    *,
    redis: aioredis.Redis,
    pool: DbPool,
    content: PageContent,
    log: LogSender,
) -> DeliverPageOutput:
    """Render and log one page; its counts, and its users queued for the next node."""
    entries = await page_users(redis, key=data.cohort_key, page=data.page, page_size=data.page_size)
    users, exited = await admit(
        redis,
        pool,
        users=list(entries),
        exited_key=data.exited_key,
        exit_rules=data.exit_rules,
        now=in_zone(data.now or datetime.now(UTC), data.timezone),
        entries=entries,
        run_id=data.run_id,
    )
    counters = Counters(exited=exited)
    if not users:
        return DeliverPageOutput(counters=counters)
    profiles = await content.profiles(users)
    rendered = await content.render(data, {u: entries[u] for u in users}, profiles)
    messages: list[Message] = []
    failed: Counter[str] = Counter()
    for user in users:
        fields = rendered[user]
        if isinstance(fields, RenderError):
            failed[fields.category] += 1
            continue
        key = idempotency_key(data.run_id, data.node, user, entries[user])
        messages.append(
            page_message(data, key=key, user=user, row=profiles.get(user), content=fields)
        )
    await log.send(messages)
    counters.delivered = len(messages)
    counters.failed = dict(failed)
    pipe = redis.pipeline(transaction=False)
    if messages:
        first = messages[0]
        sample = {"user_id": first.user_id, "channel": first.channel, "content": first.content}
        pipe.hsetnx(dry_samples_key(data.run_id), data.node, json.dumps(sample))
        pipe.expire(dry_samples_key(data.run_id), SAMPLES_TTL)
        if data.passed_key is not None:
            pipe.zadd(data.passed_key, {m.user_id: entries[m.user_id] for m in messages})
    await pipe.execute()
    return DeliverPageOutput(counters=counters, passed=len(messages))
