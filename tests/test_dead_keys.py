"""An event-triggered shard deletes the keys of cohorts that left it at its next admission:
a shard listening for days must not keep every cohort it ever admitted (real services)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from journeys.contracts.counters import Counters
from journeys.names import entry_marks_key, run_keys_pattern
from tests.journey_runner import (
    Advance,
    Check,
    JourneyKit,
    LiveRun,
    Post,
    UntilListening,
    UntilShard,
)


def joined_entry() -> dict[str, object]:
    """Entry by ``joined`` events, flushed every second, open for three hours."""
    window_end = datetime.now(UTC) + timedelta(hours=3)
    return {
        "type": "event",
        "event": "joined",
        "reentry": "when_absent",
        "flush_every": "1s",
        "flush_size": 50,
        "window": {"end": window_end.isoformat()},
    }


async def cohort_keys(journey: JourneyKit, run_id: str) -> list[str]:
    """The run's cohort keys in Redis, past their ``…:c:`` prefix."""
    pattern = run_keys_pattern(run_id)
    keys = sorted([raw.decode() async for raw in journey.redis.scan_iter(match=pattern)])
    return [k.split(":c:", 1)[1] for k in keys if ":c:" in k]


async def test_cohorts_that_left_lose_their_keys_at_the_next_admission(
    journey: JourneyKit, ingest_url: str
) -> None:
    journey.use_ingest(ingest_url)
    tag = uuid.uuid4().hex[:6]
    u = [f"dk-{tag}-{n}" for n in range(4)]
    journey.receiver.status_for[u[2]] = 503  # u2's welcome waits for a retry pass

    def joined(user: str, kind: str) -> dict[str, object]:
        return {"user_id": user, "name": "joined", "props": {"kind": kind}}

    first_keys: list[str] = []
    left_keys: list[str] = []

    async def provider_back(live: LiveRun) -> None:
        del journey.receiver.status_for[u[2]]

    async def the_first_batch_is_kept(live: LiveRun) -> None:
        first_keys.extend(await cohort_keys(journey, live.run_id))

    async def only_the_second_batch_is_kept(live: LiveRun) -> None:
        left_keys.extend(await cohort_keys(journey, live.run_id))
        marks = await journey.redis.hkeys(entry_marks_key(live.run_id, 0))
        assert sorted(m.decode() if isinstance(m, bytes) else m for m in marks) == ["in1"]

    outcome = await journey.run(
        {
            "entry": joined_entry(),
            "steps": {
                "pick": {
                    "type": "branch",
                    "branches": [
                        {
                            "name": "a",
                            "rule": {"tag": "entry.kind", "op": "eq", "value": "a"},
                            "next": "welcome",
                        }
                    ],
                    "else": "nudge",
                },
                "welcome": {
                    "type": "send",
                    "channel": "push",
                    "template": "hello",
                    "next": "heard",
                },
                "heard": {
                    "type": "wait_for_event",
                    "event": "clicked",
                    "within": "1h",
                    "on_event": "thanks",
                    "on_timeout": "nudge",
                },
                "thanks": {"type": "send", "channel": "popup", "template": "hello"},
                "nudge": {"type": "send", "channel": "sms", "template": "nudge"},
            },
            "limits": {"retry": {"attempts": 2, "backoff": "1s"}},
        },
        users=None,
        skipping=False,
        script=[
            UntilListening("joined"),
            Post([joined(u[0], "a"), joined(u[1], "b"), joined(u[2], "a")]),
            UntilShard(lambda s: s.counters.delivered == 2 and s.counters.retrying == 1),
            Check(provider_back),
            UntilShard(lambda s: s.counters.delivered == 3 and s.counters.retrying == 0),
            Post([{"user_id": u[0], "name": "clicked"}]),
            UntilShard(lambda s: s.counters.delivered == 4),
            Advance(timedelta(hours=1, minutes=1)),  # u2's wait times out: nudged
            UntilShard(lambda s: s.counters.delivered == 5),
            Check(the_first_batch_is_kept),
            Post([joined(u[3], "b")]),  # the next admission deletes the first batch's keys
            UntilShard(lambda s: s.counters.delivered == 6),
            Check(only_the_second_batch_is_kept),
            Advance(timedelta(hours=2)),  # the window closes, the run ends
        ],
    )

    # before the second admission, the first batch's keys were all there: its sub-cohorts,
    # the routing marks, the caught set, and the pass a retry took over from
    assert {"in0", "in0>pick:pages", "in0>pick.b0>welcome.p1>heard.caught"} <= set(first_keys)
    assert any(k.endswith(".r1") for k in first_keys), first_keys
    # every cohort of the first batch (sub-cohorts, retry pass, caught set, routing marks)
    # is gone; the second batch's wait for the third admission or the run's cleanup
    assert left_keys and all(k.startswith("in1") for k in left_keys), left_keys
    assert "in1" in left_keys
    assert outcome.result.totals.delivered == 6
    assert outcome.users[u[0]].path == ["pick", "welcome", "heard", "thanks"]
    assert outcome.users[u[1]].path == ["pick", "nudge"]
    assert outcome.users[u[2]].path == ["pick", "welcome", "heard", "nudge"]
    assert outcome.users[u[3]].path == ["pick", "nudge"]


async def test_routes_that_lead_nowhere_lose_their_keys_too(
    journey: JourneyKit, ingest_url: str
) -> None:
    # a control arm, a branch without an else, and a wait with no timeout step: each route
    # writes a key that no cohort ever holds
    journey.use_ingest(ingest_url)
    tag = uuid.uuid4().hex[:6]
    users = [f"dn-{tag}-{n}" for n in range(12)]
    keys: dict[str, list[str]] = {"first": [], "left": []}

    async def first(live: LiveRun) -> None:
        keys["first"].extend(await cohort_keys(journey, live.run_id))

    async def left(live: LiveRun) -> None:
        keys["left"].extend(await cohort_keys(journey, live.run_id))

    joined = [{"user_id": u, "name": "joined"} for u in users]
    outcome = await journey.run(
        {
            "entry": joined_entry(),
            "steps": {
                "split": {
                    "type": "ab_split",
                    "arms": [
                        {"name": "test", "weight": 50, "next": "heard"},
                        {"name": "holdout", "weight": 50, "control": True},
                    ],
                },
                "heard": {
                    "type": "wait_for_event",
                    "event": "clicked",
                    "within": "1h",
                    "on_event": "thanks",
                },
                "thanks": {"type": "send", "channel": "popup", "template": "hello"},
            },
        },
        users=None,
        skipping=False,
        script=[
            UntilListening("joined"),
            Post(joined[:11]),
            UntilShard(lambda s: s.nodes.get("split", Counters()).entered == 11),
            Advance(timedelta(hours=1, minutes=1)),  # every wait times out: the journeys end
            UntilShard(lambda s: s.counters.completed == 11),
            Check(first),
            Post(joined[11:]),  # the next admission deletes the first batch's keys
            UntilShard(lambda s: s.nodes.get("split", Counters()).entered == 12),
            Check(left),
            Advance(timedelta(hours=2)),
        ],
    )
    assert any(k.startswith("in0>split.") for k in keys["first"]), keys["first"]
    assert keys["left"] and all(k.startswith("in1") for k in keys["left"]), keys["left"]
    assert outcome.result.totals.completed == 12
