"""Real services for the suite.

With TEMPORAL_ADDRESS, REDIS_URL and DATABASE_URL all set, the tests use those services (give
them disposable ones: the tests create and drop their own databases and flush nothing).
Otherwise the session starts the embedded stack on free ports under ``.journeys/`` and
stops it at the end.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
import uuid
from asyncio.subprocess import PIPE
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from activities.db.migrate import migrate
from activities.db.pool import create_pool
from journeys.settings import Settings
from starter.ingest.serve import build_server
from starter.stack.devstack import DevStack
from starter.stack.postgres import ensure_database
from starter.stack.probes import free_port
from starter.stack.process import PidFile, is_alive, terminate
from tests.engine import ROOT, settings_env
from tests.journey_kit import eventually
from tests.tag_kit import publish_tags

TAG_FILES = (ROOT / "examples" / "tags.yaml", ROOT / "tests" / "tags.yaml")
"""The tags every test plan may read, published into the session's database."""


async def prepare_database(url: str) -> None:
    """Migrate the database at ``url`` and publish the test tags into it."""
    await migrate(url)
    pool = await create_pool(Settings(database_url=url))
    try:
        for path in TAG_FILES:
            await publish_tags(pool, path)
    finally:
        await pool.close()


__all__ = ["ROOT", "settings_env"]  # the tests import both from here
_SERVICE_VARS = ("TEMPORAL_ADDRESS", "REDIS_URL", "DATABASE_URL")


def with_database(url: str, name: str) -> str:
    """``url`` pointing at database ``name`` on the same server."""
    return urlsplit(url)._replace(path=f"/{name}").geturl()


def embedded_settings(home: Path, **overrides: Any) -> Settings:
    """Settings for a private embedded stack on free ports under ``home``."""
    values: dict[str, Any] = {
        "TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
        "TEMPORAL_UI_URL": f"http://127.0.0.1:{free_port()}",
        "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
        "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/journeys",
        "JOURNEYS_HOME": str(home),
        "TEMPORAL_TASK_QUEUE": f"journeys-test-{uuid.uuid4().hex[:8]}",
    }
    values.update(overrides)
    return Settings(**values)


def reap_abandoned_stacks() -> None:
    """Stop the services of test stacks whose pytest process died (a killed CI run, say)."""
    for home in (ROOT / ".journeys").glob("test-stack-*"):
        owner = int(home.name.rsplit("-", 1)[1])
        if is_alive(owner):
            continue
        for pidfile in (home / "run").glob("*.pid"):
            # redis-server rewrites its command line to "redis-server host:port"
            marker = "redis-server" if pidfile.stem == "redis" else str(home)
            recorded = PidFile(pidfile, marker=marker).read_live()
            if recorded is not None:
                terminate(recorded.pid, sig=signal.SIGKILL, timeout=timedelta(seconds=10))
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def stack_settings() -> Iterator[Settings]:
    """Settings pointing at running Temporal, Redis and PostgreSQL, migrated."""
    if all(os.environ.get(name) for name in _SERVICE_VARS):
        base = Settings()
        db_name = f"journeys_test_{uuid.uuid4().hex[:10]}"
        settings = base.model_copy(
            update={
                "database_url": with_database(base.database_url, db_name),
                "temporal_task_queue": f"journeys-test-{uuid.uuid4().hex[:8]}",
            }
        )
        asyncio.run(ensure_database(settings.database_url))
        asyncio.run(prepare_database(settings.database_url))
        yield settings
        asyncio.run(_drop_database(base.database_url, db_name))
        return
    reap_abandoned_stacks()
    home = ROOT / ".journeys" / f"test-stack-{os.getpid()}"
    settings = embedded_settings(home)
    stack = DevStack(settings, home=home, ui=False)
    asyncio.run(stack.start())
    try:
        asyncio.run(prepare_database(settings.database_url))
        yield settings
    finally:
        stack.stop()
        shutil.rmtree(home, ignore_errors=True)


