"""Credentials out of what is shown: URL passwords and tokens, secret query parameters, and
header values that would make the HTTP client quote them back."""

from __future__ import annotations

import logging

import pytest

from journeys.channels_config import check_channels
from journeys.redact import RedactingFormatter, redact


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("https://admin:pw-1@host/x", "https://admin:***@host/x"),
        ("https://admin:p@ss:word@host/x", "https://admin:***@host/x"),  # raw @ and : inside
        ("https://TOKEN-1@api.example.com/", "https://***@api.example.com/"),
        ("redis://:pw-2@cache:6379/0", "redis://:***@cache:6379/0"),
        ("HTTP://U:PW-3@H/", "HTTP://U:***@H/"),
        ('{"url": "https:\\/\\/u:pw-4@h"}', '{"url": "https:\\/\\/u:***@h"}'),  # JSON-escaped
        ("postgresql:///db?password=pw-5&sslmode=off", "postgresql:///db?password=***&sslmode=off"),
        ("https://h/hook?token=tok-6", "https://h/hook?token=***"),
        # nothing secret: left as it is
        ("postgresql://postgres@localhost:5432/journeys", None),
        ("http://127.0.0.1:8088/v1/events", None),
        ("write to user@example.com", None),
    ],
)
def test_urls_lose_their_credentials(text: str, shown: str | None) -> None:
    assert redact(text) == (shown or text)


def test_log_lines_and_tracebacks_are_redacted() -> None:
    try:
        raise ConnectionError("cannot reach https://svc:pw-7@host/push")
    except ConnectionError:
        record = logging.LogRecord(
            "httpx", logging.ERROR, __file__, 1, "POST %s", ("https://svc:pw-8@h/",), None
        )
        import sys

        record.exc_info = sys.exc_info()
    line = RedactingFormatter("%(message)s").format(record)
    assert "pw-7" not in line and "pw-8" not in line and "svc:***@" in line


def test_a_bad_url_or_header_is_refused_without_quoting_it() -> None:
    def provider(**fields: object) -> object:
        http = {"kind": "http", "url": "https://h/x", **fields}
        return {"channels": {"c": {"type": "webhook", "provider": http, "templates": {}}}}

    _, problems = check_channels(provider(url="api.example.com:pw-9@x"))
    assert [p.reason for p in problems] == ["bad url: must start with http:// or https://"]
    _, problems = check_channels(provider(headers={"Authorization": "Bearer tok-10\r\nX: y"}))
    assert [p.reason for p in problems] == ["header values must not contain CR, LF or NUL"]
    assert all("pw-9" not in p.reason and "tok-10" not in p.reason for p in problems)
