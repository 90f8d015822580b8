"""Building blocks shared by the plan models: the base model, names and ids, date-times."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

Text = Annotated[str, Field(min_length=1)]
"""A non-empty string."""


class PlanModel(BaseModel):
    """Base of every plan model: unknown keys are errors, instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def slug(kind: str, pattern: str, allowed: str) -> AfterValidator:
    """A validator refusing values that do not fully match ``pattern``, naming ``kind``."""
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            raise ValueError(
                f'bad {kind} "{value}": use {allowed}, starting with a letter or digit '
                "(at most 63 characters)"
            )
        return value

    return AfterValidator(check)


PLAN_ID_PATTERN = r"[a-z0-9][a-z0-9-]{0,62}"
PlanId = Annotated[str, slug("plan id", PLAN_ID_PATTERN, "lowercase letters, digits and -")]
StepId = Annotated[
    str, slug("step id", r"[a-z0-9][a-z0-9_-]{0,62}", "lowercase letters, digits, - and _")
]
ChannelName = Annotated[
    str, slug("channel name", r"[a-z0-9][a-z0-9_-]{0,62}", "lowercase letters, digits, - and _")
]
TemplateName = Annotated[
    str,
    slug("template name", r"[a-z0-9][a-z0-9_.-]{0,62}", "lowercase letters, digits, ., - and _"),
]
AudienceName = Annotated[
    str,
    slug("audience name", r"[a-z0-9][a-z0-9_.-]{0,62}", "lowercase letters, digits, ., - and _"),
]


def _require_offset(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            f"date-time {value.isoformat()} needs a UTC offset, like 2025-06-01T09:00:00+08:00"
        )
    return value


AwareDateTime = Annotated[datetime, AfterValidator(_require_offset)]
"""A date-time with an explicit UTC offset: a plan never guesses the zone of an instant."""
