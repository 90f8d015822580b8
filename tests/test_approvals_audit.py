"""Approvals (policy ``approval: required``) and the append-only audit log, through the real
console script, the HTTP API and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import asyncpg
import httpx
import pytest

from activities.api_keys import ApiKeyStore
from activities.db import audit_log, plan_store
from activities.db.pool import DbPool
from journeys.api_keys import key_id_of
from journeys.audit import AuditEntry, AuditRecord, actor_name
from journeys.errors import AlreadyApproved, InvalidInput, NotApproved
from journeys.plan.models import Plan
from journeys.settings import Settings
from tests.conftest import serving_ingest, settings_env, spawn_journeys
from tests.engine import for_test, worker_running, write_channels, write_ids, write_plan
from tests.receiver import Receiver


async def journeys(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    proc = await spawn_journeys(*args, env=env)
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def a_plan(plan_id: str) -> Plan:
    return Plan.model_validate({
        "id": plan_id, "name": "Approval test", "entry": {"type": "immediate"},
        "audience": {"source": "list", "name": "everyone"},
        "steps": {"hello": {"type": "send", "channel": "log", "template": "hello"}},
    })  # fmt: skip


async def test_a_pending_version_launches_only_after_someone_else_approves_it(
    stack_settings: Settings, tmp_path: Path, receiver: Receiver
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("approval: required\n")
    settings = for_test(stack_settings, write_channels(tmp_path, receiver_url=receiver.url))
    env = settings_env(settings.model_copy(update={"policy_file": policy}),
                       channels=settings.channels_file)  # fmt: skip
    plan = write_plan(tmp_path, channel="push", shards=1)
    plan_id = plan.stem
    ids = write_ids(tmp_path, 20, prefix="appr")
    async with worker_running(settings):
        code, _, err = await journeys(env, "launch", str(plan), "--audience", str(ids),
                                      "--by", "ana")  # fmt: skip
        assert code == 1
        assert f"{plan_id} v1 awaits approval (published by ana)" in err
        code, out, _ = await journeys(env, "versions", plan_id, "--json")
        [v1] = json.loads(out)
        assert (v1["published_by"], v1["approved_by"], v1["launchable"]) == ("ana", None, False)

        # a dry run previews the pending version (it counts what it would deliver, and
        # delivers nothing)
        code, out, err = await journeys(env, "launch", str(plan), "--audience", str(ids),
                                        "--dry-run", "--json", "--by", "ana")  # fmt: skip
        assert code == 0, err
        assert json.loads(out)["totals"]["delivered"] == 20 and not receiver.messages()

        code, _, err = await journeys(env, "approve", plan_id, "--version", "1", "--by", "ana")
        assert code == 1 and "published by ana: someone else must approve it" in err
        code, out, err = await journeys(env, "approve", plan_id, "--version", "1", "--by", "ben")
        assert code == 0 and "approved" in out, err
        code, _, err = await journeys(env, "approve", plan_id, "--version", "1", "--by", "cy")
        assert code == 1 and "approved already, by ben" in err

        code, out, err = await journeys(env, "launch", str(plan), "--audience", str(ids),
                                        "--by", "ana", "--wait", "--json")  # fmt: skip
        assert code == 0, err
        launched = json.loads(out)
        assert launched["result"]["totals"]["delivered"] == 20 and len(receiver.messages()) == 20
        run_id = launched["launched"]["run_id"]

        code, out, err = await journeys(env, "audit", "--plan", plan_id, "--json")
        assert code == 0, err
        entries = json.loads(out)
    done = [(e["action"], e["actor"], e["version"]) for e in reversed(entries)]
    assert done == [
        ("publish", "ana", 1),
        ("launch", "ana", 1),  # the dry run
        ("approve", "ben", 1),
        ("launch", "ana", 1),
    ]
    assert entries[0]["run_id"] == run_id and entries[0]["detail"]["dry_run"] is False
    assert entries[2]["detail"]["dry_run"] is True


async def test_approval_is_the_store_s_and_survives_a_race(pool: DbPool) -> None:
    plan = a_plan(f"appr-{uuid.uuid4().hex[:8]}")
    info = await plan_store.publish(pool, plan, by="ana")
    assert not info.approved and info.published_by == "ana"
    with pytest.raises(NotApproved, match="awaits approval"):
        await plan_store.require_approval(pool, plan.id, 1)
    # two approvers at once: one wins, the other is told it was approved already
    results = await asyncio.gather(
        plan_store.approve(pool, plan.id, 1, by="ben"),
        plan_store.approve(pool, plan.id, 1, by="cy"),
        return_exceptions=True,
    )
    won = [r for r in results if isinstance(r, plan_store.VersionInfo)]
    assert len(won) == 1 and sum(isinstance(r, AlreadyApproved) for r in results) == 1
    await plan_store.require_approval(pool, plan.id, 1)
    again = await plan_store.publish(pool, plan, by="dee")  # unchanged: still v1, approved
    assert (again.created, again.version, again.approved) == (False, 1, True)
    rolled = await plan_store.rollback(pool, plan.id, to=1, by="dee")  # a new version: pending
    assert rolled.version == 2 and not rolled.approved
    actions = [(e.action, e.actor) for e in await audit_log.entries(pool, plan_id=plan.id)]
    assert actions == [("publish", "dee"), ("approve", won[0].approved_by), ("publish", "ana")]


async def test_the_audit_log_refuses_changes(pool: DbPool) -> None:
    plan_id = f"audit-{uuid.uuid4().hex[:8]}"
    await audit_log.record(pool, AuditRecord(actor="ana", action="pause", plan_id=plan_id))
    for statement in (
        "UPDATE audit_log SET actor = 'mallory' WHERE plan_id = $1",
        "DELETE FROM audit_log WHERE plan_id = $1",
    ):
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await pool.execute(statement, plan_id)
    with pytest.raises(asyncpg.RaiseError, match="append-only: TRUNCATE"):
        await pool.execute("TRUNCATE audit_log")
    [entry] = await audit_log.entries(pool, plan_id=plan_id)
    assert entry.actor == "ana"


def test_an_actor_is_a_printable_name() -> None:
    assert actor_name(" ana ", configured="ops") == "ana"
    assert actor_name(None, configured="ops") == "ops"
    assert actor_name(None, configured=None)  # the login name
    for bad in ("", "   ", "a\nb", "x" * 201):
        with pytest.raises(InvalidInput, match="--by"):
            actor_name(bad, configured=None)


async def test_keys_suppressions_and_api_approvals_are_audited(
    pool: DbPool, stack_settings: Settings, cli_env: dict[str, str]
) -> None:
    tag = uuid.uuid4().hex[:6]
    plan = a_plan(f"api-appr-{tag}")
    await plan_store.publish(pool, plan, by="ana")
    path = f"/v1/plans/{plan.id}/versions/1/approval"
    made: list[str] = []
    try:
        async with serving_ingest(stack_settings) as url, httpx.AsyncClient(base_url=url) as http:
            # the open API cannot tell people apart, so it does not approve
            open_api = await http.post(path)
            assert open_api.status_code == 403 and "needs an API key" in open_api.text
        code, out, err = await journeys(cli_env, "keys", "create", f"ops-{tag}", "--scope",
                                        "admin", "--by", "ana")  # fmt: skip
        assert code == 0, err
        admin = out.split()[0]
        made.append(key_id_of(admin) or "")
        writer = await ApiKeyStore(pool).create(
            f"app-{tag}", scopes=["events:write"], rate=None, by="tests"
        )
        made.append(key_id_of(writer) or "")

        async with serving_ingest(stack_settings) as url, httpx.AsyncClient(base_url=url) as http:
            as_writer = await http.post(path, headers={"Authorization": f"Bearer {writer}"})
            assert as_writer.status_code == 403 and "lacks the scope admin" in as_writer.text
            headers = {"Authorization": f"Bearer {admin}"}
            approved = await http.post(path, headers=headers)
            assert approved.status_code == 200, approved.text
            assert approved.json()["approved_by"] == f"key:ops-{tag}"
            assert (await http.post(path, headers=headers)).status_code == 409
            missing = await http.post(f"/v1/plans/{plan.id}/versions/7/approval", headers=headers)
            assert missing.status_code == 404
            body = {"user_ids": [f"sup-{tag}"], "reason": "asked"}
            marked = await http.post("/v1/suppressions", headers=headers, json=body)
            assert marked.status_code == 200, marked.text
        code, _, err = await journeys(cli_env, "suppress", "remove", f"sup-{tag}", "--by", "ben")
        assert code == 0, err
        code, _, err = await journeys(cli_env, "keys", "revoke", made[0], "--by", "ben")
        assert code == 0, err
    finally:  # other tests' servers must find the API open again
        await pool.execute(
            "UPDATE api_keys SET revoked_at = now() WHERE key_id = ANY($1) AND revoked_at IS NULL",
            made,
        )

    def concerns_this_test(entry: AuditEntry) -> bool:
        users = entry.detail.get("user_ids")
        suppressed = isinstance(users, list) and f"sup-{tag}" in users
        return entry.subject in made or entry.plan_id == plan.id or suppressed

    found = await audit_log.entries(pool, limit=10_000)
    mine = [(e.action, e.actor, e.subject) for e in reversed(found) if concerns_this_test(e)]
    assert mine == [
        ("publish", "ana", None),
        ("key_create", "ana", made[0]),
        ("key_create", "tests", made[1]),
        ("approve", f"key:ops-{tag}", None),
        ("suppress", f"key:ops-{tag}", "suppress:*"),
        ("unsuppress", "ben", "suppress:*"),
        ("key_revoke", "ben", made[0]),
    ]
