"""``python -m bench.fast_receiver [--processes N] [--latency-ms MS]``: an HTTP provider for
benches that is never the bottleneck.

``tests.receiver`` is a thread per connection under one GIL, right for tests that inspect what
arrived and too slow to find the sender's limit. This one runs ``N`` aiohttp servers in their
own processes on one ``SO_REUSEPORT`` port, so the kernel spreads connections over them. Each
checks the signature (secret :data:`SECRET`), answers a message ``{"id": ...}`` and a batch
``{"results": [...]}``, after ``MS`` milliseconds when asked, as a remote provider would. It
prints its URL, serves until SIGTERM, then prints one JSON line of what it received.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import multiprocessing
import signal
import socket
import time
from multiprocessing.sharedctypes import SynchronizedArray

from aiohttp import web

from .http_receiver import SECRET

SIGNATURE_HEADER = "X-Journeys-Signature"
_COUNTS = ("requests", "messages", "bad_signatures")


def listening_socket(port: int) -> socket.socket:
    """A socket on 127.0.0.1:``port`` that other processes may bind too."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    return sock


def _serve(port: int, latency: float, counts: SynchronizedArray[int], slot: int) -> None:
    """One server process; its counters live at ``slot`` of ``counts``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops it with SIGTERM
    secret = SECRET.encode()
    base = slot * len(_COUNTS)
    served = [0, 0, 0]

    async def handle(request: web.Request) -> web.Response:
        raw = await request.read()
        served[0] += 1
        if latency:
            await asyncio.sleep(latency)
        digest = "sha256=" + hmac.new(secret, raw, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(request.headers.get(SIGNATURE_HEADER, ""), digest):
            served[2] += 1
            return web.json_response({"error": "bad signature"}, status=401)
        body = json.loads(raw)
        if isinstance(body, dict) and isinstance(body.get("messages"), list):
            served[1] += len(body["messages"])
            results = [
                {"idempotency_key": m["idempotency_key"], "status": "sent", "id": "p"}
                for m in body["messages"]
            ]
            return web.json_response({"results": results})
        served[1] += 1
        return web.json_response({"id": "p"})

    async def main() -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", handle)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        sock = listening_socket(port)
        await web.SockSite(runner, sock, backlog=1024).start()
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        for n, value in enumerate(served):
            counts[base + n] = value
        await runner.cleanup()

    asyncio.run(main())


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.fast_receiver")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    args = parser.parse_args()
    holder = listening_socket(0)  # holds the port; never listens, so it takes no connections
    port = holder.getsockname()[1]
    counts: SynchronizedArray[int] = multiprocessing.Array("q", args.processes * len(_COUNTS))
    servers = [
        multiprocessing.Process(target=_serve, args=(port, args.latency_ms / 1000, counts, n))
        for n in range(args.processes)
    ]
    for server in servers:
        server.start()
    # blocked only now, after the servers started, so they still get their own SIGTERM
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    _wait_listening(port)
    print(f"http://127.0.0.1:{port}", flush=True)
    signal.sigwait({signal.SIGTERM})
    for server in servers:
        if server.pid is not None:
            server.terminate()  # SIGTERM: each writes its counts and exits
    for server in servers:
        server.join()
    totals = {name: sum(counts[n :: len(_COUNTS)]) for n, name in enumerate(_COUNTS)}
    print(json.dumps(totals), flush=True)


def _wait_listening(port: int) -> None:
    """Return once a connection to ``port`` is accepted (a server is up)."""
    while True:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)


if __name__ == "__main__":
    main()
