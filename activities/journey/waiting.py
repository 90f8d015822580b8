"""Activities of ``wait_for_event`` nodes and exit events, all on one shard's keys."""

from __future__ import annotations

import redis.asyncio as aioredis
from temporalio import activity

from workflows.journey_models import (
    CatchEventsInput,
    CatchEventsOutput,
    CloseWaitInput,
    CloseWaitOutput,
    MarkExitedInput,
    MarkExitedOutput,
)

# Members of the cohort not caught before and not exited join the batch and the caught set.
# One script, so a retried activity catches nobody twice; every key has the shard's tag.
_CATCH = """
local n = 0
for i, user in ipairs(ARGV) do
    if redis.call('ZSCORE', KEYS[1], user)
        and not redis.call('ZSCORE', KEYS[2], user)
        and not redis.call('ZSCORE', KEYS[4], user) then
        redis.call('ZADD', KEYS[2], 0, user)
        redis.call('ZADD', KEYS[3], 0, user)
        n = n + 1
    end
end
return n
"""


class WaitingActivities:
    """Catch arrivals, close windows, mark exits; built by the worker with the Redis pool."""

    def __init__(self, *, redis: aioredis.Redis) -> None:
        self._redis = redis
        self._catch = redis.register_script(_CATCH)

    @activity.defn(name="catch_events")
    async def catch_events(self, data: CatchEventsInput) -> CatchEventsOutput:
        """Move the waiting users whose event arrived into ``batch_key``.

        A retry after the script ran finds them caught already and adds none, so it reports
        the batch's true size instead of the script's count.
        """
        keys = [data.cohort_key, data.caught_key, data.batch_key, data.exited_key]
        await self._catch(keys=keys, args=sorted(set(data.users)))
        return CatchEventsOutput(caught=int(await self._redis.zcard(data.batch_key)))

    @activity.defn(name="close_wait")
    async def close_wait(self, data: CloseWaitInput) -> CloseWaitOutput:
        """The window closed: cohort minus caught minus exited goes on along on_timeout."""
        left = await self._redis.zdiffstore(data.out_key, [data.cohort_key, data.caught_key])
        timed_out = await self._redis.zdiffstore(data.out_key, [data.out_key, data.exited_key])
        return CloseWaitOutput(timed_out=int(timed_out), exited=int(left) - int(timed_out))

    @activity.defn(name="mark_exited")
    async def mark_exited(self, data: MarkExitedInput) -> MarkExitedOutput:
        """Add users to the shard's exited set; every node skips them from now on."""
        if not data.users:
            return MarkExitedOutput(marked=0)
        added = await self._redis.zadd(data.exited_key, dict.fromkeys(data.users, 0), nx=True)
        return MarkExitedOutput(marked=int(added or 0))
