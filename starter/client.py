"""The Python client product services use to send events: ``Journeys.send_events``.

    async with Journeys("http://ingest:8088") as journeys:
        await journeys.send_events([{"user_id": "u1", "name": "order_cancelled",
                                     "props": {"order_id": "o-9", "reason": "price_too_low"}}])

Events are checked here first (the same model the server uses), get an ``event_id`` if they
have none, and go in batches of up to 1,000. A batch that fails on the network or with a 5xx
is sent again with the same ids, so it never acts twice.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from pydantic import BaseModel

from journeys.errors import EventsRefused, ServiceUnavailable
from journeys.events import MAX_BATCH, JourneyEvent, parse_events


class SendReport(BaseModel):
    """Totals over the batches sent."""

    accepted: int = 0
    duplicates: int = 0
    """Events the server had seen before (by event_id): they did not act again."""
    routed: int = 0
    """Deliveries to running journeys."""


class Journeys:
    """An async client of the ingest API."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: timedelta = timedelta(seconds=10),
        attempts: int = 4,
        backoff: timedelta = timedelta(milliseconds=200),
    ) -> None:
        self._http = httpx.AsyncClient(base_url=base_url, timeout=timeout.total_seconds())
        self._attempts = attempts
        self._backoff = backoff

    async def __aenter__(self) -> Journeys:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self._http.aclose()

    async def send_events(self, events: Iterable[JourneyEvent | Mapping[str, Any]]) -> SendReport:
        """Send ``events``; raises :class:`EventsRefused` (nothing sent) if any is malformed."""
        raw = [
            e.model_dump(mode="json") if isinstance(e, JourneyEvent) else dict(e) for e in events
        ]
        checked: list[JourneyEvent] = []
        for start in range(0, len(raw), MAX_BATCH):
            good, problems = parse_events(raw[start : start + MAX_BATCH], now=datetime.now(UTC))
            if problems:
                raise EventsRefused([(p.index + start, p.field, p.reason) for p in problems])
            checked += good
        stamped = [
            e if e.event_id else e.model_copy(update={"event_id": uuid.uuid4().hex})
            for e in checked
        ]
        report = SendReport()
        for start in range(0, len(stamped), MAX_BATCH):
            answer = await self._post(stamped[start : start + MAX_BATCH])
            report.accepted += int(answer.get("accepted", 0))
            report.duplicates += int(answer.get("duplicates", 0))
            report.routed += int(answer.get("routed", 0))
        return report

    async def _post(self, batch: list[JourneyEvent]) -> dict[str, Any]:
        body = {"events": [e.model_dump(mode="json", exclude_none=True) for e in batch]}
        for attempt in range(1, self._attempts + 1):
            try:
                response = await self._http.post("/v1/events", json=body)
            except httpx.TransportError as exc:
                if attempt == self._attempts:
                    raise ServiceUnavailable(f"ingest API unreachable: {exc}") from exc
            else:
                if response.status_code == 202:
                    answer: dict[str, Any] = response.json()
                    return answer
                if response.status_code == 422:
                    errors = response.json().get("errors", [])
                    raise EventsRefused([(e["index"], e["field"], e["reason"]) for e in errors])
                if response.status_code < 500 or attempt == self._attempts:
                    raise ServiceUnavailable(
                        f"ingest API answered {response.status_code}: {response.text[:200]}"
                    )
            await asyncio.sleep(self._backoff.total_seconds() * 2 ** (attempt - 1))
        raise AssertionError("unreachable")
