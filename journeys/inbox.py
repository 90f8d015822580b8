"""What the app sends when its user reads or clicks an in-app message, and the answer
(``POST /v1/inbox/read`` and ``/v1/inbox/click``; :meth:`starter.client.Journeys.inbox_read`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from journeys.events import checked_user_id

MAX_MESSAGE_ID = 600


class InboxAction(BaseModel):
    """A message, and whose it is: it is marked only for the user it was sent to."""

    model_config = ConfigDict(extra="forbid", strict=True)  # as the schema says: no coercion

    user_id: Annotated[str, AfterValidator(checked_user_id)]
    message_id: str = Field(min_length=1, max_length=MAX_MESSAGE_ID, pattern=r"^[^\x00]+$")


class InboxActionDone(BaseModel):
    """The message, when it was first read, and whether this call was a click."""

    message_id: str
    read_at: datetime
    clicked: bool
