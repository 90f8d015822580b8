"""``python -m bench.faults [scenario ...] [--users N] [--trials N] [--rate R] [--down S]``.

Each scenario gets a private embedded stack of its own (the harness kills and wipes its
services), a worker and an ingest API in processes of their own, and the tests' recording
HTTP provider in this process. Prints a table, writes ``bench/results/faults-*.json``;
docs/reliability.md keeps the figures. Exits 1 if any trial failed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.__main__ import compile_workflow_code
from bench.http_receiver import SECRET
from bench.results import save
from journeys.settings import get_settings
from tests.engine import for_test, write_channels
from tests.receiver import Receiver

from .load import Rig, trial
from .rig import private_stack, processes
from .scenarios import PROVIDER_DOWN, SCENARIOS, Scenario

console = Console(highlight=False, width=200)


async def run_scenario(
    scenario: Scenario, *, users: int, trials: int, rate: int, down: timedelta, seed: int
) -> list[dict[str, Any]]:
    """Every trial of ``scenario`` on one fresh stack."""
    rng = random.Random(seed)
    rows = []
    with (
        tempfile.TemporaryDirectory(prefix="faults-") as tmp,
        Receiver(secret=SECRET) as receiver,
    ):
        async with private_stack(get_settings(), append_only=scenario.append_only) as (
            stack,
            base,
        ):
            settings = for_test(base, write_channels(Path(tmp), receiver_url=receiver.url))
            async with processes(settings) as (worker, api):
                rig = Rig(stack, settings, worker, api, receiver, users)
                for number in range(1, trials + 1):
                    outcome = await trial(
                        rig,
                        scenario.make(rng, down),
                        scenario=scenario.name,
                        number=number,
                        rate=rate,
                        directory=Path(tmp),
                    )
                    row = outcome.row()
                    console.print(_line(row))
                    rows.append(row)
    return rows


def _line(row: dict[str, Any]) -> str:
    b, e = row["blast"], row["events"]
    verdict = "[green]pass[/]" if row["passed"] else "[red]FAIL[/]"
    return (
        f"{verdict} {row['scenario']} #{row['trial']}: {row['fault']}; blast {row['blast_run']}, "
        f"event run {row['event_run']}; "
        f"{b['sent']:,} sent, {b['dead']:,} dead, {b['missing']} missing, {b['doubled']} doubled; "
        f"events {e['users']:,} accepted, {e['sent']:,} sent, {e['dead']} dead, "
        f"{e['missing']} missing, {e['doubled']} doubled, {row['events_stored']:,} stored; "
        f"{row['repeats']:,} repeats absorbed, {row['feed_retries']} feed retries, "
        f"{row['seconds']} s"
    )


def table(rows: list[dict[str, Any]]) -> Table:
    out = Table(title="faults: every user and every accepted event, after the fault")
    for column in ("scenario", "trials", "passed", "blast missing / doubled",
                   "events missing / doubled", "dead-lettered", "repeats absorbed"):  # fmt: skip
        out.add_column(column, justify="right")
    for name in dict.fromkeys(r["scenario"] for r in rows):
        mine = [r for r in rows if r["scenario"] == name]
        out.add_row(
            name,
            str(len(mine)),
            str(sum(r["passed"] for r in mine)),
            f"{sum(r['blast']['missing'] for r in mine)} / "
            f"{sum(r['blast']['doubled'] for r in mine)}",
            f"{sum(r['events']['missing'] for r in mine)} / "
            f"{sum(r['events']['doubled'] for r in mine)}",
            f"{sum(r['blast']['dead'] + r['events']['dead'] for r in mine):,}",
            f"{sum(r['repeats'] for r in mine):,}",
        )
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.faults", description=__doc__)
    parser.add_argument("scenarios", nargs="*", help=f"of {', '.join(SCENARIOS)} (all)")
    parser.add_argument("--users", type=int, default=100_000, help="blast size (100,000)")
    parser.add_argument("--trials", type=int, help="trials per scenario (worker_kill: 10)")
    parser.add_argument("--rate", type=int, default=100, help="events/s to the journey (100)")
    parser.add_argument(
        "--down", type=float, default=PROVIDER_DOWN.total_seconds(), help="provider outage s"
    )
    parser.add_argument("--seed", type=int, default=20)
    args = parser.parse_args(argv)
    unknown = [name for name in args.scenarios if name not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
    return args


async def main_async(args: argparse.Namespace) -> bool:
    rows: list[dict[str, Any]] = []
    for name in args.scenarios or list(SCENARIOS):
        scenario = SCENARIOS[name]
        console.rule(f"faults: {name}")
        rows += await run_scenario(
            scenario,
            users=args.users,
            trials=args.trials or scenario.trials,
            rate=args.rate,
            down=timedelta(seconds=args.down),
            seed=args.seed,
        )
    console.print(table(rows))
    save("faults", rows=rows, users=args.users, rate=args.rate, seed=args.seed)
    return all(r["passed"] for r in rows)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    compile_workflow_code()
    return 0 if asyncio.run(main_async(args)) else 1


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    os._exit(code)  # the Temporal SDK can abort at interpreter shutdown (sdk-python#300)
