"""The ``decide_winner`` activity: an ab_split's winning path, decided once per run.

Every shard of the run asks when its wait is over (a blast) or as entrants reach the split
(an event-triggered plan). The first to find a winner, or in a blast the first to ask at
all, records the decision with its figures in ``winners``; everyone else reads that row
back, so every shard sends its users the same way. An event-triggered plan records nothing
while no arm is significant: it asks again with the next entrants.
"""

from __future__ import annotations

from temporalio import activity

from activities.db import queries
from activities.db.pool import DbPool
from journeys.arm_stats import ArmCounts
from journeys.contracts import activities as contracts
from journeys.contracts.winners import DecideWinnerInput, DecideWinnerOutput
from journeys.winner import pick_winner


class WinnerActivities:
    """Winning-path decisions; the worker builds one with the shared pool."""

    def __init__(self, *, pool: DbPool) -> None:
        self._pool = pool

    @activity.defn(name=contracts.DECIDE_WINNER.name)
    async def decide_winner(self, data: DecideWinnerInput) -> DecideWinnerOutput:
        """The arm the rest of the split's users go to, or None (undecided)."""
        stored = await self._pool.fetchrow(queries.WINNER_OF, data.run_id, data.node)
        if stored is not None:
            return _answer(data, stored["arm"], stored["significant"])
        query = queries.WINNER_CONVERSIONS if data.metric == "conversion" else queries.WINNER_CLICKS
        rows = {r["arm"]: r for r in await self._pool.fetch(query, data.run_id, data.node)}
        arms = [
            ArmCounts(
                arm=name,
                control=control,
                users=int(rows[name]["users"]) if name in rows else 0,
                converted=int(rows[name]["successes"]) if name in rows else 0,
            )
            for name, control in zip(data.arms, data.controls, strict=True)
        ]
        pick = pick_winner(arms, min_confidence=data.min_confidence)
        if pick.significant and pick.best is not None:
            arm = pick.best
        elif data.fallback is not None:
            arm = data.fallback
        else:
            return DecideWinnerOutput(arm=None)
        figures = {
            "arms": [a.model_dump() for a in arms],
            "best": None if pick.best is None else data.arms[pick.best],
            "against": None if pick.against is None else data.arms[pick.against],
            "p_value": pick.p_value,
            "min_confidence": data.min_confidence,
        }
        if data.dry_run:  # a dry run records nothing: its answer is the pick
            return DecideWinnerOutput(arm=arm, significant=pick.significant)
        row = await self._pool.fetchrow(
            queries.WINNER_RECORD,
            data.run_id,
            data.node,
            data.arms[arm],
            pick.significant,
            data.metric,
            figures,
            data.now,
        )
        if row is None:  # another shard's insert raced ours: its row is committed now
            row = await self._pool.fetchrow(queries.WINNER_OF, data.run_id, data.node)
        assert row is not None  # inserted, by us or by the shard we raced
        return _answer(data, row["arm"], row["significant"])


def _answer(data: DecideWinnerInput, arm: str, significant: bool) -> DecideWinnerOutput:
    return DecideWinnerOutput(arm=data.arms.index(arm), significant=significant)
