"""``journeys segment preview``: how many users a rule selects now, and which."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import typer
from pydantic import TypeAdapter, ValidationError
from rich.markup import escape

from activities.audience.preview import SegmentPreview, preview_segment
from journeys.errors import InvalidInput, Problem
from journeys.plan.audience import SegmentAudience
from journeys.plan.problems import problems_from_error
from journeys.plan.source import DocumentError, read_document
from journeys.rules import Rule
from journeys.settings import get_settings
from journeys.sharding import DEFAULT_SHARDS

from .audience_commands import check_shards, shard_table
from .connect import database
from .console import out, print_json

segment_app = typer.Typer(
    name="segment", help="Segments: rules that select users.", no_args_is_help=True
)
RULE: TypeAdapter[Rule] = TypeAdapter(Rule)


@segment_app.command()
def preview(
    file: Path = typer.Argument(
        ..., help="A rule (YAML or JSON), or a plan with a segment audience."
    ),
    shards: int = typer.Option(0, help="Shards to count by (default: the plan's, else 16)."),
    sample: int = typer.Option(10, min=0, max=1000, help="How many users to show."),
    sql: bool = typer.Option(False, "--sql", help="Also print the compiled query."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Count the users FILE's rule selects now, per shard, with a sample of them."""
    rule, plan_shards = read_rule_file(file)
    count_by = check_shards(shards or plan_shards or DEFAULT_SHARDS)

    async def go() -> SegmentPreview:
        async with database(get_settings()) as pool:
            return await preview_segment(
                pool, rule, now=datetime.now(UTC), shards=count_by, sample=sample
            )

    found = asyncio.run(go())
    if as_json:
        result: dict[str, object] = {
            "total": found.total,
            "per_shard": found.per_shard,
            "sample": found.sample,
        }
        if sql:
            result |= {"sql": found.query, "params": [str(p) for p in found.params]}
        print_json(result)
        return
    out.print(f"segment of {escape(str(file))}: [bold]{found.total:,}[/] users")
    out.print(shard_table(found.per_shard))
    if found.sample:
        out.print("sample: " + ", ".join(escape(u) for u in found.sample))
    if sql:
        out.print(escape(found.query), soft_wrap=True)
        out.print("params: " + escape(", ".join(repr(p) for p in found.params)), soft_wrap=True)


def read_rule_file(file: Path) -> tuple[Rule, int | None]:
    """The rule of a rule file (YAML / JSON, optionally under ``rule:``), or of a plan file's
    segment audience with the plan's shard count."""
    try:
        data = read_document(file)
    except DocumentError as exc:
        raise InvalidInput(str(file), [exc.problem]) from None
    shards = None
    if isinstance(data, dict) and "steps" in data:  # a plan: its audience must be a segment
        audience = data.get("audience")
        shards = data.get("shards") if isinstance(data.get("shards"), int) else None
        if not isinstance(audience, dict) or audience.get("source") != "segment":
            problem = Problem("audience", "the plan's audience is not a segment")
            raise InvalidInput(str(file), [problem])
        try:
            return SegmentAudience.model_validate(audience).rule, shards
        except ValidationError as exc:
            raise InvalidInput(str(file), problems_from_error(exc)) from None
    if isinstance(data, dict) and set(data) == {"rule"}:
        data = data["rule"]
    try:
        return RULE.validate_python(data), shards
    except ValidationError as exc:
        raise InvalidInput(str(file), problems_from_error(exc)) from None


def register(app: typer.Typer) -> None:
    """Add the ``segment`` command group to ``app``."""
    app.add_typer(segment_app)
