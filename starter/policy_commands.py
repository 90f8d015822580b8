"""``journeys policy``: check and show the workspace policy (``JOURNEYS_POLICY``)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console

from journeys.channels_config import load_channels
from journeys.errors import JourneysError, Problem
from journeys.plan.source import DocumentError, read_document
from journeys.policy import channel_problems, check_policy, spend_problems
from journeys.settings import get_settings

policy_app = typer.Typer(
    name="policy",
    help="The workspace policy: caps, quiet hours, quotas, suppression, arbitration.",
    no_args_is_help=True,
)


@policy_app.command()
def check(
    file: Path | None = typer.Argument(None, help="A policy file (default JOURNEYS_POLICY)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Check a policy file and list every problem in it, with its path."""
    settings = get_settings()
    path = file or settings.policy_file
    if path is None:
        raise JourneysError("no policy file: give one, or set JOURNEYS_POLICY")
    try:
        policy, problems = check_policy(read_document(path))
    except DocumentError as exc:
        policy, problems = None, [exc.problem]
    if policy is not None and settings.channels_file.exists():
        channels = load_channels(settings.channels_file)
        problems = channel_problems(policy, channels) + spend_problems(None, policy, channels)
    if as_json:
        result = {
            "file": str(path),
            "valid": not problems,
            "problems": [{"path": p.path, "reason": p.reason} for p in problems],
            "policy": policy.model_dump(mode="json")
            if policy is not None and not problems
            else None,
        }
        typer.echo(json.dumps(result, indent=2))
    else:
        console = Console(highlight=False, soft_wrap=True)
        if not problems:
            console.print(f"✓ {path}: the policy is valid", style="green", markup=False)
        else:
            _print_problems(console, path, problems)
    if problems:
        raise typer.Exit(code=1)


def _print_problems(console: Console, path: Path, problems: list[Problem]) -> None:
    count = len(problems)
    console.print(f"✗ {path}: {count} problem{'s' * (count != 1)}", style="bold red", markup=False)
    for problem in problems:
        console.print(f"  {problem}", markup=False)


def register(app: typer.Typer) -> None:
    """Add the ``policy`` command group to ``app``."""
    app.add_typer(policy_app)
