"""``journeys audience save`` / ``rebuild``: saved audiences made from a rule, a query,
everyone, or a set of saved audiences, evaluated now and reused by later runs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import typer
from pydantic import ValidationError
from rich.markup import escape

from activities.audience.saved import rebuild as rebuild_audience
from activities.audience.saved import save_evaluated
from activities.audience.shard_sets import AudienceInfo, check_name
from activities.db import tag_store
from journeys.errors import InvalidInput, Problem
from journeys.plan.audience import (
    AllAudience,
    Audience,
    SegmentAudience,
    SetAudience,
    SqlAudience,
)
from journeys.plan.problems import problems_from_error
from journeys.plan.rule_sites import RuleSite, rule_tags
from journeys.settings import get_settings
from journeys.sharding import DEFAULT_SHARDS, MAX_SHARDS
from journeys.tags.check import site_tag_problems

from .audience_commands import audience_app, check_shards, shard_table
from .connect import database, redis_client
from .console import out, print_json
from .segment_commands import read_rule_file

SET_OPS = ("union", "intersect", "difference")
AudienceModel = TypeVar("AudienceModel", SqlAudience, SetAudience)


def save(
    name: str = typer.Argument(..., help="Audience name (replaces an audience of that name)."),
    rule: Path | None = typer.Option(None, "--rule", help="A rule file (or a plan's segment)."),
    sql: str | None = typer.Option(None, "--sql", help="A read-only query with a user_id column."),
    everyone: bool = typer.Option(False, "--all", help="Every user with a profile."),
    of: str | None = typer.Option(
        None, "--of", help="OP:A,B,... over saved audiences; OP is union, intersect or difference."
    ),
    shards: int = typer.Option(DEFAULT_SHARDS, help=f"Power of two up to {MAX_SHARDS}."),
    timezone: str = typer.Option("UTC", help="The zone rules see today in (anniversaries)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Evaluate a source now and save the users it selects as audience NAME."""
    check_name(name)
    check_shards(shards)
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        reason = f'"{timezone}" is not an IANA time zone'
        raise InvalidInput("--timezone", [Problem("", reason)]) from None
    audience = _source(rule=rule, sql=sql, everyone=everyone, of=of)
    started = time.perf_counter()
    settings = get_settings()

    async def go() -> AudienceInfo:
        async with database(settings) as pool, redis_client(settings) as redis:
            if isinstance(audience, SegmentAudience):  # a new rule: the registry must allow it
                site = RuleSite("rule", audience.rule, segment=True)
                found = await tag_store.registry(pool, rule_tags([audience.rule]))
                problems = site_tag_problems([site], found, allow_disabled=False)
                if problems:
                    raise InvalidInput(str(rule), problems)
            return await save_evaluated(
                redis, pool, name=name, audience=audience, shards=shards, zone=timezone
            )

    info = asyncio.run(go())
    elapsed = time.perf_counter() - started
    if as_json:
        print_json(info.model_dump(mode="json") | {"elapsed_seconds": round(elapsed, 3)})
        return
    out.print(f"[green]saved[/] audience [bold]{info.name}[/]: {info.total:,} users")
    out.print(f"  source           {escape(info.source or '-')}")
    out.print(f"  elapsed          {elapsed:.2f} s")
    out.print(shard_table(info.per_shard))


def rebuild(
    name: str = typer.Argument(..., help="Audience name."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Make audience NAME again from its source if Redis lost any of its shards (runs do
    this on their own before they read it)."""
    settings = get_settings()

    async def go() -> AudienceInfo:
        async with database(settings) as pool, redis_client(settings) as redis:
            return await rebuild_audience(redis, pool, name=name)

    info = asyncio.run(go())
    if as_json:
        print_json(info.model_dump(mode="json"))
        return
    out.print(f"audience [bold]{info.name}[/]: {info.total:,} users in Redis")


def _source(*, rule: Path | None, sql: str | None, everyone: bool, of: str | None) -> Audience:
    given = [x for x in (rule, sql, of) if x is not None] + ([True] if everyone else [])
    if len(given) != 1:
        reason = "give exactly one of --rule, --sql, --all and --of"
        raise InvalidInput("audience save", [Problem("", reason)])
    if rule is not None:
        return SegmentAudience(rule=read_rule_file(rule)[0])
    if everyone:
        return AllAudience()
    if sql is not None:
        return _validated("--sql", SqlAudience, {"query": sql})
    assert of is not None
    op, _, names = of.partition(":")
    members = [n.strip() for n in names.split(",") if n.strip()]
    if op not in SET_OPS or len(members) < 2:
        reason = "write OP:A,B with OP one of union, intersect, difference and two or more names"
        raise InvalidInput("--of", [Problem("", reason)])
    body = {"source": op, "of": [{"source": "list", "name": m} for m in members]}
    return _validated("--of", SetAudience, body)


def _validated(
    option: str, model: type[AudienceModel], body: Mapping[str, object]
) -> AudienceModel:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise InvalidInput(option, problems_from_error(exc)) from None


def register(app: typer.Typer) -> None:
    """Add ``save`` and ``rebuild`` to the ``audience`` group (which ``app`` holds)."""
    audience_app.command()(save)
    audience_app.command()(rebuild)
