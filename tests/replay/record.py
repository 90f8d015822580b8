"""Record the histories that tests/test_replay.py replays.

Run it against a running stack (``journeys dev`` in another shell) after a deliberate,
`workflow.patched`-guarded change, and commit the new files beside the old ones: old
histories must keep replaying, new ones show the new behaviour.

    python -m tests.replay.record --tag v2          # the blast (plan_run_v2, shard_v2_run*)
    python -m tests.replay.record journey --tag v2  # a journey (journey_v2_run, ...shard_run*)
    python -m tests.replay.record entries --tag v5  # entries by event (entries_v5_run, ...)

Each tag is a generation of the workflow code; v1 predates the ``last-pass-in-result`` patch.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from temporalio.client import Client, WorkflowHistory

from activities.db.pool import create_pool
from journeys.ab import assign
from journeys.contracts.counters import Counters, RunStatus
from journeys.contracts.runs import RunOptions, ShardSummary
from journeys.events import JourneyEvent
from journeys.names import exited_key, shard_workflow_id
from journeys.plan.steps import AbSplitStep
from journeys.settings import get_settings
from starter.plan_files import read_plan
from tests.engine import (
    client_for,
    for_test,
    start_blast,
    worker_running,
    write_channels,
    write_ids,
    write_plan,
)
from tests.journey_kit import (
    eventually,
    launch_journey,
    send,
    shard_handle,
    until_shard,
    virtual_time,
    write_journey,
    write_journey_channels,
    write_users,
)
from tests.receiver import Receiver

HERE = Path(__file__).parent


def save(name: str, history: WorkflowHistory) -> None:
    """``{"workflow_id": ..., "history": ...}``: the replayer needs the id the run had."""
    body = {"workflow_id": history.workflow_id, "history": json.loads(history.to_json())}
    (HERE / f"{name}.json").write_text(json.dumps(body, indent=1))


async def record(tag: str) -> None:
    """Run a small blast (with a continue-as-new) and save its run's and shard's histories."""
    with tempfile.TemporaryDirectory() as tmp, Receiver() as receiver:
        directory = Path(tmp)
        receiver.fail_first = 30  # exercise the retry pass too
        settings = for_test(get_settings(), write_channels(directory, receiver_url=receiver.url))
        plan = write_plan(
            directory, channel="push", shards=1, retry={"attempts": 2, "backoff": "1s"}
        )
        ids = write_ids(directory, 250, prefix="replay")
        pool = await create_pool(settings)
        redis = aioredis.Redis.from_url(settings.redis_url)
        options = RunOptions(continue_as_new_after_pages=2)
        async with worker_running(settings):
            launched, handle = await start_blast(
                settings, pool=pool, redis=redis, plan_file=plan, ids_file=ids, options=options
            )
            await handle.result()
        client = await client_for(settings)
        history = await client.get_workflow_handle(launched.run_id).fetch_history()
        save(f"plan_run_{tag}", history)
        # Every run of the shard's continue-as-new chain, newest first.
        shard_id, run_id, generation = shard_workflow_id(launched.run_id, 0), "", 0
        while True:
            history = await client.get_workflow_handle(shard_id, run_id=run_id).fetch_history()
            save(f"shard_{tag}_run{generation}", history)
            started = history.events[0].workflow_execution_started_event_attributes
            run_id, generation = started.continued_execution_run_id, generation + 1
            if not run_id:
                break
        await redis.aclose()
        await pool.close()


JOURNEY = {
    "steps": {
        "split": {
            "type": "ab_split",
            "arms": [
                {"name": "a", "weight": 80, "next": "push"},
                {"name": "holdout", "weight": 20, "control": True},
            ],
        },
        "push": {"type": "send", "channel": "push", "template": "hello", "next": "clicked"},
        "clicked": {
            "type": "wait_for_event",
            "event": "push_clicked",
            "within": "1d",
            "on_event": "done",
            "on_timeout": "nudge",
        },
        "nudge": {"type": "send", "channel": "sms", "template": "nudge"},
        "done": {"type": "exit", "reason": "clicked"},
    },
    "goal": {"event": "purchase", "within": "2d", "value_prop": "amount"},
    "exit_criteria": [{"event": "unsubscribed"}],
    "limits": {"page_size": 10, "concurrency": 2},
}


async def shard_chain(client: Client, shard_id: str) -> list[WorkflowHistory]:
    """Every run of a shard's continue-as-new chain, oldest first."""
    histories: list[WorkflowHistory] = []
    run_id = ""  # the newest run
    while True:
        history = await client.get_workflow_handle(shard_id, run_id=run_id).fetch_history()
        histories.append(history)
        started = history.events[0].workflow_execution_started_event_attributes
        run_id = started.continued_execution_run_id
        if not run_id:
            return histories[::-1]


