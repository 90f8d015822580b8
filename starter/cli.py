"""The ``journeys`` command: one typer app, commands registered from small modules."""

from __future__ import annotations

import os
import sys

import typer

from journeys.errors import JourneysError
from journeys.settings import get_settings

from . import (
    audience_commands,
    audit_commands,
    budget_commands,
    catalog_commands,
    decision_commands,
    dev_commands,
    event_commands,
    key_commands,
    plan_commands,
    policy_commands,
    profile_commands,
    recover_commands,
    report_commands,
    run_commands,
    saved_audience_commands,
    schedule_commands,
    segment_commands,
    suppress_commands,
    tag_commands,
    test_send_commands,
    version_commands,
)
from .console import error_line

app = typer.Typer(
    name="journeys",
    help="Journeys: multi-step user outreach as durable Temporal workflows.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
plan_commands.register(app)
version_commands.register(app)
dev_commands.register(app)
audience_commands.register(app)
saved_audience_commands.register(app)
run_commands.register(app)
event_commands.register(app)
profile_commands.register(app)
segment_commands.register(app)
tag_commands.register(app)
suppress_commands.register(app)
budget_commands.register(app)
policy_commands.register(app)
schedule_commands.register(app)
test_send_commands.register(app)
report_commands.register(app)
decision_commands.register(app)
catalog_commands.register(app)
key_commands.register(app)
audit_commands.register(app)
recover_commands.register(app)


def run_cli(args: list[str] | None = None) -> int:
    """Run the app and turn every failure into one readable line and an exit code."""
    try:
        app(args=args, prog_name="journeys")
    except SystemExit as exc:  # typer's own exits: usage errors, --help, typer.Exit
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        error_line(str(exc.code))
        return 1
    except KeyboardInterrupt:
        return 130
    except JourneysError as exc:
        error_line(str(exc))
        return 1
    except Exception as exc:
        if get_settings().debug:
            raise
        error_line(f"{type(exc).__name__}: {exc} (set JOURNEYS_DEBUG=1 for the traceback)")
        return 1
    return 0


def main() -> None:
    """Console-script entry point."""
    code = run_cli()
    sys.stdout.flush()
    sys.stderr.flush()
    # The Temporal SDK's runtime can abort at interpreter shutdown (sdk-python#300);
    # leave without running finalizers once everything is flushed.
    os._exit(code)


if __name__ == "__main__":
    main()
