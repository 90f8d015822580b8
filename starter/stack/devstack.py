"""Bring the embedded stack up, and take down exactly what we brought up."""

from __future__ import annotations

import asyncio
import shutil
import signal
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from pathlib import Path

from journeys.errors import ServiceUnavailable
from journeys.settings import Settings

from .postgres import ensure_database, postgres_service
from .probes import is_listening
from .process import PidFile, is_alive, spawn, terminate
from .services import EmbeddedService, redis_service, temporal_service, wait_ready
from .temporal_setup import ensure_search_attributes


class Origin(StrEnum):
    STARTED = "started"  # we started it now; we stop it
    ADOPTED = "adopted"  # an earlier `journeys dev` started it and died; we stop it
    EXTERNAL = "external"  # somebody else runs it (maybe another `journeys dev`); left alone


@dataclass
class ServiceState:
    """One service of the stack as this process found or made it."""

    service: EmbeddedService
    origin: Origin
    pid: int | None

    @property
    def owned(self) -> bool:
        return self.origin is not Origin.EXTERNAL


class DevStack:
    """Temporal dev server (with UI), Redis and PostgreSQL under ``home``.

    Services already answering at the configured addresses are used as they are.
    """

    def __init__(self, settings: Settings, *, home: Path | None = None, ui: bool = True) -> None:
        self.settings = settings
        self.home = (home or settings.home).resolve()
        self.services: list[EmbeddedService] = [
            postgres_service(settings.database_url, home=self.home),
            redis_service(settings.redis_url, home=self.home),
            temporal_service(
                settings.temporal_address,
                home=self.home,
                namespace=settings.temporal_namespace,
                ui_url=settings.temporal_ui_url if ui else None,
            ),
        ]
        self.states: list[ServiceState] = []

    async def start(self) -> list[ServiceState]:
        """Start (or find) every service, create the database, register search attributes."""
        limit = self.settings.service_start_timeout
        try:
            for service in self.services:
                self.states.append(await self._ensure(service, limit=limit))
            await ensure_database(self.settings.database_url)
            await ensure_search_attributes(
                self.settings.temporal_address, namespace=self.settings.temporal_namespace
            )
        except BaseException:
            self.stop()
            raise
        return self.states

    def stop(self) -> None:
        """Stop, newest first, the services this stack started or adopted."""
        while self.states:
            state = self.states.pop()
            if state.owned and state.pid is not None:
                terminate(state.pid, sig=state.service.stop_signal, timeout=timedelta(seconds=20))
                self._pidfile(state.service).remove()

    async def restart(self, name: str, *, kill: bool = False, wipe: bool = False) -> None:
        """Stop service ``name`` (SIGKILL with ``kill``, else its stop signal), delete its data
        with ``wipe`` (a Redis without persistence), and start it again on the same port.
        Only a service this stack owns; the fault harness's way of failing one."""
        index, state = next((i, s) for i, s in enumerate(self.states) if s.service.name == name)
        if not state.owned or state.pid is None:
            raise ServiceUnavailable(f"{name} is not this stack's to restart")
        service = state.service
        stop = signal.SIGKILL if kill else service.stop_signal
        gone = await asyncio.to_thread(
            terminate, state.pid, sig=stop, timeout=timedelta(seconds=30)
        )
        self._pidfile(service).remove()
        # the port can answer for a moment after the process is gone (seen under load)
        released = gone and await _port_released(service, within=timedelta(seconds=10))
        if not released:
            raise ServiceUnavailable(
                f"{name} (pid {state.pid}) still holds {service.host}:{service.port} after "
                f"{stop.name}" + ("" if gone else ": it did not exit")
            )
        if wipe:
            shutil.rmtree(service.data_dir, ignore_errors=True)
        self.states[index] = await self._start(service, limit=self.settings.service_start_timeout)

    def _pidfile(self, service: EmbeddedService) -> PidFile:
        return PidFile(self.home / "run" / f"{service.name}.pid", marker=service.marker)

    async def _ensure(self, service: EmbeddedService, *, limit: timedelta) -> ServiceState:
        pidfile = self._pidfile(service)
        recorded = pidfile.read_live()
        if is_listening(service.host, service.port):
            await wait_ready(service, limit=limit)
            if recorded is not None and recorded.orphaned:
                pidfile.write(recorded.pid)  # it is ours to stop now
                return ServiceState(service, Origin.ADOPTED, recorded.pid)
            # Somebody else's, or a live `journeys dev` beside us: use it, never stop it.
            return ServiceState(service, Origin.EXTERNAL, None)
        if recorded is not None and recorded.orphaned:  # our leftover, not serving: replace it
            terminate(recorded.pid, sig=service.stop_signal, timeout=timedelta(seconds=10))
            pidfile.remove()
        return await self._start(service, limit=limit)

    async def _start(self, service: EmbeddedService, *, limit: timedelta) -> ServiceState:
        pidfile = self._pidfile(service)
        await asyncio.to_thread(service.prepare)
        proc = spawn(service.command(), log=service.log_path, user=service.user)
        pidfile.write(proc.pid)
        state = ServiceState(service, Origin.STARTED, proc.pid)
        try:
            await _wait_started(service, proc.pid, limit=limit)
        except BaseException:
            terminate(proc.pid, sig=service.stop_signal, timeout=timedelta(seconds=5))
            pidfile.remove()
            raise
        return state


async def _port_released(service: EmbeddedService, *, within: timedelta) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within.total_seconds()
    while is_listening(service.host, service.port):
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def _wait_started(service: EmbeddedService, pid: int, *, limit: timedelta) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit.total_seconds()
    while loop.time() < deadline:
        if await service.ready():
            return
        if not is_alive(pid):
            raise ServiceUnavailable(
                f"{service.name} exited during start-up: {_tail(service.log_path)}"
            )
        await asyncio.sleep(0.2)
    raise ServiceUnavailable(
        f"{service.name} did not become ready within {limit}; see {service.log_path}"
    )


def _tail(log: Path, *, lines: int = 3) -> str:
    try:
        text = log.read_text(errors="replace").strip().splitlines()
    except FileNotFoundError:
        return "(no log)"
    return " | ".join(text[-lines:]) or "(empty log)"
