"""Child processes that outlive a crash of their parent, tracked by pid files.

A service started by ``journeys dev`` runs in its own session (so Ctrl-C in the terminal
reaches only ``journeys dev``, which then stops its children in order). Its pid file lets the
next ``journeys dev`` tell a live child of an earlier crashed run (adopt it) from a stale file
(remove it) without touching anybody else's process.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import subprocess
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Recorded:
    """A live service process we started, and the ``journeys`` process that owns it."""

    pid: int
    owner: int

    @property
    def orphaned(self) -> bool:
        """Its owner died (a crash or kill -9) without stopping it."""
        return not is_alive(self.owner)


@dataclass(frozen=True)
class PidFile:
    """``{home}/run/{name}.pid``: the service's pid and its owner's pid, one per line."""

    path: Path
    marker: str  # a string the process's command line must contain to be ours

    def read_live(self) -> Recorded | None:
        """The recorded process if it still runs our command; drops a stale file."""
        try:
            pid, owner = (int(x) for x in self.path.read_text().split())
        except (FileNotFoundError, ValueError):
            self.remove()
            return None
        if self.marker in (_cmdline(pid) or ""):
            return Recorded(pid, owner)
        self.remove()
        return None

    def write(self, pid: int) -> None:
        """Record ``pid`` as a service owned by this process."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(f"{pid}\n{os.getpid()}\n")
        tmp.replace(self.path)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def _cmdline(pid: int) -> str | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    if not raw:  # a zombie has an empty command line
        return None
    return raw.replace(b"\0", b" ").decode(errors="replace")


def is_alive(pid: int) -> bool:
    """True while the process exists and is not a zombie.

    Read from the state in ``/proc/{pid}/stat``, not from an empty command line: a process
    in the middle of ``exec`` shows an empty command line for a moment too, and a busy
    machine once made a starting Temporal server look dead that way.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False
    state = stat.rpartition(")")[2].split(maxsplit=1)[:1]  # after "pid (comm)"
    return bool(state) and state[0] not in ("Z", "X")


def identity(user: str | None) -> dict[str, Any]:
    """Popen keywords that run a child as ``user`` with that user's own group only.

    Switching the user alone keeps our (root's) groups, and then a directory's group bits,
    not its other bits, decide access: a 0700 root home would lock the child out even after
    we granted others the right to traverse it.
    """
    if user is None:
        return {}
    return {"user": user, "group": pwd.getpwnam(user).pw_gid, "extra_groups": []}


def spawn(
    command: list[str],
    *,
    log: Path,
    user: str | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``command`` detached from our terminal, output appended to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            start_new_session=True,
            **identity(user),
        )


def terminate(pid: int, *, sig: signal.Signals, timeout: timedelta) -> bool:
    """Send ``sig``, wait up to ``timeout``, then SIGKILL. True if the process is gone."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + timeout.total_seconds()
    while time.monotonic() < deadline:
        _reap(pid)
        if not is_alive(pid):
            return True
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return True
    for _ in range(100):
        _reap(pid)
        if not is_alive(pid):
            return True
        time.sleep(0.05)
    return False


def _reap(pid: int) -> None:
    """Collect our own child's exit status so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError):  # not our child: its parent reaps it
        os.waitpid(pid, os.WNOHANG)
