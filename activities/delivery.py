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
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import redis.asyncio as aioredis
from temporalio import activity

from activities.channels.inbox_provider import InboxPage, InboxSender
from activities.channels.log_provider import LogSender
from activities.channels.message import Message, Outcome, SendResult, idempotency_key
from activities.channels.render import RenderError
from activities.channels.runtime import ChannelRuntime
from activities.controls.gate import Verdict
from activities.controls.page import (
    PageGate,
    deferred_groups,
    gated_rows,
    given_up,
    stopped_users,
)
from activities.db import queries
from activities.db.pool import DbPool
from activities.dry_run import dry_page
from activities.heartbeat import heartbeating
from activities.journey.facts import admit, page_users
from activities.page_content import PageContent, page_message
from activities.rate_limit import RateLimiter
from activities.redis_epoch import EpochGuard
from activities.redis_values import text_of
from activities.run_state import require_state
from journeys.contracts import activities as contracts
from journeys.contracts import failures
from journeys.contracts.counters import Counters
from journeys.contracts.pages import (
    DeliverPageInput,
    DeliverPageOutput,
    ReleaseCohortInput,
    ReleaseCohortOutput,
)
from journeys.names import channel_rate_scope, cohort_key
from journeys.rule_eval import in_zone

_FINAL = {"sent", "skipped", "failed", "dead"}
RELEASE_CHUNK = 1000


_LOG = LogSender()


