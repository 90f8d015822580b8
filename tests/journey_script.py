"""The script of a journey test: what the test does to a live run, step by step (see
:mod:`tests.journey_runner`, which plays it)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio.testing import TimeSkipper

from journeys.contracts.runs import RunProgress, ShardSummary
from journeys.events import JourneyEvent
from starter.launching import Launched
from tests.receiver import Receiver


@dataclass(frozen=True)
class Send:
    """Signal these events to the run's shards."""

    events: list[JourneyEvent]


@dataclass(frozen=True)
class Post:
    """Send these events over the ingest API, as product services do (``journey.ingest_url``
    must be set: ``journey.use_ingest(ingest_url)``)."""

    events: list[dict[str, Any]]


@dataclass(frozen=True)
class Trigger:
    """Enter users into the live run's plan over the ingest API (``POST
    /v1/plans/{plan_id}/entries``), as a business system does; ``request_id`` makes a repeat."""

    entries: list[dict[str, Any]]
    request_id: str | None = None


@dataclass(frozen=True)
class UntilListening:
    """Wait until the run has registered for ``event`` (the ingest path routes by it)."""

    event: str


@dataclass(frozen=True)
class Advance:
    """Move the clock of shard ``shard`` on, or of every running shard (only in runs without
    automatic skipping)."""

    by: timedelta
    shard: int | None = None


@dataclass(frozen=True)
class UntilShard:
    """Wait until shard ``shard``'s progress satisfies ``ok`` (a condition, not a timed wait)."""

    ok: Callable[[ShardSummary], bool]
    shard: int = 0


@dataclass(frozen=True)
class UntilRun:
    """Wait until the run's live progress (the run's view, each live shard queried) satisfies
    ``ok``."""

    ok: Callable[[RunProgress], bool]


@dataclass(frozen=True)
class Check:
    """Run an assertion mid-journey: ``probe(run)`` with the live run."""

    probe: Callable[[LiveRun], Awaitable[None]]


@dataclass(frozen=True)
class Cancel:
    """Cancel the run (an event-triggered run with no window listens until cancelled)."""


Step = Send | Post | Trigger | UntilListening | Advance | UntilShard | UntilRun | Check | Cancel


@dataclass
class LiveRun:
    """A run while its script plays."""

    launched: Launched
    time: TimeSkipper
    receiver: Receiver
    shards: int

    @property
    def run_id(self) -> str:
        return self.launched.run_id
