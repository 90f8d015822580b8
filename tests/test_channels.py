"""The channel runtime against a real local HTTP receiver, SMTP server and PostgreSQL."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from activities.channels import (
    ChannelRuntime,
    Message,
    Outcome,
    Recipient,
    RenderError,
    SendResult,
)
from activities.channels.http_provider import batch_key
from activities.db import queries
from activities.db.pool import DbPool
from journeys.channels_config import ChannelsFile, check_channels
from starter.stack.probes import free_port
from tests.conftest import ROOT
from tests.receiver import Receiver, SmtpSink

FAST = timedelta(milliseconds=1)


def channels_file(channels: dict[str, Any]) -> ChannelsFile:
    model, problems = check_channels({"channels": channels})
    assert model is not None, problems
    return model


def http_channel(url: str, *, kind: str = "push", **provider: Any) -> dict[str, Any]:
    template: dict[str, Any] = {"title": "Hi {{ user.first_name }}", "body": "Hello"}
    if kind == "webhook":
        template = {"payload": {"user_id": "{{ user.id }}", "amount": "{{ vars.amount }}"}}
    return {
        "type": kind,
        "provider": {"kind": "http", "url": url, **provider},
        "templates": {"promo": template},
    }


@asynccontextmanager
async def runtime(
    channels: dict[str, Any], *, pool: DbPool | None = None
) -> AsyncIterator[ChannelRuntime]:
    opened = ChannelRuntime(channels_file(channels), pool=pool)
    try:
        yield opened
    finally:
        await opened.aclose()


def message(user: str, *, channel: str = "push", run: str = "run1", **fields: Any) -> Message:
    values: dict[str, Any] = {
        "idempotency_key": f"{run}:n1:{user}:0",
        "run_id": run,
        "node_id": "n1",
        "channel": channel,
        "template": "promo",
        "user_id": user,
        "to": Recipient(user_id=user, email=f"{user}@example.com", attrs={"tier": "gold"}),
        "content": {"title": "Hi", "body": f"Hello {user}"},
        "data": {"amount": 5},
    }
    values.update(fields)
    return Message(**values)


def outcomes(results: list[SendResult]) -> list[tuple[str, Outcome, str | None]]:
    return [(r.idempotency_key, r.outcome, r.category) for r in results]


# http, one request per message


async def test_per_message_send_is_signed_and_keyed(receiver: Receiver) -> None:
    receiver.secret = "s3cret"
    push = http_channel(
        f"{receiver.url}/push", secret="s3cret", headers={"Authorization": "Bearer t0k"}
    )
    messages = [message(f"u{i}") for i in range(3)]
    async with runtime({"push": push}) as channels:
        results = await channels.send("push", messages)

    assert [r.outcome for r in results] == [Outcome.SENT] * 3
    assert {r.provider_id for r in results} == {"rcv-1", "rcv-2", "rcv-3"}
    assert len(receiver.requests) == 3
    for request in receiver.requests:
        assert request.signature_ok is True
        assert (request.method, request.path) == ("POST", "/push")
        assert request.headers["idempotency-key"] == request.body["idempotency_key"]
        assert request.headers["authorization"] == "Bearer t0k"
        assert request.headers["content-type"] == "application/json"
    first = receiver.messages()["run1:n1:u0:0"]
    assert first == {
        "idempotency_key": "run1:n1:u0:0",
        "channel": "push",
        "type": "push",
        "template": "promo",
        "user_id": "u0",
        "to": {"user_id": "u0", "email": "u0@example.com", "phone": None, "timezone": None},
        "content": {"title": "Hi", "body": "Hello u0"},
        "data": {"amount": 5},
    }


async def test_bad_signature_is_a_permanent_failure(receiver: Receiver) -> None:
    receiver.secret = "the-real-secret"
    push = http_channel(receiver.url, secret="a-stale-secret", signature_header="X-Sig")
    receiver.signature_header = "X-Sig"
    async with runtime({"push": push}) as channels:
        [result] = await channels.send("push", [message("u1")])
    assert result.outcome is Outcome.PERMANENT
    assert result.reason == 'HTTP 401: {"error":"bad signature"}'
    assert [r.signature_ok for r in receiver.requests] == [False]
    assert receiver.messages() == {}


async def test_status_mapping(receiver: Receiver) -> None:
    expected = {
        200: (Outcome.SENT, None, None),
        201: (Outcome.SENT, None, None),
        400: (Outcome.PERMANENT, "HTTP 400", 'HTTP 400: {"error": "rejected user s400"}'),
        404: (Outcome.PERMANENT, "HTTP 404", 'HTTP 404: {"error": "status 404"}'),
        408: (Outcome.RETRYABLE, "HTTP 408", 'HTTP 408: {"error": "status 408"}'),
        429: (Outcome.RETRYABLE, "HTTP 429", 'HTTP 429: {"error": "status 429"}'),
        500: (Outcome.RETRYABLE, "HTTP 500", 'HTTP 500: {"error": "status 500"}'),
        503: (Outcome.RETRYABLE, "HTTP 503", 'HTTP 503: {"error": "status 503"}'),
    }
    receiver.status_for = {f"s{status}": status for status in expected}
    messages = [message(f"s{status}") for status in expected]
    async with runtime({"push": http_channel(receiver.url)}) as channels:
        results = await channels.send("push", messages, retries=0)
    assert [(r.outcome, r.category, r.reason) for r in results] == list(expected.values())
    assert set(receiver.by_user()) == {"s200", "s201"}


async def test_timeout_is_retryable(receiver: Receiver) -> None:
    receiver.latency = 30.0  # cut short when the receiver stops
    push = http_channel(receiver.url, timeout="100ms")
    async with runtime({"push": push}) as channels:
        [result] = await channels.send("push", [message("u1")], retries=0)
    assert (result.outcome, result.reason) == (Outcome.RETRYABLE, "timeout after 100ms")


async def test_connection_refused_then_back_on_the_same_port(receiver: Receiver) -> None:
    url = receiver.url
    async with runtime({"push": http_channel(url)}) as channels:
        assert (await channels.send("push", [message("u0")]))[0].outcome is Outcome.SENT
        receiver.down()
        # the kept-alive connection breaks first; the runtime's retry finds the port closed
        [refused] = await channels.send("push", [message("u1")], retries=1, backoff=FAST)
        assert (refused.outcome, refused.reason) == (Outcome.RETRYABLE, "connection refused")
        receiver.up()
        assert receiver.url == url
        assert (await channels.send("push", [message("u1")]))[0].outcome is Outcome.SENT
    assert receiver.by_user() == {"u0": 1, "u1": 1}


@pytest.mark.parametrize("connections", [2, 8])
async def test_a_channel_keeps_its_connections_in_flight(
    receiver: Receiver, connections: int
) -> None:
    receiver.latency = 0.2  # a slow provider: every connection fills before one is answered
    push = http_channel(receiver.url, connections=connections)
    async with runtime({"push": push}) as channels:
        results = await channels.send("push", [message(f"u{n}") for n in range(24)])
    assert {r.outcome for r in results} == {Outcome.SENT}
    assert receiver.most_in_flight == connections


async def test_url_credentials_are_basic_auth_unless_a_header_authorizes(
    receiver: Receiver,
) -> None:
    with_user = receiver.url.replace("http://", "http://svc:pw@")
    plain = http_channel(f"{with_user}/a")
    headed = http_channel(f"{with_user}/b", headers={"Authorization": "Bearer tok"})
    async with runtime({"push": plain, "hook": headed}) as channels:
        assert (await channels.send("push", [message("u1")]))[0].outcome is Outcome.SENT
        [sent] = await channels.send("hook", [message("u2", channel="hook")])
        assert sent.outcome is Outcome.SENT
    auth = {r.path: r.headers["authorization"] for r in receiver.requests}
    assert auth == {"/a": "Basic c3ZjOnB3", "/b": "Bearer tok"}  # base64("svc:pw")


def test_urls_and_header_names_the_client_would_refuse_are_refused_when_read() -> None:
    bad = {
        "url": [http_channel(u) for u in ("http://h:abc/", "http://h:99999/", "http://[::1/")],
        "headers": [http_channel("http://h/", headers={"X-A\r\nB": "v"})],
        "signature_header": [http_channel("http://h/", signature_header="X Sig")],
    }
    for field, channels in bad.items():
        for channel in channels:
            model, problems = check_channels({"channels": {"push": channel}})
            assert model is None
            assert problems[0].path.startswith(f"channels.push.provider.http.{field}"), problems


async def test_http_proxy_from_the_environment_carries_the_request(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", receiver.url)  # the receiver stands in for the proxy
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    async with runtime({"push": http_channel("http://provider.invalid/push")}) as channels:
        [result] = await channels.send("push", [message("u1")], retries=0)
    assert result.outcome is Outcome.SENT
    assert [r.path for r in receiver.requests] == ["http://provider.invalid/push"]
    monkeypatch.setenv("NO_PROXY", "provider.invalid")  # bypassed: straight to a bad host
    async with runtime({"push": http_channel("http://provider.invalid/push")}) as channels:
        [result] = await channels.send("push", [message("u2")], retries=0)
    assert result.outcome is Outcome.RETRYABLE and len(receiver.requests) == 1


def test_connections_are_bounded() -> None:
    for bad in (0, 1001):
        model, problems = check_channels(
            {"channels": {"push": http_channel("http://127.0.0.1:1/p", connections=bad)}}
        )
        assert model is None
        assert [p.path for p in problems] == ["channels.push.provider.http.connections"], problems


async def test_a_repeated_key_is_answered_again_not_delivered_again(receiver: Receiver) -> None:
    messages = [message(f"u{i}") for i in range(4)]
    async with runtime({"push": http_channel(receiver.url)}) as channels:
        first = await channels.send("push", messages)
        again = await channels.send("push", messages)
    assert [r.provider_id for r in again] == [r.provider_id for r in first]
    assert receiver.repeats == 4
    assert len(receiver.messages()) == 4
    assert [r.repeat for r in receiver.requests].count(True) == 4


# retries inside runtime.send


async def test_send_retries_only_retryable_and_keeps_input_order(receiver: Receiver) -> None:
    receiver.fail_first = 3  # three of the five acceptable messages get a 503 first
    receiver.permanent_for = {"u4"}
    messages = [message(f"u{i}") for i in range(6)]
    async with runtime({"push": http_channel(receiver.url)}) as channels:
        results = await channels.send("push", messages, retries=2, backoff=FAST)

    assert [r.idempotency_key for r in results] == [m.idempotency_key for m in messages]
    assert [r.outcome for r in results] == [Outcome.SENT] * 4 + [Outcome.PERMANENT, Outcome.SENT]
    assert len(receiver.requests) == 6 + 3
    posted = [r.body["user_id"] for r in receiver.requests]
    assert posted.count("u4") == 1  # a permanent failure is not retried
    assert receiver.by_user() == {f"u{i}": 1 for i in range(6) if i != 4}


async def test_send_gives_up_after_its_retries(receiver: Receiver) -> None:
    receiver.fail_first = 1000
    messages = [message("u1"), message("u2")]
    async with runtime({"push": http_channel(receiver.url)}) as channels:
        results = await channels.send("push", messages, retries=2, backoff=FAST)
    assert outcomes(results) == [
        ("run1:n1:u1:0", Outcome.RETRYABLE, "HTTP 503"),
        ("run1:n1:u2:0", Outcome.RETRYABLE, "HTTP 503"),
    ]
    assert len(receiver.requests) == 2 * 3


async def test_send_with_a_fail_ratio_ends_with_every_message_once(receiver: Receiver) -> None:
    receiver.fail_ratio = 0.3
    messages = [message(f"u{i}") for i in range(50)]
    async with runtime({"push": http_channel(receiver.url)}) as channels:
        results = await channels.send("push", messages, retries=10, backoff=FAST)
    assert {r.outcome for r in results} == {Outcome.SENT}
    assert receiver.by_user() == {f"u{i}": 1 for i in range(50)}
    assert len(receiver.requests) > 50  # some were answered 503 and sent again


async def test_unknown_channel_fails_every_message_permanently() -> None:
    async with runtime({"outbox": {"type": "push", "provider": {"kind": "log"}}}) as channels:
        results = await channels.send("nope", [message("u1"), message("u2")])
        assert channels.channel("nope") is None
        assert channels.channel("outbox") is not None
    assert {(r.outcome, r.reason) for r in results} == {
        (Outcome.PERMANENT, 'unknown channel "nope"')
    }


# http, batches


async def test_batches_split_by_batch_size_and_map_each_result(receiver: Receiver) -> None:
    receiver.secret = "batch-secret"
    receiver.permanent_for = {"u2"}
    receiver.status_for = {"u5": 503}
    push = http_channel(receiver.url, batch_size=3, secret="batch-secret")
    messages = [message(f"u{i}") for i in range(7)]
    async with runtime({"push": push}) as channels:
        results = await channels.send("push", messages, retries=0)

    assert outcomes(results) == [(m.idempotency_key, Outcome.SENT, None) for m in messages[:2]] + [
        ("run1:n1:u2:0", Outcome.PERMANENT, "rejected by provider"),
        ("run1:n1:u3:0", Outcome.SENT, None),
        ("run1:n1:u4:0", Outcome.SENT, None),
        ("run1:n1:u5:0", Outcome.RETRYABLE, "rejected by provider"),
        ("run1:n1:u6:0", Outcome.SENT, None),
    ]
    assert [r.reason for r in results if r.reason] == ["rejected user u2", "status 503"]
    assert all(r.provider_id for r in results if r.outcome is Outcome.SENT)
    chunks = [messages[0:3], messages[3:6], messages[6:7]]
    assert sorted(len(r.body["messages"]) for r in receiver.requests) == [1, 3, 3]
    assert {r.headers["idempotency-key"] for r in receiver.requests} == {
        batch_key(chunk) for chunk in chunks
    }
    assert all(r.signature_ok for r in receiver.requests)
    assert set(receiver.by_user()) == {"u0", "u1", "u3", "u4", "u6"}


async def test_batch_answers_without_results_or_with_some_left_out(receiver: Receiver) -> None:
    push = http_channel(receiver.url, batch_size=10)
    async with runtime({"push": push}) as channels:
        receiver.batch_results = False
        plain = await channels.send("push", [message("u1"), message("u2")], retries=0)
        receiver.batch_results = True
        receiver.omit_from_results = {"u4"}
        partial = await channels.send("push", [message("u3"), message("u4")], retries=0)
    assert [r.outcome for r in plain] == [Outcome.SENT, Outcome.SENT]
    assert [(r.outcome, r.reason) for r in partial] == [
        (Outcome.SENT, None),
        (Outcome.RETRYABLE, "missing from batch response"),
    ]


async def test_batch_connection_refused_fails_the_whole_chunk(receiver: Receiver) -> None:
    push = http_channel(receiver.url, batch_size=10)
    receiver.down()
    async with runtime({"push": push}) as channels:
        results = await channels.send("push", [message("u1"), message("u2")], retries=0)
    assert {(r.outcome, r.reason) for r in results} == {(Outcome.RETRYABLE, "connection refused")}


# inbox, log and smtp providers


async def test_inbox_writes_one_row_per_message_and_a_replay_adds_none(pool: DbPool) -> None:
    run = f"run-{uuid.uuid4().hex[:8]}"
    users = [f"{run}-u{i}" for i in range(3)]
    popup = {
        "type": "in_app",
        "provider": {"kind": "inbox", "slot": "banner"},
        "templates": {"promo": {"title": "Hi", "body": "Hello"}},
    }
    content = {"title": "Hi", "body": "Hello", "url": "app://home"}
    messages = [message(u, channel="popup", run=run, content=content) for u in users]
    async with runtime({"popup": popup}, pool=pool) as channels:
        first = await channels.send("popup", messages)
        replay = await channels.send("popup", messages)

    for results in (first, replay):
        assert [(r.outcome, r.provider_id) for r in results] == [
            (Outcome.SENT, m.idempotency_key) for m in messages
        ]
    for user, sent in zip(users, messages, strict=True):
        rows = await pool.fetch(queries.INBOX_UNREAD, user)
        assert len(rows) == 1
        row = rows[0]
        assert (row["message_id"], row["channel"], row["slot"]) == (
            sent.idempotency_key,
            "popup",
            "banner",
        )
        assert (row["title"], row["body"]) == ("Hi", "Hello")
        assert row["data"]["url"] == "app://home"
        assert row["data"]["vars"] == {"amount": 5}


async def test_log_provider_logs_and_reports_sent(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="journeys.channels.log")
    async with runtime({"outbox": {"type": "push", "provider": {"kind": "log"}}}) as channels:
        results = await channels.send("outbox", [message("u1", channel="outbox")])
    assert [r.outcome for r in results] == [Outcome.SENT]
    [record] = [r for r in caplog.records if r.name == "journeys.channels.log"]
    assert "run1:n1:u1:0" in record.getMessage()


def email_channel(port: int) -> dict[str, Any]:
    provider = {"kind": "smtp", "host": "127.0.0.1", "port": port}
    return {
        "type": "email",
        "provider": {**provider, "sender": "hello@example.com", "tls": "none"},
        "templates": {"promo": {"subject": "Hi", "body": "Hello"}},
    }


async def test_smtp_provider_sends_and_maps_refusals() -> None:
    with SmtpSink() as sink:
        sink.refuse = {"gone@example.com"}
        sink.defer = {"busy@example.com"}
        content = {"subject": "Hi there", "body": "Plain text", "html": "<p>Rich</p>"}

        def mail(user: str, email: str | None) -> Message:
            to = Recipient(user_id=user, email=email)
            return message(user, channel="email", to=to, content=content)

        messages = [
            mail("ok", "ok@example.com"),
            mail("gone", "gone@example.com"),
            mail("busy", "busy@example.com"),
            mail("nomail", None),
        ]
        async with runtime({"email": email_channel(sink.port)}) as channels:
            results = await channels.send("email", messages, retries=0)

    assert [r.outcome for r in results] == [
        Outcome.SENT,
        Outcome.PERMANENT,
        Outcome.RETRYABLE,
        Outcome.PERMANENT,
    ]
    assert results[1].reason == "SMTP 550: no such user"
    assert results[3].reason == "no email address"
    [delivered] = sink.mails
    assert delivered["To"] == "ok@example.com"
    assert delivered["Subject"] == "Hi there"
    assert delivered["X-Idempotency-Key"] == "run1:n1:ok:0"
    assert delivered["Message-ID"] == results[0].provider_id
    html = delivered.get_body(preferencelist=("html",))
    assert html is not None
    assert "<p>Rich</p>" in html.get_content()


async def test_smtp_server_down_is_retryable() -> None:
    async with runtime({"email": email_channel(free_port())}) as channels:
        results = await channels.send("email", [message("u1", channel="email")], retries=0)
    assert results[0].outcome is Outcome.RETRYABLE
    assert results[0].reason is not None
    assert results[0].reason.startswith("smtp connection failed")


# rendering


TEMPLATES: dict[str, Any] = {
    "push": {
        "type": "push",
        "provider": {"kind": "log"},
        "templates": {
            "promo": {
                "title": "Hi {{ user.first_name }}, {{ user.name | default('friend') }}",
                "body": "{{ vars.amount }} for {{ user.email }} ({{ user.id }}, {{ user.tier }})",
                "url": "app://orders/{{ event.order_id }}",
            },
            "missing": {"body": "[{{ user.nope }}|{{ vars.nope.deeper }}|{{ user.phone }}]"},
            "escape": {"body": "{{ ''.__class__.__mro__ }}"},
            "mutate": {"body": "{{ vars.update({'amount': 1}) }}"},
            "broken": {"body": "{{ 1 / vars.zero }}"},
        },
    },
    "sms": {
        "type": "sms",
        "provider": {"kind": "log"},
        "templates": {"note": {"body": "[Shop] {{ vars.text }}"}},
    },
    "email": {
        "type": "email",
        "provider": {"kind": "log"},
        "templates": {"promo": {"subject": "{{ user.name }}", "html": "<p>{{ user.name }}</p>"}},
    },
    "coupons": http_channel("http://127.0.0.1:9/never", kind="webhook"),
}
ALICE = Recipient(user_id="u1", email="a@example.com", attrs={"first_name": "Alice", "tier": 2})


@pytest.fixture
def renderer() -> ChannelRuntime:
    return ChannelRuntime(channels_file(TEMPLATES), pool=None)


def test_render_uses_profile_vars_and_event(renderer: ChannelRuntime) -> None:
    content = renderer.render("push", "promo", recipient=ALICE, vars={"amount": 10})
    assert content == {
        "title": "Hi Alice, friend",
        "body": "10 for a@example.com (u1, 2)",
        "url": "app://orders/",
    }


def test_render_missing_names_are_empty(renderer: ChannelRuntime) -> None:
    assert renderer.render("push", "missing", recipient=ALICE, vars={}) == {"body": "[||]"}


@pytest.mark.parametrize(
    ("template", "reason"),
    [
        ("escape", "not allowed in templates: access to attribute '__class__'"),
        ("mutate", "not allowed in templates"),
        ("broken", "ZeroDivisionError"),
    ],
)
def test_render_failures_are_render_errors(
    renderer: ChannelRuntime, template: str, reason: str
) -> None:
    with pytest.raises(RenderError, match="^push." + template) as caught:
        renderer.render("push", template, recipient=ALICE, vars={"amount": 1, "zero": 0})
    assert reason in caught.value.reason


def test_render_unknown_channel_or_template(renderer: ChannelRuntime) -> None:
    with pytest.raises(RenderError, match='unknown channel "nope"'):
        renderer.render("nope", "promo", recipient=ALICE, vars={})
    with pytest.raises(RenderError, match='channel "push" has no template "nope"'):
        renderer.render("push", "nope", recipient=ALICE, vars={})


def test_render_checks_sms_length_after_rendering(renderer: ChannelRuntime) -> None:
    fits = renderer.render("sms", "note", recipient=ALICE, vars={"text": "x" * 493})
    assert len(fits["body"]) == 500
    with pytest.raises(RenderError) as caught:
        renderer.render("sms", "note", recipient=ALICE, vars={"text": "x" * 605})
    assert caught.value.reason == "sms body too long (612 > 500 characters)"


def test_render_escapes_html_only(renderer: ChannelRuntime) -> None:
    bob = Recipient(user_id="u2", attrs={"name": "<b>Bob</b>"})
    content = renderer.render("email", "promo", recipient=bob, vars={})
    assert content == {"subject": "<b>Bob</b>", "html": "<p>&lt;b&gt;Bob&lt;/b&gt;</p>"}


async def test_rendered_payload_is_sent_as_an_object(receiver: Receiver) -> None:
    coupons = http_channel(receiver.url, kind="webhook")
    async with runtime({"coupons": coupons}) as channels:
        content = channels.render("coupons", "promo", recipient=ALICE, vars={"amount": 20})
        assert json.loads(content["payload"]) == {"user_id": "u1", "amount": "20"}
        sent = message("u1", channel="coupons", content=content)
        assert (await channels.send("coupons", [sent]))[0].outcome is Outcome.SENT
    [request] = receiver.requests
    assert request.body["type"] == "webhook"
    assert request.body["content"] == {"payload": {"user_id": "u1", "amount": "20"}}


async def test_open_loads_a_channels_file(receiver: Receiver, tmp_path: Path) -> None:
    path = tmp_path / "channels.yaml"
    path.write_text(yaml.safe_dump({"channels": {"push": http_channel(receiver.url)}}))
    channels = await ChannelRuntime.open(path, pool=None)
    try:
        content = channels.render("push", "promo", recipient=ALICE, vars={})
        results = await channels.send("push", [message("u1", content=content)])
    finally:
        await channels.aclose()
    assert results[0].outcome is Outcome.SENT
    assert receiver.messages()["run1:n1:u1:0"]["content"]["title"] == "Hi Alice"

    example = await ChannelRuntime.open(ROOT / "examples" / "channels.yaml", pool=None)
    try:
        bump = example.render("push", "price_bump_coupon", recipient=ALICE, vars={"amount": 30})
    finally:
        await example.aclose()
    assert bump["body"].startswith("We added a 30 yuan bonus")
