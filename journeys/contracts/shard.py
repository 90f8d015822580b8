"""A shard's cohorts and its whole state, carried across continue-as-new."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from journeys.contracts.counters import Counters
from journeys.contracts.runs import RunOptions
from journeys.events import JourneyEvent
from journeys.plan.models import Plan
from journeys.policy import Policy


class HeldGroup(BaseModel):
    """Users of a send pass held for quiet hours until ``release``, in cohort ``cohort``."""

    cohort: str
    release: datetime
    users: int


class Cohort(BaseModel):
    """Users of one shard standing at one node: a Redis sorted set, known by key and size.

    Everything a node needs to resume after continue-as-new lives here: the page cursor, the
    routes counted so far, the timer's deadline, the events waiting to be matched.
    """

    id: str
    """Unique in the shard and deterministic: ``{parent id}>{node}.{route}``."""
    node: str
    key: str
    size: int
    attempt: int = 1
    next_page: int = 0
    not_before: datetime | None = None
    """Retry backoff, quiet hours or the arbitration window: the pass starts no earlier."""
    confirm: bool = False
    """Its users bid for their slots; this pass confirms the bids (arbitration)."""
    retried: int = 0
    """Users the pages of this pass queued for another pass so far (send nodes)."""
    held: list[HeldGroup] = Field(default_factory=list)
    """Users the pages of this pass held for quiet hours so far (send nodes), by cohort:
    kept in the cohort, so a pass cut by continue-as-new forgets none of its earlier
    pages'. (Bids come back page by page, as cohorts of their own.)"""
    wake_at: datetime | None = None
    """The timer of a wait, wait_until or wait_for_event node, once armed (and of users
    waiting for an ab_split's winner)."""
    awaiting_winner: bool = False
    """Users an ab_split with a winning path held back: at ``wake_at`` they go to the
    winner."""
    zone: str | None = None
    """wait_until in users' own zones: the zone this sub-cohort waits in."""
    routes: dict[str, int] = Field(default_factory=dict)
    """Route -> users written so far by this cohort's routing pages."""
    exited: int = 0
    """Users dropped by exit criteria on the pages done so far."""
    caught: int = 0
    """wait_for_event: batches of arrivals moved on so far."""
    left: int = 0
    """wait_for_event: users those batches took on (they no longer stand here)."""
    arrival_counted: bool = False
    """Its users are counted in the node's ``entered`` (holds count on arrival; a cohort
    carried from before that counts when it leaves)."""
    inbox: list[JourneyEvent] = Field(default_factory=list)
    """wait_for_event: events received and not matched yet."""


class ShardState(BaseModel):
    """Start (or continue) one shard's interpreter; carries all state across continue-as-new."""

    run_id: str
    plan: Plan
    version: int
    shard: int
    shards: int
    cohorts: list[Cohort]
    counters: Counters = Counters()
    nodes: dict[str, Counters] = Field(default_factory=dict)
    options: RunOptions = RunOptions()
    policy: Policy | None = None
    """The run's workspace policy (delivery controls)."""
    delivery_controls: bool = False
    """Its sends pass the delivery gate (``PlanRunInput.delivery_controls``)."""
    paused: bool = False
    cancelled: bool = False
    generation: int = 0
    reports_sent: int = 0
    entered_at: datetime | None = None
    """When the audience entered (the goal window starts here)."""
    winners: dict[str, int] = Field(default_factory=dict)
    """ab_split node -> the arm its winning path chose (decided once per run)."""
    split_at: dict[str, datetime] = Field(default_factory=dict)
    """ab_split node with a winning path -> when its first users were split (an
    event-triggered plan decides from then plus ``after``)."""
    winner_asked_at: dict[str, datetime] = Field(default_factory=dict)
    """ab_split node -> when this shard last asked for its winner (event plans)."""
    exit_inbox: list[JourneyEvent] = Field(default_factory=list)
    goal_inbox: list[JourneyEvent] = Field(default_factory=list)
    entry_inbox: list[JourneyEvent] = Field(default_factory=list)
    """Event-triggered plans: entry events waiting for the next flush."""
    entry_batches: int = 0
    """Entry batches admitted so far (the next cohort is ``in{entry_batches}``)."""
    dead_keys: list[str] = Field(default_factory=list)
    """Keys of cohorts that left, for the next admission to delete (:mod:`workflows.dead_keys`)."""
    entries_until: datetime | None = None
    """The entry window's end (None: open until the run is cancelled)."""
    entries_closed: bool = False
    last_entry_at: datetime | None = None
    state_key: str | None = None
    """The shard's mark in Redis (:func:`journeys.names.run_state_key`), which its page reads
    check; None for runs set up before marks existed."""
    eligible_key: str | None = None
    """Only members of this set may enter (the plan's audience, materialised)."""
