"""``journeys validate`` and ``journeys schema``: check plan files (the tags their rules read
against the registry in PostgreSQL; nothing else needs a service)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import typer
from rich.console import Console

from journeys.plan.models import plan_json_schema
from journeys.plan.problems import sorted_problems
from journeys.plan.unenforced import Unenforced
from journeys.redact import redact
from journeys.settings import get_settings
from starter.plan_files import check_plan_file, plan_warnings
from starter.plan_tags import registry_problems


def validate(
    plan_file: Path = typer.Argument(..., metavar="PLAN", help="Plan file (.yaml, .yml or .json)."),
    channels: Path | None = typer.Option(
        None,
        "--channels",
        help="Channels file; default JOURNEYS_CHANNELS, else channels.yaml beside the plan.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Check a plan file and list every problem in it."""
    plan, problems = check_plan_file(plan_file, channels_file=channels)
    note = None
    if plan is not None:
        tagged, note = asyncio.run(registry_problems(get_settings(), plan))
        if tagged:
            plan, problems = None, sorted_problems(tagged)
    warnings = plan_warnings(plan, plan_file, channels=channels) if plan is not None else []
    if note is not None:
        warnings.append(Unenforced("rules", note))
    if as_json:
        result = {
            "file": str(plan_file),
            "valid": plan is not None,
            "problems": [{"path": p.path, "reason": p.reason} for p in problems],
            "warnings": [{"path": w.path, "text": w.text} for w in warnings],
        }
        typer.echo(redact(json.dumps(result, indent=2)))
    else:
        # soft_wrap: one problem per line however narrow the terminal, so output greps well
        console = Console(highlight=False, soft_wrap=True)
        if plan is not None:
            count = len(plan.steps)
            line = f"✓ {plan_file}: plan {plan.id} is valid ({count} step{'s' * (count != 1)})"
            console.print(line, style="green", markup=False)
            # a valid plan may still set fields nothing acts on yet: say so, keep exit code 0
            for warning in warnings:
                console.print(f"  ! {warning}", style="yellow", markup=False)
        else:
            count = len(problems)
            head = f"✗ {plan_file}: {count} problem{'s' * (count != 1)}"
            console.print(head, style="bold red", markup=False)
            for problem in problems:
                console.print(f"  {problem}", markup=False)
    if plan is None:
        raise typer.Exit(code=1)


def schema() -> None:
    """Print the JSON Schema of plan files."""
    typer.echo(json.dumps(plan_json_schema(), indent=2))


def register(app: typer.Typer) -> None:
    """Add the ``validate`` and ``schema`` commands to ``app``."""
    app.command("validate")(validate)
    app.command("schema")(schema)