async def record_journey(tag: str) -> None:
    """Run a journey on virtual time (split with a holdout, push, wait for a click, SMS to
    the rest, a goal and an exit event, continue-as-new every two pages) and save its run's
    history and every run of its shard's chain."""
    with tempfile.TemporaryDirectory() as tmp, Receiver() as receiver:
        directory = Path(tmp)
        channels = write_journey_channels(directory, receiver_url=receiver.url)
        settings = for_test(get_settings(), channels)
        plan_file = write_journey(directory, JOURNEY)
        plan = read_plan(plan_file, channels=channels)
        split = plan.steps["split"]
        assert isinstance(split, AbSplitStep)
        unique = uuid.uuid4().hex[:6]
        users = [f"rj-{unique}-{n:02d}" for n in range(60)]
        exposed = sorted(
            u for u in users if split.arms[assign(split.arms, salt=plan.id, user_id=u)].next
        )
        clickers, leaver, buyers = exposed[:8], exposed[-1], [exposed[0], exposed[9]]
        pool = await create_pool(settings)
        redis = aioredis.Redis.from_url(settings.redis_url)
        options = RunOptions(continue_as_new_after_pages=2)
        async with worker_running(settings), virtual_time(settings, skipping=False) as time:
            launched, handle = await launch_journey(
                settings,
                time,
                pool=pool,
                redis=redis,
                plan_file=plan_file,
                users=write_users(directory, users),
                options=options,
            )
            run = launched.run_id
            await until_shard(
                time.client,
                run,
                lambda s: sum(w.users for w in s.waits if w.node == "clicked") == len(exposed),
            )
            now = await time.get_current_time(shard_handle(time.client, run))
            events = [JourneyEvent(user_id=u, name="push_clicked") for u in clickers]
            events.append(JourneyEvent(user_id=leaver, name="unsubscribed"))
            events += [
                JourneyEvent(user_id=u, name="purchase", ts=now, props={"amount": 10})
                for u in buyers
            ]
            await send(time.client, run, events)
            await until_shard(
                time.client,
                run,
                lambda s: (
                    s.nodes.get("clicked", Counters()).routes.get("event") == len(clickers)
                    and s.counters.converted == len(buyers)
                ),
            )
            await eventually(lambda: redis.zcard(exited_key(run, 0)), until=lambda n: n == 1)
            shard = shard_handle(time.client, run)
            # past the click window (the rest get the SMS), then past the goal window, so
            # both timers fire in the histories
            await time.fast_forward(shard, timedelta(days=1, minutes=1))
            nudged = len(exposed) - len(clickers) - 1
            await until_shard(
                time.client, run, lambda s: s.nodes.get("nudge", Counters()).delivered == nudged
            )
            await time.fast_forward(shard, timedelta(days=1, minutes=1))
            result = await handle.result()
        assert result.status is RunStatus.COMPLETED, result
        assert result.totals.exited == 1 and result.totals.converted == len(buyers), result
        client = await client_for(settings)
        save(f"journey_{tag}_run", await client.get_workflow_handle(run).fetch_history())
        chain = await shard_chain(client, shard_workflow_id(run, 0))
        assert len(chain) >= 2, "expected at least one continue-as-new"
        for stale in HERE.glob(f"journey_{tag}_shard_run*.json"):
            stale.unlink()
        for generation, history in enumerate(chain):
            save(f"journey_{tag}_shard_run{generation}", history)
        print(f"recorded {run}: the run and {len(chain)} shard runs")
        await redis.aclose()
        await pool.close()


