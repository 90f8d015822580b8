"""A real local judgement service for ``check`` steps (a risk-control stand-in): answers
``{"results": [{"user_id", "verdict"}]}`` from its own table, records every request, and
fails or stalls on request.

```python
def test_risk(judge: Judge) -> None:       # from tests.judge import judge
    judge.verdicts = {"u1": "pass"}          # others: judge.default (None: left out)
    judge.fail_first = 2                     # the next 2 requests get 503
```
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@dataclass(frozen=True)
class Asked:
    """One request: its body and whether its signature held (None: no secret set)."""

    body: dict[str, Any]
    signature_ok: bool | None
    status: int


class Judge:
    """The server and what it was asked; knobs are plain attributes read per request."""

    def __init__(self, *, secret: str | None = "judge-secret") -> None:
        self.secret = secret
        self.verdicts: dict[str, str] = {}
        self.default: str | None = None
        self.fail_first = 0
        self.delay = 0.0  # seconds before answering
        self.requests: list[Asked] = []
        self._lock = threading.Lock()
        judge = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                judge._answer(self, raw)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/risk/check"

    def _answer(self, handler: BaseHTTPRequestHandler, raw: bytes) -> None:
        body = json.loads(raw)
        ok = None
        if self.secret is not None:
            digest = hmac.new(self.secret.encode(), raw, hashlib.sha256).hexdigest()
            ok = hmac.compare_digest(handler.headers.get("X-Journeys-Signature", ""),
                                     "sha256=" + digest)  # fmt: skip
        with self._lock:
            failing = self.fail_first > 0
            self.fail_first -= failing
        if self.delay:
            time.sleep(self.delay)
        answer: dict[str, Any]
        if failing:
            status, answer = 503, {"error": "busy"}
        else:
            results = []
            for user in body["users"]:
                verdict = self.verdicts.get(user["user_id"], self.default)
                if verdict is not None:
                    results.append({"user_id": user["user_id"], "verdict": verdict, "score": 7})
            status, answer = 200, {"results": results}
        with self._lock:
            self.requests.append(Asked(body, ok, status))
        data = json.dumps(answer).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def __enter__(self) -> Judge:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def judge() -> Iterator[Judge]:
    """A running :class:`Judge`, stopped after the test."""
    with Judge() as running:
        yield running
