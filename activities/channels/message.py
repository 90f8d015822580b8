"""What the delivery activity hands a provider, and what it gets back."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Protocol

from pydantic import BaseModel, Field

from journeys.contracts import failures


class Recipient(BaseModel):
    """The user a message goes to: contact points plus profile attributes for templates."""

    user_id: str
    email: str | None = None
    phone: str | None = None
    timezone: str | None = None
    # a factory, not ``{}``: pydantic deep-copies a mutable default for every instance
    attrs: dict[str, Any] = Field(default_factory=dict)


def idempotency_key(run_id: str, node: str, user_id: str, entry: int = 0) -> str:
    """``{run}:{node}:{user}:{entry}``: one message per user, node and entry of a run."""
    return f"{run_id}:{node}:{user_id}:{entry}"


class Message(BaseModel):
    """One rendered message, ready for a provider.

    ``idempotency_key`` is ``{run}:{node}:{user}:{entry}``; providers pass it on so a resend
    after a crash or retry is recognised downstream.
    """

    idempotency_key: str
    run_id: str
    node_id: str
    channel: str
    template: str
    user_id: str
    to: Recipient
    content: dict[str, str]
    """Rendered template fields (title, body, subject, url, ...); ``payload`` is JSON text."""
    data: dict[str, Any] = Field(default_factory=dict)
    """The step's vars."""


class Outcome(StrEnum):
    """How a send ended: delivered, worth retrying, or never going to work."""

    SENT = "sent"
    RETRYABLE = "retryable"
    PERMANENT = "permanent"


class SendResult(BaseModel):
    """A provider's answer for one message."""

    idempotency_key: str
    outcome: Outcome
    provider_id: str | None = None
    reason: str | None = None
    """The provider's whole answer: kept in the deliveries row, never in workflow state."""
    category: str | None = None
    """The failure's fixed name (:mod:`journeys.contracts.failures`): what counters carry."""


def sent(message: Message, provider_id: str | None = None) -> SendResult:
    """A SENT result for ``message``."""
    return SendResult(
        idempotency_key=message.idempotency_key, outcome=Outcome.SENT, provider_id=provider_id
    )


def failed(message: Message, *, retryable: bool, category: str, reason: str) -> SendResult:
    """A RETRYABLE or PERMANENT result for ``message``: ``category`` is one of the fixed
    failure names, ``reason`` the whole story for the deliveries row."""
    outcome = Outcome.RETRYABLE if retryable else Outcome.PERMANENT
    return SendResult(
        idempotency_key=message.idempotency_key,
        outcome=outcome,
        reason=reason,
        category=failures.category(category),
    )


class Sender(Protocol):
    """A provider: one result per message, in order; delivery problems are results, not raises."""

    async def send(self, messages: list[Message]) -> list[SendResult]: ...

    async def aclose(self) -> None: ...
