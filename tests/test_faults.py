"""The fault harness's scenarios in short form (``python -m bench.faults`` runs them full size).

One private embedded stack for the module (its services are killed, restarted and wiped),
a worker and an ingest API in processes of their own, and the recording HTTP provider. Each
scenario runs the harness's own load and its own fault at a few thousand users, with pages
small enough that the fault lands while pages are still to be read, and asserts the
harness's verdict: every user and every event answered 202 sent exactly once (or dead-lettered
with its reason), or, where Redis lost the data, the run failed naming it.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from activities.redis_epoch import restore_epoch
from bench.faults.load import Rig, Shape, trial
from bench.faults.outcome import lost
from bench.faults.rig import private_stack, processes
from bench.faults.scenarios import SCENARIOS
from bench.http_receiver import SECRET
from journeys.settings import Settings
from starter.connect import database, redis_client
from tests.engine import for_test, write_channels
from tests.receiver import Receiver

USERS = 2_000
RATE = 20  # events/s into the event journey while the blast runs
SHAPE = Shape(
    shards=4,
    page_size=50,
    concurrency=1,
    retry_backoff=timedelta(seconds=1),
    heartbeat=timedelta(seconds=3),
)
DOWN = timedelta(seconds=3)  # the provider's outage


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def rig(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Rig]:
    directory = tmp_path_factory.mktemp("faults")
    with Receiver(secret=SECRET) as receiver:
        async with private_stack(Settings()) as (stack, base):
            settings = for_test(base, write_channels(directory, receiver_url=receiver.url))
            async with processes(settings) as (worker, api):
                yield Rig(stack, settings, worker, api, receiver, USERS)


async def run(rig: Rig, name: str, directory: Path) -> dict[str, object]:
    scenario = SCENARIOS[name]
    outcome = await trial(
        rig,
        scenario.make(random.Random(name), DOWN),
        scenario=name,
        number=1,
        rate=RATE,
        directory=directory,
        shape=SHAPE,
        give_up=timedelta(seconds=5),  # a batch refused that long is not owed anything
        drain=timedelta(minutes=2),
    )
    row = outcome.row()
    assert outcome.passed, {k: row[k] for k in ("blast", "events", "events_stored", "blast_run")}
    return row


@pytest.mark.parametrize("name", ["worker_kill", "postgres", "temporal", "ingest_kill"])
async def test_a_crash_or_restart_loses_and_doubles_nothing(
    rig: Rig, name: str, tmp_path: Path
) -> None:
    kills = rig.worker.kills + rig.api.kills
    row = await run(rig, name, tmp_path)
    assert row["blast_run"] == "completed" and row["event_run"] == "cancelled"
    assert row["blast"]["sent"] == USERS and row["blast"]["dead"] == 0  # type: ignore[index]
    assert row["events"]["users"] > 0  # type: ignore[index]
    if name in ("worker_kill", "ingest_kill"):
        assert rig.worker.kills + rig.api.kills == kills + 1


async def test_a_failing_then_down_provider_ends_with_every_user_sent_or_dead_lettered(
    rig: Rig, tmp_path: Path
) -> None:
    row = await run(rig, "provider", tmp_path)
    blast = row["blast"]
    assert blast["sent"] + blast["dead"] == USERS  # type: ignore[index]
    # users that failed every attempt are dead-lettered, each with the provider's answer
    assert all(blast["reasons"])  # type: ignore[index]
    assert rig.receiver.fail_ratio == 0.0  # the fault put the provider back as it was


async def test_redis_restarted_from_its_append_only_file_loses_nothing(
    rig: Rig, tmp_path: Path
) -> None:
    row = await run(rig, "redis_aof", tmp_path)
    assert row["blast_run"] == "completed" and row["blast"]["sent"] == USERS  # type: ignore[index]


async def test_redis_that_lost_its_data_fails_the_runs_naming_it_and_refuses_events(
    rig: Rig, tmp_path: Path
) -> None:
    row = await run(rig, "redis_no_aof", tmp_path)
    # pages were still to be read, and the event journey was still admitting: both runs
    # stop naming the loss rather than skip users
    assert lost(str(row["blast_run"])) and lost(str(row["event_run"])), row
    assert "Redis lost" in str(row["blast_run"])
    async with httpx.AsyncClient(base_url=rig.api.url) as http:
        event = {"user_id": "after-loss", "name": "fault_ping"}
        refused = await http.post("/v1/events", json={"events": [event]})
        assert refused.status_code == 503 and "Redis lost" in refused.text
        async with database(rig.settings) as pool, redis_client(rig.settings) as redis:
            await restore_epoch(pool, redis)  # what `journeys recover redis` ends with
        assert (await http.post("/v1/events", json={"events": [event]})).status_code == 202
