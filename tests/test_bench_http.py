"""The HTTP bench's parts: the fast receiver counts what the floor posts and checks signatures;
the floor posts the bodies the channel posts."""

from __future__ import annotations

import json

import aiohttp
import pytest

from activities.channels.http_provider import signature
from bench.blast_http import receiver_process
from bench.fast_receiver import SIGNATURE_HEADER
from bench.http_floor import bodies, floor, post_all
from bench.http_receiver import SECRET


async def test_the_receiver_counts_every_message_the_floor_posts() -> None:
    async with receiver_process(latency_ms=0, processes=2) as (url, counts):
        one = await floor(f"{url}/push", 120, batch_size=1, connections=4)
        batched = await floor(f"{url}/batch", 120, batch_size=50, connections=4)
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{url}/push", data=b"{}", headers={SIGNATURE_HEADER: "sha256=0"}) as bad,
        ):
            assert bad.status == 401
    assert counts == {"requests": 120 + 3 + 1, "messages": 240, "bad_signatures": 1}
    assert one["floor_per_s"] > 0 and batched["floor_per_s"] > 0


async def test_the_floor_posts_the_channels_bodies_signed() -> None:
    [(body, key, signed)] = bodies(1, batch_size=1, run_id="r")
    message = json.loads(body)
    assert message["idempotency_key"] == key == "r:send:blast-000001:0"
    assert message["user_id"] == "blast-000001" and message["type"] == "push"
    assert signed == signature(SECRET, body)
    batches = bodies(120, batch_size=50, run_id="r")
    assert [len(json.loads(b)["messages"]) for b, _, _ in batches] == [50, 50, 20]
    first = json.loads(batches[0][0])["messages"]
    assert first[0] == message  # a batch holds the very objects posted one by one
    assert batches[0][1].startswith("batch-") and batches[0][1] != batches[1][1]


async def test_a_refused_post_fails_the_floor() -> None:
    async with receiver_process(latency_ms=0, processes=1) as (url, _):
        requests = [(b'{"idempotency_key":"k"}', "k", "sha256=wrong")]
        with pytest.raises(RuntimeError, match="HTTP 401"):
            await post_all(f"{url}/push", requests, connections=1)
