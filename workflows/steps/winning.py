"""An ab_split's winning path in the shard: what each routing pass asks for, the held
users' wait, and the decision (the ``decide_winner`` activity, once per run).

A blast splits ``test_share`` percent and holds the rest in a cohort of their own at the
split, whose timer ends ``after`` later; then the decision (the best arm if significant,
else the fallback) sends them all one way. An event-triggered plan splits every entrant;
once ``after`` has passed since its first split, a later pass asks for a winner (at most
once a minute per shard) and, once one is significant, sends its users there.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from journeys.contracts.shard import Cohort
    from journeys.contracts.winners import DecideWinnerInput
    from journeys.plan.steps import AbSplitStep, Winner
    from journeys.winner import DEFAULT_TEST_SHARE

from workflows import activity_calls as calls
from workflows.context import ShardContext

ASK_EVERY = timedelta(minutes=1)
"""An event-triggered plan asks for a winner at most this often per shard: each ask is two
aggregates over the split's assignments."""


async def pass_options(
    ctx: ShardContext, cohort: Cohort, step: AbSplitStep, winner: Winner
) -> tuple[int | None, int | None]:
    """(winner arm, test share) for a routing pass of a fresh cohort at the split."""
    node, state = cohort.node, ctx.state
    if ctx.event_entry is None:  # a blast: decided by the held cohort's timer
        decided = state.winners.get(node)
        return decided, None if decided is not None else winner.test_share or DEFAULT_TEST_SHARE
    now = workflow.now()
    first = state.split_at.setdefault(node, now)
    asked = state.winner_asked_at.get(node)
    due = now >= first + winner.after and (asked is None or now >= asked + ASK_EVERY)
    if node not in state.winners and due:
        state.winner_asked_at[node] = now
        await decide(ctx, node, step, winner, final=False)
    return state.winners.get(node), None


def hold(ctx: ShardContext, *, cohort_id: str, node: str, size: int, winner: Winner) -> None:
    """Keep the users of route ``hold`` at the split until ``after`` from now (at once when
    the winner is known by now: a pass resumed after it was decided)."""
    decided = node in ctx.state.winners
    if size > 0:
        ctx.state.cohorts.append(
            Cohort(
                id=cohort_id,
                node=node,
                key=ctx.key(cohort_id),
                size=size,
                awaiting_winner=True,
                wake_at=workflow.now() + (timedelta(0) if decided else winner.after),
                arrival_counted=True,
            )
        )


async def held_winner(
    ctx: ShardContext, cohort: Cohort, step: AbSplitStep, winner: Winner
) -> int | None:
    """The arm a held cohort goes to, once its timer is over; None if cut short."""
    assert cohort.wake_at is not None  # set when the cohort was made
    if not await ctx.sleep_until(cohort.wake_at, summary=f"winner of {cohort.node}"):
        return None
    if cohort.node not in ctx.state.winners:
        await decide(ctx, cohort.node, step, winner, final=True)
    return ctx.state.winners[cohort.node]


async def decide(
    ctx: ShardContext, node: str, step: AbSplitStep, winner: Winner, *, final: bool
) -> None:
    """Ask for the decision; a ``final`` one (a blast's) always names an arm."""
    out = await calls.decide_winner(
        DecideWinnerInput(
            run_id=ctx.state.run_id,
            node=node,
            metric=winner.metric,
            min_confidence=winner.min_confidence,
            arms=[arm.name for arm in step.arms],
            controls=[arm.control for arm in step.arms],
            fallback=step.fallback_arm() if final else None,
            now=workflow.now(),
            dry_run=ctx.state.options.dry_run,
        ),
        summary=f"{ctx.where} · winner of {node}",
    )
    if out.arm is not None:
        ctx.state.winners[node] = out.arm
