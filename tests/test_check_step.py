"""A journey's ``check`` step asks a real local judgement service (tests/judge.py) about
pages of users at once, routes by its answers, retries it, falls back when it is down, and
records every answer."""

from __future__ import annotations

import uuid
from typing import Any

from starter.stack.probes import free_port
from tests.journey_runner import JourneyKit
from tests.judge import Judge

PAGE = 25


def plan(**service_change: Any) -> dict[str, Any]:
    return {
        "steps": {
            "risk": {
                "type": "check",
                "service": "risk",
                "attrs": ["risk_level"],
                "branches": [{"name": "pass", "when": "pass", "next": "hello"}],
                "else": "held",
                "on_failure": "later",
            },
            "hello": {"type": "send", "channel": "push", "template": "hello"},
            "held": {"type": "exit", "reason": "held by risk control"},
            "later": {"type": "send", "channel": "popup", "template": "hello"},
        },
        "limits": {"page_size": PAGE, "concurrency": 2},
    }


def service(url: str, **change: Any) -> dict[str, Any]:
    return {"risk": {"url": url, "secret": "judge-secret", "timeout": "1s", "attempts": 3,
                     "backoff": "10ms", "batch_size": 10, **change}}  # fmt: skip


async def answers(journey: JourneyKit, run_id: str) -> dict[str, tuple[str, Any, str | None]]:
    rows = await journey.pool.fetch(
        "SELECT user_id, outcome, answer, reason FROM check_answers WHERE run_id = $1", run_id
    )
    return {r["user_id"]: (r["outcome"], r["answer"], r["reason"]) for r in rows}


async def test_users_go_the_way_the_service_answers(journey: JourneyKit, judge: Judge) -> None:
    tag = uuid.uuid4().hex[:6]
    people = [f"chk{tag}-{n:02d}" for n in range(50)]
    judge.verdicts = {u: ("pass" if n % 3 else "reject") for n, u in enumerate(people[:45])}
    judge.fail_first = 2  # busy at first: the step tries again
    journey.use_services(service(judge.url))
    outcome = await journey.run(
        plan(),
        users=people,
        profiles={u: {"attrs": {"risk_level": "low", "secret_note": "x"}} for u in people},
    )
    passed = {u for u in people[:45] if judge.verdicts[u] == "pass"}
    for user in people:
        way = "hello" if user in passed else "held"
        assert outcome.users[user].path == ["risk", way], user
    assert {m["user_id"] for m in journey.receiver.messages().values()} == passed
    # pages of 25 asked 10 at a time: 6 requests answered, after the 2 refused
    answered = [r for r in judge.requests if r.status == 200]
    assert len(answered) == 6 and len(judge.requests) == 8
    assert all(r.signature_ok for r in judge.requests)
    sent = [u for r in answered for u in r.body["users"]]
    assert sorted(u["user_id"] for u in sent) == sorted(people)
    assert all(u["attrs"] == {"risk_level": "low"} for u in sent)  # only what the step names
    recorded = await answers(journey, outcome.run_id)
    assert {u for u, (o, _, _) in recorded.items() if o == "missing"} == set(people[45:])
    assert recorded[people[1]] == (
        "answered", {"user_id": people[1], "verdict": "pass", "score": 7}, None
    )  # fmt: skip
    assert outcome.nodes["risk"].routes == {
        "pass": len(passed), "else": len(people) - len(passed)
    }  # fmt: skip


async def test_a_service_that_stays_down_sends_users_to_the_fallback(
    journey: JourneyKit,
) -> None:
    tag = uuid.uuid4().hex[:6]
    people = [f"chd{tag}-{n:02d}" for n in range(30)]
    journey.use_services(service(f"http://127.0.0.1:{free_port()}/risk/check"))  # nobody there
    outcome = await journey.run(plan(), users=people)
    assert outcome.paths() == {u: ["risk", "later"] for u in sorted(people)}
    assert outcome.nodes["risk"].routes == {"failed": 30}
    recorded = await answers(journey, outcome.run_id)
    assert {o for o, _, _ in recorded.values()} == {"failed"}
    assert all(r is not None and r.startswith("3 attempts; last: unreachable") for *_, r in
               recorded.values())  # fmt: skip


async def test_a_service_slower_than_its_timeout_counts_as_down(
    journey: JourneyKit, judge: Judge
) -> None:
    tag = uuid.uuid4().hex[:6]
    people = [f"chs{tag}-{n:02d}" for n in range(5)]
    judge.default = "pass"
    judge.delay = 0.5
    journey.use_services(service(judge.url, timeout="100ms", attempts=2))
    outcome = await journey.run(plan(), users=people)
    assert outcome.paths() == {u: ["risk", "later"] for u in sorted(people)}
    recorded = await answers(journey, outcome.run_id)
    assert {r for *_, r in recorded.values()} == {"2 attempts; last: no answer within 0.1s"}
