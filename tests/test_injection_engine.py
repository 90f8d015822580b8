"""Injection against the running engine: hostile rule values select data, never run as SQL,
and an operator's SQL audience that would run forever or reach past its role fails the run
loudly, naming the reason, with nothing sent."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from temporalio.client import WorkflowFailureError

from activities.audience import materialise as materialising
from tests.journey_runner import JourneyKit

PAYLOADS = [
    "'; DROP TABLE users; --",
    "x' OR '1'='1",
    "%",
    "_",
    "\\",
    "$1",
    "); DELETE FROM events; --",
    "Robert'); UPDATE users SET attrs = '{}'; --",
]


async def test_hostile_rule_values_are_data_in_a_run(journey: JourneyKit) -> None:
    tag = uuid.uuid4().hex[:8]
    profiles = {
        f"inj-{tag}-{n}": {"attrs": {"name": payload, "batch": tag}}
        for n, payload in enumerate(PAYLOADS)
    }
    profiles[f"inj-{tag}-plain"] = {"attrs": {"name": "plain", "batch": tag}}
    before = await journey.pool.fetchval("SELECT count(*) FROM users")
    for n, payload in enumerate(PAYLOADS):
        rule = {"all": [
            {"tag": "batch", "op": "eq", "value": tag},
            {"any": [{"tag": "name", "op": "eq", "value": payload},
                     {"tag": "name", "op": "contains", "value": payload}]},
        ]}  # fmt: skip
        body = {
            "audience": {"source": "segment", "rule": rule},
            "steps": {"hello": {"type": "send", "channel": "push", "template": "hello"}},
        }
        outcome = await journey.run(body, users=None, profiles=profiles if n == 0 else None)
        # exactly the users whose name holds the payload as text: a wildcard is a character
        holders = {u for u, p in profiles.items() if payload in str(p["attrs"]["name"])}
        assert set(outcome.users) == holders, payload
    after = await journey.pool.fetchval("SELECT count(*) FROM users")
    assert after == before + len(profiles)  # nothing dropped, deleted or rewritten
    names = await journey.pool.fetch(
        "SELECT user_id, attrs->>'name' AS name FROM users WHERE attrs->>'batch' = $1", tag
    )
    assert {r["user_id"]: r["name"] for r in names} == {
        u: p["attrs"]["name"] for u, p in profiles.items()
    }


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        # rows flow at once and never end (new ids each, which would fill Redis): the time
        # limit is the whole query's, not each fetch's
        (
            "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) "
            "SELECT 'flood-' || n AS user_id FROM r",
            "ran longer than 500ms and was stopped",
        ),
        (  # one statement that never reaches its first row
            "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) "
            "SELECT u.user_id FROM users u WHERE u.user_id = (SELECT max(n)::text FROM r)",
            "ran longer than 500ms and was stopped",
        ),
    ],
)
async def test_a_runaway_sql_audience_fails_the_run_by_name(
    journey: JourneyKit, monkeypatch: pytest.MonkeyPatch, query: str, reason: str
) -> None:
    monkeypatch.setattr(materialising, "SQL_AUDIENCE_TIMEOUT", timedelta(milliseconds=500))
    body = {
        "audience": {"source": "sql", "query": query},
        "steps": {"hello": {"type": "send", "channel": "push", "template": "hello"}},
    }
    with pytest.raises(WorkflowFailureError) as failed:
        await journey.run(body, users=None)
    text = str(failed.value.cause) + str(getattr(failed.value.cause, "cause", ""))
    assert "audience.query" in text and reason in text, text
    assert journey.receiver.messages() == {}
