"""Channels at send time: templates rendered per user and the providers that deliver pages.

The delivery activity opens one :class:`ChannelRuntime` per worker, renders each user's
content with :meth:`ChannelRuntime.render` and sends pages with :meth:`ChannelRuntime.send`.
"""

from __future__ import annotations

from .message import Message, Outcome, Recipient, SendResult
from .render import RenderError
from .runtime import ChannelRuntime

__all__ = ["ChannelRuntime", "Message", "Outcome", "Recipient", "RenderError", "SendResult"]
