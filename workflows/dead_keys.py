"""Keys of cohorts that left an event-triggered shard, deleted at its next admission.

A run's Redis keys all go when the run ends (``cleanup_run``). An audience run ends within
its plan's steps, but an event-triggered shard admits a cohort every flush for as long as its
entry window is open: without this, every cohort it ever admitted (and every sub-cohort,
caught set and routing mark after it) stayed in Redis until the window closed. The soak saw
8,874 such keys, 13.8 MiB, in ten minutes.

A key is dead once no cohort in the shard's state holds it: a wait forwards its cohort with
the same key, so those stay. The shard collects dead keys in its state (carried across
continue-as-new) and hands them to the next ``admit_entries``, which deletes them in the same
MULTI that writes the new cohort: one round trip, and a retried admission deletes nothing
twice that matters. Nothing reads a dead key: every activity of the cohort that left has
returned, and the re-entry check reads only live cohorts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from journeys.contracts.shard import Cohort
    from journeys.names import pages_done_key
    from journeys.plan.steps import (
        AbSplitStep,
        BranchStep,
        CheckStep,
        DecideStep,
        UpdateStep,
        WaitForEventStep,
        WaitUntilStep,
    )

if TYPE_CHECKING:  # the context calls in here: no import cycle at run time
    from workflows.context import ShardContext

DROP_DEAD_KEYS = "drop-dead-cohort-keys"
"""Patch: an event-triggered shard deletes the keys of cohorts that left at its next
admission, instead of keeping them until the run ends."""

DROP_COMPLETED_KEYS = "drop-completed-cohort-keys"
"""Patch: a route that leads nowhere (a control arm, a branch with no ``else``, a last
step) is dead at once, not kept until the run ends."""

_ROUTED = BranchStep | AbSplitStep | UpdateStep | DecideStep | CheckStep


def collecting(ctx: ShardContext) -> bool:
    """This shard collects dead keys: it admits entries, and its history is past the patch."""
    return ctx.event_entry is not None and workflow.patched(DROP_DEAD_KEYS)


def bury(ctx: ShardContext, key: str) -> None:
    """``key`` is dead unless a live cohort of the shard still holds it (only in a shard
    that collects dead keys)."""
    state = ctx.state
    if not collecting(ctx) or any(c.key == key for c in state.cohorts) or key in state.dead_keys:
        return
    state.dead_keys.append(key)


def completed(ctx: ShardContext, key: str) -> None:
    """The users of ``key`` completed their journey: no cohort was made for them."""
    if collecting(ctx) and workflow.patched(DROP_COMPLETED_KEYS):
        bury(ctx, key)


def left(ctx: ShardContext, cohort: Cohort) -> None:
    """``cohort`` left the shard's state: its key and the marks its node kept for it die."""
    if not collecting(ctx):
        return
    bury(ctx, cohort.key)
    step = ctx.plan.steps.get(cohort.node)
    prefix = f"{cohort.id}>{cohort.node}"
    split_by_zone = isinstance(step, WaitUntilStep) and step.timezone == "user" and not cohort.zone
    if isinstance(step, _ROUTED) or split_by_zone:  # the pages a routing pass marked done
        ctx.state.dead_keys.append(pages_done_key(ctx.state.run_id, ctx.state.shard, prefix))
    elif isinstance(step, WaitForEventStep):  # the users its events caught
        bury(ctx, ctx.key(f"{prefix}.caught"))
