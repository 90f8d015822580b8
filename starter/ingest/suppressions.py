"""The bodies of the suppression endpoints."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from journeys.audience_file import check_user_id


def _user_id(value: str) -> str:
    cleaned, reason = check_user_id(value)
    if reason is not None:
        raise ValueError(reason)
    return cleaned


class SuppressionChange(BaseModel):
    """Users to mark or unmark: suppressed on ``channel`` (``*``: all), or allowed."""

    model_config = ConfigDict(extra="forbid")

    user_ids: list[Annotated[str, AfterValidator(_user_id)]] = Field(min_length=1, max_length=1000)
    channel: str = Field(default="*", pattern=r"^(\*|[a-z0-9][a-z0-9_-]{0,62})$")
    allow: bool = False
    """The allow list of test users instead of the suppression list."""
    reason: str | None = Field(default=None, max_length=200)


class SuppressionsChanged(BaseModel):
    """How many marks were added or removed (the rest were so already)."""

    changed: int
