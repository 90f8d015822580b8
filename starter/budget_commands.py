"""``journeys budget``: what the workspace quotas and a run's budgets have spent."""

from __future__ import annotations

import asyncio
import re

import typer
from rich.table import Table

from activities.controls.spending import Spent, reset, spent
from activities.db import plan_store
from journeys.errors import JourneysError, NotFound
from journeys.names import budget_key, quota_key
from journeys.policy import policy_at
from journeys.settings import get_settings

from .connect import database, redis_client
from .console import out, print_json

budget_app = typer.Typer(
    name="budget",
    help="Budgets (per run of a plan) and workspace quotas (SMS packs): spent and remaining.",
    no_args_is_help=True,
)
_JSON = typer.Option(False, "--json", help="Print JSON.")
_RUN_ID = re.compile(r"^plan/(?P<plan>[^/]+)/v(?P<version>\d+)/.+$")


@budget_app.command()
def show(
    run_id: str | None = typer.Argument(None, metavar="[RUN]", help="Also this run's budgets."),
    as_json: bool = _JSON,
) -> None:
    """The policy's quotas, and RUN's budgets: limit, spent, remaining."""
    settings = get_settings()
    policy = policy_at(settings.policy_file)

    async def go() -> list[dict[str, object]]:
        rows: list[dict[str, object]] = []
        async with redis_client(settings) as redis:
            for quota in policy.quotas if policy else []:
                used = await spent(redis, quota_key(quota.channel))
                rows.append(_row("quota", quota.channel, quota.max_messages, quota.max_cost, used))
            if run_id is not None:
                match = _RUN_ID.match(run_id)
                if match is None:
                    raise NotFound(f"no run {run_id!r} (run ids look like plan/ID/vN/KEY)")
                async with database(settings) as pool:
                    plan = await plan_store.load(pool, match["plan"], int(match["version"]))
                for budget in plan.limits.budget:
                    used = await spent(redis, budget_key(run_id, budget.channel))
                    rows.append(
                        _row("budget", budget.channel, budget.max_messages, budget.max_cost, used)
                    )
        return rows

    rows = asyncio.run(go())
    if as_json:
        print_json(rows)
        return
    table = Table("kind", "channel", "limit", "spent", "remaining")
    for row in rows:
        unit = "" if row["unit"] == "messages" else " (cost)"
        table.add_row(
            str(row["kind"]),
            str(row["channel"]),
            f"{row['limit']:g}{unit}",
            f"{row['spent']:g}",
            f"{row['remaining']:g}",
        )
    out.print(table)


@budget_app.command("reset")
def reset_quota(
    channel: str = typer.Argument(..., help="The channel whose workspace quota starts over."),
    as_json: bool = _JSON,
) -> None:
    """Start a new pack: the quota of CHANNEL counts from zero again."""
    settings = get_settings()
    policy = policy_at(settings.policy_file)
    if policy is None or all(q.channel != channel for q in policy.quotas):
        raise JourneysError(f"the policy has no quota for channel {channel!r}")

    async def go() -> Spent:
        async with redis_client(settings) as redis:
            return await reset(redis, quota_key(channel))

    before = asyncio.run(go())
    if as_json:
        print_json(
            {"channel": channel, "spent_before": before.messages, "cost_before": before.cost}
        )
        return
    out.print(f"quota of {channel} reset (it had spent {before.messages} messages)")


def _row(
    kind: str, channel: str, messages: int | None, cost: float | None, used: Spent
) -> dict[str, object]:
    limit, used_now = (messages, used.messages) if messages is not None else (cost, used.cost)
    assert limit is not None  # a budget or quota has one of the two
    return {
        "kind": kind,
        "channel": channel,
        "unit": "messages" if messages is not None else "cost",
        "limit": limit,
        "spent": used_now,
        "remaining": max(0, limit - used_now),
    }


def register(app: typer.Typer) -> None:
    """Add the ``budget`` command group to ``app``."""
    app.add_typer(budget_app)
