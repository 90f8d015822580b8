"""``journeys launch PLAN --dry-run``: the whole journey on its real audience, on the real
interpreter, with timers firing at once; every send and webhook rendered and logged, none
delivered, no ledger row, profile update or A/B assignment written (``RunOptions.dry_run``).
Prints the counts per node and one rendered message per send step."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import redis.asyncio as aioredis
from pydantic import BaseModel, JsonValue
from rich.console import Group
from rich.markup import escape
from rich.table import Table
from temporalio.client import Client

from activities.db.pool import DbPool
from activities.redis_values import text_of
from journeys.contracts.counters import Counters, RunStatus
from journeys.contracts.runs import RunOptions
from journeys.errors import InvalidInput, Problem
from journeys.names import dry_samples_key
from journeys.plan.entry import ScheduleEntry
from journeys.plan.listening import listening_entry
from journeys.plan.models import Plan
from journeys.progress import node_totals
from journeys.settings import Settings

from .launching import launch
from .run_state import final_progress
from .schedules import update_schedule


class DryRunReport(BaseModel):
    """What a dry run did, node by node, and a message each send step rendered."""

    run_id: str
    status: RunStatus
    totals: Counters
    nodes: dict[str, Counters]
    """In the plan's step order; a node no user reached is absent."""
    samples: dict[str, dict[str, JsonValue]]
    """Send or webhook node -> one rendered message (user, channel, fields)."""


async def dry_run(
    settings: Settings,
    *,
    client: Client,
    pool: DbPool,
    redis: aioredis.Redis,
    plan: Plan,
    plan_file: Path,
    audience_file: Path | None = None,
    by: str | None = None,
) -> DryRunReport:
    """Run ``plan`` dry, to its end, and report; a scheduled plan runs one occurrence now."""
    if listening_entry(plan) is not None:
        reason = (
            f"a dry run needs an audience that enters at the start, not a {plan.entry.type} entry"
        )
        raise InvalidInput(str(plan_file), [Problem("entry.type", reason)])
    now = datetime.now(UTC)
    launched, handle = await launch(
        settings,
        client=client,
        pool=pool,
        redis=redis,
        plan=plan,
        plan_file=plan_file,
        audience_file=audience_file,
        at=now,  # now, whatever the entry says: an `at` entry would wait for its moment
        run_key=f"dry-{now:%Y%m%dT%H%M%S%f}"[:-3],
        options=RunOptions(dry_run=True),
        by=by,
    )
    repoint = launched.published and not launched.awaiting_approval
    if isinstance(plan.entry, ScheduleEntry) and repoint:
        # the dry run published a new version: the schedule starts it from now on, as after
        # `journeys publish` (else a later publish finds nothing new and never repoints it);
        # under approval, `journeys approve` repoints it
        await update_schedule(settings, client=client, plan=plan, version=launched.version)
    result = await handle.result()
    progress = await final_progress(handle)
    by_node = node_totals(progress.per_shard)
    key = dry_samples_key(launched.run_id)
    raw: dict[bytes | str, bytes | str] = await redis.hgetall(key)
    await redis.delete(key)
    samples = {text_of(k): json.loads(v) for k, v in raw.items()}
    return DryRunReport(
        run_id=launched.run_id,
        status=result.status,
        totals=result.totals,
        nodes={node: by_node[node] for node in plan.steps if node in by_node},
        samples={node: samples[node] for node in plan.steps if node in samples},
    )


def dry_run_view(report: DryRunReport, plan: Plan) -> Group:
    """One row per node, then each sample message."""
    table = Table("node", "step", "entered", "delivered", "skipped", "failed", "routes", "exited")
    table.title = f"dry run {report.run_id}: {report.status.value}, nothing delivered"
    table.caption = "waits compressed; delivery controls (caps, quiet hours, budgets) not applied"
    for node, c in report.nodes.items():
        table.add_row(
            node,
            plan.steps[node].type,
            str(c.entered),
            str(c.delivered) if c.delivered or plan.steps[node].type in ("send", "webhook") else "",
            _counts(c.skipped),
            _counts(c.failed),
            _counts(c.routes),
            str(c.exited or ""),
        )
    parts: list[Table] = [table]
    for node, sample in report.samples.items():
        shown = Table.grid(padding=(0, 2))
        shown.title = f"{node}: to {sample.get('user_id')} on {sample.get('channel')}"
        content = sample.get("content")
        for field, text in content.items() if isinstance(content, dict) else []:
            shown.add_row(field, escape(str(text)))
        parts.append(shown)
    return Group(*parts)


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
