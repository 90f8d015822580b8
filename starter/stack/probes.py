"""Is a service answering at its configured address?"""

from __future__ import annotations

import socket
from urllib.parse import urlsplit


def host_port(url_or_address: str, *, default_port: int) -> tuple[str, int]:
    """``redis://h:1/0`` / ``postgresql://u@h:2/db`` / ``h:3`` -> (host, port)."""
    text = url_or_address if "://" in url_or_address else f"tcp://{url_or_address}"
    parts = urlsplit(text)
    return parts.hostname or "localhost", parts.port or default_port


def is_listening(host: str, port: int, *, timeout: float = 0.5) -> bool:
    """A TCP connection to ``host:port`` succeeds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port() -> int:
    """A TCP port nobody listens on right now (for tests and side-by-side stacks)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
