"""The processes a fault scenario breaks: a private embedded stack, a worker, an ingest API.

Each runs in a process of its own so that it can be killed with SIGKILL, as a crash would,
and started again on the same address, as a supervisor would.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from activities.db.migrate import migrate
from bench.__main__ import private_settings, temporary_home
from journeys.settings import Settings
from starter.stack.devstack import DevStack
from starter.stack.probes import free_port, is_listening
from starter.stack.services import RedisServer
from tests.conftest import start_worker, stop_worker
from tests.engine import settings_env

ROOT = Path(__file__).resolve().parents[2]


def fixed_port() -> int:
    """A free port below the ephemeral range. A service that is killed and started again
    must get its port back, but clients reconnecting to a port of that range can be handed
    it as their own source port (a TCP self-connect), which then holds it."""
    low, _ = (int(n) for n in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    for port in random.sample(range(max(1024, low - 12_000), low), 200):
        if not is_listening("127.0.0.1", port):
            with contextlib.suppress(OSError), socket.socket() as sock:
                sock.bind(("127.0.0.1", port))
                return port
    return free_port()


@asynccontextmanager
async def private_stack(
    settings: Settings, *, append_only: bool = True
) -> AsyncIterator[tuple[DevStack, Settings]]:
    """A stack of the harness's own on free ports: it restarts and wipes services, so it
    never uses the configured ones. ``append_only`` False: a Redis that keeps nothing."""
    home = temporary_home()
    private = private_settings(settings, home=home, port=fixed_port)
    stack = DevStack(private, home=home, ui=False)
    for service in stack.services:
        if isinstance(service, RedisServer):
            service.append_only = append_only
    try:
        await stack.start()
        await migrate(private.database_url)
        yield stack, private
    except BaseException:
        kept = Path(tempfile.mkdtemp(prefix="journeys-faults-logs-"))
        shutil.copytree(home / "logs", kept, dirs_exist_ok=True)
        print(f"faults: the stack's logs are kept in {kept}")
        raise
    finally:
        stack.stop()
        shutil.rmtree(home, ignore_errors=True)


@dataclass
class Worker:
    """``journeys worker`` in a process of its own."""

    env: dict[str, str]
    process: asyncio.subprocess.Process | None = None
    kills: int = 0

    async def start(self) -> None:
        self.process = await start_worker(self.env)

    async def kill(self) -> None:
        """SIGKILL, then a new worker at once (a supervisor's restart)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await stop_worker(self.process)
        self.kills += 1
        await self.start()

    async def stop(self) -> None:
        if self.process is not None:
            await stop_worker(self.process)


@dataclass
class IngestApi:
    """``journeys serve`` in a process of its own, always on the same port."""

    env: dict[str, str]
    host: str
    port: int = 0
    process: asyncio.subprocess.Process | None = None
    kills: int = 0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        self.port = self.port or free_port()
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "starter.cli", "serve", "--port", str(self.port),
            cwd=ROOT, env=self.env, stdout=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        async with httpx.AsyncClient(base_url=self.url) as http, asyncio.timeout(60):
            while True:  # polls until it answers; there is nothing to wait on instead
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get("/healthz")).status_code == 200:
                        return
                await asyncio.sleep(0.1)

    async def kill(self) -> None:
        """SIGKILL mid-load, then start again on the same port."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()
        self.kills += 1
        await self.start()

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            await self.process.wait()


@asynccontextmanager
async def processes(settings: Settings) -> AsyncIterator[tuple[Worker, IngestApi]]:
    """A worker and an ingest API for ``settings`` (its channels file and task queue)."""
    env = settings_env(settings, channels=settings.channels_file)
    env["TEMPORAL_TASK_QUEUE"] = settings.temporal_task_queue
    worker, api = Worker(env), IngestApi(env, host=settings.ingest_host)
    await worker.start()
    try:
        await api.start()
        yield worker, api
    finally:
        await api.stop()
        await worker.stop()