class DeliveryActivities:
    """Sends pages; the worker builds one with the shared pools and the channel runtime."""

    def __init__(
        self,
        *,
        pool: DbPool,
        redis: aioredis.Redis,
        channels: ChannelRuntime,
        guard: EpochGuard | None = None,
    ) -> None:
        """``guard``: the page fails for good, not sends, if Redis lost its data since the
        worker started (the gate's reads would find nobody suppressed, no cap reached)."""
        self._guard = guard
        self._pool = pool
        self._redis = redis
        self._channels = channels
        self._limiter = RateLimiter(redis)
        self._content = PageContent(pool=pool, channels=channels)
        self._gate = PageGate(redis=redis, channels=channels)

    @activity.defn(name=contracts.DELIVER_PAGE.name)
    async def deliver_page(self, data: DeliverPageInput) -> DeliverPageOutput:
        """Claim, render, rate-limit, send and settle one page; return its counts."""
        async with heartbeating():
            if data.dry_run:
                return await dry_page(
                    data, redis=self._redis, pool=self._pool, content=self._content, log=_LOG
                )
            return await self._deliver(data)

    @activity.defn(name=contracts.RELEASE_COHORT.name)
    async def release_cohort(self, data: ReleaseCohortInput) -> ReleaseCohortOutput:
        """A cancelled run's cohort at a send node gives back what its users still reserve
        (users waiting for a retry pass, or held back on one), page by page."""
        released, start = 0, data.from_rank
        while True:
            chunk = await self._redis.zrange(
                data.cohort_key, start, start + RELEASE_CHUNK - 1, withscores=True
            )
            if not chunk:
                return ReleaseCohortOutput(released=released)
            pairs = cast(list[tuple[bytes | str, float]], chunk)
            entries = [(text_of(member), int(entry)) for member, entry in pairs]
            released += await self._gate.release_for(
                data.controls,
                channel=data.channel,
                run_id=data.run_id,
                node=data.node,
                entries=entries,
            )
            start += RELEASE_CHUNK
            activity.heartbeat(start)

    async def _deliver(self, data: DeliverPageInput) -> DeliverPageOutput:
        entries = await page_users(
            self._redis,
            key=data.cohort_key,
            page=data.page,
            page_size=data.page_size,
            state_key=data.state_key,
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
        if exited:  # reserved by an earlier pass or execution, then exited: give back
            admitted = set(users)
            await self._gate.release(
                data, [(u, e) for u, e in entries.items() if u not in admitted]
            )
        if not users:
            return DeliverPageOutput(counters=Counters(exited=exited))
        keys = [idempotency_key(data.run_id, data.node, u, entries[u]) for u in users]
        paced = data.rate_scope is not None or self._channel_rate(data.channel) is not None
        inbox = None if paced else self._channels.inbox(data.channel)
        profiles = await self._content.profiles(users) if data.controls is not None else None
        state: dict[str, Any]
        verdict: Verdict | None = None
        if inbox is not None:
            # Only a page's first execution in its first pass can find none of its rows written.
            first = data.attempt == 1 and activity.info().attempt == 1
            if profiles is not None:
                open_users = users if first else await self._unsettled(keys, users)
                verdict = await self._gate.check(
                    data, {u: entries[u] for u in open_users}, profiles
                )
                # the gate read shared state: trust it only if Redis still holds its data
                await require_state(self._redis, data.state_key, self._guard)
            sent_now = {"status": "sent", "attempts": data.attempt, "reason": None}
            state = dict.fromkeys(keys, sent_now)
            page = _PageUsers(keys, users, entries, profiles)
            for row in await self._write_inbox(inbox, data, page, verdict, first=first):
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
        open_rows: list[tuple[str, str]] = []
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
            open_rows.append((key, user))
        _count_settled(counters, settled)
        if verdict is None and profiles is not None:  # the claim path checks its open rows
            verdict = await self._gate.check(data, {u: entries[u] for _, u in open_rows}, profiles)
            await require_state(self._redis, data.state_key, self._guard)
        gated = gated_rows(verdict, open_rows)
        todo = [(k, u) for k, u in open_rows if k not in gated.rows]
        _count_settled(counters, gated.counts)
        passed += gated.skipped
        counters.deferred += len(gated.deferred)
        for deferral in gated.deferred.values():
            counters.deferred_by[deferral.reason] = counters.deferred_by.get(deferral.reason, 0) + 1
        outcomes: dict[str, SendResult] = {}
        if todo:
            outcomes = await self._send(data, todo, {u: entries[u] for _, u in todo}, profiles)
        retry_users = self._tally(data, todo, outcomes, counters)
        passed += [u for k, u in todo if outcomes[k].outcome is Outcome.SENT]
        # Given back before the rows settle: a crash in between re-runs the page, which
        # reserves the user again and sends with the same key (the provider de-duplicates).
        await self._gate.release(data, given_up(data, todo, outcomes, entries))
        await self._settle(data, outcomes, gated.rows if inbox is None else {})
        # Settled first, then queued: a crash in between re-runs the page, which finds the
        # rows settled in this pass and queues the same users again (ZADD is idempotent).
        groups = deferred_groups(data, gated.deferred)
        pipe = self._redis.pipeline(transaction=False)
        if retry_users:
            pipe.zadd(data.retry_key, {u: entries[u] for u in retry_users})
        if passed and data.passed_key is not None:
            pipe.zadd(data.passed_key, {u: entries[u] for u in passed})
        for group, members in groups:
            pipe.zadd(
                cohort_key(data.run_id, data.shard, group.cohort), {u: entries[u] for u in members}
            )
        await pipe.execute()
        return DeliverPageOutput(
            counters=counters,
            retry=len(retry_users),
            passed=len(passed),
            deferred=[group for group, _ in groups],
        )

    def _channel_rate(self, channel: str) -> float | None:
        """The channel's own rate from the channels file, per second (None: unlimited).
        An operator's ``journeys rate CHANNEL`` overrides it in Redis."""
        config = self._channels.channel(channel)
        return None if config is None or config.rate is None else config.rate.per_second

    async def _unsettled(self, keys: list[str], users: list[str]) -> list[str]:
        """Users of a re-executed page whose messages are not settled for good."""
        final = {
            r["idempotency_key"] for r in await self._pool.fetch(queries.DELIVERIES_FINAL, keys)
        }
        return [u for k, u in zip(keys, users, strict=True) if k not in final]

    async def _write_inbox(
        self,
        inbox: InboxSender,
        data: DeliverPageInput,
        page_users: _PageUsers,
        verdict: Verdict | None,
        *,
        first: bool,
    ) -> list[Any]:
        """The inbox's page in one statement, after the users the gate stopped are recorded
        in another. Returns the rows it did not send just now (render failures, users the
        gate stopped, rows that existed), read like a claim's; rows an earlier version left
        unsettled among them go on to ``_send``."""
        keys, users, entries = page_users.keys, page_users.users, page_users.entries
        stopped = stopped_users(verdict)
        rows: list[Any] = []
        if stopped:
            rows = await self._record_stopped(data, page_users, stopped)
            kept = [(k, u) for k, u in zip(keys, users, strict=True) if u not in stopped]
            keys, users = [k for k, _ in kept], [u for _, u in kept]
            if not users:
                return rows
        profiles = page_users.profiles
        if profiles is None:
            profiles = await self._content.profiles(users)
        rendered = await self._content.render(data, {u: entries[u] for u in users}, profiles)
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
        # only users the gate passed just now hold a reservation this page may give back;
        # a re-executed page renders settled users too
        reserved = set(verdict.passed) if verdict is not None else set()
        unrendered = [
            (u, entries[u]) for u in users if u in reserved and isinstance(rendered[u], RenderError)
        ]
        await self._gate.release(data, unrendered)  # as on the claim path: before the rows
        return rows + await inbox.deliver(page, new=first)

    async def _record_stopped(
        self, data: DeliverPageInput, page_users: _PageUsers, stopped: dict[str, tuple[str, str]]
    ) -> list[Any]:
        """Write the gate's ``skipped`` / ``deferred`` rows for the inbox's page."""
        pairs = [
            (k, u) for k, u in zip(page_users.keys, page_users.users, strict=True) if u in stopped
        ]
        return list(
            await self._pool.fetch(
                queries.DELIVERIES_RECORD,
                [k for k, _ in pairs],
                [u for _, u in pairs],
                [page_users.entries[u] for _, u in pairs],
                [stopped[u][0] for _, u in pairs],
                [stopped[u][1] for _, u in pairs],
                data.run_id,
                data.node,
                data.channel,
                data.attempt,
            )
        )

    async def _send(
        self,
        data: DeliverPageInput,
        todo: list[tuple[str, str]],
        entries: dict[str, int],
        profiles: dict[str, Any] | None,
    ) -> dict[str, SendResult]:
        if profiles is None:
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
                page_message(data, key=key, user=user, row=profiles.get(user), content=content)
            )
        channel_rate = self._channel_rate(data.channel)
        while messages:
            take = len(messages)
            if data.rate_scope is not None:
                take = await self._limiter.acquire(data.rate_scope, want=take)
            if channel_rate is not None:  # the provider's own limit, after the plan's
                take = await self._limiter.acquire(
                    channel_rate_scope(data.channel), want=take, default=channel_rate, expires=False
                )
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

    async def _settle(
        self,
        data: DeliverPageInput,
        outcomes: dict[str, SendResult],
        gated: dict[str, tuple[str, str]],
    ) -> None:
        """Record each sent message's outcome, and the status and reason of each the gate
        stopped (``gated``: key -> (status, reason))."""
        if not outcomes and not gated:
            return
        keys: list[str] = list(gated)
        statuses = [status for status, _ in gated.values()]
        reasons: list[str | None] = [reason for _, reason in gated.values()]
        providers: list[str | None] = [None] * len(keys)
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


@dataclass(frozen=True, slots=True)
class _PageUsers:
    """The page's admitted users, their keys and entries, and their profiles if read."""

    keys: list[str]
    users: list[str]
    entries: dict[str, int]
    profiles: dict[str, Any] | None