def entries_journey(window_end: datetime) -> dict[str, Any]:
    """Entries by event into a branch with no else, a send, a wait for a click: every kind
    of key a cohort leaves behind (sub-cohorts, routing marks, a caught set, a route to
    nowhere)."""
    return {
        "audience": {"source": "all"},
        "entry": {
            "type": "event",
            "event": "joined",
            "reentry": "when_absent",
            "flush_every": "1s",
            "flush_size": 5,
            "window": {"end": window_end.isoformat()},
        },
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
            },  # no else: the b users' route leads nowhere, and its key dies at once
            "welcome": {"type": "send", "channel": "push", "template": "hello", "next": "heard"},
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
        "limits": {"page_size": 5, "concurrency": 1},
    }


def delivered(count: int) -> Callable[[ShardSummary], bool]:
    """A shard condition: ``count`` messages delivered."""
    return lambda summary: summary.counters.delivered == count


async def record_entries(tag: str) -> None:
    """Run an event-triggered journey on virtual time (three waves of entries, a click, the
    wait's timeout, continue-as-new after every page) and save its run's history and every
    run of its shard's chain."""
    with tempfile.TemporaryDirectory() as tmp, Receiver() as receiver:
        directory = Path(tmp)
        channels = write_journey_channels(directory, receiver_url=receiver.url)
        settings = for_test(get_settings(), channels)
        window_end = datetime.now(UTC) + timedelta(hours=3)
        plan_file = write_journey(directory, entries_journey(window_end))
        unique = uuid.uuid4().hex[:6]
        users = [f"re-{unique}-{n:02d}" for n in range(12)]
        pool = await create_pool(settings)
        redis = aioredis.Redis.from_url(settings.redis_url)
        options = RunOptions(continue_as_new_after_pages=1)
        async with worker_running(settings), virtual_time(settings, skipping=False) as time:
            launched, handle = await launch_journey(
                settings, time, pool=pool, redis=redis, plan_file=plan_file, users=None,
                options=options,
            )  # fmt: skip
            run = launched.run_id
            await until_shard(time.client, run, lambda s: True)  # listening
            for wave in range(3):
                joined = [
                    JourneyEvent(user_id=u, name="joined", props={"kind": "ab"[n % 2]})
                    for n, u in enumerate(users[wave * 4 : wave * 4 + 4])
                ]
                await send(time.client, run, joined)
                await until_shard(time.client, run, delivered(2 * (wave + 1)))  # the a users
            await send(time.client, run, [JourneyEvent(user_id=users[0], name="clicked")])
            await until_shard(
                time.client, run, lambda s: s.nodes.get("thanks", Counters()).delivered == 1
            )
            shard = shard_handle(time.client, run)
            await time.fast_forward(shard, timedelta(hours=1, minutes=1))  # the waits end
            await until_shard(
                time.client, run, lambda s: s.nodes.get("nudge", Counters()).delivered == 5
            )
            await time.fast_forward(shard, timedelta(hours=2))  # the window closes
            result = await handle.result()
        assert result.status is RunStatus.COMPLETED, result
        assert result.totals.delivered == 12, result  # 6 a users, a click, 5 timeouts
        client = await client_for(settings)
        save(f"entries_{tag}_run", await client.get_workflow_handle(run).fetch_history())
        chain = await shard_chain(client, shard_workflow_id(run, 0))
        assert len(chain) >= 2, "expected at least one continue-as-new"
        for stale in HERE.glob(f"entries_{tag}_shard_run*.json"):
            stale.unlink()
        for generation, history in enumerate(chain):
            save(f"entries_{tag}_shard_run{generation}", history)
        print(f"recorded {run}: the run and {len(chain)} shard runs")
        await redis.aclose()
        await pool.close()


RECORDERS = {"blast": record, "journey": record_journey, "entries": record_entries}


def main() -> None:
    parser = argparse.ArgumentParser(description="Record histories for tests/test_replay.py.")
    parser.add_argument("what", nargs="?", choices=sorted(RECORDERS), default="blast")
    parser.add_argument("--tag", required=True, help="the file names' generation, e.g. v2")
    args = parser.parse_args()
    asyncio.run(RECORDERS[args.what](args.tag))


if __name__ == "__main__":
    main()
