"""The fixed names of send failures: what counters, activity results and run histories carry.

A provider's answer can quote the recipient (``400 invalid recipient: phone +1555...``) and
is as long as the provider likes, so it never becomes a counter key: it is kept whole in the
message's ``deliveries`` row, and workflow state carries one of the short names below. The
set is closed (:func:`category`), so a run's failure map stays small whatever providers say.
"""

from __future__ import annotations

import re

TIMEOUT = "timeout"
CONNECTION = "connection error"
REJECTED = "rejected by provider"
"""A batch answer's per-message error (its text is the provider's)."""
BAD_ANSWER = "bad provider answer"
NO_RECIPIENT = "invalid recipient"
"""The user has no address for the channel, or the provider refused the address."""
BAD_MESSAGE = "bad message"
"""The message could not be encoded for the provider."""
UNKNOWN_TEMPLATE = "unknown channel or template"
TEMPLATE_LIMITS = "template over limits"
TEMPLATE_FORBIDDEN = "template not allowed"
TEMPLATE_ERROR = "template error"
MESSAGE_TOO_LONG = "message too long"
INBOX = "inbox write failed"
PROVIDER = "provider error"
"""Anything else a provider reported."""

FIXED = frozenset(
    {
        *(TIMEOUT, CONNECTION, REJECTED, BAD_ANSWER, NO_RECIPIENT, BAD_MESSAGE),
        *(UNKNOWN_TEMPLATE, TEMPLATE_LIMITS, TEMPLATE_FORBIDDEN, TEMPLATE_ERROR),
        *(MESSAGE_TOO_LONG, INBOX, PROVIDER),
    }
)
_CODED = re.compile(r"(HTTP|SMTP) [1-5]\d\d")
DEAD = "dead: "
"""Prefix of a failure that used up every pass of retries (``dead: timeout``)."""


def http_status(code: int) -> str:
    """``HTTP 400``: a provider's HTTP answer."""
    return f"HTTP {code}" if 100 <= code <= 599 else PROVIDER


def smtp_status(code: int) -> str:
    """``SMTP 550``: a mail server's answer."""
    return f"SMTP {code}" if 100 <= code <= 599 else PROVIDER


def recorded(category_name: str, reason: str | None) -> str:
    """The ``deliveries.reason`` text: the category first, then the whole story, so a row
    read back (an earlier execution's) counts under the same fixed name. Cleaned for a
    ``text`` column (providers may answer NUL or lone surrogates) and at most 1,000
    characters."""
    text = storable(reason or "")
    if not text or text == category_name or text.startswith(f"{category_name}: "):
        return text or category_name
    return f"{category_name}: {text}"


def storable(text: str, *, most: int = 1000) -> str:
    """``text`` as PostgreSQL ``text`` can hold it: no NUL, valid UTF-8, at most ``most``."""
    if text.isascii() and "\x00" not in text:  # nearly every provider id and answer
        return text[:most]
    clean = text.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")
    return clean[:most]


def of_recorded(text: str | None) -> str:
    """The category of a ``deliveries.reason`` written by :func:`recorded`."""
    if text is None:
        return PROVIDER
    for name in (text, text.partition(": ")[0]):
        if _is_fixed(name):
            return name
    return PROVIDER


def category(name: str | None) -> str:
    """``name`` if it is one of the fixed names (``HTTP nnn`` and ``SMTP nnn`` included),
    else :data:`PROVIDER`: the last guard before a name becomes a counter key."""
    if name is None:
        return PROVIDER
    dead = name.startswith(DEAD)
    base = name.removeprefix(DEAD)
    return (DEAD if dead else "") + (base if _is_fixed(base) else PROVIDER)


def _is_fixed(name: str) -> bool:
    return name in FIXED or _CODED.fullmatch(name) is not None
