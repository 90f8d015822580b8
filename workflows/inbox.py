"""Bounds on buffered events: what one activity takes and what a continue-as-new carries.

Temporal refuses payloads over 2 MiB, so a flood of events must never land in one activity
input or one continue-as-new input. Sizes are measured as the events' JSON.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from journeys.events import JourneyEvent

BATCH_BYTES = 512 * 1024
"""Events per activity, as JSON: an input stays far below 2 MiB."""
CARRY_EVENTS = 500
CARRY_BYTES = 256 * 1024
"""Buffered events a continue-as-new may carry; more are worked off first."""


def take_batch(inbox: Sequence[JourneyEvent], *, most: int) -> list[JourneyEvent]:
    """The oldest events of ``inbox``: at most ``most`` of them and ``BATCH_BYTES``."""
    batch: list[JourneyEvent] = []
    size = 0
    for event in inbox[:most]:
        weight = len(event.model_dump_json())
        if batch and size + weight > BATCH_BYTES:
            break
        batch.append(event)
        size += weight
    return batch


def too_big_to_carry(inbox: Sequence[JourneyEvent]) -> bool:
    """Whether ``inbox`` must shrink before a continue-as-new carries it."""
    if len(inbox) > CARRY_EVENTS:
        return True
    return sum(len(event.model_dump_json()) for event in inbox) > CARRY_BYTES
