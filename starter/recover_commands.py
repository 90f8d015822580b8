"""``journeys recover redis``: go on after Redis lost its data.

The worker and the ingest API refuse to start on a Redis that lost its data
(:mod:`activities.redis_epoch`). This stops the runs that lost their state, rebuilds what
PostgreSQL holds a record of, says what it cannot, and sets the epoch key again so they start.
"""

from __future__ import annotations

import asyncio

import typer

from activities.controls.suppression import SuppressionStore
from activities.redis_epoch import recorded_epoch, restore_epoch
from journeys.errors import JourneysError
from journeys.settings import get_settings

from .connect import database, redis_client, temporal_client
from .console import out, print_json
from .lost_runs import stop_lost_runs

recover_app = typer.Typer(help="Go on after a backing service lost its data.")

NOT_REBUILT = (
    "not rebuilt: the send history caps count (caps count messages from now on) and run "
    "budgets' spending. Saved audiences are rebuilt from PostgreSQL when a run next uses them."
)


class NothingLost(JourneysError):
    """Redis still holds its epoch key: there is nothing to recover."""


@recover_app.command()
def redis(
    force: bool = typer.Option(
        False, "--force", help="Rebuild the suppression copy even though nothing was lost."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Stop the runs Redis lost, rebuild the suppression copy, accept this Redis again."""

    async def go() -> tuple[list[str], int, str]:
        settings = get_settings()
        async with database(settings) as pool, redis_client(settings) as client:
            guard = await recorded_epoch(pool)
            lost = guard is None or not await client.exists(guard.key)
            if not lost and not force:
                raise NothingLost(
                    f"Redis holds its data ({guard.key if guard else 'no epoch'} is there): "
                    "nothing to recover (--force rebuilds the suppression copy anyway)"
                )
            stopped: list[str] = []
            if lost:  # every run that was running lost its cohorts with it
                stopped = await stop_lost_runs(await temporal_client(settings), pool, client)
            marks = await SuppressionStore(pool=pool, redis=client).sync()
            restored = await restore_epoch(pool, client)
        return stopped, marks, restored.key

    stopped, marks, key = asyncio.run(go())
    if as_json:
        print_json(
            {
                "stopped_runs": stopped,
                "suppression_marks": marks,
                "epoch_key": key,
                "not_rebuilt": NOT_REBUILT,
            }
        )
        return
    for run_id in stopped:
        out.print(f"stopped {run_id}: its state was lost with Redis")
    out.print(f"{marks} suppression marks rebuilt from PostgreSQL; {key} set")
    out.print(NOT_REBUILT)


def register(app: typer.Typer) -> None:
    """Add the ``recover`` command group to ``app``."""
    app.add_typer(recover_app, name="recover")
