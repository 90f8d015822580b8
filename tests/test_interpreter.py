"""The shard interpreter's branching logic on a real Temporal server, with its activities
faked in memory (no Redis, no PostgreSQL): fast checks of where each user goes and what each
node counts. The real-service journeys are in test_journeys.py and its neighbours."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio.client import WorkflowHandle
from temporalio.testing import TimeSkipper
from temporalio.worker import Worker

from journeys.ab import assign
from journeys.contracts.counters import Counters, RunStatus
from journeys.contracts.runs import RunOptions, ShardResult, ShardSummary
from journeys.contracts.shard import Cohort, ShardState
from journeys.events import EventBatch, JourneyEvent
from journeys.names import run_audience_key
from journeys.plan.models import Plan
from journeys.plan.steps import AbSplitStep
from journeys.plan.validate import check_plan
from journeys.settings import Settings
from tests.engine import STRICT
from tests.interpreter_fakes import FakeShard
from tests.journey_kit import eventually, virtual_time
from worker import workflow_runner
from workflows.shard import ShardWorkflow


def plan_of(steps: dict[str, Any], **fields: Any) -> Plan:
    body = {
        "id": f"fake-{uuid.uuid4().hex[:8]}",
        "name": "Interpreter test",
        "shards": 1,
        "audience": {"source": "list", "name": "given-by-the-test"},
        "entry": {"type": "immediate"},
        "limits": {"page_size": 10, "concurrency": 3, "retry": {"attempts": 3, "backoff": "1m"}},
        "steps": steps,
        **fields,
    }
    plan, problems = check_plan(body, channels=None)
    assert plan is not None, problems
    return plan


@dataclass
class Shard:
    handle: WorkflowHandle[ShardWorkflow, ShardResult]
    fake: FakeShard
    time: TimeSkipper

    async def progress(self) -> ShardSummary:
        return await self.handle.query(ShardWorkflow.progress)


@asynccontextmanager
async def shard_running(
    settings: Settings,
    plan: Plan,
    users: list[str],
    *,
    fake: FakeShard | None = None,
    skipping: bool = True,
    options: RunOptions | None = None,
    carried: dict[str, Any] | None = None,
) -> AsyncIterator[Shard]:
    """``plan`` on ``users`` as one shard workflow (no parent run) with faked activities;
    ``carried`` sets fields of the entry cohort as a continue-as-new would carry them."""
    fake = fake or FakeShard()
    run_id = f"fake-run-{uuid.uuid4().hex[:8]}"
    entry = run_audience_key(run_id, 0)
    fake.keys[entry] = dict.fromkeys(users, 0)
    queue = f"interpreter-{uuid.uuid4().hex[:8]}"
    async with virtual_time(settings, skipping=skipping) as time:
        worker = Worker(
            time.client,
            task_queue=queue,
            workflows=[ShardWorkflow],
            activities=fake.activities(),
            workflow_failure_exception_types=list(STRICT),
            workflow_runner=workflow_runner(),
        )
        async with worker:
            handle = await time.client.start_workflow(
                ShardWorkflow.run,
                ShardState(
                    run_id=run_id,
                    plan=plan,
                    version=1,
                    shard=0,
                    shards=1,
                    cohorts=[
                        Cohort(
                            id="entry",
                            node=plan.start_step,
                            key=entry,
                            size=len(users),
                            **(carried or {}),
                        )
                    ],
                    counters=Counters(targeted=len(users)),
                    options=options or RunOptions(),
                ),
                id=f"{run_id}/shard/0",
                task_queue=queue,
            )
            yield Shard(handle=handle, fake=fake, time=time)


def sent_by_node(fake: FakeShard) -> dict[str, list[str]]:
    nodes: dict[str, list[str]] = {}
    for node, user in fake.sent:
        nodes.setdefault(node, []).append(user)
    return {node: sorted(users) for node, users in nodes.items()}


async def test_a_branch_sends_each_user_along_the_first_matching_way(
    stack_settings: Settings,
) -> None:
    plan = plan_of(
        {
            "route": {
                "type": "branch",
                "branches": [
                    {
                        "name": "gold",
                        "rule": {"tag": "tier", "op": "eq", "value": "gold"},
                        "next": "to_gold",
                    },
                    {
                        "name": "young",
                        "rule": {"tag": "age", "op": "lt", "value": 30},
                        "next": "to_young",
                    },
                ],
                "else": "to_rest",
            },
            "to_gold": {"type": "send", "channel": "push", "template": "hi"},
            "to_young": {"type": "send", "channel": "push", "template": "hi", "next": "done"},
            "to_rest": {"type": "send", "channel": "push", "template": "hi"},
            "done": {"type": "exit"},
        }
    )
    users = [f"u{n:02d}" for n in range(25)]
    profiles: dict[str, dict[str, Any]] = {
        u: {"tier": "gold", "age": 20} for u in users[:5]
    }  # gold wins: first match
    profiles |= {u: {"age": 25} for u in users[5:12]} | {u: {"age": 40} for u in users[12:20]}
    async with shard_running(stack_settings, plan, users, fake=FakeShard(profiles=profiles)) as s:
        result = await s.handle.result()

    assert sent_by_node(s.fake) == {
        "to_gold": users[:5],
        "to_young": users[5:12],
        "to_rest": users[12:],
    }
    assert result.nodes["route"].routes == {"gold": 5, "young": 7, "else": 13}
    assert result.nodes["route"].entered == 25
    assert result.nodes["done"].completed == 7
    assert result.counters.completed == 25 and result.counters.delivered == 25
    assert result.status is RunStatus.COMPLETED


async def test_a_control_arm_ends_its_users_journeys_unsent(stack_settings: Settings) -> None:
    plan = plan_of(
        {
            "split": {
                "type": "ab_split",
                "arms": [
                    {"name": "a", "weight": 50, "next": "push"},
                    {"name": "holdout", "weight": 50, "control": True},
                ],
            },
            "push": {"type": "send", "channel": "push", "template": "hi"},
        }
    )
    split = plan.steps["split"]
    assert isinstance(split, AbSplitStep)
    users = [f"ab-{n:03d}" for n in range(60)]
    arm = {u: split.arms[assign(split.arms, salt=split.salt or "", user_id=u)].name for u in users}
    async with shard_running(stack_settings, plan, users) as s:
        result = await s.handle.result()

    exposed = sorted(u for u in users if arm[u] == "a")
    assert sent_by_node(s.fake) == {"push": exposed}
    assert result.nodes["split"].routes == {"a": len(exposed), "holdout": 60 - len(exposed)}
    assert result.nodes["split"].completed == 60 - len(exposed)
    assert result.counters.completed == 60


async def test_failed_sends_are_retried_as_a_later_pass_and_counted_once(
    stack_settings: Settings,
) -> None:
    plan = plan_of({"push": {"type": "send", "channel": "push", "template": "hi"}})
    users = [f"r{n:02d}" for n in range(30)]
    fake = FakeShard()
    fake.failing = dict.fromkeys(users[:4], 1) | dict.fromkeys(users[4:6], 5)  # 2 never recover
    async with shard_running(stack_settings, plan, users, fake=fake) as s:
        result = await s.handle.result()

    assert sorted(u for _, u in fake.sent) == sorted(users[:4] + users[6:])  # once each
    assert result.counters.delivered == 28 and result.counters.failed == {"provider down": 2}
    assert result.counters.retrying == 0
    assert result.nodes["push"].entered == 30  # the retry passes are not new arrivals


async def test_a_wait_counts_its_users_on_arrival_and_shows_them_waiting(
    stack_settings: Settings,
) -> None:
    plan = plan_of(
        {
            "pause": {"type": "wait", "duration": "1d", "next": "push"},
            "push": {"type": "send", "channel": "push", "template": "hi"},
        }
    )
    users = [f"w{n:02d}" for n in range(12)]
    async with shard_running(stack_settings, plan, users, skipping=False) as s:
        held = await eventually(s.progress, until=lambda p: bool(p.waits))
        assert held.nodes["pause"].entered == 12 and held.nodes["pause"].waiting == 12
        assert held.counters.waiting == 12
        assert [(w.node, w.users) for w in held.waits] == [("pause", 12)]
        assert s.fake.sent == []
        await s.time.fast_forward(s.handle, timedelta(days=1, minutes=1))
        result = await s.handle.result()

    assert sent_by_node(s.fake) == {"push": users}
    assert result.nodes["pause"].entered == 12  # counted once, not again on leaving


async def test_an_event_moves_its_user_on_and_the_window_sends_the_rest_along(
    stack_settings: Settings,
) -> None:
    plan = plan_of(
        {
            "clicked": {
                "type": "wait_for_event",
                "event": "push_clicked",
                "within": "1d",
                "on_event": "thanks",
                "on_timeout": "nudge",
            },
            "thanks": {"type": "send", "channel": "push", "template": "hi"},
            "nudge": {"type": "send", "channel": "sms", "template": "hi"},
        }
    )
    users = [f"e{n:02d}" for n in range(15)]
    clickers = users[:4]
    async with shard_running(stack_settings, plan, users, skipping=False) as s:
        await eventually(s.progress, until=lambda p: bool(p.waits))
        clicks = [JourneyEvent(user_id=u, name="push_clicked") for u in clickers]
        clicks.append(JourneyEvent(user_id="stranger", name="push_clicked"))
        await s.handle.signal(ShardWorkflow.events, EventBatch(events=clicks))
        caught = await eventually(
            s.progress, until=lambda p: p.nodes["clicked"].routes.get("event") == 4
        )
        # the caught moved on: they no longer stand (or wait) at the node
        assert caught.nodes["clicked"].waiting == 11
        assert [(w.node, w.users) for w in caught.waits] == [("clicked", 11)]
        await s.time.fast_forward(s.handle, timedelta(days=1, minutes=1))
        result = await s.handle.result()

    assert sent_by_node(s.fake) == {"thanks": clickers, "nudge": users[4:]}
    assert result.nodes["clicked"].routes == {"event": 4, "timeout": 11}
    assert result.nodes["clicked"].entered == 15


async def test_continue_as_new_mid_send_carries_the_cursor(stack_settings: Settings) -> None:
    plan = plan_of({"push": {"type": "send", "channel": "push", "template": "hi"}})
    users = [f"c{n:03d}" for n in range(95)]
    options = RunOptions(continue_as_new_after_pages=3)
    async with shard_running(stack_settings, plan, users, options=options) as s:
        result = await s.handle.result()
        runs = [e async for e in s.time.client.list_workflows(f'WorkflowId = "{s.handle.id}"')]

    assert sorted(u for _, u in s.fake.sent) == users  # every user once across the runs
    assert result.counters.delivered == 95
    assert len(runs) > 1


async def test_a_wait_carried_from_before_arrival_counts_is_counted_once(
    stack_settings: Settings,
) -> None:
    """A cohort armed by a shard from before arrivals were counted (no flag) counts when it
    leaves; one armed since counts on arrival and not again."""
    plan = plan_of(
        {
            "pause": {"type": "wait", "duration": "1h", "next": "push"},
            "push": {"type": "send", "channel": "push", "template": "hi"},
        }
    )
    users = [f"k{n:02d}" for n in range(7)]
    soon = datetime.now(UTC) + timedelta(minutes=5)
    for flag, carried in ((False, 0), (True, 7)):
        state = {"wake_at": soon, "arrival_counted": flag}
        async with shard_running(stack_settings, plan, users, carried=state) as s:
            result = await s.handle.result()
        # a flagged cohort was counted by the run it came from (7 there, none here)
        assert result.nodes.get("pause", Counters()).entered == 7 - carried
        assert sent_by_node(s.fake) == {"push": users}
