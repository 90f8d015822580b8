"""Every activity as a contract: its name and its one input and one output model.

The worker registers one implementation under each name (``@activity.defn(name=X.name)``);
workflow code calls them only through :mod:`workflows.activity_calls`, which takes the types
from here, so a call and its implementation cannot disagree on a payload without mypy or
``tests/test_activity_contracts.py`` noticing. The names are what histories record: never
rename one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from pydantic import BaseModel

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
    ReleaseCohortInput,
    ReleaseCohortOutput,
    RoutePageInput,
    RoutePageOutput,
)
from journeys.contracts.run_setup import (
    CleanupInput,
    CleanupOutput,
    HoldSignalsInput,
    HoldSignalsOutput,
    ListenersInput,
    ListenersOutput,
    LoadPlanInput,
    LoadPlanOutput,
    MaterialiseInput,
    MaterialiseOutput,
    OpenSignalsInput,
    OpenSignalsOutput,
    SealRunStateInput,
    SealRunStateOutput,
    SetRateInput,
    SetRateOutput,
)
from journeys.contracts.winners import DecideWinnerInput, DecideWinnerOutput

In = TypeVar("In", bound=BaseModel)
Out = TypeVar("Out", bound=BaseModel)


@dataclass(frozen=True)
class ActivityContract(Generic[In, Out]):
    """One activity: the name histories record, and its payload types."""

    name: str
    input: type[In]
    output: type[Out]


LOAD_PLAN_VERSION = ActivityContract("load_plan_version", LoadPlanInput, LoadPlanOutput)
MATERIALISE_AUDIENCE = ActivityContract("materialise_audience", MaterialiseInput, MaterialiseOutput)
REGISTER_LISTENERS = ActivityContract("register_listeners", ListenersInput, ListenersOutput)
UNREGISTER_LISTENERS = ActivityContract("unregister_listeners", ListenersInput, ListenersOutput)
SET_RATE = ActivityContract("set_rate", SetRateInput, SetRateOutput)
SEAL_RUN_STATE = ActivityContract("seal_run_state", SealRunStateInput, SealRunStateOutput)
CLEANUP_RUN = ActivityContract("cleanup_run", CleanupInput, CleanupOutput)
COHORT_SIZE = ActivityContract("cohort_size", CohortSizeInput, CohortSizeOutput)
DELIVER_PAGE = ActivityContract("deliver_page", DeliverPageInput, DeliverPageOutput)
ROUTE_PAGE = ActivityContract("route_page", RoutePageInput, RoutePageOutput)
RELEASE_COHORT = ActivityContract("release_cohort", ReleaseCohortInput, ReleaseCohortOutput)
CATCH_EVENTS = ActivityContract("catch_events", CatchEventsInput, CatchEventsOutput)
CLOSE_WAIT = ActivityContract("close_wait", CloseWaitInput, CloseWaitOutput)
MARK_EXITED = ActivityContract("mark_exited", MarkExitedInput, MarkExitedOutput)
RECORD_CONVERSIONS = ActivityContract(
    "record_conversions", RecordConversionsInput, RecordConversionsOutput
)
ADMIT_ENTRIES = ActivityContract("admit_entries", AdmitEntriesInput, AdmitEntriesOutput)
DECIDE_WINNER = ActivityContract("decide_winner", DecideWinnerInput, DecideWinnerOutput)
HOLD_SIGNALS = ActivityContract("hold_signals", HoldSignalsInput, HoldSignalsOutput)
OPEN_SIGNALS = ActivityContract("open_signals", OpenSignalsInput, OpenSignalsOutput)


class Named(Protocol):
    """Any contract, whatever its payload types (for lists of them)."""

    @property
    def name(self) -> str: ...

    @property
    def input(self) -> type[BaseModel]: ...

    @property
    def output(self) -> type[BaseModel]: ...


ALL: tuple[Named, ...] = (
    LOAD_PLAN_VERSION,
    MATERIALISE_AUDIENCE,
    REGISTER_LISTENERS,
    UNREGISTER_LISTENERS,
    SET_RATE,
    SEAL_RUN_STATE,
    CLEANUP_RUN,
    COHORT_SIZE,
    DELIVER_PAGE,
    ROUTE_PAGE,
    RELEASE_COHORT,
    CATCH_EVENTS,
    CLOSE_WAIT,
    MARK_EXITED,
    RECORD_CONVERSIONS,
    ADMIT_ENTRIES,
    DECIDE_WINNER,
    HOLD_SIGNALS,
    OPEN_SIGNALS,
)
"""Every contract; the worker must register an implementation of each."""
