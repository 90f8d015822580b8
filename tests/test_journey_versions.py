"""A run keeps the plan version it was launched with: publishing a new version (or rolling
back) while it waits changes nothing for it, and later launches pin the newest version."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from activities.db import plan_store
from journeys.contracts.counters import RunStatus
from starter.plan_files import read_plan
from tests.journey_runner import Advance, Check, JourneyKit, LiveRun, UntilShard
from tests.receiver import Receiver

V1_BODY = {
    "steps": {
        "pause": {"type": "wait", "duration": "1h", "next": "greet"},
        "greet": {"type": "send", "channel": "push", "template": "hello"},
    }
}


def changed_plan(v1_file: Path) -> Path:
    """The same plan id with the push changed to template ``offer`` with vars."""
    body = yaml.safe_load(v1_file.read_text())
    body["steps"]["greet"] = {
        "type": "send",
        "channel": "push",
        "template": "offer",
        "vars": {"offer": "20% off"},
    }
    path = v1_file.with_name(f"{body['id']}-v2.yaml")
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


def messages_of(receiver: Receiver, run_id: str) -> list[dict[str, Any]]:
    """What the receiver accepted for one run (keys are ``run:node:user:entry``)."""
    return [m for key, m in receiver.messages().items() if key.startswith(f"{run_id}:")]


async def test_a_run_keeps_its_version_and_new_launches_pin_the_newest(
    journey: JourneyKit,
) -> None:
    v1_file = journey.plan_file(V1_BODY)
    v2_file = changed_plan(v1_file)
    plan_id = yaml.safe_load(v1_file.read_text())["id"]
    tag = uuid.uuid4().hex[:6]
    users = [f"ver-{tag}-{n:02d}" for n in range(20)]

    async def publish_v2_while_it_waits(live: LiveRun) -> None:
        assert (live.launched.version, live.launched.published) == (1, True)
        assert f"/{plan_id}/v1/" in live.run_id
        v2 = await plan_store.publish(
            journey.pool,
            read_plan(v2_file, channels=journey.settings.channels_file),
            source=str(v2_file),
        )
        assert (v2.version, v2.created) == (2, True)

    first_run = await journey.run(
        v1_file,
        users=users,
        skipping=False,
        script=[
            UntilShard(lambda s: [w.users for w in s.waits] == [len(users)]),
            Check(publish_v2_while_it_waits),
            Advance(timedelta(hours=1, minutes=1)),
        ],
    )
    second_run = await journey.run(v2_file, users=users)
    rolled = await plan_store.rollback(journey.pool, plan_id, to=1)
    assert (rolled.version, rolled.note) == (3, "rollback to v1")
    third_run = await journey.run(v1_file, users=users)
    first, second, third = first_run.launched, second_run.launched, third_run.launched
    first_result, second_result, third_result = (
        first_run.result,
        second_run.result,
        third_run.result,
    )
    receiver, pool = journey.receiver, journey.pool
    for outcome in (first_run, second_run, third_run):
        assert outcome.paths() == {u: ["pause", "greet"] for u in users}

    # the v1 run sent v1's template although v2 was published while it waited
    sent = messages_of(receiver, first.run_id)
    assert sorted(m["user_id"] for m in sent) == users
    assert {m["template"] for m in sent} == {"hello"}
    assert {m["content"]["body"] for m in sent} == {"Welcome"}
    assert first_result.status is RunStatus.COMPLETED and first_result.totals.delivered == 20

    # launching the v2 file found it published already: pinned to v2, with its vars
    assert (second.version, second.published) == (2, False)
    assert f"/{plan_id}/v2/" in second.run_id
    sent = messages_of(receiver, second.run_id)
    assert sorted(m["user_id"] for m in sent) == users
    assert {m["template"] for m in sent} == {"offer"}
    assert {m["content"]["body"] for m in sent} == {"20% off"}
    assert second_result.totals.delivered == 20

    # the rollback published v1's body as v3; the v1 file is that plan, so no new version
    assert await plan_store.load(pool, plan_id, 3) == await plan_store.load(pool, plan_id, 1)
    listed = await plan_store.versions(pool, plan_id)
    assert [v.version for v in listed] == [1, 2, 3]
    assert listed[2].checksum == listed[0].checksum != listed[1].checksum
    assert (third.version, third.published) == (3, False)
    assert f"/{plan_id}/v3/" in third.run_id
    sent = messages_of(receiver, third.run_id)
    assert sorted(m["user_id"] for m in sent) == users
    assert {m["template"] for m in sent} == {"hello"}
    assert third_result.totals.delivered == 20

    assert len(receiver.messages()) == 3 * len(users)  # one message per user and run
