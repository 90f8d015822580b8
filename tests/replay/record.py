"""Record the histories that tests/test_replay.py replays.

Run it against a running stack (``journeys dev`` in another shell) after a deliberate,
`workflow.patched`-guarded change, and commit the new files beside the old ones: old
histories must keep replaying, new ones show the new behaviour.

    python -m tests.replay.record
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path

import redis.asyncio as aioredis
from temporalio.client import WorkflowHistory

from activities.db.pool import create_pool
from journeys.names import shard_workflow_id
from journeys.settings import get_settings
from tests.engine import (
    client_for,
    for_test,
    start_blast,
    worker_running,
    write_channels,
    write_ids,
    write_plan,
)
from tests.receiver import Receiver
from workflows.models import RunOptions

HERE = Path(__file__).parent


def save(name: str, history: WorkflowHistory) -> None:
    """``{"workflow_id": ..., "history": ...}``: the replayer needs the id the run had."""
    body = {"workflow_id": history.workflow_id, "history": json.loads(history.to_json())}
    (HERE / f"{name}.json").write_text(json.dumps(body, indent=1))


async def record() -> None:
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
        save("plan_run_v1", history)
        # Every run of the shard's continue-as-new chain, newest first.
        shard_id, run_id, generation = shard_workflow_id(launched.run_id, 0), "", 0
        while True:
            history = await client.get_workflow_handle(shard_id, run_id=run_id).fetch_history()
            save(f"shard_v1_run{generation}", history)
            started = history.events[0].workflow_execution_started_event_attributes
            run_id, generation = started.continued_execution_run_id, generation + 1
            if not run_id:
                break
        await redis.aclose()
        await pool.close()


if __name__ == "__main__":
    asyncio.run(record())
