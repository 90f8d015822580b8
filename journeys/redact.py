"""Credentials out of everything shown: URLs lose their password, logs are written redacted.

A provider URL may carry ``user:password@`` and a DATABASE_URL always may; both reach error
messages and, through httpx's request logging, the worker's log. Every log line goes through
:class:`RedactingFormatter`, and the HTTP client's own loggers stay at WARNING (a line per
request is noise at send speed, and it would print the URL).
"""

from __future__ import annotations

import logging
import re

# userinfo runs to the last "@" before the path: a password may hold a raw "@" or ":"
_USERINFO = re.compile(
    r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*:(?:\\?/){2})(?P<userinfo>[^/?#\s\"']*)@"
)
_SECRET_PARAM = re.compile(
    r"(?P<name>[?&](?:password|passwd|pwd|token|access_token|secret|api_key|apikey|key)=)"
    r"[^&#\s\"']*",
    re.IGNORECASE,
)
HIDDEN = "***"


def _hide_userinfo(match: re.Match[str]) -> str:
    user, colon, _ = match["userinfo"].partition(":")
    if colon:  # "user:password@" keeps the user
        return f"{match['scheme']}{user}:{HIDDEN}@"
    # a bare "token@" on the web is the credential itself; on a database URL, a user name
    web = match["scheme"].lower().startswith(("http", "ws"))
    return f"{match['scheme']}{HIDDEN}@" if web else match[0]


def redact(text: str) -> str:
    """``text`` with every URL's password (or bare token) and secret-looking query
    parameters (``password=``, ``token=``, ``key=``...) replaced by ``***``."""
    text = _USERINFO.sub(_hide_userinfo, text)
    return _SECRET_PARAM.sub(lambda match: f"{match['name']}{HIDDEN}", text)


class RedactingFormatter(logging.Formatter):
    """A formatter whose output, tracebacks included, has no URL password in it."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


QUIET_LOGGERS = ("httpx", "httpcore", "aiohttp.client", "aiohttp.internal")


def configure_logging(level: str) -> None:
    """Log to stderr at ``level``, redacted, with the HTTP client's loggers at WARNING."""
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(message)s")
    for handler in logging.getLogger().handlers:
        handler.setFormatter(RedactingFormatter("%(asctime)s %(name)s %(message)s"))
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLogger().level))
