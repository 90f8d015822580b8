"""A real local HTTP provider for tests: records what it receives, fails on request.

```python
def test_push(receiver: Receiver) -> None:        # from tests.receiver import receiver
    receiver.secret = "s3cret"                     # verify X-Journeys-Signature
    receiver.fail_first = 2                        # the next 2 messages get 503
    ...  # post to receiver.url (any path), from this process or another
    assert receiver.by_user()["u1"] == 1
```

It listens on 127.0.0.1 on a free port, one thread per connection (HTTP/1.1 keep-alive), and
behaves like a provider that honours ``Idempotency-Key``: a key already answered with 2xx gets
the same answer again and counts as a repeat, not a new message. A body ``{"messages": [...]}``
is a batch, answered ``{"results": [...]}`` with each message judged on its own. Knobs are
plain attributes, read per request, so a test may change them while requests are in flight.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import random
import socket
import socketserver
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

_RETRY_STATUSES = frozenset({408, 425, 429})


@dataclass(frozen=True)
class Received:
    """One request as it arrived, with the status it was answered."""

    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    raw: bytes
    body: Any  # the parsed JSON, or None
    status: int
    signature_ok: bool | None  # None when the receiver has no secret
    repeat: bool  # answered from an earlier request with the same Idempotency-Key
    at: float  # time.monotonic() when it was read, before any set latency


class Receiver:
    """The HTTP server and everything it was sent; see the module docstring."""

    def __init__(
        self,
        *,
        secret: str | None = None,
        signature_header: str = "X-Journeys-Signature",
        seed: int = 0,
    ) -> None:
        self.secret = secret
        self.signature_header = signature_header
        self.fail_ratio = 0.0  # share of new messages answered 503, drawn from a seeded Random
        self.fail_first = 0  # the next N new messages are answered 503
        self.permanent_for: set[str] = set()  # user ids answered 400
        self.status_for: dict[str, int] = {}  # user id -> status to answer
        self.latency = 0.0  # seconds to wait before answering
        self.batch_results = True  # False: answer batches without a results field
        self.omit_from_results: set[str] = set()  # user ids left out of batch results
        self.echo = False  # errors quote the whole request back, headers and all (careless)
        self.random = random.Random(seed)  # fail_ratio draws: same seed, same failure count
        self.requests: list[Received] = []
        self.repeats = 0
        self.in_flight = 0  # requests read and not yet answered
        self.most_in_flight = 0  # the highest in_flight seen
        self._accepted: dict[str, tuple[str, dict[str, Any]]] = {}  # key -> (id, message)
        self._answers: dict[str, tuple[int, bytes]] = {}  # Idempotency-Key -> 2xx answer
        self._lock = threading.Lock()
        self._grew = threading.Condition()  # notified whenever a new message is accepted
        self._port = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._wake = threading.Event()  # set when going down, so slow answers stop waiting

    # lifecycle

    def start(self) -> Receiver:
        """Listen (again on the same port after :meth:`down`) and serve in a thread."""
        if self._server is not None:
            return self
        self._wake = threading.Event()
        server = _Server(("127.0.0.1", self._port), self)
        self._port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and drop every open connection."""
        server, self._server = self._server, None
        if server is None:
            return
        self._wake.set()
        server.shutdown()
        server.server_close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            # keep-alive connections would otherwise keep being served after the socket closes
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join()

    def down(self) -> None:
        """Refuse connections until :meth:`up`."""
        self.stop()

    def up(self) -> None:
        """Accept connections again, on the same port."""
        self.start()

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The base URL; any path is accepted."""
        return f"http://127.0.0.1:{self._port}"

    # what arrived

    def wait_for_messages(self, count: int, *, within: float) -> bool:
        """Block until ``count`` distinct messages were accepted (False after ``within`` s)."""
        with self._grew:
            return self._grew.wait_for(lambda: len(self._accepted) >= count, timeout=within)

    def messages(self) -> dict[str, dict[str, Any]]:
        """Distinct accepted messages by idempotency key (each message of a batch on its own)."""
        with self._lock:
            return {key: message for key, (_, message) in self._accepted.items()}

    def by_user(self) -> Counter[str]:
        """How many distinct accepted messages each user got."""
        return Counter(str(m.get("user_id")) for m in self.messages().values())

    # serving (runs in the connection threads)

    def _handle(self, request: _Handler) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        raw = request.rfile.read(length)
        at = time.monotonic()
        with self._lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            self._answer(request, raw, at)
        finally:
            with self._lock:
                self.in_flight -= 1

    def _answer(self, request: _Handler, raw: bytes, at: float) -> None:
        if self.latency:
            self._wake.wait(self.latency)
        headers = {name.lower(): value for name, value in request.headers.items()}
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        signature_ok = None
        if self.secret is not None:
            digest = hmac.new(self.secret.encode(), raw, hashlib.sha256).hexdigest()
            given = headers.get(self.signature_header.lower(), "")
            signature_ok = hmac.compare_digest(given, "sha256=" + digest)
        key = headers.get("idempotency-key")
        with self._lock:
            repeat = key is not None and key in self._answers
            if key is not None and repeat:
                status, answer = self._answers[key]
                self.repeats += len(body["messages"]) if _is_batch(body) else 1
            else:
                status, answer = self._judge(body, signature_ok)
                if self.echo and status >= 400:
                    story = f"invalid recipient: {raw.decode(errors='replace')} from {headers}"
                    answer = json.dumps({"error": story}).encode()
                if key is not None and 200 <= status < 300:
                    self._answers[key] = (status, answer)
            self.requests.append(
                Received(
                    request.command,
                    request.path,
                    headers,
                    raw,
                    body,
                    status,
                    signature_ok,
                    repeat,
                    at,
                )
            )
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(answer)))
        request.end_headers()
        request.wfile.write(answer)

    def _judge(self, body: Any, signature_ok: bool | None) -> tuple[int, bytes]:
        """Status and body for a new request; accepted messages are recorded. Holds the lock."""
        if signature_ok is False:
            return 401, b'{"error":"bad signature"}'
        if _is_batch(body):
            return 200, json.dumps(self._judge_batch(body["messages"])).encode()
        if not isinstance(body, dict) or not isinstance(body.get("idempotency_key"), str):
            return 400, b'{"error":"expected a JSON message with an idempotency_key"}'
        status, entry = self._judge_message(body)
        if 200 <= status < 300:
            return status, json.dumps({"id": entry["id"]}).encode()
        return status, json.dumps({"error": entry["error"]}).encode()

    def _judge_batch(self, messages: list[Any]) -> dict[str, Any]:
        results = []
        for message in messages:
            if not isinstance(message, dict) or not isinstance(message.get("idempotency_key"), str):
                continue
            _, entry = self._judge_message(message)
            if message.get("user_id") not in self.omit_from_results:
                results.append(entry)
        return {"results": results} if self.batch_results else {"accepted": len(messages)}

    def _judge_message(self, message: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """A message's status and its batch result entry; records it when accepted."""
        key = message["idempotency_key"]
        if key in self._accepted:
            self.repeats += 1
            return 200, {"idempotency_key": key, "status": "sent", "id": self._accepted[key][0]}
        user = message.get("user_id")
        status = 200
        if user in self.status_for:
            status = self.status_for[user]
        elif user in self.permanent_for:
            status = 400
        elif self.fail_first > 0:
            self.fail_first -= 1
            status = 503
        elif self.fail_ratio and self.random.random() < self.fail_ratio:
            status = 503
        if 200 <= status < 300:
            provider_id = f"rcv-{len(self._accepted) + 1}"
            self._accepted[key] = (provider_id, message)
            with self._grew:
                self._grew.notify_all()
            return status, {"idempotency_key": key, "status": "sent", "id": provider_id}
        retryable = status in _RETRY_STATUSES or status >= 500
        error = f"rejected user {user}" if status == 400 else f"status {status}"
        return status, {
            "idempotency_key": key,
            "status": "failed",
            "retryable": retryable,
            "error": error,
        }

    def _track(self, connection: socket.socket, *, open: bool) -> None:
        with self._lock:
            if open:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)


