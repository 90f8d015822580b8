"""Plan files: every mistake is reported at once, with an exact path and reason."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from pydantic import ValidationError
from typer.testing import CliRunner

from journeys.channels_config import ChannelsFile, check_channels, load_channels
from journeys.errors import ChannelsInvalid, PlanInvalid
from journeys.plan.models import STEP_TYPES, Plan, plan_json_schema
from journeys.plan.validate import check_plan, load_plan
from journeys.settings import get_settings
from starter.plan_commands import register
from starter.plan_files import NOT_PLANS

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"

CHANNELS_DOC: dict[str, Any] = {
    "channels": {
        "push": {
            "type": "push",
            "provider": {"kind": "http", "url": "http://push.test/send"},
            "templates": {"hello": {"title": "Hi", "body": "Hello {{ user.name }}"}},
        },
        "sms": {
            "type": "sms",
            "provider": {"kind": "http", "url": "http://sms.test/send"},
            "rate": "10/s",
            "templates": {"nudge": {"body": "Still there?"}},
        },
        "popup": {
            "type": "in_app",
            "provider": {"kind": "inbox"},
            "templates": {"hello": {"body": "Hello"}},
        },
        "crm": {
            "type": "webhook",
            "provider": {"kind": "http", "url": "http://crm.test/hook"},
            "templates": {"tag": {"payload": {"user": "{{ user.id }}"}}},
        },
        "dry": {
            "type": "webhook",
            "provider": {"kind": "log"},
            "templates": {"tag": {"body": "x"}},
        },
    }
}
CHANNELS = ChannelsFile.model_validate(CHANNELS_DOC)
KNOWN = "crm, dry, popup, push, sms"

BASE_YAML = """
id: base-plan
name: Base plan
timezone: Europe/Paris
audience: {source: list, name: vip-users}
entry: {type: immediate}
steps:
  split:
    type: ab_split
    arms:
      - {name: treated, weight: 90, next: push}
      - {name: holdout, weight: 10, control: true}
  push: {type: send, channel: push, template: hello, next: wait}
  wait: {type: wait, duration: 1h, next: check}
  check:
    type: wait_for_event
    event: push_clicked
    within: 1d
    on_event: thanks
    on_timeout: nudge
  nudge: {type: send, channel: sms, template: nudge}
  thanks: {type: update, tags_add: [clicked], next: sorter}
  sorter:
    type: branch
    branches:
      - name: big
        rule: {tag: lifetime_value, op: gte, value: 1000}
        next: hook
    else: done
  hook: {type: webhook, channel: crm, template: tag}
  done: {type: exit, reason: small spender}
limits:
  caps: [{channel: sms, max: 1, per: 7d}]
  budget: [{channel: sms, max_messages: 1000}]
