"""Typed calls from workflow code into activities, one per activity.

Each call's payload types come from its contract (:mod:`journeys.contracts.activities`) and
its timeouts and retries from one of the few named kinds of call below, so workflow code never
names an activity by a bare string and no two calls of one kind drift apart:
``await calls.deliver_page(DeliverPageInput(...), summary=...)`` is a ``DeliverPageOutput``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Generic, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel

    from journeys.contracts import activities as contracts
    from journeys.contracts.activities import ActivityContract

In = TypeVar("In", bound=BaseModel)
Out = TypeVar("Out", bound=BaseModel)

STEADY_RETRY = RetryPolicy(maximum_interval=timedelta(seconds=30), maximum_attempts=10)
"""Small Redis or PostgreSQL calls: a few minutes of retries ride out a restart."""
PAGE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=60),
    maximum_attempts=20,
)
"""Page activities: longer, since a provider may be down for a while; pages are idempotent."""


@dataclass(frozen=True)
class CallKind:
    """The timeouts and retries of one kind of activity call."""

    start_to_close: timedelta
    retry: RetryPolicy
    heartbeat: timedelta | None = None


QUICK = CallKind(start_to_close=timedelta(seconds=60), retry=STEADY_RETRY)
"""One small Redis or PostgreSQL round trip or a few."""
HOUSEKEEPING = CallKind(start_to_close=timedelta(minutes=5), retry=STEADY_RETRY)
"""Scans over a run's keys."""
MATERIALISE = CallKind(
    start_to_close=timedelta(minutes=30), heartbeat=timedelta(minutes=2), retry=STEADY_RETRY
)
"""Copying a whole audience into shard keys."""
HINT = CallKind(
    start_to_close=timedelta(seconds=1),
    retry=RetryPolicy(initial_interval=timedelta(milliseconds=100), maximum_attempts=2),
)
"""A call that only makes things faster: two quick tries, then the caller goes on. Both end
well inside a signal hold's 3 s, after which trying again would be pointless."""
PAGE = CallKind(start_to_close=timedelta(minutes=10), retry=PAGE_RETRY)
"""One page of users; the heartbeat timeout comes from the run's options."""


class Call(Generic[In, Out]):
    """A typed call of one activity: its contract's payload types, one kind's options."""

    def __init__(self, contract: ActivityContract[In, Out], kind: CallKind) -> None:
        self.contract = contract
        self.kind = kind

    async def __call__(self, arg: In, *, summary: str, heartbeat: timedelta | None = None) -> Out:
        """Run the activity; ``heartbeat`` overrides the kind's (pages take the run's)."""
        kind = self.kind if heartbeat is None else replace(self.kind, heartbeat=heartbeat)
        result: Out = await workflow.execute_activity(
            self.contract.name,
            arg,
            result_type=self.contract.output,
            start_to_close_timeout=kind.start_to_close,
            heartbeat_timeout=kind.heartbeat,
            retry_policy=kind.retry,
            summary=summary,
        )
        return result


# a run's own calls
load_plan_version = Call(contracts.LOAD_PLAN_VERSION, QUICK)
materialise_audience = Call(contracts.MATERIALISE_AUDIENCE, MATERIALISE)
register_listeners = Call(contracts.REGISTER_LISTENERS, QUICK)
unregister_listeners = Call(contracts.UNREGISTER_LISTENERS, QUICK)
set_rate = Call(contracts.SET_RATE, QUICK)
seal_run_state = Call(contracts.SEAL_RUN_STATE, QUICK)
cleanup_run = Call(contracts.CLEANUP_RUN, HOUSEKEEPING)

# a shard's calls
cohort_size = Call(contracts.COHORT_SIZE, QUICK)
deliver_page = Call(contracts.DELIVER_PAGE, PAGE)
route_page = Call(contracts.ROUTE_PAGE, PAGE)
release_cohort = Call(contracts.RELEASE_COHORT, HOUSEKEEPING)
catch_events = Call(contracts.CATCH_EVENTS, QUICK)
close_wait = Call(contracts.CLOSE_WAIT, QUICK)
mark_exited = Call(contracts.MARK_EXITED, QUICK)
record_conversions = Call(contracts.RECORD_CONVERSIONS, QUICK)
admit_entries = Call(contracts.ADMIT_ENTRIES, QUICK)
decide_winner = Call(contracts.DECIDE_WINNER, QUICK)
hold_signals = Call(contracts.HOLD_SIGNALS, HINT)
open_signals = Call(contracts.OPEN_SIGNALS, HINT)
