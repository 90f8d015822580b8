"""Payloads of the page activities: sends, routing pages, and cohort sizes."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from journeys.contracts.controls import Controls
from journeys.contracts.counters import Counters
from journeys.plan.steps import Step
from journeys.rules import Rule


class DeliverPageInput(BaseModel):
    """One page of one cohort at one ``send`` node."""

    run_id: str
    plan_id: str
    shard: int
    shards: int
    node: str
    channel: str
    template: str
    vars: dict[str, object] = Field(default_factory=dict)
    cohort_key: str
    state_key: str | None = None
    """The shard's mark (:func:`journeys.names.run_state_key`), checked after the read; None
    for runs set up before marks existed."""
    page: int
    page_size: int
    attempt: int
    max_attempts: int
    retry_key: str
    passed_key: str | None = None
    """Where users who got through go, to form the next node's cohort (None: the journey ends)."""
    rate_scope: str | None = None
    exited_key: str | None = None
    """Users in this set are skipped (an exit criterion removed them)."""
    exit_rules: list[Rule] = Field(default_factory=list)
    """Plan-level exit rules, checked on the page's users before sending."""
    now: datetime | None = None
    """The workflow's clock, for rules with relative dates and windows."""
    timezone: str = "UTC"
    """The plan's zone: the day "today" is for anniversary rules."""
    controls: Controls | None = None
    """Suppression, quiet hours, caps, budget and quota (None: a page recorded before the
    delivery controls, sent unchecked)."""
    deferred_prefix: str | None = None
    """Cohort id prefix of users held back: ``{prefix}.{release epoch ms}`` for quiet hours,
    ``{prefix}.a{release epoch ms}`` for bids waiting out the arbitration window."""
    confirm: bool = False
    """This pass confirms the bids an earlier pass placed (arbitration between plans)."""
    dry_run: bool = False
    """Render and log the page only (``RunOptions.dry_run``)."""


class DeferredGroup(BaseModel):
    """Users of a page held until ``release``, in cohort ``cohort``: quiet hours, or bids
    that come back to ``confirm`` once the arbitration window closes."""

    cohort: str
    release: datetime
    users: int
    confirm: bool = False


class DeliverPageOutput(BaseModel):
    """How the page's users came out; ``retry`` went to ``retry_key`` for a later pass."""

    counters: Counters
    retry: int = 0
    passed: int = 0
    """Users delivered or skipped: they go on to the next node."""
    deferred: list[DeferredGroup] = Field(default_factory=list)
    """Users held back, by release time (earliest first)."""


class ReleaseCohortInput(BaseModel):
    """A cancelled run's cohort at a send node: give back what its users still reserve."""

    run_id: str
    node: str
    channel: str
    cohort_key: str
    from_rank: int = 0
    """Members before this rank were on pages already run (sent or queued): kept."""
    controls: Controls


class ReleaseCohortOutput(BaseModel):
    """How many reservations were given back."""

    released: int


class RoutePageInput(BaseModel):
    """One page of a cohort at a routing node: branch, ab_split, update, or wait_until in
    users' own zones. Users are written to ``{out_prefix}.{route}`` cohort keys."""

    run_id: str
    shard: int
    node: str
    step: Step
    cohort_key: str
    state_key: str | None = None
    """The shard's mark (:func:`journeys.names.run_state_key`), checked after the read; None
    for runs set up before marks existed."""
    page: int
    page_size: int
    out_prefix: str
    """Cohort id prefix of the outputs; route ``r`` goes to ``cohort_key(run, shard,
    f"{out_prefix}.{r}")``."""
    exited_key: str | None = None
    exit_rules: list[Rule] = Field(default_factory=list)
    now: datetime
    fallback_zone: str = "UTC"
    """The plan's zone: user-local times fall back to it, and it is the day "today" is for
    anniversary rules."""
    dry_run: bool = False
    """Route only: write no profile update and no A/B assignment (``RunOptions.dry_run``)."""
    winner_arm: int | None = None
    """An ab_split's decided winner: every user goes to this arm (assigned ``by_winner``)."""
    test_share: int | None = None
    """An ab_split with a winning path in a blast, undecided: only this percent of users is
    split; the others go to the route that waits for the winner."""


class RoutePageOutput(BaseModel):
    """Users per route (``b0``.. / ``else``, ``a0``.., ``tz:Zone``, ``ok``) and exits."""

    routes: dict[str, int] = Field(default_factory=dict)
    exited: int = 0


class CohortSizeInput(BaseModel):
    """A cohort's Redis key."""

    key: str
    state_key: str | None = None
    """The shard's mark (:func:`journeys.names.run_state_key`), checked after the read; None
    for runs set up before marks existed."""


class CohortSizeOutput(BaseModel):
    """Its member count."""

    size: int
