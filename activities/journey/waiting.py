"""Activities of ``wait_for_event`` nodes and exit events, all on one shard's keys."""

from __future__ import annotations

import redis.asyncio as aioredis
from temporalio import activity

from activities.db.pool import DbPool
from activities.journey.facts import entry_props
from journeys.contracts import activities as contracts
from journeys.contracts.journey import (
    CatchEventsInput,
    CatchEventsOutput,
    CloseWaitInput,
    CloseWaitOutput,
    MarkExitedInput,
    MarkExitedOutput,
)

# Members of the cohort not caught before and not exited join the batch and the caught set,
# keeping their score: it is their entry number, which the next nodes' idempotency keys,
# templates and rules read. One script, so a retried activity catches nobody twice; every
# key has the shard's tag.
_CATCH = """
local n = 0
for i, user in ipairs(ARGV) do
    local entry = redis.call('ZSCORE', KEYS[1], user)
    if entry
        and not redis.call('ZSCORE', KEYS[2], user)
        and not redis.call('ZSCORE', KEYS[4], user) then
        redis.call('ZADD', KEYS[2], entry, user)
        redis.call('ZADD', KEYS[3], entry, user)
        n = n + 1
    end
end
return n
"""


class WaitingActivities:
    """Catch arrivals, close windows, mark exits; built by the worker with the Redis pool."""

    def __init__(self, *, pool: DbPool, redis: aioredis.Redis) -> None:
        self._pool = pool
        self._redis = redis
        self._catch = redis.register_script(_CATCH)

    @activity.defn(name=contracts.CATCH_EVENTS.name)
    async def catch_events(self, data: CatchEventsInput) -> CatchEventsOutput:
        """Move the waiting users whose event arrived into ``batch_key``.

        A retry after the script ran finds them caught already and adds none, so it reports
        the batch's true size instead of the script's count.
        """
        users = sorted(set(data.users))
        if data.match_entry is not None and data.run_id is not None:
            users = await self._keyed(data, users)
        keys = [data.cohort_key, data.caught_key, data.batch_key, data.exited_key]
        if users:
            await self._catch(keys=keys, args=users)
        return CatchEventsOutput(caught=int(await self._redis.zcard(data.batch_key)))

    async def _keyed(self, data: CatchEventsInput, users: list[str]) -> list[str]:
        """Users whose entry (this cohort's, by score) has the event's ``match_entry`` value."""
        assert data.match_entry is not None and data.run_id is not None
        scores = await self._redis.zmscore(data.cohort_key, users)
        waiting = {u: int(s) for u, s in zip(users, scores, strict=True) if s is not None}
        props = await entry_props(self._pool, data.run_id, waiting)
        key = data.match_entry
        return sorted(
            user
            for user, entry in props.items()
            if key in entry and entry[key] in data.values.get(user, [])
        )

    @activity.defn(name=contracts.CLOSE_WAIT.name)
    async def close_wait(self, data: CloseWaitInput) -> CloseWaitOutput:
        """The window closed: cohort minus caught minus exited goes on along on_timeout."""
        left = await self._redis.zdiffstore(data.out_key, [data.cohort_key, data.caught_key])
        timed_out = await self._redis.zdiffstore(data.out_key, [data.out_key, data.exited_key])
        return CloseWaitOutput(timed_out=int(timed_out), exited=int(left) - int(timed_out))

    @activity.defn(name=contracts.MARK_EXITED.name)
    async def mark_exited(self, data: MarkExitedInput) -> MarkExitedOutput:
        """Add users to the shard's exited set; every node skips them from now on."""
        if not data.users:
            return MarkExitedOutput(marked=0)
        added = await self._redis.zadd(data.exited_key, dict.fromkeys(data.users, 0), nx=True)
        return MarkExitedOutput(marked=int(added or 0))
