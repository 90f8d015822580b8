"""Credentials out of everything shown: URLs lose their password, logs are written redacted.

A provider URL may carry ``user:password@`` and a DATABASE_URL always may; both reach error
messages and, through httpx's request logging, the worker's log. Every log line goes through
:class:`RedactingFormatter`, and the HTTP client's own loggers stay at WARNING (a line per
request is noise at send speed, and it would print the URL).
"""

from __future__ import annotations

import logging
import re

_URL_PASSWORD = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^\s/:@\"']*):[^\s@/\"']*@")
HIDDEN = "***"


def redact(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ``***``."""
    return _URL_PASSWORD.sub(lambda match: f"{match['head']}:{HIDDEN}@", text)


class RedactingFormatter(logging.Formatter):
    """A formatter whose output, tracebacks included, has no URL password in it."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


QUIET_LOGGERS = ("httpx", "httpcore")


def configure_logging(level: str) -> None:
    """Log to stderr at ``level``, redacted, with the HTTP client's loggers at WARNING."""
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(message)s")
    for handler in logging.getLogger().handlers:
        handler.setFormatter(RedactingFormatter("%(asctime)s %(name)s %(message)s"))
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLogger().level))
