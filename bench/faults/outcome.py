"""What every user and every accepted event got, from PostgreSQL and the provider's record.

A user is *missing* if it has no final delivery row (``sent``, or ``failed`` / ``dead`` with
a reason), or if that row and the provider disagree (sent but never accepted, accepted but
recorded failed). It is *doubled* if the provider accepted two distinct messages for it or it
has two delivery rows in one run. Repeats of one ``Idempotency-Key`` are not doubles: the
provider answered them from its record, and they are counted apart.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from activities.db.pool import DbPool

FINAL = ("sent", "failed", "dead")


@dataclass
class Tally:
    """One run's users: how each ended, and what went wrong."""

    users: int
    sent: int = 0
    dead: int = 0
    missing: int = 0
    doubled: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    """Dead-letter reasons and how many users each."""

    @property
    def exact(self) -> bool:
        return self.missing == 0 and self.doubled == 0 and self.sent + self.dead == self.users


async def tally(pool: DbPool, run_id: str, users: set[str], accepted: Counter[str]) -> Tally:
    """Hold run ``run_id``'s delivery rows for ``users`` against ``accepted`` (distinct
    messages the provider accepted per user)."""
    rows = await pool.fetch(
        "SELECT user_id, status, reason FROM deliveries WHERE run_id = $1", run_id
    )
    out = Tally(users=len(users))
    per_user = Counter(r["user_id"] for r in rows)
    final = {r["user_id"]: (r["status"], r["reason"]) for r in rows}
    for user in users:
        status, reason = final.get(user, (None, None))
        got = accepted.get(user, 0)
        if per_user[user] > 1 or got > 1:
            out.doubled += 1
        elif status == "sent" and got == 1:
            out.sent += 1
        elif status in ("failed", "dead") and reason and got == 0:
            out.dead += 1
            out.reasons[reason] = out.reasons.get(reason, 0) + 1
        else:
            out.missing += 1
    return out


@dataclass
class Outcome:
    """One trial of one scenario."""

    scenario: str
    trial: int
    fault: str
    """What was broken, and when."""
    blast: Tally
    events: Tally
    events_stored: int
    """Accepted events found in the events table (each id at most once by its index)."""
    blast_run: str
    """``completed``, or the run's failure as it was reported."""
    event_run: str
    """``cancelled`` (the harness ends it once drained), or its failure."""
    repeats: int
    """Re-sends the provider recognised by ``Idempotency-Key``."""
    feed_retries: int
    seconds: float

    @property
    def passed(self) -> bool:
        """Counts exact, or a run that cannot be exact failed naming what Redis lost (the
        issue's "rebuilt or fails loudly"); never a double, never an unstored event."""
        blast = (self.blast_run == "completed" and self.blast.exact) or lost(self.blast_run)
        events = (self.event_run == "cancelled" and self.events.exact) or lost(self.event_run)
        return (
            blast
            and events
            and self.blast.doubled == 0
            and self.events.doubled == 0
            and self.events_stored == self.events.users
        )

    def row(self) -> dict[str, Any]:
        return asdict(self) | {"passed": self.passed}


def lost(run: str) -> bool:
    """A run's failure that names lost Redis state (``RunStateLost`` or ``RedisLost``)."""
    return run.startswith("failed") and "Redis lost" in run
