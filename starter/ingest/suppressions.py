"""The bodies of the suppression endpoints."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from journeys.event_checks import ID_PATTERN, id_problem
from journeys.events import MAX_USER_ID

CHANNEL_PATTERN = r"^(\*|[a-z0-9][a-z0-9_-]{0,62})$"
MAX_USERS = 1000
MAX_REASON = 200


def _user_id(value: str) -> str:
    """The rule of events' ``user_id``: the users an event can name can be suppressed."""
    if not value or len(value) > MAX_USER_ID:
        raise ValueError(f"user ids are 1 to {MAX_USER_ID} characters")
    reason = id_problem(value)
    if reason is not None:
        raise ValueError(reason)
    return value


class SuppressionChange(BaseModel):
    """Users to mark or unmark: suppressed on ``channel`` (``*``: all), or allowed."""

    model_config = ConfigDict(extra="forbid", strict=True)  # as the schema says: no coercion

    user_ids: list[Annotated[str, AfterValidator(_user_id)]] = Field(
        min_length=1, max_length=MAX_USERS
    )
    channel: str = Field(default="*", pattern=CHANNEL_PATTERN)
    allow: bool = False
    """The allow list of test users instead of the suppression list."""
    reason: str | None = Field(default=None, max_length=MAX_REASON)


SUPPRESSIONS_SCHEMA: dict[str, object] = {
    "type": "object",
    "description": "Users to mark, or to unmark: suppressed on `channel` (`*`: every "
    "channel; one of the channels file's), or allowed as test users.",
    "required": ["user_ids"],
    "additionalProperties": False,
    "properties": {
        "user_ids": {
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_USERS,
            "items": {
                "type": "string",
                "minLength": 1,
                "maxLength": MAX_USER_ID,
                "pattern": ID_PATTERN,
            },
        },
        "channel": {"type": "string", "pattern": CHANNEL_PATTERN, "default": "*"},
        "allow": {"type": "boolean", "default": False},
        "reason": {"anyOf": [{"type": "string", "maxLength": MAX_REASON}, {"type": "null"}]},
    },
}
SUPPRESSIONS_BODY: dict[str, object] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": SUPPRESSIONS_SCHEMA}},
    }
}
"""``openapi_extra`` of the suppression routes: the handler reads its body itself."""


class SuppressionsChanged(BaseModel):
    """How many marks were added or removed (the rest were so already)."""

    changed: int
