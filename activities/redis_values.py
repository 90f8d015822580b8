"""What Redis answers, as Python text: clients may be set to decode responses or not."""

from __future__ import annotations


def text_of(value: bytes | str) -> str:
    """``value`` as text (UTF-8 bytes decoded)."""
    return value.decode() if isinstance(value, bytes) else value
