"""API keys on the real HTTP API: required once one exists, scoped, rate-limited, hashed at
rest, revoked; through the CLI and the Python client."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from activities.api_keys import ApiKeyStore
from activities.db.pool import DbPool
from journeys.api_keys import digest_of, key_id_of, scope_for
from journeys.errors import AccessDenied
from journeys.settings import Settings
from starter.client import Journeys
from tests.conftest import serving_ingest, spawn_journeys


def test_each_route_asks_for_its_scope() -> None:
    assert scope_for("/v1/events") == "events:write"
    assert scope_for("/v1/plans/p/entries") == "events:write"
    assert scope_for("/v1/inbox/click") == "events:write"
    assert scope_for("/v1/decide") == "decide"
    assert scope_for("/v1/suppressions/remove") == "admin"
    assert scope_for("/healthz") is None and scope_for("/openapi.json") is None
    assert key_id_of("jk_0a1b2c3d_" + "x" * 32) == "jk_0a1b2c3d"
    assert key_id_of("jk_0a1b2c3d") is None and key_id_of("Bearer nonsense") is None


async def journeys(env: dict[str, str], *args: str) -> str:
    proc = await spawn_journeys(*args, env=env)
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return out.decode()


async def test_keys_guard_the_api_once_one_exists(
    pool: DbPool, stack_settings: Settings, cli_env: dict[str, str]
) -> None:
    store = ApiKeyStore(pool)
    tag = uuid.uuid4().hex[:6]
    event = {"events": [{"user_id": f"key-{tag}", "name": "page_viewed"}]}
    made: list[str] = []
    try:
        async with serving_ingest(stack_settings) as url, httpx.AsyncClient(base_url=url) as http:
            assert (await http.post("/v1/events", json=event)).status_code == 202  # open
        writer = (await journeys(cli_env, "keys", "create", f"app-{tag}", "--scope",
                                 "events:write")).split()[0]  # fmt: skip
        made.append(key_id_of(writer) or "")
        decider = await store.create(f"checkout-{tag}", scopes=["decide"], rate=2.0)
        made.append(key_id_of(decider) or "")
        row = await pool.fetchrow("SELECT * FROM api_keys WHERE key_id = $1", made[0])
        assert row is not None and row["digest"] == digest_of(writer)  # hashed at rest
        assert writer not in json.dumps({k: str(v) for k, v in dict(row).items()})

        def auth(key: str) -> dict[str, str]:
            return {"Authorization": f"Bearer {key}"}

        async with serving_ingest(stack_settings) as url, httpx.AsyncClient(base_url=url) as http:
            missing = await http.post("/v1/events", json=event)
            assert missing.status_code == 401
            assert "API key is required" in missing.json()["errors"][0]["reason"]
            wrong = writer[:-4] + "AAAA"  # the right id, not the key
            assert (
                await http.post("/v1/events", json=event, headers=auth(wrong))
            ).status_code == 401
            assert (
                await http.post("/v1/events", json=event, headers=auth(writer))
            ).status_code == 202
            assert (await http.post("/v1/events", json=event,
                                    headers={"X-Api-Key": writer})).status_code == 202  # fmt: skip
            body = {"instance": "no-such-instance", "user_id": "u-1"}
            denied = await http.post("/v1/decide", json=body, headers=auth(writer))
            assert denied.status_code == 403 and "lacks the scope decide" in denied.text
            suppress = {"user_ids": ["u-1"]}
            assert (await http.post("/v1/suppressions", json=suppress,
                                    headers=auth(writer))).status_code == 403  # fmt: skip
            assert (await http.get("/healthz")).status_code in (200, 503)  # open, whatever state
            # the decider's own 2/s: a burst of two, then 429 with when to come back
            statuses = [
                (await http.post("/v1/decide", json=body, headers=auth(decider))) for _ in range(5)
            ]
            assert [s.status_code for s in statuses[:2]] == [404, 404]  # past the gate
            limited = [s for s in statuses if s.status_code == 429]
            assert limited and all(int(s.headers["retry-after"]) >= 1 for s in limited)
            async with Journeys(url, api_key=writer) as client:
                assert (await client.send_events(event["events"])).accepted == 1
            async with Journeys(url, attempts=1) as anonymous:
                with pytest.raises(AccessDenied, match="API key is required"):
                    await anonymous.send_events(event["events"])

        await journeys(cli_env, "keys", "revoke", made[0])
        listed = json.loads(await journeys(cli_env, "keys", "list", "--json"))
        mine = {k["key_id"]: k for k in listed if k["key_id"] in made}
        assert mine[made[0]]["revoked_at"] is not None and mine[made[1]]["revoked_at"] is None
        assert writer not in json.dumps(listed) and "digest" not in json.dumps(listed)
        async with serving_ingest(stack_settings) as url, httpx.AsyncClient(base_url=url) as http:
            revoked = await http.post("/v1/events", json=event, headers=auth(writer))
            assert revoked.status_code == 401 and "revoked" in revoked.text
    finally:  # other tests' servers must find the API open again
        await pool.execute(
            "UPDATE api_keys SET revoked_at = now() WHERE key_id = ANY($1) AND revoked_at IS NULL",
            made,
        )
