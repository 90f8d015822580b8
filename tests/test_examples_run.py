"""Every plan in ``examples/`` run end to end as an operator would, through the journey kit
(real worker, Temporal, Redis, PostgreSQL, the channels of ``examples/channels.yaml`` posting
to a real HTTP receiver), with each user's path and messages asserted.

instalments-ab and tonight-popup-ab select their users with their own audiences (segments
compiled to SQL, and their difference); the others run on an uploaded list (``journeys launch
--audience FILE``) so their counts see only the test's users.
member-day and weekly-digest are on a schedule: here each runs as one occurrence of its
schedule would start it (its entry made immediate) with every user's outcome checked, and the
last test checks each becomes a Temporal Schedule (tests/test_schedule_cli.py runs schedules
themselves: trigger, backfill, updates).
``cancelled-order-recall`` and ``order-shipped`` have their own files (test_example_recall.py,
test_example_order_shipped.py); ``daily-checkin`` and ``birthday-week`` run over several
occurrences of their schedules in test_calendar_examples.py (with the two above);
``checkout-offer`` needs its decision instance published (test_decide_step.py)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from journeys.ab import assign
from journeys.contracts.counters import RunStatus
from journeys.contracts.runs import RunProgress
from journeys.errors import JourneysError
from journeys.events import JourneyEvent
from journeys.plan.steps import AbSplitStep
from starter.launching import start_time
from starter.plan_files import NOT_PLANS, read_plan
from starter.schedules import plan_schedule
from tests.engine import ROOT
from tests.journey_kit import awake_zone
from tests.journey_runner import Advance, JourneyKit, Send, UntilRun
from tests.judge import Judge
from tests.receiver import SmtpSink

EXAMPLES = ROOT / "examples"
RUN_ELSEWHERE = {
    "cancelled-order-recall",
    "order-shipped",
    "daily-checkin",
    "birthday-week",
    "checkout-offer",
}
SCHEDULED = {"member-day", "weekly-digest"}
"""Schedule entries: launched as Temporal Schedules (tests/test_schedule_cli.py); here each
runs one occurrence, with its users' outcomes checked."""


def arm_of(plan_file: Path, node: str, users: list[str]) -> dict[str, str]:
    split = read_plan(plan_file, channels=None).steps[node]
    assert isinstance(split, AbSplitStep)
    return {u: split.arms[assign(split.arms, salt=split.salt or "", user_id=u)].name for u in users}


def test_every_example_is_run_somewhere() -> None:
    stems = {p.stem for p in EXAMPLES.glob("*.yaml") if p.name not in NOT_PLANS}
    here = {"welcome-blast", "push-click-sms", "instalments-ab", "tonight-popup-ab"}
    here |= SCHEDULED  # one occurrence each
    assert stems == here | RUN_ELSEWHERE


async def test_welcome_blast(journey: JourneyKit) -> None:
    journey.use_example_channels()
    users = [f"wb-{uuid.uuid4().hex[:6]}-{n:03d}" for n in range(120)]
    outcome = await journey.run(EXAMPLES / "welcome-blast.yaml", users=users)

    assert outcome.paths() == {u: ["welcome"] for u in sorted(users)}
    assert all(outcome.users[u].messages == ["welcome"] for u in users)
    rows = await journey.pool.fetch(
        "SELECT user_id, slot, title FROM inbox WHERE message_id LIKE $1", f"{outcome.run_id}:%"
    )
    assert sorted(r["user_id"] for r in rows) == sorted(users)
    assert {(r["slot"], r["title"]) for r in rows} == {("popup", "Welcome!")}
    assert outcome.result.totals.delivered == 120 and outcome.result.status is RunStatus.COMPLETED


