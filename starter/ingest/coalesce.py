"""Coalesce the ``events`` signals of concurrent ingest requests.

Every signal wakes its shard workflow for a workflow task, so the signals a shard receives,
not the events in them, are what a busy ingest API costs the workers. Events for one shard of
one run that arrive within ``linger`` of each other go in one signal, whichever requests they
came in: a few signals per shard per second, however many requests. Each request still waits
for the signals that carry its events, so a 202 keeps meaning "reached its journeys", and a
failed signal fails every request in it (their retries re-route; consumers are idempotent).

Given a :class:`SignalHold`, a signal to a shard that is continuing as new waits until its
new run is up (see :mod:`activities.signal_hold`).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import timedelta

from temporalio.client import Client

from activities.signal_hold import SignalHold
from journeys.events import JourneyEvent
from journeys.sharding import shard_of
from starter.event_signals import signal_events

_Key = tuple[str, int, int]  # run id, its shard count, shard


@dataclass
class _Pending:
    """Events waiting for one shard's next signal; ``sent`` is False if the shard had ended."""

    sent: asyncio.Future[bool]
    events: list[JourneyEvent] = field(default_factory=list)


class SignalCoalescer:
    """Sends events to shard workflows, one signal per shard per ``linger`` window."""

    def __init__(
        self, client: Client, *, linger: timedelta, hold: SignalHold | None = None
    ) -> None:
        self._client = client
        self._linger = linger.total_seconds()
        self._hold = hold
        self._pending: dict[_Key, _Pending] = {}
        self._flushing: set[asyncio.Task[None]] = set()

    async def send(self, *, run_id: str, shards: int, events: Sequence[JourneyEvent]) -> int:
        """Deliver ``events`` to the shards of ``run_id``; how many reached a running shard."""
        if self._linger <= 0:
            targets = sorted({shard_of(e.user_id, shards) for e in events})
            async with self._passage(run_id, targets):
                sent = await signal_events(
                    self._client, run_id=run_id, shards=shards, events=events
                )
            return sum(sent.values())
        by_shard: dict[int, list[JourneyEvent]] = defaultdict(list)
        for event in events:
            by_shard[shard_of(event.user_id, shards)].append(event)
        waits: list[tuple[int, asyncio.Future[bool]]] = []
        for shard in sorted(by_shard):
            pending = self._join((run_id, shards, shard))
            pending.events += by_shard[shard]
            waits.append((len(by_shard[shard]), pending.sent))
        reached = await asyncio.gather(*(sent for _, sent in waits))
        return sum(count for (count, _), ok in zip(waits, reached, strict=True) if ok)

    def _join(self, key: _Key) -> _Pending:
        pending = self._pending.get(key)
        if pending is None:
            pending = _Pending(sent=asyncio.get_running_loop().create_future())
            self._pending[key] = pending
            task = asyncio.create_task(self._flush_later(key))
            self._flushing.add(task)
            task.add_done_callback(self._flushing.discard)
        return pending

    async def _flush_later(self, key: _Key) -> None:
        await asyncio.sleep(self._linger)
        run_id, shards, shard = key
        pending: _Pending | None = None
        try:
            async with self._passage(run_id, [shard]):
                pending = self._pending.pop(key)  # events that came while it waited go too
                try:
                    sent = await signal_events(
                        self._client, run_id=run_id, shards=shards, events=pending.events
                    )
                except Exception as exc:  # every request in this signal fails and retries
                    pending.sent.set_exception(exc)
                else:
                    pending.sent.set_result(bool(sent))
        except BaseException:  # cancelled: its requests fail (and retry), new ones flush anew
            pending = pending or self._pending.pop(key)
            if not pending.sent.done():
                pending.sent.cancel()
            raise

    def _passage(self, run_id: str, shards: list[int]) -> AbstractAsyncContextManager[float]:
        if self._hold is None:
            return nullcontext(0.0)
        return self._hold.passage(run_id, shards)
