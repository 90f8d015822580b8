"""The delivery gate against a real Redis: order, caps, budgets, idempotence, release."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time, timedelta

import redis.asyncio as aioredis

from activities.controls.gate import Deferral, DeliveryGate
from journeys.contracts.controls import CapRule, Controls, QuietRule, SpendRule
from journeys.names import budget_key, sent_history_key, suppression_key

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def users(n: int) -> list[str]:
    tag = uuid.uuid4().hex[:6]
    return [f"g{tag}-{i}" for i in range(n)]


def controls(**fields: object) -> Controls:
    return Controls.model_validate({"plan_id": f"p{uuid.uuid4().hex[:6]}", **fields})


async def check(
    gate: DeliveryGate,
    rules: Controls,
    people: list[str],
    *,
    run: str = "run-a",
    channel: str = "sms",
    now: datetime = NOW,
    zones: dict[str, str | None] | None = None,
    cost: float = 0.0,
) -> dict[str, str]:
    verdict = await gate.check(
        rules,
        channel=channel,
        run_id=run,
        node="send",
        entries=dict.fromkeys(people, 0),
        zones=zones or {},
        now=now,
        cost=cost,
    )
    out = dict.fromkeys(verdict.passed, "ok")
    out.update(verdict.skipped)
    out.update(dict.fromkeys(verdict.deferred, "defer"))
    return out


DAILY = CapRule(max=1, per=timedelta(days=1), reason="cap")


async def test_a_cap_counts_across_runs_and_a_replayed_page_counts_once(
    redis: aioredis.Redis,
) -> None:
    gate, people = DeliveryGate(redis), users(3)
    rules = controls(caps=[DAILY])
    assert await check(gate, rules, people) == dict.fromkeys(people, "ok")
    # the same page again (a retry, a replay): the same messages pass, nothing counted twice
    assert await check(gate, rules, people) == dict.fromkeys(people, "ok")
    # another run's message to the same users within the day is over the cap
    assert await check(gate, rules, people, run="run-b") == dict.fromkeys(people, "cap")
    # a day later the window has moved on
    later = NOW + timedelta(days=1, seconds=1)
    assert await check(gate, rules, people, run="run-c", now=later) == dict.fromkeys(people, "ok")


async def test_plan_caps_count_their_own_plan_and_channel_caps_their_channel(
    redis: aioredis.Redis,
) -> None:
    gate, people = DeliveryGate(redis), users(2)
    week = timedelta(days=7)
    first = controls(caps=[CapRule(max=1, per=week, plan="weekly", reason="plan_cap")])
    first = first.model_copy(update={"plan_id": "weekly"})
    assert await check(gate, first, people, run="weekly-1") == dict.fromkeys(people, "ok")
    later = NOW + timedelta(days=3)
    assert await check(gate, first, people, run="weekly-2", now=later) == dict.fromkeys(
        people, "plan_cap"
    )
    # another plan is not held back by the weekly plan's own cap
    other = controls(caps=[CapRule(max=1, per=week, plan="other", reason="plan_cap")])
    other = other.model_copy(update={"plan_id": "other"})
    assert await check(gate, other, people, run="other-1") == dict.fromkeys(people, "ok")
    # a per-channel cap counts sms only: the push message passes, a second sms does not
    sms_cap = controls(caps=[CapRule(max=2, per=week, channel="sms", reason="channel_cap")])
    assert await check(gate, sms_cap, people, run="x", channel="push") == dict.fromkeys(
        people, "ok"
    )
    assert await check(gate, sms_cap, people, run="y", channel="sms") == dict.fromkeys(
        people, "channel_cap"
    )


async def test_suppression_comes_first_and_the_allow_list_skips_caps(
    redis: aioredis.Redis,
) -> None:
    gate = DeliveryGate(redis)
    everywhere, on_sms, tester, plain = users(4)
    await redis.sadd(suppression_key(everywhere), "*")
    await redis.sadd(suppression_key(on_sms), "sms")
    await redis.sadd(suppression_key(tester), "+allow")
    quiet = QuietRule(
        start=time(11), end=time(13), mode="drop", fallback="UTC", max_defer=timedelta(hours=12)
    )
    rules = controls(caps=[DAILY], quiet=quiet)
    people = [everywhere, on_sms, tester, plain]
    # at noon UTC everyone is inside quiet hours: suppression still names its users
    assert await check(gate, rules, people) == {
        everywhere: "suppressed",
        on_sms: "suppressed",
        tester: "ok",  # test users are exempt from quiet hours and caps
        plain: "quiet_hours",
    }
    assert await check(gate, rules, [on_sms], channel="push") == {on_sms: "quiet_hours"}
    assert await check(gate, rules, [tester], run="again") == {tester: "ok"}


async def test_transactional_sends_skip_marketing_controls_and_do_not_count(
    redis: aioredis.Redis,
) -> None:
    gate = DeliveryGate(redis)
    blocked, person = users(2)
    await redis.sadd(suppression_key(blocked), "*")
    quiet = QuietRule(
        start=time(11), end=time(13), mode="drop", fallback="UTC", max_defer=timedelta(hours=1)
    )
    notice = controls(transactional=True, caps=[DAILY], quiet=quiet)
    for run in ("order-1", "order-2"):
        assert await check(gate, notice, [blocked, person], run=run) == {
            blocked: "suppressed",
            person: "ok",
        }
    # two order notices did not use up the marketing cap
    assert await check(gate, controls(caps=[DAILY]), [person], run="promo") == {person: "ok"}


async def test_a_budget_runs_out_and_a_release_gives_back_once(redis: aioredis.Redis) -> None:
    gate, people = DeliveryGate(redis), users(5)
    run = f"run-{uuid.uuid4().hex[:6]}"
    budget = SpendRule(key=budget_key(run, "sms"), max_messages=3, reason="budget")
    rules = controls(budget=budget)
    verdict = await check(gate, rules, people, run=run)
    assert [verdict[u] for u in people] == ["ok", "ok", "ok", "budget", "budget"]
    assert await redis.hget(budget.key, "n") == b"3"
    # a permanent failure gives its place back, once however often it is released
    for _ in range(2):
        await gate.release(
            rules, channel="sms", run_id=run, node="send", entries=[(people[0], 0)], cost=0.0
        )
    assert await redis.hget(budget.key, "n") == b"2"
    assert await check(gate, rules, people[3:], run=run) == {people[3]: "ok", people[4]: "budget"}


async def test_a_money_budget_prices_messages_by_the_channel_cost(redis: aioredis.Redis) -> None:
    gate, people = DeliveryGate(redis), users(4)
    run = f"run-{uuid.uuid4().hex[:6]}"
    budget = SpendRule(key=budget_key(run, "sms"), max_cost=0.1, reason="budget")
    verdict = await check(gate, controls(budget=budget), people, run=run, cost=0.04)
    assert sorted(verdict.values()) == ["budget", "budget", "ok", "ok"]
    assert abs(float(await redis.hget(budget.key, "c") or 0) - 0.08) < 1e-9


async def test_quiet_hours_defer_by_each_users_zone(redis: aioredis.Redis) -> None:
    gate = DeliveryGate(redis)
    shanghai, london, nowhere = users(3)
    quiet = QuietRule(
        start=time(20), end=time(8), mode="defer", fallback="UTC", max_defer=timedelta(hours=12)
    )
    zones = {shanghai: "Asia/Shanghai", london: "Europe/London", nowhere: "Not/AZone"}
    # 12:00 UTC is 20:00 in Shanghai (quiet until 08:00 there, 00:00 UTC), noon in London
    verdict = await gate.check(
        controls(quiet=quiet),
        channel="push",
        run_id="r",
        node="send",
        entries=dict.fromkeys([shanghai, london, nowhere], 0),
        zones=zones,
        now=NOW,
        cost=0.0,
    )
    assert verdict.deferred == {
        shanghai: Deferral(datetime(2026, 12, 2, 0, 0, tzinfo=UTC), "quiet_hours")
    }
    assert sorted(verdict.passed) == sorted([london, nowhere])  # a bad zone falls back to UTC


WINDOW = timedelta(seconds=10)


def bidder(priority: int, plan: str) -> Controls:
    return Controls(plan_id=plan, caps=[DAILY], priority=priority, arbitration=WINDOW)


async def arbitrate(
    gate: DeliveryGate, rules: Controls, people: list[str], *, at: datetime, confirm: bool
) -> dict[str, str]:
    verdict = await gate.check(
        rules,
        channel="sms",
        run_id=f"run-{rules.plan_id}",
        node="send",
        entries=dict.fromkeys(people, 0),
        zones={},
        now=at,
        cost=0.0,
        confirm=confirm,
    )
    out = dict.fromkeys(verdict.passed, "ok")
    out.update(verdict.skipped)
    out.update({u: d.reason for u, d in verdict.deferred.items()})
    return out


async def test_the_higher_priority_plan_takes_a_capped_slot_whoever_bid_first(
    redis: aioredis.Redis,
) -> None:
    gate = DeliveryGate(redis)
    low, high = bidder(50, "low"), bidder(70, "high")
    for first, second in ((low, high), (high, low)):
        people = users(3)
        t0 = NOW
        assert await arbitrate(gate, first, people, at=t0, confirm=False) == dict.fromkeys(
            people, "arbitration"
        )
        t1 = t0 + timedelta(seconds=2)
        assert await arbitrate(gate, second, people, at=t1, confirm=False) == dict.fromkeys(
            people, "arbitration"
        )
        confirmed_first = await arbitrate(gate, first, people, at=t0 + WINDOW, confirm=True)
        confirmed_second = await arbitrate(gate, second, people, at=t1 + WINDOW, confirm=True)
        by_plan = {first.plan_id: confirmed_first, second.plan_id: confirmed_second}
        assert by_plan["high"] == dict.fromkeys(people, "ok")
        # outbid while both waited, or over the cap once the winner confirmed
        expected = "priority" if first is low else "cap"
        assert by_plan["low"] == dict.fromkeys(people, expected)
        # a replayed confirm passes its winners again and counts nothing twice
        again = await arbitrate(gate, high, people, at=t1 + WINDOW, confirm=True)
        assert again == dict.fromkeys(people, "ok")


async def test_equal_priorities_go_to_the_earlier_bid(redis: aioredis.Redis) -> None:
    gate, people = DeliveryGate(redis), users(2)
    early, late = bidder(60, "early"), bidder(60, "late")
    await arbitrate(gate, early, people, at=NOW, confirm=False)
    await arbitrate(gate, late, people, at=NOW + timedelta(seconds=1), confirm=False)
    # the later bid confirms first, yet yields to the earlier one of the same priority
    late_at = NOW + timedelta(seconds=1) + WINDOW
    assert await arbitrate(gate, late, people, at=late_at, confirm=True) == dict.fromkeys(
        people, "priority"
    )
    assert await arbitrate(gate, early, people, at=NOW + WINDOW, confirm=True) == dict.fromkeys(
        people, "ok"
    )


async def test_a_retry_pass_checks_suppression_again_and_gives_the_slot_back(
    redis: aioredis.Redis,
) -> None:
    gate, (person,) = DeliveryGate(redis), users(1)
    run = f"run-{uuid.uuid4().hex[:6]}"
    budget = SpendRule(key=budget_key(run, "sms"), max_messages=10, reason="budget")
    rules = controls(caps=[DAILY], budget=budget)

    async def attempt(*, recheck: bool) -> dict[str, str]:
        verdict = await gate.check(
            rules,
            channel="sms",
            run_id=run,
            node="send",
            entries={person: 0},
            zones={},
            now=NOW,
            cost=0.0,
            recheck=recheck,
        )
        return {**dict.fromkeys(verdict.passed, "ok"), **verdict.skipped}

    assert await attempt(recheck=False) == {person: "ok"}  # reserved; the send fails, retried
    await redis.sadd(suppression_key(person), "*")  # unsubscribes before the retry pass
    assert await attempt(recheck=False) == {person: "ok"}  # a re-execution of the same page
    assert await attempt(recheck=True) == {person: "suppressed"}  # the retry pass
    assert await redis.hget(budget.key, "n") == b"0"  # its place is given back
    assert await redis.zcard(sent_history_key(person)) == 0
