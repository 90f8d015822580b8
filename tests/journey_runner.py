"""The journey test kit: run a plan body on users, profiles and a script of events and clock
moves against the real worker, Temporal, Redis, PostgreSQL and HTTP receiver, and get each
user's outcome back.

    outcome = await journey.run(
        body, users=users, profiles={...},
        script=[UntilShard(lambda s: ...), Send(events), Advance(timedelta(days=1))],
    )
    assert outcome.users["u1"].path == ["split", "push_a", "clicked", "done"]

Paths come from the cohort ids the run left in Redis, read by a ``cleanup_run`` that
snapshots the run's keys and then runs the real one.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest_asyncio
import redis.asyncio as aioredis
import yaml
from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from activities.db.pool import DbPool
from journeys.contracts import activities as contracts
from journeys.contracts.journey import AdmitEntriesInput, AdmitEntriesOutput
from journeys.contracts.run_setup import CleanupInput, CleanupOutput
from journeys.contracts.runs import (
    ControlSignal,
    PlanRunResult,
    RunOptions,
    ShardSummary,
)
from journeys.events import JourneyEvent
from journeys.names import listeners_key
from journeys.plan.listening import listening_entry
from journeys.progress import node_totals
from journeys.settings import Settings
from starter.client import Journeys
from starter.plan_files import read_plan
from starter.run_state import live_progress
from tests.engine import client_for, for_test, worker_running
from tests.journey_kit import (
    eventually,
    launch_journey,
    run_handle,
    seed_profiles,
    send,
    shard_handle,
    store_events,
    until_shard,
    virtual_time,
    write_example_channels,
    write_journey_channels,
    write_users,
)
from tests.journey_outcomes import JourneyOutcome, UserOutcome, outcome_of, read_run_keys
from tests.journey_script import (
    Advance,
    Cancel,
    Check,
    LiveRun,
    Post,
    Send,
    Step,
    Trigger,
    UntilListening,
    UntilRun,
    UntilShard,
)
from tests.receiver import Receiver
from workflows.plan_run import PlanRunWorkflow

Hosted = list[Callable[..., Any]]
__all__ = [
    "Advance",
    "Cancel",
    "Check",
    "JourneyKit",
    "JourneyOutcome",
    "LiveRun",
    "Post",
    "Send",
    "Trigger",
    "UntilListening",
    "UntilRun",
    "UntilShard",
    "UserOutcome",
    "journey",
]


class JourneyKit:
    """Runs journeys end to end for one test (the ``journey`` fixture)."""

    def __init__(
        self,
        settings: Settings,
        *,
        pool: DbPool,
        redis: aioredis.Redis,
        receiver: Receiver,
        directory: Path,
    ) -> None:
        self.settings = for_test(
            settings, write_journey_channels(directory, receiver_url=receiver.url)
        )
        self.pool, self.redis, self.receiver, self.directory = pool, redis, receiver, directory
        self._keys: dict[str, dict[str, dict[str, int]]] = {}
        self.ingest_url: str | None = None

    def use_services(self, services: dict[str, dict[str, Any]]) -> None:
        """Add judgement services (``check`` steps ask them) to the kit's channels file."""
        path = self.settings.channels_file
        body = yaml.safe_load(path.read_text())
        body["services"] = body.get("services", {}) | services
        path.write_text(yaml.safe_dump(body))

    def use_ingest(self, url: str) -> None:
        """Let ``Post`` steps reach the ingest API at ``url`` (the ``ingest_url`` fixture)."""
        self.ingest_url = url

    def use_example_channels(
        self, *, smtp_port: int | None = None, judge_url: str | None = None
    ) -> None:
        """Send through the channels of ``examples/channels.yaml`` (to the receiver; email to
        an SMTP sink on ``smtp_port``; its judgement services asked at ``judge_url``)."""
        channels = write_example_channels(
            self.directory, receiver_url=self.receiver.url, smtp_port=smtp_port,
            judge_url=judge_url,
        )  # fmt: skip
        self.settings = self.settings.model_copy(update={"channels_file": channels})

    def use_policy(self, policy: dict[str, Any]) -> Path:
        """Launch under this workspace policy (a ``JOURNEYS_POLICY`` file of the test's own)."""
        path = self.directory / f"policy-{uuid.uuid4().hex[:6]}.yaml"
        path.write_text(yaml.safe_dump(policy, sort_keys=False))
        self.settings = self.settings.model_copy(update={"policy_file": path})
        return path

    def plan_file(self, body: dict[str, Any]) -> Path:
        """A plan file from ``body`` with the test defaults (one shard, pages of 50; an event
        entry lets everyone in, other entries take the users the test gives)."""
        by_event = body.get("entry", {}).get("type") in ("event", "api")
        full = {
            "id": f"jny-{uuid.uuid4().hex[:8]}",
            "name": "Test journey",
            "shards": 1,
            "audience": (
                {"source": "all"}
                if by_event
                else {"source": "list", "name": "unused-when-a-file-is-given"}
            ),
            "entry": {"type": "immediate"},
            "limits": {"page_size": 50, "concurrency": 4},
            **body,
        }
        path = self.directory / f"{full['id']}.yaml"
        path.write_text(yaml.safe_dump(full, sort_keys=False))
        return path

    async def run(
        self,
        body: dict[str, Any] | Path,
        *,
        users: Sequence[str] | None,
        profiles: dict[str, dict[str, Any]] | None = None,
        history: Sequence[JourneyEvent] = (),
        script: Sequence[Step] = (),
        options: RunOptions | None = None,
        skipping: bool = True,
    ) -> JourneyOutcome:
        """Launch ``body`` (a plan body, or a plan file) on ``users`` (None: an event entry
        with no audience), play ``script`` and return the outcome once the run ends.
        ``profiles`` are upserted and ``history`` stored as past events first; with
        ``skipping`` virtual time jumps whenever nothing is in flight, else only on Advance."""
        plan_file = body if isinstance(body, Path) else self.plan_file(body)
        plan = read_plan(plan_file, channels=self.settings.channels_file)
        if profiles:
            await seed_profiles(self.pool, profiles)
        if history:
            await store_events(self.pool, list(history))
        audience = None if users is None else write_users(self.directory, list(users))
        async with (
            worker_running(self.settings, wrap=self._snapshotting),
            virtual_time(self.settings, skipping=skipping) as time,
        ):
            launched, handle = await launch_journey(
                self.settings,
                time,
                pool=self.pool,
                redis=self.redis,
                plan_file=plan_file,
                users=audience,
                options=options,
            )
            live = LiveRun(launched=launched, time=time, receiver=self.receiver, shards=plan.shards)
            ending = asyncio.ensure_future(handle.result())
            try:
                if listening_entry(plan) is not None:  # every shard listens: events find them
                    for shard in range(plan.shards):
                        ready = until_shard(time.client, launched.run_id, _any, shard=shard)
                        await _unless_failed(ready, ending)
                for step in script:
                    await _unless_failed(self._play(live, step), ending)
                result = await ending
            except BaseException:
                ending.cancel()  # a failed step: leave no run behind, polled or listening
                with contextlib.suppress(RPCError):  # it may have ended already
                    await handle.terminate("the test's script failed")
                raise
            progress = await handle.query(PlanRunWorkflow.progress)  # replayed, while we host
        return await outcome_of(
            self.pool,
            self._keys.get(launched.run_id, {}),
            plan=plan,
            launched=launched,
            result=result,
            nodes=node_totals(progress.per_shard),
        )

    async def send(self, live: LiveRun, events: list[JourneyEvent]) -> None:
        """Signal ``events`` to the live run's shards (what ``Send`` does)."""
        await send(live.time.client, live.run_id, events, shards=live.shards)

    async def client(self) -> Client:
        """A Temporal client on the kit's services."""
        return await client_for(self.settings)

    async def post(self, events: list[dict[str, Any]]) -> None:
        """Send ``events`` over the ingest API (what ``Post`` does)."""
        assert self.ingest_url is not None, "call journey.use_ingest(ingest_url) first"
        async with Journeys(self.ingest_url) as journeys:
            await journeys.send_events(events)

    async def _play(self, live: LiveRun, step: Step) -> None:
        if isinstance(step, Send):
            await self.send(live, step.events)
        elif isinstance(step, Post):
            await self.post(step.events)
        elif isinstance(step, Trigger):
            assert self.ingest_url is not None, "call journey.use_ingest(ingest_url) first"
            async with Journeys(self.ingest_url) as journeys:
                await journeys.trigger(
                    live.launched.plan_id, entries=step.entries, request_id=step.request_id
                )
        elif isinstance(step, UntilListening):
            key = listeners_key(step.event)
            await eventually(lambda: self.redis.hget(key, live.run_id), until=bool)
        elif isinstance(step, Advance):
            shards = range(live.shards) if step.shard is None else [step.shard]
            handles = [shard_handle(live.time.client, live.run_id, k) for k in shards]
            running = [h for h in handles if await _running(h)]
            # each shard's clock is its own: move them all at once
            await asyncio.gather(*(live.time.fast_forward(h, step.by) for h in running))
        elif isinstance(step, UntilRun):
            run = run_handle(live.time.client, live.run_id)
            await eventually(lambda: live_progress(live.time.client, run), until=step.ok)
        elif isinstance(step, UntilShard):
            await until_shard(live.time.client, live.run_id, step.ok, shard=step.shard)
        elif isinstance(step, Cancel):
            handle = run_handle(live.time.client, live.run_id)
            await handle.signal(PlanRunWorkflow.cancel, ControlSignal())
        else:
            await step.probe(live)

    def _snapshotting(self, hosted: Hosted) -> Hosted:
        """The worker's activities with a ``cleanup_run`` that first keeps the run's keys,
        and an ``admit_entries`` that first keeps the keys it is told to delete (the cohorts
        that left an event-triggered shard), so paths see every cohort a run made."""
        redis, keys = self.redis, self._keys
        real_cleanup = next(f for f in hosted if _name(f) == contracts.CLEANUP_RUN.name)
        real_admit = next(f for f in hosted if _name(f) == contracts.ADMIT_ENTRIES.name)

        @activity.defn(name=contracts.CLEANUP_RUN.name)
        async def cleanup_run(data: CleanupInput) -> CleanupOutput:
            kept = keys.setdefault(data.run_id, {})
            kept.update(await read_run_keys(redis, data.run_id))
            out: CleanupOutput = await real_cleanup(data)
            return out

        @activity.defn(name=contracts.ADMIT_ENTRIES.name)
        async def admit_entries(data: AdmitEntriesInput) -> AdmitEntriesOutput:
            kept = keys.setdefault(data.run_id, {})
            kept.update(await read_run_keys(redis, data.run_id, only=data.drop_keys))
            out: AdmitEntriesOutput = await real_admit(data)
            return out

        wrapped: dict[int, Callable[..., Any]] = {
            id(real_cleanup): cleanup_run,
            id(real_admit): admit_entries,
        }
        return [wrapped.get(id(f), f) for f in hosted]


