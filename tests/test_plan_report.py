"""``journeys report PLAN --runs N``: a plan's last runs side by side (the execution view),
over two real runs of one plan whose plan cap holds back, in the second, the users the
first reached."""

from __future__ import annotations

import json
import uuid

import pytest

from journeys.errors import NotFound
from starter.plan_report import plan_report
from starter.report import run_report
from tests.conftest import spawn_journeys
from tests.engine import settings_env
from tests.journey_runner import JourneyKit

PLAN = {
    "steps": {
        "split": {
            "type": "ab_split",
            "arms": [
                {"name": "holdout", "weight": 20, "control": True},
                {"name": "hi", "weight": 80, "next": "hello"},
            ],
        },
        "hello": {"type": "send", "channel": "push", "template": "hello"},
    },
    "limits": {"plan_cap": {"max": 1, "per": "7d"}},
}


async def test_the_execution_view_lists_a_plans_runs_oldest_first(journey: JourneyKit) -> None:
    tag = uuid.uuid4().hex[:6]
    users = [f"pr-{tag}-{n:02d}" for n in range(15)]
    plan_file = journey.plan_file(PLAN)
    first = await journey.run(plan_file, users=users[:10])
    second = await journey.run(plan_file, users=users)
    plan_id = first.run_id.split("/")[1]
    client = await journey.client()

    report = await plan_report(journey.pool, client, plan_id, runs=5)
    assert [r.run_id for r in report.runs] == [first.run_id, second.run_id]
    each = [await run_report(journey.pool, client, r) for r in (first.run_id, second.run_id)]
    old, new = report.runs
    sent = [r.delivered for r in each]
    assert (old.targeted, old.delivered, old.success_rate, old.skipped) == (
        10,
        sent[0],
        sent[0] / 10,
        {},
    )
    held_back = sum(r.nodes[0].skipped.get("plan_cap", 0) for r in each)
    assert held_back == sent[0]  # the second run skips everyone the first reached
    assert (new.targeted, new.delivered, new.skipped) == (15, sent[1], {"plan_cap": held_back})
    assert new.success_rate == pytest.approx(sent[1] / 15)
    assert report.success_trend == pytest.approx(sent[1] / 15 - sent[0] / 10)
    assert (report.targeted, report.delivered) == (25, sum(sent))
    for run in report.runs:
        assert run.status == "completed" and run.started_at is not None
        assert run.start_delay is not None and run.duration is not None
        assert run.started_at >= run.due_at and run.duration.total_seconds() > 0
    # the runs as one: funnel per node and arms added up, then compared again
    [hello] = report.combined.nodes
    assert (hello.sent, hello.skipped) == (sum(sent), {"plan_cap": held_back})
    # (random ids: an arm may have no users in a run, and then no row in it)
    arms = {a.arm: a for a in report.combined.splits["split"]}
    for name, arm in arms.items():
        assert arm.users == sum(a.users for r in each for a in r.splits["split"] if a.arm == name)
    assert sum(a.users for a in arms.values()) == 25
    assert arms["hi"].messages == sum(sent)

    newest = await plan_report(journey.pool, client, plan_id, runs=1)
    assert [r.run_id for r in newest.runs] == [second.run_id]
    with pytest.raises(NotFound):
        await plan_report(journey.pool, client, f"none-{tag}")

    env = settings_env(journey.settings, channels=journey.settings.channels_file)
    proc = await spawn_journeys("report", plan_id, "--runs", "2", "--json", env=env)
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    assert [r["delivered"] for r in json.loads(out)["runs"]] == sent
    png = journey.directory / "plan.png"
    drawn = await spawn_journeys("report", plan_id, "--png", str(png), env=env)
    _, err = await drawn.communicate()
    assert drawn.returncode == 0, err.decode()
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