def _is_batch(body: Any) -> bool:
    return isinstance(body, dict) and isinstance(body.get("messages"), list)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # a page's worth of concurrent connects must not overflow backlog

    def __init__(self, address: tuple[str, int], receiver: Receiver) -> None:
        self.receiver = receiver
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # a client that timed out, or a connection cut by down(), is expected; bugs are not
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle on, the body waits for the client's
    # delayed ACK (~40 ms a request on keep-alive connections).
    disable_nagle_algorithm = True
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.receiver._track(self.connection, open=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.receiver._track(self.connection, open=False)

    def do_POST(self) -> None:
        self.server.receiver._handle(self)

    do_PUT = do_POST

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the recorded requests are the log


class SmtpSink:
    """A real local SMTP server that keeps every mail; ``refuse`` / ``defer`` addresses get
    550 / 451 at RCPT. No TLS, no auth: configure the provider with ``tls: none``."""

    def __init__(self) -> None:
        self.mails: list[EmailMessage] = []
        self.refuse: set[str] = set()
        self.defer: set[str] = set()
        self._server = _SmtpServer(("127.0.0.1", 0), self)
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> SmtpSink:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


class _SmtpServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], sink: SmtpSink) -> None:
        self.sink = sink
        super().__init__(address, _SmtpHandler)


class _SmtpHandler(socketserver.StreamRequestHandler):
    server: _SmtpServer

    def reply(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self) -> None:
        sink = self.server.sink
        recipients: list[str] = []
        self.reply("220 sink ready")
        while line := self.rfile.readline():
            command = line.decode().rstrip("\r\n")
            verb = command[:4].upper()
            if verb in ("EHLO", "HELO"):
                self.reply("250 sink")
            elif verb in ("MAIL", "RSET"):
                recipients = []
                self.reply("250 OK")
            elif verb == "RCPT":
                address = command.split(":", 1)[1].strip().split(">")[0].lstrip("<")
                if address in sink.refuse:
                    self.reply("550 no such user")
                elif address in sink.defer:
                    self.reply("451 mailbox busy, try later")
                else:
                    recipients.append(address)
                    self.reply("250 OK")
            elif verb == "DATA":
                self.reply("354 go on")
                lines = []
                while (data := self.rfile.readline()) not in (b".\r\n", b""):
                    lines.append(data[1:] if data.startswith(b"..") else data)
                mail = message_from_bytes(b"".join(lines), policy=policy.default)
                assert isinstance(mail, EmailMessage)
                sink.mails.append(mail)
                self.reply("250 queued")
            elif verb == "QUIT":
                self.reply("221 bye")
                return
            else:
                self.reply("250 OK" if verb == "NOOP" else "502 not implemented")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A running :class:`Receiver`, stopped after the test."""
    with Receiver() as running:
        yield running
