"""``journeys rate CHANNEL``: a channel's token bucket, shared by every plan and worker."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from activities.rate_limit import RateLimiter
from journeys.channels_config import load_channels
from journeys.durations import parse_rate
from journeys.errors import JourneysError, NotFound
from journeys.names import channel_rate_scope
from journeys.settings import get_settings

from .connect import redis_client
from .console import out


def per_second_of(value: str) -> float:
    """A rate as typed (``200/s``, ``0`` for unlimited) in messages per second."""
    return 0.0 if value.strip() == "0" else parse_rate(value).per_second


@dataclass(frozen=True)
class PacedChannel:
    """A paced channel: its name and the rate its channels file gives it."""

    name: str
    default_per_second: float


def paced_channel(target: str, channels_file: Path) -> PacedChannel | None:
    """The channel ``target`` names (run ids have slashes, channel names never)."""
    if "/" in target:
        return None
    if not channels_file.exists():
        raise NotFound(f"no run {target!r}, and no channels file at {channels_file}")
    channel = load_channels(channels_file).channels.get(target)
    if channel is None:
        raise NotFound(f"no run or channel {target!r}")
    if channel.rate is None:
        raise JourneysError(
            f"channel {target} has no rate in {channels_file}: set one there first (workers "
            "pace only the channels the file paces)"
        )
    return PacedChannel(name=target, default_per_second=channel.rate.per_second)


def set_channel_rate(channel: PacedChannel, *, value: str | None, reset: bool) -> float:
    """Set (or reset) the channel's shared rate; the rate now in force, per second."""
    settings = get_settings()
    if (value is None) == (not reset):
        raise JourneysError("give a RATE or --reset")

    async def go() -> float:
        async with redis_client(settings) as redis:
            limiter = RateLimiter(redis)
            scope = channel_rate_scope(channel.name)
            if reset:
                await limiter.reset_rate(scope)
            else:
                assert value is not None
                await limiter.set_rate(scope, per_second=per_second_of(value), expires=False)
            return await limiter.rate(scope, default=channel.default_per_second)

    now = asyncio.run(go())
    source = "the channels file's" if reset else "set"
    out.print(f"rate of channel {channel.name} is now {now:g}/s ({source}; every plan shares it)")
    return now
