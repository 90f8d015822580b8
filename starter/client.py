"""The Python client product services use to send events (``Journeys.send_events``), to
enter users into running plans (``Journeys.trigger``), and that apps use to say an in-app
message was read or clicked (``Journeys.inbox_read``, ``Journeys.inbox_click``), and that
ask the decision engine (``Journeys.decide``).

    async with Journeys("http://ingest:8088") as journeys:
        await journeys.send_events([{"user_id": "u1", "name": "order_cancelled",
                                     "props": {"order_id": "o-9", "reason": "price_too_low"}}])
        await journeys.trigger("order-shipped", user_id="u1", context={"order_id": "o-9"})

Events are checked here first (the same model the server uses), get an ``event_id`` if they
have none, and go in batches of up to 1,000. A batch that fails on the network or with a 5xx
is sent again with the same ids, so it never acts twice; a trigger is sent again with the
same request id, for the same reason.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from pydantic import BaseModel

from journeys.decisions.contracts import DecideAnswer, DecideRequest, FieldValue
from journeys.errors import (
    AccessDenied,
    DecisionRefused,
    EventsRefused,
    NotFound,
    NotListening,
    ServiceUnavailable,
)
from journeys.events import MAX_BATCH, JourneyEvent, parse_events
from journeys.inbox import InboxAction, InboxActionDone
from journeys.triggers import TriggerReport, parse_trigger


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
        api_key: str | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.AsyncClient(
            base_url=base_url, timeout=timeout.total_seconds(), headers=headers
        )
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
            answer = await self._post_events(stamped[start : start + MAX_BATCH])
            report.accepted += int(answer.get("accepted", 0))
            report.duplicates += int(answer.get("duplicates", 0))
            report.routed += int(answer.get("routed", 0))
        return report

    async def trigger(
        self,
        plan_id: str,
        *,
        user_id: str | None = None,
        context: Mapping[str, Any] | None = None,
        entries: Iterable[Mapping[str, Any]] | None = None,
        request_id: str | None = None,
    ) -> TriggerReport:
        """Enter ``user_id`` (with ``context``), or ``entries`` (``{"user_id", "context"}``,
        at most 1,000), into the running runs of ``plan_id`` now. ``request_id`` (a fresh one
        when left out) makes a retry safe: the same request enters no one twice. Raises
        :class:`EventsRefused`, :class:`NotFound` or :class:`NotListening`; nothing enters."""
        if (user_id is None) == (entries is None):
            raise ValueError("give user_id (and context) or entries")
        if entries is None:
            entries = [{"user_id": user_id, "context": dict(context or {})}]
        body = {"request_id": request_id or uuid.uuid4().hex, "entries": [dict(e) for e in entries]}
        _, problems = parse_trigger(plan_id, body, now=datetime.now(UTC))
        if problems:
            raise EventsRefused([(p.index, p.field, p.reason) for p in problems])
        return TriggerReport.model_validate(await self._post(f"/v1/plans/{plan_id}/entries", body))

    async def inbox_read(self, message_id: str, *, user_id: str) -> InboxActionDone:
        """``user_id`` read in-app message ``message_id`` (the first read's time stays);
        raises :class:`NotFound` when the user has no such message."""
        return await self._inbox("read", message_id=message_id, user_id=user_id)

    async def inbox_click(self, message_id: str, *, user_id: str) -> InboxActionDone:
        """``user_id`` clicked in-app message ``message_id`` (which reads it, too)."""
        return await self._inbox("click", message_id=message_id, user_id=user_id)

    async def decide(
        self,
        instance: str,
        *,
        user_id: str | None = None,
        item_id: str | None = None,
        order_id: str | None = None,
        fields: Mapping[str, FieldValue] | None = None,
        explain: bool = False,
    ) -> DecideAnswer:
        """What ``instance`` decides for this caller now (``POST /v1/decide``); raises
        NotFound (no such published instance) or :class:`DecisionRefused` naming each
        problem (a missing id or field, a wrong type)."""
        request = DecideRequest(
            instance=instance, user_id=user_id, item_id=item_id, order_id=order_id,
            fields=dict(fields or {}), explain=explain,
        )  # fmt: skip
        try:
            answer = await self._post("/v1/decide", request.model_dump(exclude_none=True))
        except EventsRefused as exc:
            raise DecisionRefused("decide", exc.problems) from None
        return DecideAnswer.model_validate(answer)

    async def _inbox(self, action: str, *, message_id: str, user_id: str) -> InboxActionDone:
        body = InboxAction(user_id=user_id, message_id=message_id).model_dump()
        return InboxActionDone.model_validate(await self._post(f"/v1/inbox/{action}", body))

    async def _post_events(self, batch: list[JourneyEvent]) -> dict[str, Any]:
        body = {"events": [e.model_dump(mode="json", exclude_none=True) for e in batch]}
        return await self._post("/v1/events", body)

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        for attempt in range(1, self._attempts + 1):
            try:
                response = await self._http.post(path, json=body)
            except httpx.TransportError as exc:
                if attempt == self._attempts:
                    raise ServiceUnavailable(f"ingest API unreachable: {exc}") from exc
            else:
                if response.status_code in (200, 202):
                    answer: dict[str, Any] = response.json()
                    return answer
                if response.status_code in (401, 403):
                    raise AccessDenied(_reason(response))
                if response.status_code == 429 and attempt < self._attempts:
                    wait = float(response.headers.get("retry-after") or 1)
                    await asyncio.sleep(min(wait, 30.0))
                    continue
                if response.status_code in (404, 409, 422):
                    try:
                        errors = response.json().get("errors", [])
                    except ValueError:  # not the API's answer (a proxy's page)
                        errors = [{"index": -1, "field": "", "reason": response.text[:200]}]
                    refused = [(e["index"], e["field"], e["reason"]) for e in errors]
                    if response.status_code == 422:
                        raise EventsRefused(refused)
                    reason = refused[0][2] if refused else response.text[:200]
                    raise (NotFound if response.status_code == 404 else NotListening)(reason)
                if response.status_code < 500 or attempt == self._attempts:
                    raise ServiceUnavailable(
                        f"ingest API answered {response.status_code}: {response.text[:200]}"
                    )
            await asyncio.sleep(self._backoff.total_seconds() * 2 ** (attempt - 1))
        raise AssertionError("unreachable")


def _reason(response: httpx.Response) -> str:
    """The API's own reason for refusing, else the start of its answer."""
    try:
        errors = response.json().get("errors", [])
        return str(errors[0]["reason"]) if errors else response.text[:200]
    except (ValueError, AttributeError, KeyError, IndexError, TypeError):
        return response.text[:200]
