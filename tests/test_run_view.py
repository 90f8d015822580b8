"""What an engineer sees of a run in the Temporal UI is true: the run's own ``progress``
query counts the users standing in a wait (per shard, per node and in all) and lists the
waits, the run's current details are a live one-line summary, and a finished shard says so."""

from __future__ import annotations

from datetime import timedelta

from journeys.contracts.runs import RunProgress, WaitingCohort
from tests.journey_kit import current_details, eventually, run_handle, shard_handle
from tests.journey_runner import Advance, Check, JourneyKit, LiveRun
from workflows.plan_run import PlanRunWorkflow

USERS = 2_000


async def test_the_runs_query_and_details_show_users_waiting(journey: JourneyKit) -> None:
    seen: dict[str, RunProgress | str] = {}

    async def the_run_sees_them_wait(live: LiveRun) -> None:
        run = run_handle(live.time.client, live.run_id)
        # the run's own query, as the UI runs it: what the shards reported, no shard queried
        progress = await eventually(
            lambda: run.query(PlanRunWorkflow.progress),
            until=lambda p: p.totals.waiting == USERS,
        )
        seen["progress"] = progress
        seen["details"] = await eventually(
            lambda: current_details(run), until=lambda d: f"{USERS} waiting" in d
        )

    async def the_ended_say_so(live: LiveRun) -> None:
        run = run_handle(live.time.client, live.run_id)
        await run.result()
        shard = shard_handle(live.time.client, live.run_id, 0)
        seen["shard"] = await current_details(shard)
        seen["run"] = await current_details(run)
        seen["run_static"] = str(await (await run.describe()).static_details())
        seen["shard_static"] = str(await (await shard.describe()).static_details())

    outcome = await journey.run(
        {
            "shards": 4,
            "steps": {
                "welcome": {"type": "send", "channel": "popup", "template": "hello", "next": "day"},
                "day": {"type": "wait", "duration": "1d", "next": "again"},
                "again": {"type": "send", "channel": "popup", "template": "hello"},
            },
            "limits": {"page_size": 250, "concurrency": 4},
        },
        users=[f"view-{n:05d}" for n in range(USERS)],
        skipping=False,
        script=[
            Check(the_run_sees_them_wait),
            Advance(timedelta(days=1, minutes=1)),
            Check(the_ended_say_so),
        ],
    )

    progress = seen["progress"]
    assert isinstance(progress, RunProgress)
    assert sum(s.counters.waiting for s in progress.per_shard) == USERS
    assert all(s.counters.waiting == s.nodes["day"].waiting for s in progress.per_shard)
    assert sum(s.nodes["day"].entered for s in progress.per_shard) == USERS  # on arrival
    [wait] = progress.waits  # merged over the shards, one per node and zone
    assert isinstance(wait, WaitingCohort)
    assert (wait.node, wait.users) == ("day", USERS)
    assert wait.until == min(w.until for s in progress.per_shard for w in s.waits)
    details = seen["details"]
    assert details == (
        f"running · {USERS} targeted · {USERS} delivered · {USERS} waiting · 0 failed · "
        f"at day {USERS}"
    )
    assert "/" not in details  # the UI renders 7/16 as a fraction

    assert outcome.result.totals.delivered == 2 * USERS
    assert str(seen["shard"]).startswith("shard 0 of 4 · finished · ")
    assert "**Test journey**" in str(seen["run_static"])  # the plan, as the UI shows it
    assert f"journeys status {outcome.run_id}" in str(seen["run_static"])
    assert str(seen["shard_static"]).startswith(f"Shard 0 of 4 of run {outcome.run_id}")
    assert seen["run"] == (
        f"completed · {USERS} targeted · {2 * USERS} delivered · 0 waiting · 0 failed"
    )
