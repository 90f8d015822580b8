"""What a caller sends to ``POST /v1/decide`` and what it gets back."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, JsonValue

from journeys.decisions.engine import StrategyExplained
from journeys.decisions.model import SLUG
from journeys.events import checked_user_id
from journeys.rules import PropertyName

MAX_FIELDS = 50
Id = Annotated[str, AfterValidator(checked_user_id)]
"""A user, item or order id: the same characters and length as user ids."""
FieldValue = Annotated[str, Field(max_length=1000)] | float | int | bool | None


class DecideRequest(BaseModel):
    """One decision asked for: the instance, the caller's ids and pass-through fields."""

    model_config = ConfigDict(extra="forbid", strict=True)  # as the schema says: no coercion

    instance: str = Field(pattern=f"^{SLUG}$")
    user_id: Id | None = None
    item_id: Id | None = None
    order_id: Id | None = None
    fields: dict[PropertyName, FieldValue] = Field(default_factory=dict, max_length=MAX_FIELDS)
    explain: bool = False
    """Answer each evaluated strategy's conditions too."""


class DecideAnswer(BaseModel):
    """The decision, the strategy and group it came from, and the instance version."""

    instance: str
    version: int
    decision: JsonValue
    strategy: str | None
    """None: no strategy's rule held, so the instance's default."""
    group: str | None
    """The experiment group, when the strategy has one."""
    explain: list[StrategyExplained] | None = None
