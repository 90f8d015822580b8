"""Events at a steady rate through the ingest API, each batch retried until it is answered 202.

A product service retries what was not acknowledged; so does this feed, with the same event
ids (the API stores and routes a repeated id once). An event counts as accepted only once its
batch was answered 202: those are the events the outcome holds the system to.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx

TICK = timedelta(milliseconds=100)
RETRY_AFTER = timedelta(milliseconds=250)


@dataclass
class EventFeed:
    """Feeds ``rate`` events/s named ``event`` for users ``{prefix}-e{n}`` to ``url``."""

    url: str
    event: str
    prefix: str
    rate: int
    accepted: set[str] = field(default_factory=set)
    """Users whose event was answered 202."""
    retries: int = 0
    answers: dict[str, int] = field(default_factory=dict)
    """Refusals by status (or the transport error's class), retried."""

    async def run(self, stop: asyncio.Event, *, give_up_after: timedelta) -> None:
        """Post a batch every :data:`TICK` until ``stop``; then wait for the batches still
        retrying, for at most ``give_up_after`` (what is still unanswered then is not
        accepted, so nothing is owed for it)."""
        per_tick = max(1, round(self.rate * TICK.total_seconds()))
        posts: list[asyncio.Task[None]] = []
        sent = 0
        async with httpx.AsyncClient(base_url=self.url, timeout=30) as http:
            start = time.perf_counter()
            tick = 0
            while not stop.is_set():
                users = [f"{self.prefix}-e{sent + k:07d}" for k in range(per_tick)]
                sent += per_tick
                posts.append(asyncio.create_task(self._post(http, users)))
                tick += 1
                delay = start + tick * TICK.total_seconds() - time.perf_counter()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=max(0.0, delay))
            _, pending = await asyncio.wait(posts, timeout=give_up_after.total_seconds())
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def _post(self, http: httpx.AsyncClient, users: list[str]) -> None:
        events = [
            {
                "event_id": f"{user}:1",
                "user_id": user,
                "name": self.event,
                "ts": datetime.now(UTC).isoformat(),
            }
            for user in users
        ]
        while True:
            try:
                answer = await http.post("/v1/events", json={"events": events})
            except httpx.TransportError as exc:
                why = type(exc).__name__
            else:
                if answer.status_code == 202:
                    self.accepted.update(users)
                    return
                if answer.status_code < 500 and answer.status_code != 429:
                    raise RuntimeError(f"feed: refused {answer.status_code}: {answer.text}")
                why = str(answer.status_code)
            self.answers[why] = self.answers.get(why, 0) + 1
            self.retries += 1
            await asyncio.sleep(RETRY_AFTER.total_seconds())
