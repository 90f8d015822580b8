"""PostgreSQL from the pgserver wheel, listening on TCP only."""

from __future__ import annotations

import contextlib
import importlib.util
import pwd
import shutil
import signal
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg

from journeys.errors import ServiceUnavailable

from .process import identity
from .services import EmbeddedService, run_as_user


def _pg_bin(name: str) -> Path:
    # Locate the wheel's binaries without importing pgserver: its package import starts
    # lock files and runtime directories we do not want.
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise ServiceUnavailable(
            "PostgreSQL binaries not found: "
            "install the embedded extra (pip install -e '.[embedded]')"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin" / name


@dataclass
class PostgresServer(EmbeddedService):
    """``postgres -D home/postgres`` with trust auth on loopback, unix sockets off."""

    superuser: str = "postgres"

    def prepare(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.user is not None:
            _ensure_system_user(self.user)
            _open_path_to_others(self.data_dir)
            _open_path_to_others(_pg_bin("postgres"))
            shutil.chown(self.data_dir, user=self.user, group=self.user)
        self.data_dir.chmod(0o700)
        if (self.data_dir / "PG_VERSION").exists():
            return
        subprocess.run(
            [
                str(_pg_bin("initdb")),
                "-D",
                str(self.data_dir),
                "--auth=trust",
                "--encoding=UTF8",
                "-U",
                self.superuser,
            ],
            check=True,
            capture_output=True,
            **identity(self.user),
        )

    def command(self) -> list[str]:
        return [
            str(_pg_bin("postgres")),
            "-D",
            str(self.data_dir),
            "-p",
            str(self.port),
            "-c",
            f"listen_addresses={self.host}",
            "-c",
            "unix_socket_directories=",
            "-c",
            "max_connections=200",
            "-c",
            "fsync=on",
        ]

    async def ready(self) -> bool:
        try:
            conn = await asyncpg.connect(
                host=self.host, port=self.port, user=self.superuser, database="postgres", timeout=1
            )
        except Exception:
            return False
        await conn.close()
        return True


def _ensure_system_user(name: str) -> None:
    try:
        pwd.getpwnam(name)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--user-group", "--no-create-home", name],
            check=True,
            capture_output=True,
        )


def _open_path_to_others(path: Path) -> None:
    """Let another user traverse every directory above ``path`` (o+x), as postgres needs."""
    for parent in path.parents:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH)


def postgres_service(database_url: str, *, home: Path) -> PostgresServer:
    parts = urlsplit(database_url)
    return PostgresServer(
        name="postgres",
        host=parts.hostname or "localhost",
        port=parts.port or 5432,
        home=home,
        stop_signal=signal.SIGINT,  # "fast" shutdown: roll back sessions, checkpoint, exit
        user=run_as_user(),
        superuser=parts.username or "postgres",
    )


async def ensure_database(database_url: str) -> None:
    """Create the database named in ``database_url`` if the server lacks it."""
    parts = urlsplit(database_url)
    name = parts.path.lstrip("/") or "postgres"
    admin_url = parts._replace(path="/postgres").geturl()
    conn = await asyncpg.connect(admin_url)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            # Another process may create it between our check and our create.
            with contextlib.suppress(asyncpg.DuplicateDatabaseError):
                await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


__all__ = ["PostgresServer", "ensure_database", "postgres_service"]