async def test_push_click_sms(journey: JourneyKit) -> None:
    journey.use_example_channels()
    plan_file = EXAMPLES / "push-click-sms.yaml"
    users = [f"pcs-{uuid.uuid4().hex[:6]}-{n:03d}" for n in range(160)]
    arm = arm_of(plan_file, "split", users)
    waiting = sorted(u for u in users if arm[u] == "push_then_sms")
    clickers, leaver = set(waiting[:10]), waiting[10]
    events = [
        JourneyEvent(user_id=u, name="push_clicked", props={"campaign": "comeback"})
        for u in sorted(clickers)
    ]
    events.append(  # another campaign's click does not count
        JourneyEvent(user_id=waiting[11], name="push_clicked", props={"campaign": "other"})
    )
    events.append(JourneyEvent(user_id=leaver, name="unsubscribed"))
    zone = awake_zone(plan_file)  # its quiet hours are in force: send while users are awake
    outcome = await journey.run(
        plan_file,
        users=users,
        profiles={u: {"timezone": zone} for u in users},
        skipping=False,
        script=[
            UntilRun(
                lambda p: sum(w.users for w in p.waits if w.node == "wait_click") == len(waiting)
            ),
            Send(events),
            UntilRun(lambda p: _caught(p) == len(clickers)),
            Advance(timedelta(days=3, minutes=1)),  # the click window, then the goal window
        ],
    )

    for user in users:
        got = outcome.users[user]
        if arm[user] == "holdout":
            assert (got.path, got.messages) == (["split"], [])
        elif arm[user] == "push_only":
            assert (got.path, got.messages) == (["split", "push_only"], ["push_only"])
        elif user in clickers:
            assert got.path == ["split", "push", "wait_click", "clicked"]
            assert got.messages == ["push"]
        elif user == leaver:
            assert got.exited and got.path == ["split", "push", "wait_click"]
            assert got.messages == ["push"]
        else:
            assert got.path == ["split", "push", "wait_click", "sms"]
            assert got.messages == ["push", "sms"]
    pushes = [m for key, m in journey.receiver.messages().items() if ":push:" in key]
    assert len(pushes) == len(waiting)  # the app reports clicks with the campaign it carries
    assert all(m["content"]["payload"] == {"campaign": "comeback"} for m in pushes)
    assert outcome.result.totals.exited == 1
    assert outcome.nodes["wait_click"].routes == {
        "event": len(clickers),
        "timeout": len(waiting) - len(clickers) - 1,
    }


def _caught(progress: RunProgress) -> int:
    return sum(
        s.nodes["wait_click"].routes.get("event", 0)
        for s in progress.per_shard
        if "wait_click" in s.nodes
    )


async def test_instalments_ab(journey: JourneyKit) -> None:
    """The plan's own segment picks the audience (compiled to SQL); those it leaves out get
    nothing, the others their arm's offer and the reminder."""
    journey.use_example_channels()
    plan_file = EXAMPLES / "instalments-ab.yaml"
    tag = uuid.uuid4().hex[:6]
    users = [f"ins-{tag}-{n:03d}" for n in range(40)]
    eligible: dict[str, Any] = {"risk_level": "low", "credit_limit": 2000, "loan_active": False}
    profiles = {u: {"timezone": "Europe/Berlin", "attrs": dict(eligible)} for u in users}
    left_out: dict[str, dict[str, Any]] = {
        f"ins-{tag}-risky": {"attrs": eligible | {"risk_level": "high"}},
        f"ins-{tag}-poor": {"attrs": eligible | {"credit_limit": 999}},
        f"ins-{tag}-loan": {"attrs": eligible | {"loan_active": True}},
        f"ins-{tag}-unknown": {"attrs": {"credit_limit": 5000}},
    }
    arm = arm_of(plan_file, "offer", users)
    outcome = await journey.run(plan_file, users=None, profiles=profiles | left_out)

    assert set(left_out).isdisjoint(outcome.users)
    assert set(users) <= set(outcome.users)
    for user in users:
        n = 3 if arm[user] == "three_instalments" else 6
        got = outcome.users[user]
        offer = [f"set_offer_{n}", f"tell_{n}"]
        assert got.path == ["morning", "offer", *offer, "give_it_time", "remind"]
        assert got.messages == [f"tell_{n}", "remind"]
        assert got.arms == {"offer": arm[user]}
    rows = await journey.pool.fetch(
        "SELECT user_id, attrs FROM users WHERE user_id = ANY($1)", [*users, *left_out]
    )
    offers = {r["user_id"]: r["attrs"].get("instalment_offer") for r in rows}
    assert offers == {u: (3 if arm[u] == "three_instalments" else 6) for u in users} | {
        u: None for u in left_out
    }
    reminders = {
        m["user_id"]: m["content"]["body"]
        for key, m in journey.receiver.messages().items()
        if ":remind:" in key
    }
    assert reminders[users[1]].startswith(f"[Shop] Your {offers[users[1]]}-instalment offer")


