"""``python -m bench.ingest_body``: what an oversized body costs the ingest API.

Starts the ingest app (with stand-in services: a refused body never reaches them) in a child
process, posts a 300 MB body twice, with its length declared and streamed in chunks without
one, and prints the answer, the time to it and the server's peak resident memory (VmHWM).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from starter.stack.probes import free_port

BODY_MB = 300
SERVER = """
import sys, uvicorn
from starter.ingest.api import create_app

class Idle:
    async def aclose(self): pass
    async def close(self): pass

async def connect():
    return Idle(), Idle(), Idle()

uvicorn.run(create_app(connect), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def main() -> None:
    port = free_port()
    server = await asyncio.create_subprocess_exec(sys.executable, "-c", SERVER, str(port))
    url = f"http://127.0.0.1:{port}/v1/events"
    chunk = b"x" * (1024 * 1024)

    async def streamed() -> AsyncIterator[bytes]:
        for _ in range(BODY_MB):
            yield chunk

    try:
        async with httpx.AsyncClient(timeout=120) as http:
            for _ in range(100):
                try:
                    await http.get(f"http://127.0.0.1:{port}/metrics")
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
            print(f"server idle: peak RSS {peak_rss_mb(server.pid):.0f} MB")
            for label, content in (("declared", chunk * BODY_MB), ("streamed", streamed())):
                started = time.perf_counter()
                try:
                    answer = await http.post(url, content=content)
                    result = f"{answer.status_code} {answer.json()['errors'][0]['reason']}"
                except httpx.TransportError as exc:  # the server may close early
                    result = f"connection closed ({type(exc).__name__})"
                took = time.perf_counter() - started
                rss = peak_rss_mb(server.pid)
                print(f"{BODY_MB} MB {label}: {result} in {took:.2f} s, peak RSS {rss:.0f} MB")
    finally:
        server.terminate()
        await server.wait()


if __name__ == "__main__":
    asyncio.run(main())