goal: {event: order_placed, within: 7d}
"""
BASE: dict[str, Any] = yaml.safe_load(BASE_YAML)
DROP = object()


def variant(**changes: Any) -> dict[str, Any]:
    """BASE with dotted paths (``steps__push__next``) set, or removed when the value is DROP."""
    plan = copy.deepcopy(BASE)
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        node: Any = plan
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
        key: Any = int(last) if isinstance(node, list) else last
        if value is DROP:
            del node[key]
        else:
            node[key] = value
    return plan


def problems_of(data: object) -> list[str]:
    plan, problems = check_plan(data, channels=CHANNELS)
    assert (plan is None) == bool(problems)
    return [str(problem) for problem in problems]


def test_base_plan_is_valid() -> None:
    assert problems_of(BASE) == []


STEP_KINDS = ", ".join(sorted(STEP_TYPES))
OFFSET = "needs a UTC offset, like 2025-06-01T09:00:00+08:00"
BAD_PLANS: list[tuple[str, dict[str, Any], list[str]]] = [
    (
        "weights",
        variant(steps__split__arms__0__weight=80),
        ["steps.split.ab_split.arms: weights sum to 90, must be 100"],
    ),
    (
        "step-type-typo",
        variant(steps__done__type="exot"),
        [f'steps.done.type: unknown step type "exot" (expected one of: {STEP_KINDS})'],
    ),
    (
        "step-type-missing",
        variant(steps__done__type=DROP),
        ["steps.done.type: field required"],
    ),
    (
        "unknown-next",
        variant(steps__nudge__next="sms2"),
        ['steps.nudge.send.next: unknown step "sms2"'],
    ),
    (
        "unknown-start",
        variant(start="nowhere"),
        ['start: unknown step "nowhere"'],
    ),
    (
        "unreachable-with-null-start",
        variant(start=None, steps__orphan={"type": "exit"}),
        ['steps.orphan: unreachable from start step "split"'],
    ),
    (
        "unreachable",
        variant(steps__orphan={"type": "exit"}),
        ['steps.orphan: unreachable from start step "split"'],
    ),
    (
        "cycle",
        variant(steps__nudge__next="push"),
        ["steps: cycle check -> nudge -> push -> wait -> check"],
    ),
    (
        "unknown-channel",
        variant(steps__push__channel="pushh"),
        [f'steps.push.send.channel: unknown channel "pushh" (known: {KNOWN})'],
    ),
    (
        "unknown-template",
        variant(steps__nudge__template="hello"),
        ['steps.nudge.send.template: unknown template "hello" for channel "sms" (known: nudge)'],
    ),
    (
        "webhook-not-http",
        variant(steps__hook__channel="dry"),
        [
            'steps.hook.webhook.channel: channel "dry" has provider kind log; '
            "a webhook step needs an http channel"
        ],
    ),
    (
        "match-entry-without-event-entry",
        variant(steps__check__match_entry="order_id"),
        [
            "steps.check.wait_for_event.match_entry: needs an event or api entry"
            " (entry type is immediate)"
        ],
    ),
    (
        "entry-tag-without-event-entry",
        variant(steps__sorter__branches__0__rule={"tag": "entry.reason", "op": "eq", "value": "x"}),
        [
            'steps.sorter.branch.branches.0.rule.tag: tag "entry.reason" reads the entry event, '
            "but the entry type is immediate"
        ],
    ),
    ("unknown-field", variant(colour="red"), ["colour: unknown field"]),
    (
        "step-unknown-field",
        variant(steps__push__delay="1h"),
        ["steps.push.send.delay: unknown field"],
    ),
    ("name-missing", variant(name=DROP), ["name: field required"]),
    (
        "plan-id",
        variant(id="Base Plan"),
        [
            'id: bad plan id "Base Plan": use lowercase letters, digits and -, '
            "starting with a letter or digit (at most 63 characters)"
        ],
    ),
    (
        "step-id",
        variant(steps__done=DROP, steps__Done={"type": "exit"}, steps__sorter__else="Done"),
        [
            'steps.Done: bad step id "Done": use lowercase letters, digits, - and _, '
            "starting with a letter or digit (at most 63 characters)",
            'steps.sorter.branch.else: bad step id "Done": use lowercase letters, digits, - and _, '
            "starting with a letter or digit (at most 63 characters)",
        ],
    ),
    ("shards", variant(shards=12), ["shards: must be a power of two from 1 to 1024, got 12"]),
    ("timezone", variant(timezone="Mars/Olympus"), ['timezone: unknown time zone "Mars/Olympus"']),
    (
        "audience-missing",
        variant(audience=DROP),
        ["audience: required unless entry is event or api"],
    ),
    (
        "audience-source",
        variant(audience={"source": "segmnt"}),
        [
            'audience.source: unknown audience source "segmnt" (expected one of: '
            "all, difference, file, intersect, list, segment, sql, union)"
        ],
    ),
    (
        "audience-mode",
        variant(audience__mode="daily"),
        ['audience.list.mode: must be one of: snapshot, per_run; got "daily"'],
    ),
    (
        "audience-sql-write",
        variant(audience={"source": "sql", "query": "SELECT id FROM users; DELETE FROM users"}),
        ["audience.sql.query: must be a single statement, found 2 (SELECT, DELETE)"],
    ),
    (
        "audience-sql-into",
        variant(audience={"source": "sql", "query": "select id into copy_of_users from users"}),
        ["audience.sql.query: SELECT INTO is not allowed"],
    ),
    (
        "audience-sql-function",
        variant(audience={"source": "sql", "query": "select pg_sleep(60) as user_id"}),
        [
            "audience.sql.query: function pg_sleep is not allowed "
            "(allowed: see docs/sql-audiences.md)"
        ],
    ),
    (
        "audience-union-of-one",
        variant(audience={"source": "union", "of": [{"source": "all"}]}),
        ["audience.union.of: must have at least 2 items"],
    ),
    (
        "entry-type",
        variant(entry={"type": "immediatly"}),
        [
            'entry.type: unknown entry type "immediatly" '
            "(expected one of: api, at, event, immediate, schedule)"
        ],
    ),
    (
        "entry-at-naive",
        variant(entry={"type": "at", "at": "2025-07-01T10:00:00"}),
        [f"entry.at.at: date-time 2025-07-01T10:00:00 {OFFSET}"],
    ),
    (
        "entry-schedule-cron-and-every",
        variant(entry={"type": "schedule", "cron": "0 9 * * mon", "every": "1d"}),
        ["entry.schedule: give exactly one of cron or every"],
    ),
    (
        "entry-schedule-bad-cron",
        variant(entry={"type": "schedule", "cron": "61 * * * *"}),
        ['entry.schedule.cron: bad cron "61 * * * *": minute 61 out of range 0-59'],
    ),
    (
        "entry-schedule-window",
        variant(
            entry={
                "type": "schedule",
                "every": "1d",
                "start": "2025-02-01T00:00:00Z",
                "end": "2025-01-01T00:00:00Z",
            }
        ),
        ["entry.schedule: start must be before end"],
    ),
    (
        "entry-event-cooldown",
        variant(entry={"type": "event", "event": "signup", "reentry": "after_cooldown"}),
        ["entry.event.cooldown: required when reentry is after_cooldown"],
    ),
    (
        "wait-zero",
        variant(steps__wait__duration="0s"),
        ["steps.wait.wait.duration: must be longer than 0s"],
    ),
    (
        "wait-too-long",
        variant(steps__wait__duration="400d"),
        ["steps.wait.wait.duration: must be at most 365d"],
    ),
    (
        "wait-bad-duration",
        variant(steps__wait__duration="3 days"),
        [
            'steps.wait.wait.duration: bad duration "3 days": '
            "use a number and a unit like 15m, 2h, 7d"
        ],
    ),
    (
        "wait-until-at-and-time",
        variant(
            steps__wait={
                "type": "wait_until",
                "at": "2025-07-01T09:00:00+02:00",
                "time": "09:00",
                "next": "check",
            }
        ),
        ["steps.wait.wait_until: give exactly one of at or time"],
    ),
    (
        "wait-until-weekdays",
        variant(
            steps__wait={
                "type": "wait_until",
                "time": "09:00",
                "weekdays": ["mon", "monday", "tue"],
                "next": "check",
            }
        ),
        [
            'steps.wait.wait_until.weekdays.1: bad weekday "monday": '
            "use one of mon, tue, wed, thu, fri, sat, sun"
        ],
    ),
    (
        "wait-until-fallback",
        variant(
            steps__wait={
                "type": "wait_until",
                "time": "9:00",
                "fallback_timezone": "Asia/Tokyo",
                "next": "check",
            }
        ),
        ["steps.wait.wait_until: fallback_timezone is only used when timezone is user"],
    ),
    (
        "branch-empty",
        variant(steps__sorter__branches=[], steps__hook=DROP),
        ["steps.sorter.branch.branches: must not be empty"],
    ),
    (
        "branch-between-reversed",
        variant(
            steps__sorter__branches__0__rule={"tag": "age", "op": "between", "value": [65, 18]}
        ),
        [
            "steps.sorter.branch.branches.0.rule.tag.value: "
            "op between needs low <= high, got [65, 18]"
        ],
    ),
    (
        "branch-in-empty",
        variant(
            steps__sorter__branches__0__rule={
                "all": [{"tag": "vip", "op": "eq", "value": True}, {"tag": "city", "op": "in"}]
            }
        ),
        ["steps.sorter.branch.branches.0.rule.all.1.tag.value: op in needs a non-empty list"],
    ),
    (
        "branch-rule-shape",
        variant(steps__sorter__branches__0__rule={"not": {"attribute": "vip"}}),
        [
            "steps.sorter.branch.branches.0.rule.not: "
            "a rule needs exactly one of the keys: all, any, not, tag, event"
        ],
    ),
    (
        "branch-gt-text",
        variant(steps__sorter__branches__0__rule__value="lots"),
        [
            "steps.sorter.branch.branches.0.rule.tag.value: "
            'op gte needs a number, date-time or relative date like T-7d, got "lots"'
        ],
    ),
    (
        "branch-behaviour-count",
        variant(steps__sorter__branches__0__rule={"event": "login", "count": {"gte": 5, "lte": 2}}),
        ["steps.sorter.branch.branches.0.rule.event.count: gte 5 is more than lte 2"],
    ),
    (
        "split-control-with-next",
        variant(steps__split__arms__1__next="push"),
        ["steps.split.ab_split.arms.1.next: a control arm receives nothing, so it has no next"],
    ),
    (
        "split-arm-without-next",
        variant(steps__split__arms__0__next=DROP),
        [
            'steps.check: unreachable from start step "split"',
            'steps.done: unreachable from start step "split"',
            'steps.hook: unreachable from start step "split"',
            'steps.nudge: unreachable from start step "split"',
            'steps.push: unreachable from start step "split"',
            'steps.sorter: unreachable from start step "split"',
            "steps.split.ab_split.arms.0.next: "
            "field required (only a control arm goes without next)",
            'steps.thanks: unreachable from start step "split"',
            'steps.wait: unreachable from start step "split"',
        ],
    ),
    (
        "split-two-controls",
        variant(
            steps__split__arms=[
                {"name": "a", "weight": 50, "next": "push"},
                {"name": "b", "weight": 25, "control": True},
                {"name": "c", "weight": 25, "control": True},
            ]
        ),
        ["steps.split.ab_split.arms: at most one control arm, got b, c"],
    ),
    (
        "wait-for-event-nowhere",
        variant(steps__check__on_event=DROP, steps__check__on_timeout=DROP),
        [
            "steps.check.wait_for_event: needs on_event and/or on_timeout",
            'steps.done: unreachable from start step "split"',
            'steps.hook: unreachable from start step "split"',
            'steps.nudge: unreachable from start step "split"',
            'steps.sorter: unreachable from start step "split"',
            'steps.thanks: unreachable from start step "split"',
        ],
    ),
    (
        "update-nothing",
        variant(steps__thanks__tags_add=[]),
        ["steps.thanks.update: needs set, tags_add or tags_remove"],
    ),
    (
        "update-empty-set",
        variant(steps__thanks__set={}),
        ["steps.thanks.update.set: must not be empty"],
    ),
    (
        "limits-numbers",
        variant(limits__page_size=0, limits__concurrency=65, limits__priority=101),
        [
            "limits.concurrency: must be at most 64",
            "limits.page_size: must be at least 1",
            "limits.priority: must be at most 100",
        ],
    ),
    (
        "limits-rate",
        variant(limits__rate="fast"),
        ['limits.rate: bad rate "fast": use a count per unit like 500/s, 30/m, 1000/h'],
    ),
    (
        "quiet-hours",
        variant(limits__quiet_hours={"start": "22:00", "end": "22:00", "mode": "skip"}),
        [
            'limits.quiet_hours.mode: must be one of: defer, drop; got "skip"',
        ],
    ),
    (
        "cap-unknown-channel",
        variant(limits__caps__0__channel="fax"),
        [f'limits.caps.0.channel: unknown channel "fax" (known: {KNOWN})'],
    ),
    (
        "budget-twice",
        variant(
            limits__budget=[
                {"channel": "sms", "max_messages": 10},
                {"channel": "sms", "max_messages": 20},
            ]
        ),
        ["limits.budget: one budget per channel, repeated: sms"],
    ),
    (
        "quiet-hours-empty",
        variant(limits__quiet_hours={"start": "22:00", "end": "22:00"}),
        ["limits.quiet_hours: start and end are the same time"],
    ),
    ("goal-within", variant(goal__within=DROP), ["goal.within: field required"]),
    (
        "exit-criteria-both",
        variant(exit_criteria=[{"event": "unsubscribed", "rule": {"tag": "vip", "op": "exists"}}]),
        ["exit_criteria.0: give exactly one of event or rule"],
    ),
    (
        "where-operator",
        variant(steps__check__where={"campaign": {"equals": "x"}}),
        [
            'steps.check.wait_for_event.where.campaign: unknown operator "equals" '
            "(use one of: eq, ne, gt, gte, lt, lte, in, not_in, contains, exists, between, "
            "anniversary)"
        ],
    ),
]


@pytest.mark.parametrize(
    ("plan", "expected"),
    [pytest.param(plan, expected, id=name) for name, plan, expected in BAD_PLANS],
)
def test_bad_plan_reports_exact_problems(plan: dict[str, Any], expected: list[str]) -> None:
    assert problems_of(plan) == expected


def test_table_is_large_and_every_case_differs_from_base() -> None:
    assert len(BAD_PLANS) >= 30
    assert all(plan != BASE for _, plan, _ in BAD_PLANS)
    assert len({name for name, _, _ in BAD_PLANS}) == len(BAD_PLANS)


def test_several_independent_mistakes_are_all_reported_at_once() -> None:
    plan = variant(
        colour="red",
        shards=3,
        steps__split__arms__0__weight=50,
        steps__push__channel="pushh",
        steps__wait__duration="3 days",
        steps__nudge__next="nope",
        steps__orphan={"type": "exit"},
        steps__done__type="exot",
        limits__caps__0__channel="fax",
    )
    assert problems_of(plan) == [
        "colour: unknown field",
        f'limits.caps.0.channel: unknown channel "fax" (known: {KNOWN})',
        "shards: must be a power of two from 1 to 1024, got 3",
        f'steps.done.type: unknown step type "exot" (expected one of: {STEP_KINDS})',
        'steps.nudge.send.next: unknown step "nope"',
        'steps.orphan: unreachable from start step "split"',
        f'steps.push.send.channel: unknown channel "pushh" (known: {KNOWN})',
        "steps.split.ab_split.arms: weights sum to 60, must be 100",
        'steps.wait.wait.duration: bad duration "3 days": use a number and a unit like 15m, 2h, 7d',
    ]


def test_channels_are_not_checked_without_a_channels_file() -> None:
    plan, problems = check_plan(variant(steps__push__channel="pushh"), channels=None)
    assert problems == [] and plan is not None


def test_a_plan_must_be_a_mapping() -> None:
    assert problems_of(["id", "x"]) == [
        "a plan must be a mapping of fields (id, entry, steps...), got list"
    ]


def test_defaults_are_written_out() -> None:
    plan, _ = check_plan(BASE, channels=CHANNELS)
    assert plan is not None
    assert plan.start == "split" and plan.start_step == "split"
    assert plan.steps["split"].type == "ab_split" and plan.steps["split"].salt == "base-plan"
    assert plan.limits.page_size == 100 and plan.limits.concurrency == 4
    assert plan.limits.retry.attempts == 3 and plan.shards == 16

    event_plan, problems = check_plan(
        variant(audience=DROP, entry={"type": "event", "event": "signup"}), channels=CHANNELS
    )
    assert problems == [] and event_plan is not None
    assert event_plan.audience is not None and event_plan.audience.source == "all"
    assert event_plan.entry.type == "event" and event_plan.entry.reentry == "when_absent"
    assert event_plan.shards == 1  # each shard of an event run lives for its whole window
    wide, _ = check_plan(
        variant(audience=DROP, shards=8, entry={"type": "event", "event": "signup"}),
        channels=CHANNELS,
    )
    assert wide is not None and wide.shards == 8


def test_the_model_alone_rejects_an_inconsistent_graph() -> None:
    with pytest.raises(ValidationError, match="cycle check -> nudge -> push -> wait -> check"):
        Plan.model_validate(variant(steps__nudge__next="push"))


def round_trip(plan: Plan) -> None:
    dumped = plan.model_dump(mode="json", by_alias=True)
    again = Plan.model_validate(json.loads(json.dumps(dumped)))
    assert again == plan
    assert again.model_dump(mode="json", by_alias=True) == dumped


def test_rich_plan_round_trips_through_json() -> None:
    plan, problems = check_plan(
        variant(
            audience={
                "source": "difference",
                "mode": "per_run",
                "of": [
                    {
                        "source": "segment",
                        "rule": {"tag": "last_seen", "op": "lt", "value": "T-7d"},
                    },
                    {"source": "sql", "query": "select user_id from optouts;"},
                ],
            },
            steps__wait={
                "type": "wait_until",
                "time": "21:30",
                "weekdays": ["sat", "sun"],
                "timezone": "user",
                "fallback_timezone": "Asia/Shanghai",
                "next": "check",
            },
            steps__check__where={"amount": {"gte": 10.5}, "kind": ["a", "b"]},
            steps__sorter__branches__0__rule={
                "any": [
                    {"tag": "signup_at", "op": "between", "value": ["T-30d", "T-1d"]},
                    {"not": {"event": "order_placed", "within": "2h30m", "count": {"lte": 0}}},
                    {"tag": "born", "op": "gt", "value": "2000-01-01T00:00:00+08:00"},
                ]
            },
            limits__rate="100/15m",
            limits__quiet_hours={"start": "22:00", "end": "08:00"},
            exit_criteria=[{"rule": {"tag": "unsubscribed", "op": "exists"}}],
        ),
        channels=CHANNELS,
    )
    assert problems == [] and plan is not None
    round_trip(plan)
    dumped = plan.model_dump(mode="json", by_alias=True)
    assert dumped["steps"]["sorter"]["else"] == "done"
    assert dumped["steps"]["wait"]["time"] == "21:30"
    assert dumped["limits"]["rate"] == "100/15m"
    assert dumped["limits"]["caps"][0]["per"] == "7d"
    assert dumped["steps"]["sorter"]["branches"][0]["rule"]["any"][0]["value"] == ["T-30d", "T-1d"]


def example_plans() -> list[Path]:
    return sorted(path for path in EXAMPLES.glob("*.y*ml") if path.name not in NOT_PLANS)


def test_the_required_examples_exist() -> None:
    names = {path.stem for path in example_plans()}
    assert {"welcome-blast", "push-click-sms", "cancelled-order-recall"} <= names


@pytest.mark.parametrize("path", example_plans(), ids=lambda path: path.name)
def test_every_example_validates_and_round_trips(path: Path) -> None:
    plan = load_plan(path, channels=load_channels(EXAMPLES / "channels.yaml"))
    assert plan.id == path.stem
    round_trip(plan)


def test_the_demo_plan_is_a_single_inbox_send() -> None:
    channels = load_channels(EXAMPLES / "channels.yaml")
    plan = load_plan(EXAMPLES / "welcome-blast.yaml", channels=channels)
    (step,) = plan.steps.values()
    assert step.type == "send"
    assert channels.channels[step.channel].provider.kind == "inbox"
    assert {"push", "sms", "email", "popup", "call_centre", "coupons", "outbox"} <= set(
        channels.channels
    )


def test_yaml_and_json_files_load_the_same_plan(tmp_path: Path) -> None:
    (tmp_path / "plan.yaml").write_text(BASE_YAML)
    (tmp_path / "plan.json").write_text(json.dumps(BASE))
    from_yaml = load_plan(tmp_path / "plan.yaml", channels=CHANNELS)
    from_json = load_plan(tmp_path / "plan.json", channels=CHANNELS)
    assert from_yaml == from_json


def test_yaml_reads_times_and_words_as_written(tmp_path: Path) -> None:
    # YAML 1.1 would read 21:30 as the number 1290 and `no` as false
    text = BASE_YAML.replace(
        "{type: wait, duration: 1h, next: check}", "{type: wait_until, time: 21:30, next: check}"
    )
    text = text.replace("name: big", "name: no")
    (tmp_path / "plan.yml").write_text(text)
    plan = load_plan(tmp_path / "plan.yml", channels=CHANNELS)
    wait = plan.steps["wait"]
    assert wait.type == "wait_until" and wait.time is not None and wait.time.hour == 21
    sorter = plan.steps["sorter"]
    assert sorter.type == "branch" and sorter.branches[0].name == "no"


def load_problems(path: Path) -> list[str]:
    with pytest.raises(PlanInvalid) as caught:
        load_plan(path, channels=CHANNELS)
    assert caught.value.source == str(path)
    return [str(problem) for problem in caught.value.problems]


def test_yaml_syntax_error_gives_its_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("id: broken\nname: Broken\nsteps:\n  a: {type: exit\n  b: 1\n")
    (problem,) = load_problems(path)
    assert problem.startswith("bad YAML at line 5, column 4: ")


def test_yaml_duplicate_key_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text("id: dup\nsteps:\n  a: {type: exit}\n  a: {type: exit}\n")
    assert load_problems(path) == ['bad YAML at line 4, column 3: duplicate key "a"']


def test_json_syntax_error_gives_its_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"id": "x",\n "name": }')
    assert load_problems(path) == ["bad JSON at line 2, column 10: Expecting value"]


def test_missing_and_empty_files(tmp_path: Path) -> None:
    assert load_problems(tmp_path / "absent.yaml") == ["file not found"]
    (tmp_path / "empty.yaml").write_text("# nothing yet\n")
    assert load_problems(tmp_path / "empty.yaml") == ["the file is empty"]


def test_plan_invalid_message_lists_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(variant(shards=3, colour="red"), sort_keys=False))
    with pytest.raises(PlanInvalid) as caught:
        load_plan(path, channels=CHANNELS)
    assert str(caught.value) == (
        f"{path}: 2 problems\n  colour: unknown field\n"
        "  shards: must be a power of two from 1 to 1024, got 3"
    )


def _schema_refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [ref for value in node.values() for ref in _schema_refs(value)]
    if isinstance(node, list):
        return [ref for item in node for ref in _schema_refs(item)]
    return []


def _schema_types(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        kind = node.get("type")
        if isinstance(kind, str):
            found.add(kind)
        elif isinstance(kind, list):
            found.update(kind)
        for value in node.values():
            found |= _schema_types(value)
    elif isinstance(node, list):
        for item in node:
            found |= _schema_types(item)
    return found


def test_schema_is_json_schema_with_every_step_kind() -> None:
    schema = json.loads(json.dumps(plan_json_schema()))
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["type"] == "object"
    assert {"id", "name", "entry", "steps"} <= set(schema["required"])
    for ref in _schema_refs(schema):
        assert ref.startswith("#/$defs/") and ref.removeprefix("#/$defs/") in schema["$defs"]
    allowed = {"object", "array", "string", "number", "integer", "boolean", "null"}
    assert _schema_types(schema) <= allowed
    mapping = schema["properties"]["steps"]["additionalProperties"]["discriminator"]["mapping"]
    assert set(mapping) == set(STEP_TYPES)
    assert len(STEP_TYPES) == 11


# channels files


def channels_problems(doc: dict[str, Any]) -> list[str]:
    model, problems = check_channels(doc)
    assert (model is None) == bool(problems)
    return [str(problem) for problem in problems]


def test_example_channels_file_loads() -> None:
    channels = load_channels(EXAMPLES / "channels.yaml")
    assert channels.channels["sms"].rate is not None
    assert channels.channels["sms"].rate.count == 50
    assert channels.channels["popup"].type == "in_app"
    assert channels.channels["coupons"].provider.kind == "http"


def test_channels_file_problems() -> None:
    doc = copy.deepcopy(CHANNELS_DOC)
    channels = doc["channels"]
    channels["sms"]["templates"]["long"] = {"body": "x" * 501 + "{{ user.name }}"}
    channels["sms"]["templates"]["titled"] = {"title": "no", "body": "ok"}
    channels["popup"]["provider"] = {"kind": "http", "url": "http://popup.test"}
    channels["push"]["templates"]["broken"] = {"body": "Hi {{ user.name }"}
    channels["push"]["provider"]["url"] = "ftp://push.test"
    channels["crm"]["rate"] = "many"
    channels["mail"] = {
        "type": "email",
        "provider": {"kind": "smtp", "host": "localhost", "sender": "a@b.c"},
        "templates": {"hi": {"body": "Hello"}},
    }
    assert channels_problems(doc) == [
        'channels.crm.rate: bad rate "many": use a count per unit like 500/s, 30/m, 1000/h',
        "channels.mail.templates.hi.subject: field required for email channels",
        "channels.popup.provider.kind: an in_app channel cannot use provider kind http "
        "(use inbox or log)",
        "channels.push.provider.http.url: bad url: must start with http:// or https://",
        "channels.push.templates.broken.body: template syntax error at line 1: unexpected '}'",
        "channels.sms.templates.long.body: SMS body has 501 characters, at most 500",
        "channels.sms.templates.titled.title: not used by sms channels",
    ]


def test_load_channels_raises_with_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "channels.yaml"
    path.write_text("channels:\n  push: {type: pidgeon, provider: {kind: log}}\n")
    with pytest.raises(ChannelsInvalid) as caught:
        load_channels(path)
    assert [str(problem) for problem in caught.value.problems] == [
        "channels.push.type: must be one of: push, sms, email, in_app, call_task, webhook; "
        'got "pidgeon"'
    ]


# the commands


@pytest.fixture
def cli() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def invoke(app: typer.Typer, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def test_validate_command_success(cli: typer.Typer) -> None:
    path = EXAMPLES / "welcome-blast.yaml"
    code, output = invoke(cli, "validate", str(path), "--channels", str(EXAMPLES / "channels.yaml"))
    assert code == 0
    assert output == f"✓ {path}: plan welcome-blast is valid (1 step)\n"


def test_validate_command_failure(cli: typer.Typer, tmp_path: Path) -> None:
    (tmp_path / "channels.yaml").write_text(yaml.safe_dump(CHANNELS_DOC))
    path = tmp_path / "plan.yaml"
    path.write_text(
        yaml.safe_dump(variant(shards=3, steps__split__arms__0__weight=10), sort_keys=False)
    )
    code, output = invoke(cli, "validate", str(path))  # channels.yaml beside the plan
    assert code == 1
    assert output.splitlines() == [
        f"✗ {path}: 2 problems",
        "  shards: must be a power of two from 1 to 1024, got 3",
        "  steps.split.ab_split.arms: weights sum to 20, must be 100",
    ]


def test_validate_command_json(cli: typer.Typer, tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(variant(steps__push__channel="pushh")))
    channels = tmp_path / "my-channels.yaml"
    channels.write_text(yaml.safe_dump(CHANNELS_DOC))
    code, output = invoke(cli, "validate", str(path), "--channels", str(channels), "--json")
    assert code == 1
    assert json.loads(output) == {
        "file": str(path),
        "valid": False,
        "problems": [
            {
                "path": "steps.push.send.channel",
                "reason": f'unknown channel "pushh" (known: {KNOWN})',
            }
        ],
        "warnings": [],
    }
    code, output = invoke(cli, "validate", str(EXAMPLES / "push-click-sms.yaml"), "--json")
    assert code == 0 and json.loads(output)["valid"] is True


def test_validate_command_without_channels_file(
    cli: typer.Typer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOURNEYS_CHANNELS", str(tmp_path / "absent.yaml"))
    get_settings.cache_clear()
    try:
        path = tmp_path / "plan.yaml"
        path.write_text(BASE_YAML)
        code, output = invoke(cli, "validate", str(path))
    finally:
        get_settings.cache_clear()
    assert code == 1
    assert output.splitlines() == [
        f"✗ {path}: 1 problem",
        "  channels: no channels file found (pass --channels or set JOURNEYS_CHANNELS)",
    ]


def test_validate_command_reports_a_broken_channels_file(cli: typer.Typer, tmp_path: Path) -> None:
    channels = tmp_path / "channels.yaml"
    channels.write_text("channels: [push]\n")
    path = tmp_path / "plan.yaml"
    path.write_text(BASE_YAML)
    code, output = invoke(cli, "validate", str(path), "--channels", str(channels))
    assert code == 1
    assert output.splitlines() == [
        f"✗ {path}: 1 problem",
        f"  channels: must be a mapping (in {channels})",
    ]


def test_schema_command(cli: typer.Typer) -> None:
    code, output = invoke(cli, "schema")
    assert code == 0
    assert json.loads(output) == json.loads(json.dumps(plan_json_schema()))
    assert output.startswith("{\n  ")
