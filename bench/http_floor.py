"""The raw-client floor for HTTP sends: the best bare client on this machine posting the
bodies the ``http`` channel posts, to the same receiver over the same number of connections.

The bodies (one message each, or ``{"messages": [...]}`` of ``batch_size``) are built and
signed before the clock starts; what is timed is only the client posting them and reading the
answers, ``connections`` at a time (aiohttp: the fastest client measured here, see
docs/decisions.md, "Delivery").
"""

from __future__ import annotations

import asyncio
import time

import aiohttp

from activities.channels.http_provider import batch_key, encode, signature, wire_message
from activities.channels.message import Message, Recipient

from .fast_receiver import SIGNATURE_HEADER
from .http_receiver import SECRET

Request = tuple[bytes, str, str]  # body, Idempotency-Key, signature


def bodies(size: int, *, batch_size: int, run_id: str = "floor") -> list[Request]:
    """``size`` messages like the blast's, encoded and signed as the channel does."""
    messages = [
        Message(
            idempotency_key=f"{run_id}:send:blast-{n:06d}:0",
            run_id=run_id,
            node_id="send",
            channel="push",
            template="hello",
            user_id=f"blast-{n:06d}",
            to=Recipient(user_id=f"blast-{n:06d}"),
            content={"title": "Hi", "body": "Welcome"},
        )
        for n in range(1, size + 1)
    ]
    requests: list[Request] = []
    for start in range(0, size, batch_size):
        chunk = messages[start : start + batch_size]
        objects = [wire_message(m, channel_type="push") for m in chunk]
        if batch_size == 1:
            body, key = encode(objects[0]), chunk[0].idempotency_key
        else:
            body, key = encode({"messages": objects}), batch_key(chunk)
        requests.append((body, key, signature(SECRET, body)))
    return requests


async def post_all(url: str, requests: list[Request], *, connections: int) -> float:
    """Post every request over ``connections`` connections; the seconds it took. Raises if
    any answer is not 200."""
    queue = list(reversed(requests))
    connector = aiohttp.TCPConnector(limit=connections, limit_per_host=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def lane() -> None:
            while queue:
                body, key, signed = queue.pop()
                headers = {
                    "Content-Type": "application/json",
                    "Idempotency-Key": key,
                    SIGNATURE_HEADER: signed,
                }
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"http floor: HTTP {response.status} from {url}")

        started = time.perf_counter()
        await asyncio.gather(*(lane() for _ in range(connections)))
        return time.perf_counter() - started


async def floor(url: str, size: int, *, batch_size: int, connections: int) -> dict[str, float]:
    """Messages per second of the bare client for ``size`` messages."""
    requests = bodies(size, batch_size=batch_size)
    seconds = await post_all(url, requests, connections=connections)
    return {"floor_s": seconds, "floor_per_s": size / seconds}
