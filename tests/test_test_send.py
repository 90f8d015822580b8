"""``journeys test-send``: one step's message, rendered for a test user's profile and the given
context, through the real channel to a local receiver; never to a user who is not on the
allow list or is suppressed on the channel, and never into the ledger."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import redis.asyncio as aioredis
import yaml

from activities.controls.suppression import SuppressionStore
from activities.db.pool import DbPool
from tests.conftest import spawn_journeys
from tests.journey_kit import seed_profiles, write_journey_channels
from tests.receiver import Receiver


async def test_a_test_send_reaches_only_a_test_user_and_writes_no_ledger_row(
    pool: DbPool,
    redis: aioredis.Redis,
    receiver: Receiver,
    cli_env: dict[str, str],
    tmp_path: Path,
) -> None:
    tag = uuid.uuid4().hex[:6]
    tester, customer, muted = (f"ts{tag}-{role}" for role in ("tester", "customer", "muted"))
    channels = write_journey_channels(tmp_path, receiver_url=receiver.url)
    plan_file = tmp_path / "plan.yaml"
    plan_file.write_text(
        yaml.safe_dump(
            {
                "id": f"ts-{tag}",
                "name": "Test send",
                "audience": {"source": "all"},
                "entry": {"type": "immediate"},
                "steps": {
                    "hello": {
                        "type": "send",
                        "channel": "popup",
                        "template": "hello",
                        "next": "coupon",
                    },
                    "coupon": {"type": "send", "channel": "push", "template": "recall"},
                },
            },
            sort_keys=False,
        )
    )
    await seed_profiles(pool, {tester: {"attrs": {"name": "Tess"}}})
    store = SuppressionStore(pool=pool, redis=redis)
    await store.add([tester, muted], channel="*", list_name="allow", reason="QA", source="test")
    await store.add(
        [muted], channel="push", list_name="suppress", reason="opted out", source="test"
    )
    env = cli_env | {"JOURNEYS_CHANNELS": str(channels)}

    async def test_send(
        user: str, *extra: str, step: str | None = "coupon"
    ) -> tuple[int, str, str]:
        chosen = ["--step", step] if step is not None else []
        proc = await spawn_journeys(
            "test-send", str(plan_file), "--user", user, *chosen, *extra, env=env
        )
        out, err = await proc.communicate()
        return proc.returncode or 0, out.decode(), err.decode()

    code, out, err = await test_send(tester, "--context", '{"order_id": "o-7"}', "--json")
    assert code == 0, err
    sent = json.loads(out)
    assert (sent["step"], sent["channel"], sent["outcome"]) == ("coupon", "push", "sent")
    assert sent["content"] == {"title": "A coupon", "body": "for o-7"}
    [(key, message)] = receiver.messages().items()
    assert key == sent["idempotency_key"] and key.startswith(f"test/ts-{tag}:coupon:{tester}:")
    assert message["content"]["body"] == "for o-7" and message["user_id"] == tester

    refused = {user: await test_send(user) for user in (customer, muted)}
    assert refused[customer][0] == 1 and "is not a test user" in refused[customer][2]
    assert refused[muted][0] == 1 and "is suppressed on push" in refused[muted][2]
    assert "Traceback" not in refused[customer][2] + refused[muted][2]
    unknown_step = await test_send(tester, step="nope")
    assert unknown_step[0] == 1 and "no send or webhook step 'nope'" in unknown_step[2]
    assert len(receiver.messages()) == 1  # nothing reached the provider for them
    rows = await pool.fetchval(
        "SELECT count(*) FROM deliveries WHERE run_id LIKE $1", f"test/ts-{tag}%"
    )
    assert rows == 0
    # without --step: the plan's first send step, an in-app popup, lands in the inbox table
    code, out, err = await test_send(tester, step=None)
    assert code == 0 and "hello → popup/hello" in out and "body: Hi" in out, out + err
    inbox = await pool.fetch(
        "SELECT user_id, message_id FROM inbox WHERE message_id LIKE $1", f"test/ts-{tag}:%"
    )
    assert [(r["user_id"], r["message_id"].split(":")[1]) for r in inbox] == [(tester, "hello")]
