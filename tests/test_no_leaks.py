"""Nothing personal and no credential where it does not belong: a provider that quotes every
request back (recipient, profile, auth header) fails a run's messages, and neither its
histories, the worker's log (HTTP client logging included) nor the CLI's output carries a
profile value or a planted credential; the failure map holds one fixed category."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path

import redis.asyncio as aioredis
import yaml

from activities.db.pool import DbPool
from journeys.settings import Settings
from tests.conftest import settings_env, spawn_journeys, start_worker, stop_worker
from tests.engine import client_for, for_test, start_blast, write_ids, write_plan
from tests.journey_kit import seed_profiles, shard_runs
from tests.receiver import Receiver

PASSWORD, TOKEN, SIGNING = "pw-PLANTED-1", "tok-PLANTED-2", "sig-PLANTED-3"
USERS = 12


def planted_channels(directory: Path, *, url: str) -> Path:
    """One http push channel whose URL, header and signing secret are all credentials."""
    host = url.removeprefix("http://")
    provider = {
        "kind": "http",
        "url": f"http://svc:{PASSWORD}@{host}/push",
        "headers": {"Authorization": f"Bearer {TOKEN}"},
        "secret": SIGNING,
        "timeout": "5s",
    }
    template = {"title": "Hi {{ user.first_name }}", "body": "{{ user.city }} deals"}
    channels = {"push": {"type": "push", "provider": provider, "templates": {"hello": template}}}
    path = directory / "channels.yaml"
    path.write_text(yaml.safe_dump({"channels": channels}))
    return path


def profile(n: int) -> dict[str, object]:
    return {
        "email": f"leaky.{n}@example.com",
        "phone": f"+1555019{n:04d}",
        "attrs": {"first_name": f"Zebulon{n}", "city": f"Quuxville{n}"},
    }


async def output_of(*args: str, env: dict[str, str]) -> str:
    proc = await spawn_journeys(*args, env=env)
    out, err = await proc.communicate()
    return out.decode() + err.decode()


async def test_validation_never_prints_a_credential(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    channels = yaml.safe_load(planted_channels(tmp_path, url="http://h:1").read_text())
    channels["channels"]["push"]["provider"]["url"] = f"ftp://admin:{PASSWORD}@host/x"
    (tmp_path / "channels.yaml").write_text(yaml.safe_dump(channels))
    plan = write_plan(tmp_path, channel="push")
    for extra in ([], ["--json"]):
        text = await output_of(
            "validate",
            str(plan),
            "--channels",
            str(tmp_path / "channels.yaml"),
            *extra,
            env=cli_env,
        )
        assert "channels.push.provider.http.url" in text, text
        assert "bad url: must start with http" in text, text
        assert PASSWORD not in text and TOKEN not in text and SIGNING not in text


async def test_an_echoing_provider_leaks_nothing_into_histories_logs_or_status(
    stack_settings: Settings,
    pool: DbPool,
    redis: aioredis.Redis,
    tmp_path: Path,
    receiver: Receiver,
) -> None:
    settings = for_test(stack_settings, planted_channels(tmp_path, url=receiver.url))
    env = settings_env(settings) | {
        "JOURNEYS_CHANNELS": str(settings.channels_file),
        "TEMPORAL_TASK_QUEUE": settings.temporal_task_queue,
        "JOURNEYS_LOG_LEVEL": "DEBUG",  # the HTTP client's lines too, if it logged any
    }
    ids = write_ids(tmp_path, USERS, prefix=f"leak-{tmp_path.name[-6:]}")
    users = ids.read_text().split()
    profiles = {user: profile(n) for n, user in enumerate(users)}
    await seed_profiles(pool, profiles)
    receiver.echo = True
    receiver.permanent_for = set(users)
    plan = write_plan(tmp_path, channel="push", shards=2)

    log: list[str] = []
    worker = await start_worker(env, log=log)
    try:
        launched, handle = await start_blast(
            settings, pool=pool, redis=redis, plan_file=plan, ids_file=ids
        )
        async with asyncio.timeout(120):
            result = await handle.result()
        status = await output_of("status", launched.run_id, "--json", env=env)
    finally:
        await stop_worker(worker)

    # the provider's whole answer, recipient and all, is in the deliveries rows only
    assert result.totals.failed == {"HTTP 400": USERS}
    rows = await pool.fetch("SELECT reason FROM deliveries WHERE run_id = $1", launched.run_id)
    assert len(rows) == USERS and all(
        r["reason"].startswith("HTTP 400: ") and "leaky." in r["reason"] for r in rows
    )

    client = await client_for(settings)
    histories = [await handle.fetch_history()]
    for shard in range(2):
        for execution in await shard_runs(client, launched.run_id, shard):
            shard_run = client.get_workflow_handle(execution.id, run_id=execution.run_id)
            histories.append(await shard_run.fetch_history())
    texts = {
        "histories": "".join(history_text(h.to_json()) for h in histories),
        "log": "".join(log),
        "status": status,
    }
    assert len(texts["histories"]) > 1000 and "HTTP 400" in texts["histories"]
    personal = [
        value
        for p in profiles.values()
        for value in (p["email"], p["phone"], *dict(p["attrs"]).values())  # type: ignore[call-overload]
    ]
    for where, text in texts.items():
        for secret in (PASSWORD, TOKEN, SIGNING):
            assert secret not in text, f"{secret} in the {where}"
        if where != "log":  # the log names no user data either way; checked for credentials
            leaked = [value for value in personal if str(value) in text]
            assert leaked == [], f"profile values in the {where}: {leaked[:3]}"
    assert json.loads(status)  # the status command answered


def history_text(history_json: str) -> str:
    """A history as JSON with every payload decoded (they are base64 in the JSON form)."""
    decoded: list[str] = [history_json]

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if "metadata" in node and isinstance(node.get("data"), str):
                decoded.append(base64.b64decode(node["data"]).decode(errors="replace"))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(json.loads(history_json))
    return "\n".join(decoded)
