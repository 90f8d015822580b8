"""The custom search attributes, typed, and the helpers that set them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

PLAN_ID = SearchAttributeKey.for_keyword("JourneyPlanId")
PLAN_VERSION = SearchAttributeKey.for_int("JourneyPlanVersion")
RUN_KEY = SearchAttributeKey.for_keyword("JourneyRunKey")
SHARD = SearchAttributeKey.for_int("JourneyShard")
STATUS = SearchAttributeKey.for_keyword("JourneyStatus")
KIND = SearchAttributeKey.for_keyword("JourneyKind")
"""``transactional`` (order and logistics notices) or ``marketing``: reported apart."""
SCHEDULED_START = SearchAttributeKey.for_datetime("TemporalScheduledStartTime")
"""Set by Temporal on a workflow a schedule started: the occurrence's time."""


def run_attributes(
    *,
    plan_id: str,
    version: int,
    run_key: str,
    status: str,
    shard: int | None = None,
    transactional: bool | None = None,
) -> TypedSearchAttributes:
    """What a run (or, with ``shard``, a shard) is started with; children do not inherit.
    ``transactional`` sets JourneyKind (None: left unset, as shards of older runs had it)."""
    pairs: list[SearchAttributePair[Any]] = [
        SearchAttributePair(PLAN_ID, plan_id),
        SearchAttributePair(PLAN_VERSION, version),
        SearchAttributePair(RUN_KEY, run_key),
        SearchAttributePair(STATUS, status),
    ]
    if transactional is not None:
        pairs.append(SearchAttributePair(KIND, kind_of(transactional=transactional)))
    if shard is not None:
        pairs.append(SearchAttributePair(SHARD, shard))
    return TypedSearchAttributes(pairs)


def kind_of(*, transactional: bool) -> str:
    """The JourneyKind of a plan."""
    return "transactional" if transactional else "marketing"


def upsert_status(status: str) -> None:
    """Set JourneyStatus on the current workflow, if it changed."""
    current = workflow.info().typed_search_attributes.get(STATUS)
    if current != status:
        workflow.upsert_search_attributes([STATUS.value_set(status)])


def scheduled_at() -> datetime | None:
    """The occurrence time of a run a schedule started (its catch-up or backfill time, not
    when it ran), else None."""
    return workflow.info().typed_search_attributes.get(SCHEDULED_START)
