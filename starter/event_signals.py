"""Deliver user events to the shards of a running journey: one batched ``events`` signal per
shard, never one per event (each signal is a history event of the shard)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from journeys.events import EventBatch, JourneyEvent, take_batch
from journeys.names import shard_workflow_id
from journeys.sharding import shard_of
from workflows.shard import ShardWorkflow

MAX_BATCH = 500
"""Events per signal; batches are also cut at ``MAX_BATCH_BYTES`` so a signal stays far
below Temporal's 2 MiB payload limit whatever the events carry."""
MAX_BATCH_BYTES = 512 * 1024


async def signal_events(
    client: Client, *, run_id: str, shards: int, events: Sequence[JourneyEvent]
) -> dict[int, int]:
    """Send ``events`` to the shard workflows of ``run_id``; returns events sent per shard.

    A shard that is not running (it had no users, or it finished) is skipped: its users are
    in no journey of this run, so there is nothing to tell it.
    """
    by_shard: dict[int, list[JourneyEvent]] = defaultdict(list)
    for event in events:
        by_shard[shard_of(event.user_id, shards)].append(event)
    sent: dict[int, int] = {}
    for shard in sorted(by_shard):
        handle = client.get_workflow_handle_for(ShardWorkflow.run, shard_workflow_id(run_id, shard))
        try:
            for batch in _batches(by_shard[shard]):
                await handle.signal(ShardWorkflow.events, EventBatch(events=batch))
                sent[shard] = sent.get(shard, 0) + len(batch)
        except RPCError as exc:
            if exc.status is not RPCStatusCode.NOT_FOUND:
                raise
    return sent


def _batches(events: list[JourneyEvent]) -> list[list[JourneyEvent]]:
    batches: list[list[JourneyEvent]] = []
    taken = 0
    while taken < len(events):
        batch = take_batch(events[taken:], most=MAX_BATCH, max_bytes=MAX_BATCH_BYTES)
        batches.append(batch)
        taken += len(batch)
    return batches
