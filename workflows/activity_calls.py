"""Typed calls from workflow code into activities, one function per activity.

Each call's payload types come from its contract (:mod:`journeys.contracts.activities`) and
its timeouts and retries from one of the few named kinds of call below, so workflow code never
names an activity by a bare string and no two calls of one kind drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta
from typing import TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel

    from journeys.contracts import activities as contracts
    from journeys.contracts.activities import ActivityContract
    from journeys.contracts.journey import (
        AdmitEntriesInput,
        AdmitEntriesOutput,
        CatchEventsInput,
        CatchEventsOutput,
        CloseWaitInput,
        CloseWaitOutput,
        MarkExitedInput,
        MarkExitedOutput,
        RecordConversionsInput,
        RecordConversionsOutput,
    )
    from journeys.contracts.pages import (
        CohortSizeInput,
        CohortSizeOutput,
        DeliverPageInput,
        DeliverPageOutput,
        RoutePageInput,
        RoutePageOutput,
    )
    from journeys.contracts.run_setup import (
        CleanupInput,
        CleanupOutput,
        ListenersInput,
        ListenersOutput,
        LoadPlanInput,
        LoadPlanOutput,
        MaterialiseInput,
        MaterialiseOutput,
        SetRateInput,
        SetRateOutput,
    )

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
PAGE = CallKind(start_to_close=timedelta(minutes=10), retry=PAGE_RETRY)
"""One page of users; the heartbeat timeout comes from the run's options."""


async def _execute(
    contract: ActivityContract[In, Out], arg: In, *, kind: CallKind, summary: str
) -> Out:
    result: Out = await workflow.execute_activity(
        contract.name,
        arg,
        result_type=contract.output,
        start_to_close_timeout=kind.start_to_close,
        heartbeat_timeout=kind.heartbeat,
        retry_policy=kind.retry,
        summary=summary,
    )
    return result


def _page(heartbeat: timedelta) -> CallKind:
    return replace(PAGE, heartbeat=heartbeat)


# --- a run's own calls -------------------------------------------------------------------


async def load_plan_version(arg: LoadPlanInput, *, summary: str) -> LoadPlanOutput:
    return await _execute(contracts.LOAD_PLAN_VERSION, arg, kind=QUICK, summary=summary)


async def materialise_audience(arg: MaterialiseInput, *, summary: str) -> MaterialiseOutput:
    return await _execute(contracts.MATERIALISE_AUDIENCE, arg, kind=MATERIALISE, summary=summary)


async def register_listeners(arg: ListenersInput, *, summary: str) -> ListenersOutput:
    return await _execute(contracts.REGISTER_LISTENERS, arg, kind=QUICK, summary=summary)


async def unregister_listeners(arg: ListenersInput, *, summary: str) -> ListenersOutput:
    return await _execute(contracts.UNREGISTER_LISTENERS, arg, kind=QUICK, summary=summary)


async def set_rate(arg: SetRateInput, *, summary: str) -> SetRateOutput:
    return await _execute(contracts.SET_RATE, arg, kind=QUICK, summary=summary)


async def cleanup_run(arg: CleanupInput, *, summary: str) -> CleanupOutput:
    return await _execute(contracts.CLEANUP_RUN, arg, kind=HOUSEKEEPING, summary=summary)


# --- a shard's calls ---------------------------------------------------------------------


async def cohort_size(arg: CohortSizeInput, *, summary: str) -> CohortSizeOutput:
    return await _execute(contracts.COHORT_SIZE, arg, kind=QUICK, summary=summary)


async def deliver_page(
    arg: DeliverPageInput, *, heartbeat: timedelta, summary: str
) -> DeliverPageOutput:
    return await _execute(contracts.DELIVER_PAGE, arg, kind=_page(heartbeat), summary=summary)


async def route_page(arg: RoutePageInput, *, heartbeat: timedelta, summary: str) -> RoutePageOutput:
    return await _execute(contracts.ROUTE_PAGE, arg, kind=_page(heartbeat), summary=summary)


async def catch_events(arg: CatchEventsInput, *, summary: str) -> CatchEventsOutput:
    return await _execute(contracts.CATCH_EVENTS, arg, kind=QUICK, summary=summary)


async def close_wait(arg: CloseWaitInput, *, summary: str) -> CloseWaitOutput:
    return await _execute(contracts.CLOSE_WAIT, arg, kind=QUICK, summary=summary)


async def mark_exited(arg: MarkExitedInput, *, summary: str) -> MarkExitedOutput:
    return await _execute(contracts.MARK_EXITED, arg, kind=QUICK, summary=summary)


async def record_conversions(
    arg: RecordConversionsInput, *, summary: str
) -> RecordConversionsOutput:
    return await _execute(contracts.RECORD_CONVERSIONS, arg, kind=QUICK, summary=summary)


async def admit_entries(arg: AdmitEntriesInput, *, summary: str) -> AdmitEntriesOutput:
    return await _execute(contracts.ADMIT_ENTRIES, arg, kind=QUICK, summary=summary)
