"""``journeys launch PLAN --dry-run``: the whole journey on its audience, on the real worker,
with its two-day wait and its goal window compressed; every send rendered and counted per
node, no provider reached, no ledger row, assignment or profile update written."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import yaml

from activities.db.pool import DbPool
from journeys.settings import Settings
from tests.engine import for_test, worker_running, write_ids
from tests.journey_kit import seed_profiles, write_journey_channels
from tests.receiver import Receiver
from tests.test_run_cli import env_for, journeys


def journey_plan(directory: Path, plan_id: str) -> Path:
    body = {
        "id": plan_id,
        "name": "Dry run",
        "shards": 2,
        "audience": {"source": "list", "name": "unused-when-a-file-is-given"},
        "entry": {"type": "immediate"},
        "steps": {
            "mark": {"type": "update", "set": {"dry_marked": True}, "next": "split"},
            "split": {
                "type": "ab_split",
                "arms": [
                    {"name": "ten", "weight": 50, "next": "offer_ten"},
                    {"name": "twenty", "weight": 50, "next": "offer_twenty"},
                ],
            },
            "offer_ten": {
                "type": "send",
                "channel": "push",
                "template": "offer",
                "vars": {"offer": "10% off"},
                "next": "later",
            },
            "offer_twenty": {
                "type": "send",
                "channel": "push",
                "template": "offer",
                "vars": {"offer": "20% off"},
                "next": "later",
            },
            "later": {"type": "wait", "duration": "2d", "next": "nudge"},
            "nudge": {"type": "send", "channel": "sms", "template": "nudge"},
        },
        "goal": {"event": "order_placed", "within": "3d"},
    }
    path = directory / f"{plan_id}.yaml"
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


async def test_a_dry_run_goes_the_whole_way_and_delivers_nothing(
    stack_settings: Settings, pool: DbPool, receiver: Receiver, tmp_path: Path
) -> None:
    settings = for_test(stack_settings, write_journey_channels(tmp_path, receiver_url=receiver.url))
    env = env_for(settings)
    plan_id = f"dry-{uuid.uuid4().hex[:6]}"
    ids = write_ids(tmp_path, 120, prefix=plan_id)
    users = [line for line in ids.read_text().split()]
    await seed_profiles(pool, {u: {"phone": "+8613800000000"} for u in users})
    async with worker_running(settings):
        code, out, err = await journeys(
            env,
            "launch",
            str(journey_plan(tmp_path, plan_id)),
            "--audience",
            str(ids),
            "--dry-run",
            "--json",
        )
    assert code == 0, err
    report = json.loads(out)
    run_id = report["run_id"]
    assert report["status"] == "completed" and "/dry-" in run_id
    nodes = report["nodes"]
    assert list(nodes) == ["mark", "split", "offer_ten", "offer_twenty", "later", "nudge"]
    arms = nodes["split"]["routes"]
    assert sum(arms.values()) == 120 and len(arms) == 2  # both arms drew users
    sent = nodes["offer_ten"]["delivered"] + nodes["offer_twenty"]["delivered"]
    assert sent == 120 and nodes["later"]["entered"] == 120  # past the 2-day wait ...
    assert nodes["nudge"]["delivered"] == 120  # ... to the last step
    assert report["totals"]["delivered"] == 240 and report["totals"]["completed"] == 120
    samples = report["samples"]
    assert samples["offer_ten"]["content"] == {"title": "Offer", "body": "10% off"}
    assert samples["offer_twenty"]["content"]["body"] == "20% off"
    assert samples["nudge"]["channel"] == "sms" and samples["nudge"]["user_id"] in users

    assert receiver.requests == []  # no provider reached
    for table in ("deliveries", "assignments"):
        count = await pool.fetchval(f"SELECT count(*) FROM {table} WHERE run_id = $1", run_id)
        assert count == 0, table
    marked = await pool.fetchval(
        "SELECT count(*) FROM users WHERE user_id = ANY($1) AND attrs ? 'dry_marked'", users
    )
    assert marked == 0  # the update step wrote nothing


async def test_a_dry_run_of_an_event_entry_is_refused(
    stack_settings: Settings, receiver: Receiver, tmp_path: Path
) -> None:
    settings = for_test(stack_settings, write_journey_channels(tmp_path, receiver_url=receiver.url))
    plan = tmp_path / "events.yaml"
    plan.write_text(
        yaml.safe_dump(
            {
                "id": f"dry-ev-{uuid.uuid4().hex[:6]}",
                "name": "Event entry",
                "entry": {"type": "event", "event": "signed_up"},
                "steps": {"hi": {"type": "send", "channel": "push", "template": "hello"}},
            }
        )
    )
    code, _, err = await journeys(env_for(settings), "launch", str(plan), "--dry-run")
    assert code == 1 and "a dry run needs an audience that enters at the start" in err
    assert "Traceback" not in err
