"""A ``decide`` step's page: each user routed by what a decision instance decides for them.

The instance's live version is read once per page, the users' tag values as a branch reads
them (:func:`load_facts`: profiles, computed tags cached in Redis), the scene's pass-through
fields from the step (constants, or the entry event's properties), and the engine is the
one ``POST /v1/decide`` uses. The decisions are recorded with the others (a page retried
after a crash may record its decisions twice; routing stays exactly once).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis
from pydantic import JsonValue
from temporalio.exceptions import ApplicationError

from activities.db import decision_store, tag_store
from activities.db.pool import DbPool
from activities.decisions import DecisionRow, insert_decisions
from activities.journey.facts import entry_props, load_facts
from activities.journey.routes import same_json
from journeys.decisions.check import decide_step_problems, instance_tags
from journeys.decisions.engine import decide
from journeys.errors import NotFound
from journeys.plan.steps import DecideStep, EntryField
from journeys.route_names import ELSE, branch_route
from journeys.tags.model import FieldSource


async def decide_routes(
    pool: DbPool,
    redis: aioredis.Redis,
    step: DecideStep,
    users: Sequence[str],
    *,
    entries: Mapping[str, int],
    run_id: str,
    now: datetime,
    record: bool,
) -> dict[str, list[str]]:
    """Route name -> users: the first branch whose ``when`` is the decision (or its
    ``key``), else ``else``. A missing instance, or one whose scene the step cannot answer,
    fails the run at once (publishing checks both; this is the instance live now)."""
    try:
        live = await decision_store.live(pool, step.instance)
    except NotFound as exc:
        raise ApplicationError(str(exc), type="DecisionMissing", non_retryable=True) from None
    problems = decide_step_problems("decide", step, live.scene)
    if problems:
        reason = f"instance {step.instance}: " + "; ".join(map(str, problems))
        raise ApplicationError(reason, type="DecisionRefused", non_retryable=True)
    instance = live.instance
    rules = [s.rule for s in instance.strategies if s.rule is not None]
    facts = await load_facts(pool, users, rules=rules, now=now, entries=entries, run_id=run_id,
                             redis=redis)  # fmt: skip
    entry: Mapping[str, Mapping[str, Any]] = {}
    if any(isinstance(value, EntryField) for value in step.fields.values()):
        entry = await entry_props(pool, run_id, {u: entries[u] for u in users if u in entries})
    found = await tag_store.registry(pool, instance_tags(instance))
    custom = {
        name: tag.live.source.field
        for name, tag in found.items()
        if tag.live is not None and isinstance(tag.live.source, FieldSource)
    }
    routes: dict[str, list[str]] = defaultdict(list)
    rows: list[DecisionRow] = []
    for user in users:
        fields = {
            name: entry.get(user, {}).get(value.entry) if isinstance(value, EntryField) else value
            for name, value in step.fields.items()
        }
        values = dict(facts[user].attrs)
        values.update({tag: fields.get(field) for tag, field in custom.items()})
        decided = decide(instance, values=values, key=user, now=now)
        chosen = _compared(decided.decision, step.key)
        index = next((i for i, b in enumerate(step.branches) if same_json(b.when, chosen)), None)
        routes[ELSE if index is None else branch_route(index)].append(user)
        rows.append((step.instance, live.version, decided.strategy, decided.group,
                     decided.control, user, None, None, now))  # fmt: skip
    if record:
        await insert_decisions(pool, rows)
    return dict(routes)


def _compared(decision: JsonValue, key: str | None) -> JsonValue:
    if key is None:
        return decision
    return decision.get(key) if isinstance(decision, dict) else None