async def test_tonight_popup_ab(journey: JourneyKit, judge: Judge) -> None:
    journey.use_example_channels(judge_url=judge.url)
    plan_file = EXAMPLES / "tonight-popup-ab.yaml"
    tag = uuid.uuid4().hex[:6]
    users = [f"tp-{tag}-{n:03d}" for n in range(60)]
    held = set(users[:6])  # rejected by risk control, or unknown to it
    judge.verdicts = {u: "reject" for u in users[:3]} | {u: "pass" for u in users[6:]}
    judge.verdicts[f"tp-{tag}-bought"] = "pass"
    # the plan's own audience: active in the app this week, minus who ordered in the last day
    # (relative to when the audience is evaluated: now, on the wall clock)
    now = datetime.now(UTC)
    active = {"last_active_at": (now - timedelta(days=2)).isoformat(), "app_installed": True}
    profiles = {u: {"attrs": active | {"risk_level": "low"}} for u in users[6:]}
    profiles |= {u: {"attrs": active | {"risk_level": "medium"}} for u in users[:3]}
    profiles |= {u: {"attrs": dict(active)} for u in users[3:6]}
    stale, no_app, bought = (f"tp-{tag}-{kind}" for kind in ("stale", "no-app", "bought"))
    profiles[stale] = {"attrs": active | {"last_active_at": (now - timedelta(days=9)).isoformat()}}
    profiles[no_app] = {"attrs": active | {"app_installed": False}}
    profiles[bought] = {"attrs": active | {"risk_level": "low"}}
    order = JourneyEvent(user_id=bought, name="order_placed", ts=now - timedelta(hours=2))
    arm = arm_of(plan_file, "picks", users)
    outcome = await journey.run(plan_file, users=None, profiles=profiles, history=[order])

    assert {stale, no_app, bought}.isdisjoint(outcome.users)
    for user in users:
        got = outcome.users[user]
        if user in held:
            assert (got.path, got.messages) == (["risk_check", "held_by_risk"], [])
        elif arm[user] == "holdout":
            assert (got.path, got.messages) == (["risk_check", "picks"], [])
        else:
            node = f"popup_{arm[user]}"
            assert (got.path, got.messages) == (["risk_check", "picks", node], [node])
    # other tests' users may fit the segment too (unknown to the judge: held); ours went each way
    routes = outcome.nodes["risk_check"].routes
    assert routes["cleared"] == 54 and routes["else"] >= 6
    asked = {u["user_id"] for r in judge.requests for u in r.body["users"]}
    assert set(users) <= asked and {stale, no_app, bought}.isdisjoint(asked)


def one_occurrence(stem: str) -> dict[str, Any]:
    """The plan of ``stem`` as one occurrence of its schedule starts it: entry immediate."""
    body: dict[str, Any] = yaml.safe_load((EXAMPLES / f"{stem}.yaml").read_text())
    return body | {"entry": {"type": "immediate"}}


