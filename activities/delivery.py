"""The ``deliver_page`` activity: one page of a cohort through one channel, exactly once.

Exactly-once rests on three facts. (1) Every message has the idempotency key
``{run}:{node}:{user}:{entry}`` and one row in ``deliveries``, claimed before sending and
settled after, so a retried or replayed page never sends a settled message again. (2) A
message claimed but not settled (the worker died mid-page) is sent again with the same key,
which the provider de-duplicates (``Idempotency-Key``; the inbox's primary key). (3) Each
row remembers the pass (cohort attempt) that settled it, so counts are attributed once:
a pass counts the rows it settled, and ignores rows an earlier pass settled.

A page to the inbox (the product's own table) skips the claim: one statement writes its
delivery rows already settled together with the inbox rows (``InboxSender.deliver``).
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis
from temporalio import activity

from activities.channels.inbox_provider import InboxPage, InboxSender
from activities.channels.message import Message, Outcome, SendResult
from activities.channels.render import RenderError
from activities.channels.runtime import ChannelRuntime
from activities.db import queries
from activities.db.pool import DbPool
from activities.heartbeat import heartbeating
from activities.journey.facts import admit, page_users
from activities.page_content import PageContent, recipient
from activities.rate_limit import RateLimiter
from journeys.contracts import activities as contracts
from journeys.contracts import failures
from journeys.contracts.counters import Counters
from journeys.contracts.pages import DeliverPageInput, DeliverPageOutput
from journeys.rule_eval import in_zone

_FINAL = {"sent", "skipped", "failed", "dead"}


def idempotency_key(run_id: str, node: str, user_id: str, entry: int = 0) -> str:
    """``{run}:{node}:{user}:{entry}``: one message per user, node and entry of a run."""
    return f"{run_id}:{node}:{user_id}:{entry}"


class DeliveryActivities:
    """Sends pages; the worker builds one with the shared pools and the channel runtime."""

    def __init__(self, *, pool: DbPool, redis: aioredis.Redis, channels: ChannelRuntime) -> None:
        self._pool = pool
        self._redis = redis
        self._channels = channels
        self._limiter = RateLimiter(redis)
        self._content = PageContent(pool=pool, channels=channels)

    @activity.defn(name=contracts.DELIVER_PAGE.name)
    async def deliver_page(self, data: DeliverPageInput) -> DeliverPageOutput:
        """Claim, render, rate-limit, send and settle one page; return its counts."""
        async with heartbeating():
            return await self._deliver(data)

    async def _deliver(self, data: DeliverPageInput) -> DeliverPageOutput:
        entries = await page_users(
            self._redis, key=data.cohort_key, page=data.page, page_size=data.page_size
        )
        users, exited = await admit(
            self._redis,
            self._pool,
            users=list(entries),
            exited_key=data.exited_key,
            exit_rules=data.exit_rules,
            now=in_zone(data.now or datetime.now(UTC), data.timezone),
            entries=entries,
            run_id=data.run_id,
        )
        if not users:
            return DeliverPageOutput(counters=Counters(exited=exited))
        keys = [idempotency_key(data.run_id, data.node, u, entries[u]) for u in users]
        inbox = self._channels.inbox(data.channel) if data.rate_scope is None else None
        state: dict[str, Any]
        if inbox is not None:
            sent_now = {"status": "sent", "attempts": data.attempt, "reason": None}
            state = dict.fromkeys(keys, sent_now)
            for row in await self._write_inbox(inbox, data, keys, users, entries):
                state[row["idempotency_key"]] = row
        else:
            rows = await self._pool.fetch(
                queries.DELIVERIES_CLAIM,
                keys,
                users,
                data.run_id,
                data.node,
                [entries[u] for u in users],
                data.channel,
                data.attempt,
            )
            state = {r["idempotency_key"]: r for r in rows}
        counters = Counters(exited=exited)
        outcomes: dict[str, SendResult] = {}
        todo: list[tuple[str, str]] = []
        passed: list[str] = []
        settled: Counter[tuple[str, str | None]] = Counter()
        for key, user in zip(keys, users, strict=True):
            row = state[key]
            if row["status"] in _FINAL:
                if row["attempts"] == data.attempt:  # an earlier execution of this page did it
                    settled[row["status"], row["reason"]] += 1
                    if row["status"] in ("sent", "skipped"):
                        passed.append(user)
                continue  # settled by an earlier pass, and counted there
            todo.append((key, user))
        _count_settled(counters, settled)
        if todo:
            outcomes = await self._send(data, todo, {u: entries[u] for _, u in todo})
        retry_users = self._tally(data, todo, outcomes, counters)
        passed += [u for k, u in todo if outcomes[k].outcome is Outcome.SENT]
        await self._settle(data, outcomes)
        # Settled first, then queued: a crash in between re-runs the page, which finds the
        # rows settled in this pass and queues the same users again (ZADD is idempotent).
        pipe = self._redis.pipeline(transaction=False)
        if retry_users:
            pipe.zadd(data.retry_key, {u: entries[u] for u in retry_users})
        if passed and data.passed_key is not None:
            pipe.zadd(data.passed_key, {u: entries[u] for u in passed})
        await pipe.execute()
        return DeliverPageOutput(counters=counters, retry=len(retry_users), passed=len(passed))

    async def _write_inbox(
        self,
        inbox: InboxSender,
        data: DeliverPageInput,
        keys: list[str],
        users: list[str],
        entries: dict[str, int],
    ) -> list[Any]:
        """The inbox's page in one statement. Returns the rows it did not send just now
        (render failures, rows that existed), read like a claim's; rows an earlier version
        left unsettled among them go on to ``_send``."""
        page_entries = {u: entries[u] for u in users}
        rendered = await self._content.render(
            data, page_entries, await self._content.profiles(users)
        )
        contents = [c if isinstance(c := rendered[u], dict) else None for u in users]
        reasons = [
            failures.recorded(c.category, c.reason)
            if isinstance(c := rendered[u], RenderError)
            else None
            for u in users
        ]
        page = InboxPage(
            run_id=data.run_id,
            node_id=data.node,
            channel=data.channel,
            template=data.template,
            attempt=data.attempt,
            vars=dict(data.vars),
            keys=keys,
            users=users,
            entries=[entries[u] for u in users],
            contents=contents,
            reasons=reasons,
        )
        # Only a page's first execution in its first pass can find none of its rows written.
        first = data.attempt == 1 and activity.info().attempt == 1
        return await inbox.deliver(page, new=first)

    async def _send(
        self, data: DeliverPageInput, todo: list[tuple[str, str]], entries: dict[str, int]
    ) -> dict[str, SendResult]:
        profiles = await self._content.profiles(list(entries))
        rendered = await self._content.render(data, entries, profiles)
        results: dict[str, SendResult] = {}
        messages: list[Message] = []
        for key, user in todo:
            content = rendered[user]
            if isinstance(content, RenderError):
                results[key] = SendResult(
                    idempotency_key=key,
                    outcome=Outcome.PERMANENT,
                    reason=content.reason,
                    category=content.category,
                )
                continue
            messages.append(
                Message(
                    idempotency_key=key,
                    run_id=data.run_id,
                    node_id=data.node,
                    channel=data.channel,
                    template=data.template,
                    user_id=user,
                    to=recipient(user, profiles.get(user)),
                    content=content,
                    data=dict(data.vars),
                )
            )
        while messages:
            take = len(messages)
            if data.rate_scope is not None:
                take = await self._limiter.acquire(data.rate_scope, want=len(messages))
            chunk, messages = messages[:take], messages[take:]
            for result in await self._channels.send(data.channel, chunk):
                results[result.idempotency_key] = result
        return results

    @staticmethod
    def _tally(
        data: DeliverPageInput,
        todo: list[tuple[str, str]],
        outcomes: dict[str, SendResult],
        counters: Counters,
    ) -> list[str]:
        retry: list[str] = []
        failed: Counter[str] = Counter()
        delivered = 0
        for key, user in todo:
            result = outcomes[key]
            if result.outcome is Outcome.SENT:
                delivered += 1
            elif result.outcome is Outcome.PERMANENT:
                failed[_category(result)] += 1
            elif data.attempt < data.max_attempts:
                retry.append(user)
            else:
                failed[failures.DEAD + _category(result)] += 1
        counters.delivered += delivered
        for reason, count in failed.items():  # added to rows an earlier execution settled
            counters.failed[reason] = counters.failed.get(reason, 0) + count
        return retry

    async def _settle(self, data: DeliverPageInput, outcomes: dict[str, SendResult]) -> None:
        if not outcomes:
            return
        keys, statuses, reasons, providers = [], [], [], []
        for key, result in outcomes.items():
            sent = result.outcome is Outcome.SENT
            keys.append(key)
            statuses.append(_status(result, last_pass=data.attempt >= data.max_attempts))
            reasons.append(None if sent else failures.recorded(_category(result), result.reason))
            provider_id = result.provider_id
            providers.append(None if provider_id is None else failures.storable(provider_id))
        await self._pool.execute(
            queries.DELIVERIES_SETTLE, keys, statuses, reasons, providers, data.attempt
        )


def _category(result: SendResult) -> str:
    return failures.category(result.category)


def _status(result: SendResult, *, last_pass: bool) -> str:
    if result.outcome is Outcome.SENT:
        return "sent"
    if result.outcome is Outcome.PERMANENT:
        return "failed"
    return "dead" if last_pass else "retrying"


def _count_settled(counters: Counters, settled: Counter[tuple[str, str | None]]) -> None:
    """Add rows settled in this pass (by status and reason) to ``counters``, once per kind
    (a pydantic field set per row was 4% of a page's CPU)."""
    for (status, reason), count in settled.items():
        if status == "sent":
            counters.delivered += count
            continue
        skipped = status == "skipped"
        label = (reason if skipped else failures.of_recorded(reason) if reason else None) or status
        bucket = counters.skipped if skipped else counters.failed
        if status == "dead":
            label = failures.DEAD + label
        bucket[label] = bucket.get(label, 0) + count