async def _drop_database(admin_url: str, name: str) -> None:
    conn = await asyncpg.connect(with_database(admin_url, "postgres"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def pool(stack_settings: Settings) -> AsyncIterator[Any]:
    """A session-wide asyncpg pool on the migrated test database."""
    p = await create_pool(stack_settings)
    yield p
    await p.close()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def redis(stack_settings: Settings) -> AsyncIterator[aioredis.Redis]:
    """A Redis client on the test Redis."""
    client = aioredis.Redis.from_url(stack_settings.redis_url)
    yield client
    await client.aclose()


@pytest_asyncio.fixture(loop_scope="session")
async def fresh_database_url(stack_settings: Settings) -> AsyncIterator[str]:
    """An empty database of its own on the test server, dropped afterwards."""
    name = f"journeys_t_{uuid.uuid4().hex[:10]}"
    url = with_database(stack_settings.database_url, name)
    await ensure_database(url)
    yield url
    await _drop_database(stack_settings.database_url, name)


async def spawn_journeys(
    *args: str,
    env: dict[str, str],
    stdout: int | None = PIPE,
    stderr: int | None = PIPE,
    ctrl_c: bool = False,
) -> asyncio.subprocess.Process:
    """The real ``journeys`` command (``python -m starter.cli``) as a child process;
    ``ctrl_c``: it takes SIGINT as Ctrl-C even when this test run ignores it (a run started
    in the background does, and children inherit what is ignored)."""
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "starter.cli", *args, cwd=ROOT, env=env, stdout=stdout,
        stderr=stderr, preexec_fn=_default_sigint if ctrl_c else None,
    )  # fmt: skip


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture
def cli_env(stack_settings: Settings) -> dict[str, str]:
    """Environment for running the real ``journeys`` console script against the test stack."""
    return settings_env(stack_settings)


@asynccontextmanager
async def serving_ingest(settings: Settings) -> AsyncIterator[str]:
    """``journeys serve``'s app for ``settings`` on a free port, in this process: its URL."""
    server = build_server(settings, port=free_port())
    task = asyncio.create_task(server.serve())

    async def started() -> bool:  # eventually() polls; the server starts meanwhile
        return bool(server.started)

    await eventually(started, until=bool)
    try:
        yield f"http://{settings.ingest_host}:{server.config.port}"
    finally:
        server.should_exit = True
        await task


@pytest_asyncio.fixture(loop_scope="session")
async def ingest_url(stack_settings: Settings) -> AsyncIterator[str]:
    """``journeys serve``'s app on a free port, in this process."""
    async with serving_ingest(stack_settings) as url:
        yield url


async def start_worker(
    env: dict[str, str], *, log: list[str] | None = None
) -> asyncio.subprocess.Process:
    """``journeys worker`` in its own process, returned once it polls its task queue. Its log
    is read on (else it blocks once the pipe is full), into ``log`` when one is given."""
    proc = await spawn_journeys("worker", env=env, stdout=asyncio.subprocess.DEVNULL)
    assert proc.stderr is not None
    lines = log if log is not None else []
    async with asyncio.timeout(60):
        while b"worker polling" not in (line := await proc.stderr.readline()):
            assert line, "the worker exited before it polled"
            lines.append(line.decode(errors="replace"))
    _log_readers[proc.pid] = asyncio.create_task(_read_log(proc.stderr, log))
    return proc


async def stop_worker(proc: asyncio.subprocess.Process) -> None:
    """Terminate a :func:`start_worker` process and read its log to the end."""
    if proc.returncode is None:
        proc.terminate()
    await proc.wait()
    reader = _log_readers.pop(proc.pid, None)
    if reader is not None:
        await reader


_log_readers: dict[int, asyncio.Task[None]] = {}


async def _read_log(stream: asyncio.StreamReader, into: list[str] | None) -> None:
    while line := await stream.readline():
        if into is not None:
            into.append(line.decode(errors="replace"))


# the real local HTTP provider and the journey kit, as fixtures for every test module
from tests.journey_runner import journey  # noqa: E402, F401
from tests.judge import judge  # noqa: E402, F401
from tests.receiver import receiver  # noqa: E402, F401