async def test_member_day_occurrence(journey: JourneyKit) -> None:
    """One member day: its own segment (gold and platinum members), the coupon webhook, the
    tag, the push, the 19:00 local reminder."""
    journey.use_example_channels()
    tag = uuid.uuid4().hex[:6]
    members = {f"md-{tag}-{n:02d}": ("gold", "platinum")[n % 2] for n in range(12)}
    others = {f"md-{tag}-silver": "silver", f"md-{tag}-none": None}
    # its quiet hours (22:00-08:00, drop) are in force: most members are awake now, two are
    # where it is night: their push is dropped, the coupon (a webhook) and the 19:00 SMS not
    awake = awake_zone(EXAMPLES / "member-day.yaml")
    night = awake_zone(EXAMPLES / "member-day.yaml", now=datetime.now(UTC) + timedelta(hours=12))
    asleep = set(list(members)[:2])
    profiles: dict[str, dict[str, Any]] = {
        u: {
            "timezone": night if u in asleep else awake,
            "phone": "+8613800000000",
            "attrs": {} if level is None else {"member_level": level},
        }
        for u, level in (members | others).items()
    }
    outcome = await journey.run(one_occurrence("member-day"), users=None, profiles=profiles)

    assert set(others).isdisjoint(outcome.users)
    for user in members:
        got = outcome.users[user]
        assert got.path == ["grant", "mark", "announce", "evening", "remind"], user
        sent = ["grant", "remind"] if user in asleep else ["grant", "announce", "remind"]
        assert got.messages == sent, user
    assert outcome.nodes["announce"].skipped == {"quiet_hours": 2}
    rows = await journey.pool.fetch(
        "SELECT user_id, attrs FROM users WHERE user_id = ANY($1)", list(members)
    )
    assert {r["user_id"]: r["attrs"]["last_member_day"] for r in rows} == dict.fromkeys(
        members, "granted"
    )
    assert all("member_day_coupon" in r["attrs"]["tags"] for r in rows)


async def test_weekly_digest_occurrence(journey: JourneyKit) -> None:
    """One Monday: browsers (three page views in 14 days) who did not order and accept email,
    each sent the digest by email (to a real SMTP server on this machine)."""
    tag = uuid.uuid4().hex[:6]
    now = datetime.now(UTC)
    browsers = [f"wd-{tag}-{n:02d}" for n in range(8)]
    bought, browsed_twice, no_email = (f"wd-{tag}-{k}" for k in ("bought", "twice", "no-email"))
    everyone = [*browsers, bought, browsed_twice, no_email]
    profiles = {
        u: {"email": f"{u}@example.com", "attrs": {"email_opt_in": u != no_email}} for u in everyone
    }
    history = [
        JourneyEvent(user_id=u, name="page_viewed", ts=now - timedelta(days=day))
        for u in everyone
        for day in ((1, 2) if u == browsed_twice else (1, 3, 20, 5))
    ]
    history.append(JourneyEvent(user_id=bought, name="order_placed", ts=now - timedelta(days=2)))
    with SmtpSink() as sink:
        journey.use_example_channels(smtp_port=sink.port)
        outcome = await journey.run(
            one_occurrence("weekly-digest"), users=None, profiles=profiles, history=history
        )

    assert {bought, browsed_twice, no_email}.isdisjoint(outcome.users)
    assert all(outcome.users[u].path == ["digest"] for u in browsers)
    mine = {m["To"]: m for m in sink.mails if m["To"].startswith(f"wd-{tag}-")}
    assert set(mine) == {f"{u}@example.com" for u in browsers}
    for user in browsers:
        mail = mine[f"{user}@example.com"]
        assert mail["Subject"] == "What you looked at this week"
        assert mail["X-Idempotency-Key"] == f"{outcome.run_id}:digest:{user}:0"


@pytest.mark.parametrize("stem", sorted(SCHEDULED))
def test_schedule_examples_become_schedules_not_single_runs(stem: str) -> None:
    plan = read_plan(EXAMPLES / f"{stem}.yaml", channels=None)
    with pytest.raises(JourneysError, match="launched as a schedule"):
        start_time(plan, at=None)  # never one run started at a time
    schedule = plan_schedule(plan, version=1, task_queue="journeys", policy=None)
    assert schedule.spec.cron_expressions or schedule.spec.intervals