async def _unless_failed(step: Awaitable[object], ending: asyncio.Future[PlanRunResult]) -> None:
    """Play ``step``; if the run fails meanwhile, raise its failure instead of waiting for a
    condition that will never hold."""
    playing = asyncio.ensure_future(step)
    waiting: set[asyncio.Future[Any]] = {playing, ending}
    await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    failure = ending.exception() if ending.done() else None
    if not playing.done() and failure is not None:
        playing.cancel()
        raise failure
    await playing


async def _running(handle: WorkflowHandle[Any, Any]) -> bool:
    """Whether the shard workflow exists and runs (empty shards are never started)."""
    try:
        status = (await handle.describe()).status
    except RPCError as exc:
        if exc.status is RPCStatusCode.NOT_FOUND:
            return False
        raise
    return status is WorkflowExecutionStatus.RUNNING


def _any(_: ShardSummary) -> bool:
    return True


def _name(fn: Callable[..., Any]) -> str:
    return str(activity._Definition.must_from_callable(fn).name)


@pytest_asyncio.fixture(loop_scope="session")
async def journey(
    stack_settings: Settings,
    pool: DbPool,
    redis: aioredis.Redis,
    tmp_path: Path,
    receiver: Receiver,
) -> JourneyKit:
    """The journey test kit, on the session's services and a receiver of the test's own."""
    return JourneyKit(stack_settings, pool=pool, redis=redis, receiver=receiver, directory=tmp_path)
