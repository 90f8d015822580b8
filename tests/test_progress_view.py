"""What `journeys status` prints for a live run: held users by reason."""

from __future__ import annotations

from rich.console import Console

from journeys.contracts.counters import Counters, RunStatus
from journeys.contracts.runs import RunProgress
from starter.progress_view import progress_table


def test_a_live_run_shows_its_held_users_by_reason() -> None:
    totals = Counters(targeted=30, deferred=7, deferred_by={"arbitration": 4, "quiet_hours": 3})
    progress = RunProgress(
        run_id="plan/p/v1/x", plan_id="p", version=1, status=RunStatus.RUNNING, shards=1,
        totals=totals, per_shard=[],
    )  # fmt: skip
    console = Console(width=200, record=True)
    console.print(progress_table(progress))
    assert "deferred 7 (arbitration 4, quiet_hours 3)" in console.export_text()


def test_counters_recorded_before_reasons_show_the_total_alone() -> None:
    progress = RunProgress(
        run_id="plan/p/v1/x", plan_id="p", version=1, status=RunStatus.RUNNING, shards=1,
        totals=Counters(targeted=5, deferred=2), per_shard=[],
    )  # fmt: skip
    console = Console(width=200, record=True)
    console.print(progress_table(progress))
    assert "deferred 2 ·" in console.export_text()


def test_reasons_add_up_across_shards() -> None:
    total = Counters(deferred=1, deferred_by={"quiet_hours": 1})
    total.add(Counters(deferred=2, deferred_by={"quiet_hours": 1, "arbitration": 1}))
    assert (total.deferred, total.deferred_by) == (3, {"quiet_hours": 2, "arbitration": 1})
