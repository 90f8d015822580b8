"""The typed error tree.

Everything the product raises on purpose derives from :class:`JourneysError`; the CLI prints
these as one readable line. Workflows turn business failures into
``ApplicationError(non_retryable=True)`` with :attr:`JourneysError.kind` as the type.
"""

from __future__ import annotations

from dataclasses import dataclass


class JourneysError(Exception):
    """Base of every deliberate Journeys error."""

    @property
    def kind(self) -> str:
        return type(self).__name__


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input, at a dotted path (``steps.split.ab_split.arms``)."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}" if self.path else self.reason


class InvalidInput(JourneysError):
    """An input (plan file, channels file, event, audience file) is wrong; lists every problem."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = problems
        count = len(problems)
        head = f"{source}: {count} problem{'s' if count != 1 else ''}"
        super().__init__(head + "".join(f"\n  {p}" for p in problems))


class EventsRefused(InvalidInput):
    """A batch of events with malformed ones in it; nothing of the batch was stored.

    ``refused`` lists (index, field, reason) per problem; index -1 is the batch itself.
    """

    def __init__(self, refused: list[tuple[int, str, str]]) -> None:
        self.refused = refused
        super().__init__(
            "events",
            [
                Problem(f"events[{index}].{field}".rstrip(".") if index >= 0 else field, reason)
                for index, field, reason in refused
            ],
        )


class PlanInvalid(InvalidInput):
    """A plan file fails validation."""


class ChannelsInvalid(InvalidInput):
    """A channels file fails validation."""


class PolicyInvalid(InvalidInput):
    """A policy file (``JOURNEYS_POLICY``) fails validation."""


class DecisionRefused(InvalidInput):
    """A scene or decision instance the store will not take, or a decision request it cannot
    answer (a missing id or field, a field of the wrong type)."""


class AccessDenied(JourneysError):
    """The HTTP API refused the caller's API key: missing, unknown, revoked, or without the
    route's scope."""


class NotApproved(JourneysError):
    """The policy requires approval and this plan version has none (or the would-be approver
    is its publisher)."""


class AlreadyApproved(NotApproved):
    """The version was approved before (by whom the message says)."""


class NotFound(JourneysError):
    """A named thing (plan, version, run, audience) does not exist."""


class NotListening(JourneysError):
    """A plan that exists has no running run taking API entries now (not launched, ended,
    or its entry is not ``api``)."""


class RunStateLost(JourneysError):
    """Redis no longer holds a running run's working state (its cohorts, marks, counters)."""


class ServiceUnavailable(JourneysError):
    """A backing service (Temporal, Redis, PostgreSQL) cannot be reached or started."""


class RedisLost(ServiceUnavailable):
    """Redis answers but lost the data PostgreSQL says it holds (its epoch key is gone)."""


class MigrationError(JourneysError):
    """A schema migration failed or the recorded history disagrees with the files."""
