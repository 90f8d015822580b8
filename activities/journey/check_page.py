"""A ``check`` step's page: the judgement service asked about its users, each routed by the
answer.

Users go in requests of the service's ``batch_size``, each ``{"step", "users": [{"user_id",
"attrs"}]}`` with only the attributes the step names, signed with the service's secret. A
request that times out, fails on the network or is answered 5xx or 429 is tried again up to
the service's ``attempts``, the ``backoff`` doubling; then that request's users go to the
``failed`` route (the step's ``on_failure``). Any other answer that is not 2xx with a
``results`` list fails at once the same way: a malformed answer is the service's fault, not
a reason to hold the journey. Every user's answer (or why there is none) is recorded in
``check_answers``.
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import httpx

from activities.channels.http_provider import signature
from activities.db import queries
from activities.db.pool import DbPool
from activities.journey.facts import load_facts
from activities.journey.routes import same_json
from journeys.channels_config import JudgementService
from journeys.plan.steps import CheckStep
from journeys.route_names import ELSE, FAILED, branch_route

_RETRY_STATUSES = frozenset({408, 425, 429})


class _Failed(Exception):
    """A request that got no usable answer (after its attempts, when worth retrying)."""


async def check_routes(
    pool: DbPool,
    service: JudgementService,
    step: CheckStep,
    users: Sequence[str],
    *,
    run_id: str,
    node: str,
    now: datetime,
    record: bool,
) -> dict[str, list[str]]:
    """Route name -> users: the first branch whose ``when`` is the user's answer, ``else``
    for other answers and users left out, ``failed`` when the service gave no answer."""
    attrs: dict[str, dict[str, Any]] = {}
    if step.attrs:  # the profile as every page reads it, then only the attributes named
        facts = await load_facts(pool, users, now=now)
        attrs = {u: {n: f.attrs[n] for n in step.attrs if n in f.attrs} for u, f in facts.items()}
    routes: dict[str, list[str]] = defaultdict(list)
    rows: list[tuple[str, str, Any, str | None]] = []
    async with httpx.AsyncClient(timeout=service.timeout.total_seconds()) as http:
        for start in range(0, len(users), service.batch_size):
            batch = list(users[start : start + service.batch_size])
            body = {
                "step": node,
                "users": [{"user_id": u, "attrs": attrs.get(u, {})} for u in batch],
            }
            try:
                results = await _ask(http, service, body)
            except _Failed as exc:
                routes[FAILED] += batch
                rows += [(u, "failed", None, str(exc)[:500]) for u in batch]
                continue
            for user in batch:
                answer = results.get(user)
                if answer is None:
                    routes[ELSE].append(user)
                    rows.append((user, "missing", None, "not in the service's results"))
                    continue
                said = answer.get(step.answer)
                index = next(
                    (i for i, b in enumerate(step.branches) if same_json(b.when, said)), None
                )
                routes[ELSE if index is None else branch_route(index)].append(user)
                rows.append((user, "answered", answer, None))
    if record and rows:
        await pool.execute(
            queries.CHECK_ANSWERS_INSERT, run_id, node, step.service, now,
            [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows],
            [r[3] for r in rows],
        )  # fmt: skip
    return dict(routes)


async def _ask(
    http: httpx.AsyncClient, service: JudgementService, body: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """The service's results by user id; raises :class:`_Failed` with the last reason."""
    raw = json.dumps(body, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json", **service.headers}
    if service.secret is not None:
        headers[service.signature_header] = signature(service.secret, raw)
    reason = ""
    for attempt in range(service.attempts):
        if attempt:
            await asyncio.sleep(service.backoff.total_seconds() * 2 ** (attempt - 1))
        try:
            response = await http.post(service.url, content=raw, headers=headers)
        except httpx.TimeoutException:
            reason = f"no answer within {service.timeout.total_seconds():g}s"
            continue
        except httpx.TransportError as exc:
            reason = f"unreachable: {exc}"[:300]
            continue
        status = response.status_code
        if status in _RETRY_STATUSES or status >= 500:
            reason = f"HTTP {status}: {response.text[:200]}"
            continue
        if not 200 <= status < 300:
            raise _Failed(f"HTTP {status}: {response.text[:200]}")
        return _results(response)
    raise _Failed(f"{service.attempts} attempts; last: {reason}")


def _results(response: httpx.Response) -> dict[str, dict[str, Any]]:
    try:
        answer = response.json()
    except ValueError:
        raise _Failed("the answer is not JSON") from None
    results = answer.get("results") if isinstance(answer, dict) else None
    if not isinstance(results, list):
        raise _Failed('the answer has no "results" list')
    out: dict[str, dict[str, Any]] = {}
    for item in results:
        if isinstance(item, dict) and isinstance(item.get("user_id"), str):
            out.setdefault(item["user_id"], item)  # the first result of a user counts
    return out
