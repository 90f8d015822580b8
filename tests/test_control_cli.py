"""``journeys rate CHANNEL`` and ``journeys budget`` through the real CLI, and the shared
channel bucket they steer."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
import yaml

from activities.rate_limit import RateLimiter
from journeys.names import channel_rate_scope, quota_key, rate_key
from tests.conftest import spawn_journeys


async def run_cli(env: dict[str, str], *args: str, ok: bool = True) -> tuple[str, str]:
    proc = await spawn_journeys(*args, env=env)
    out, err = await proc.communicate()
    assert (proc.returncode == 0) is ok, err.decode()
    assert "Traceback" not in err.decode()
    return out.decode(), err.decode()


async def test_a_channel_rate_is_set_and_reset_for_every_plan(
    redis: aioredis.Redis, cli_env: dict[str, str]
) -> None:
    key = rate_key(channel_rate_scope("sms"))
    await redis.delete(key)
    out, _ = await run_cli(cli_env, "rate", "sms", "3/s", "--by", "ana")
    assert "3/s" in out and await redis.hget(key, "rate") == b"3.0"
    assert await redis.ttl(key) == -1  # a channel's setting does not expire like a run's
    limiter = RateLimiter(redis)
    granted, wait = await limiter.take(channel_rate_scope("sms"), want=100, default=50)
    assert granted == 3 and wait.total_seconds() > 0  # the operator's 3/s, not the file's 50
    out, _ = await run_cli(cli_env | {"JOURNEYS_ACTOR": "ben"}, "rate", "sms", "--reset")
    assert "50/s" in out and await redis.hget(key, "rate") is None
    _, err = await run_cli(cli_env, "rate", "popup", "1/s", ok=False)
    assert "no rate in" in err  # the file does not pace popup: workers would never look
    _, err = await run_cli(cli_env, "rate", "nosuch", "1/s", ok=False)
    assert "no run or channel 'nosuch'" in err
    out, _ = await run_cli(cli_env | {"JOURNEYS_ACTOR": "ben"}, "audit", "--json", "--limit", "500")
    changes = [(e["actor"], e["detail"]) for e in json.loads(out)
               if e["action"] == "rate" and e["subject"] == "sms"][:2]  # fmt: skip
    assert changes == [("ben", {"per_second": 50.0, "reset": True}),
                       ("ana", {"per_second": 3.0, "reset": False})]  # fmt: skip


async def test_a_channels_default_rate_paces_until_an_operator_sets_one(
    redis: aioredis.Redis,
) -> None:
    scope = f"channel:t{uuid.uuid4().hex[:6]}"
    limiter = RateLimiter(redis)
    granted, _ = await limiter.take(scope, want=100, default=4, expires=False)
    assert granted == 4  # one second's burst of the default
    assert await redis.hget(rate_key(scope), "rate") is None
    await limiter.set_rate(scope, per_second=0, expires=False)  # 0: unlimited
    assert (await limiter.take(scope, want=100, default=4, expires=False))[0] == 100


async def test_budget_shows_and_resets_a_workspace_quota(
    redis: aioredis.Redis, cli_env: dict[str, str], tmp_path: Path
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump({"quotas": [{"channel": "sms", "max_messages": 100}]}))
    env = cli_env | {"JOURNEYS_POLICY": str(policy)}
    await redis.delete(quota_key("sms"))
    await redis.hset(quota_key("sms"), mapping={"n": 40, "c": 1.6})
    out, _ = await run_cli(env, "budget", "show", "--json")
    rows: list[dict[str, Any]] = json.loads(out)
    assert rows == [
        {
            "kind": "quota",
            "channel": "sms",
            "unit": "messages",
            "limit": 100,
            "spent": 40,
            "remaining": 60,
        }
    ]
    out, _ = await run_cli(env, "budget", "reset", "sms", "--json")
    assert json.loads(out)["spent_before"] == 40
    assert await redis.exists(quota_key("sms")) == 0
    _, err = await run_cli(env, "budget", "reset", "push", ok=False)
    assert "no quota for channel 'push'" in err
