"""``journeys report RUN`` over a real run: a split with a control arm, a send, goal events
for some users of each arm; every figure of the report is what the test made happen."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

from journeys.ab import assign
from journeys.arm_stats import ArmCounts, compare_arms
from journeys.events import JourneyEvent
from journeys.plan.steps import AbSplitStep
from starter.plan_files import read_plan
from starter.report import run_report
from tests.conftest import spawn_journeys
from tests.journey_runner import Advance, JourneyKit, Send, UntilShard

PLAN = {
    "steps": {
        "split": {
            "type": "ab_split",
            "arms": [
                {"name": "holdout", "weight": 30, "control": True},
                {"name": "offer", "weight": 70, "next": "push"},
            ],
        },
        "push": {"type": "send", "channel": "push", "template": "offer", "vars": {"offer": "10%"}},
    },
    "goal": {"event": "order_placed", "within": "1d", "value_prop": "amount"},
}


async def test_the_report_counts_what_the_run_did_per_node_and_arm(
    journey: JourneyKit, cli_env: dict[str, str]
) -> None:
    tag = uuid.uuid4().hex[:6]
    users = [f"rp-{tag}-{n:03d}" for n in range(200)]
    plan_file = journey.plan_file(PLAN)
    split = read_plan(plan_file, channels=None).steps["split"]
    assert isinstance(split, AbSplitStep)
    arm = {u: split.arms[assign(split.arms, salt=split.salt or "", user_id=u)].name for u in users}
    held = sorted(u for u in users if arm[u] == "holdout")
    offered = sorted(u for u in users if arm[u] == "offer")
    buyers = {"holdout": held[:6], "offer": offered[:30]}  # 6 and 30 converted
    events = [
        JourneyEvent(user_id=u, name="order_placed", props={"amount": 10})
        for group in buyers.values()
        for u in group
    ]
    events.append(JourneyEvent(user_id=offered[0], name="order_placed", props={"amount": 5}))
    outcome = await journey.run(
        plan_file,
        users=users,
        skipping=False,
        script=[
            UntilShard(lambda s: s.counters.delivered == len(offered)),
            Send(events),
            UntilShard(lambda s: s.counters.converted == 36),
            Advance(timedelta(days=1, minutes=1)),  # the goal window closes
        ],
    )
    client = await journey.client()
    report = await run_report(journey.pool, client, outcome.run_id)

    assert (report.targeted, report.delivered) == (200, len(offered))
    # a conversion is a user's first goal event after their entry: the second order is none
    assert report.converted == 36 and report.value == 36 * 10
    [push] = report.nodes
    assert (push.node, push.sent, push.skipped, push.failed) == ("push", len(offered), {}, {})
    holdout, offer = report.splits["split"]
    assert (holdout.arm, holdout.control, holdout.users, holdout.converted) == (
        "holdout", True, len(held), 6,
    )  # fmt: skip
    assert (offer.arm, offer.users, offer.converted) == ("offer", len(offered), 30)
    assert offer.value == 30 * 10  # per split, a user's first conversion
    expected = compare_arms(
        [
            ArmCounts(arm="holdout", control=True, users=len(held), converted=6),
            ArmCounts(arm="offer", users=len(offered), converted=30),
        ]
    )[1]
    assert offer.lift == expected.lift and offer.p_value == expected.p_value
    assert offer.ci_low is not None and offer.ci_low < offer.rate < offer.ci_high  # type: ignore[operator]

    proc = await spawn_journeys("report", outcome.run_id, "--json", env=cli_env)
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    assert json.loads(out)["splits"]["split"][1]["converted"] == 30
    missing = await spawn_journeys("report", "plan/nope/v1/x", env=cli_env)
    _, err = await missing.communicate()
    assert missing.returncode == 1 and "no run 'plan/nope/v1/x'" in err.decode()
