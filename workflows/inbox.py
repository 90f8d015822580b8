"""Bounds on buffered events: what one activity takes and what a continue-as-new carries.

Temporal refuses payloads over 2 MiB, so a flood of events must never land in one activity
input or one continue-as-new input. Sizes are measured as the events' JSON.
"""

from __future__ import annotations

from collections.abc import Sequence

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from journeys.events import JourneyEvent, take_batch

BATCH_EVENTS = 1_000
"""Events per activity (exits, goals, a waiting cohort's arrivals)."""
BATCH_BYTES = 512 * 1024
"""Events per activity, as JSON: an input stays far below 2 MiB."""
CARRY_EVENTS = 500
CARRY_BYTES = 256 * 1024
"""Buffered events a continue-as-new may carry; more are worked off first."""


def next_batch(inbox: Sequence[JourneyEvent], *, most: int) -> list[JourneyEvent]:
    """The oldest events of ``inbox`` for one activity: at most ``most`` and ``BATCH_BYTES``."""
    return take_batch(inbox, most=most, max_bytes=BATCH_BYTES)


def too_big_to_carry(inbox: Sequence[JourneyEvent]) -> bool:
    """Whether ``inbox`` must shrink before a continue-as-new carries it."""
    if len(inbox) > CARRY_EVENTS:
        return True
    return sum(len(event.model_dump_json()) for event in inbox) > CARRY_BYTES
