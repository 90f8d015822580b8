"""The channels file: how each named channel delivers, how fast, at what cost, with which templates.

```yaml
channels:
  push:
    type: push
    provider: {kind: http, url: "https://push.example.com/send", secret: "..."}
    rate: 500/s
    cost: 0.002
    engagement: {delivered: push_delivered, opened: push_opened, clicked: push_clicked}
    templates:
      promo: {title: "Hello {{ user.name }}", body: "..."}
```
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import jinja2
import yarl
from jinja2.sandbox import SandboxedEnvironment
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    ValidationError,
    model_validator,
)

from journeys.durations import Duration, PositiveDuration, Rate, within
from journeys.errors import ChannelsInvalid, Problem
from journeys.plan.common import ChannelName, TemplateName, Text
from journeys.plan.problems import (
    CROSS_CHECK,
    cross_check_error,
    problems_from_error,
    sorted_problems,
)
from journeys.plan.source import load_checked

ChannelType = Literal["push", "sms", "email", "in_app", "call_task", "webhook"]
SMS_MAX_CHARS = 500

# provider kinds each channel type can deliver through; `log` is the dry-run stand-in for all
PROVIDERS: dict[str, tuple[str, ...]] = {
    "push": ("http", "log"),
    "sms": ("http", "log"),
    "email": ("smtp", "http", "log"),
    "in_app": ("inbox", "log"),
    "call_task": ("http", "log"),
    "webhook": ("http", "log"),
}
# template fields each channel type uses: (required, at least one of, optional)
TEMPLATE_FIELDS: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "push": (("body",), (), ("title", "url", "image", "payload")),
    "sms": (("body",), (), ()),
    "email": (("subject",), ("body", "html"), ("url",)),
    "in_app": ((), ("title", "body"), ("url", "image", "payload")),
    "call_task": ((), ("body", "payload"), ("title",)),
    "webhook": ((), ("body", "payload"), ()),
}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _http_url(value: str) -> str:
    # never echo it: a mistyped URL is where a credential shows up unredactable
    if not re.match(r"https?://[^\s/]+", value):
        raise ValueError("bad url: must start with http:// or https://")
    try:
        parsed = yarl.URL(value)
        if not parsed.host or parsed.port is None:
            raise ValueError
    except ValueError:  # the client would refuse it when the worker starts
        raise ValueError("bad url: not a valid host and port") from None
    return value


def _header_name(value: str) -> str:
    if not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", value):
        raise ValueError("header names must be HTTP tokens (letters, digits, - and the like)")
    return value


def _header_value(value: str) -> str:
    # the HTTP client would refuse it per request, quoting the value (a credential) back
    if any(c in value for c in "\r\n\x00"):
        raise ValueError("header values must not contain CR, LF or NUL")
    return value


class HttpProvider(_Model):
    """One JSON request per message (or per ``batch_size`` of them), signed with ``secret``."""

    kind: Literal["http"] = "http"
    url: Annotated[str, AfterValidator(_http_url)]
    method: Literal["POST", "PUT"] = "POST"
    headers: dict[
        Annotated[str, AfterValidator(_header_name)], Annotated[str, AfterValidator(_header_value)]
    ] = Field(default_factory=dict)
    secret: Text | None = None
    signature_header: Annotated[str, AfterValidator(_header_name)] = "X-Journeys-Signature"
    timeout: Annotated[Duration, within(maximum=timedelta(minutes=5))] = timedelta(seconds=10)
    batch_size: int = Field(default=1, ge=1, le=1000)
    # Requests in flight at once, per worker; a remote provider answering in 50 ms needs
    # hundreds for thousands of messages a second.
    connections: int = Field(default=16, ge=1, le=1000)


class SmtpProvider(_Model):
    """Mail through an SMTP server."""

    kind: Literal["smtp"] = "smtp"
    host: Text
    port: int = Field(default=587, ge=1, le=65535)
    sender: Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$")]
    username: Text | None = None
    password: Text | None = None
    tls: Literal["starttls", "ssl", "none"] = "starttls"
    timeout: Annotated[Duration, within(maximum=timedelta(minutes=5))] = timedelta(seconds=10)


class InboxProvider(_Model):
    """In-app messages kept in the inbox table that the app reads, shown in ``slot``."""

    kind: Literal["inbox"] = "inbox"
    slot: Literal["popup", "banner", "widget"] = "popup"
    ttl: PositiveDuration = timedelta(days=7)


class LogProvider(_Model):
    """Dry run: messages are logged, never delivered."""

    kind: Literal["log"] = "log"


Provider = Annotated[
    HttpProvider | SmtpProvider | InboxProvider | LogProvider, Field(discriminator="kind")
]


class Template(_Model):
    """Message material; strings are sandboxed Jinja2 with ``user``, ``event`` and ``vars``."""

    title: str | None = None
    subject: str | None = None
    body: str | None = None
    html: str | None = None
    url: str | None = None
    image: str | None = None
    payload: dict[str, JsonValue] | None = None
    """The JSON body of an http call (webhooks, call tasks) or push custom data."""


class Engagement(_Model):
    """The events that say what became of this channel's messages (a provider's receipt, the
    app reporting an open or a click): each names the event, and the message it belongs to
    is the one whose idempotency key the event's ``key`` property carries; an event without
    it counts for the user's last message on this channel within ``window`` before it."""

    delivered: Text | None = None
    opened: Text | None = None
    clicked: Text | None = None
    key: Text = "message_id"
    window: Annotated[PositiveDuration, within(maximum=timedelta(days=90))] = timedelta(days=3)


class Channel(_Model):
    """A named way to reach users."""

    type: ChannelType
    provider: Provider
    rate: Rate | None = None
    cost: float = Field(default=0.0, ge=0)
    """Cost of one message, in the report's currency."""
    templates: dict[TemplateName, Template] = Field(default_factory=dict)
    engagement: Engagement | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Channel:
        problems = channel_problems("channel", self.model_dump(exclude_none=True))
        if problems:
            raise cross_check_error(problems)
        return self


class JudgementService(_Model):
    """An external judgement service (risk control, a recommender) that a plan's ``check``
    step asks about a page of users at once: ``POST {"step", "users": [{"user_id",
    "attrs"}]}`` (signed like providers), answered ``{"results": [{"user_id", ...}]}``.
    A request that times out, fails on the network or gets a 5xx or 429 is tried again up to
    ``attempts`` times, ``backoff`` doubling; then the step's ``on_failure`` way is taken."""

    url: Annotated[str, AfterValidator(_http_url)]
    headers: dict[str, Annotated[str, AfterValidator(_header_value)]] = Field(default_factory=dict)
    secret: Text | None = None
    signature_header: Text = "X-Journeys-Signature"
    timeout: Annotated[Duration, within(maximum=timedelta(minutes=1))] = timedelta(seconds=3)
    attempts: int = Field(default=3, ge=1, le=10)
    backoff: Annotated[Duration, within(maximum=timedelta(minutes=1))] = timedelta(milliseconds=500)
    batch_size: int = Field(default=100, ge=1, le=1000)


class ChannelsFile(_Model):
    """The parsed channels file."""

    channels: dict[ChannelName, Channel] = Field(min_length=1)
    services: dict[ChannelName, JudgementService] = Field(default_factory=dict)
    """Judgement services that ``check`` steps ask, by name."""

    def costs(self) -> dict[str, float]:
        """Channel -> the price of one message (what reports charge)."""
        return {name: channel.cost for name, channel in self.channels.items()}


_JINJA = SandboxedEnvironment()


def _strings(value: object, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _strings(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, f"{path}.{index}")


def _template_problems(kind: str, template: Mapping[str, Any], path: str) -> Iterator[Problem]:
    required, one_of, optional = TEMPLATE_FIELDS[kind]
    present = {key for key, value in template.items() if value is not None}
    for field in required:
        if field not in present:
            yield Problem(f"{path}.{field}", f"field required for {kind} channels")
    if one_of and not present & set(one_of):
        yield Problem(path, f"{kind} templates need {' or '.join(one_of)}")
    for field in sorted(present & set(Template.model_fields) - {*required, *one_of, *optional}):
        yield Problem(f"{path}.{field}", f"not used by {kind} channels")
    for where, text in _strings(dict(template), path):
        try:
            _JINJA.parse(text)
        except jinja2.TemplateSyntaxError as exc:
            yield Problem(where, f"template syntax error at line {exc.lineno}: {exc.message}")
    body = template.get("body")
    if kind == "sms" and isinstance(body, str):
        # placeholders may render to anything; the literal text alone must already fit
        literal = re.sub(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", "", body, flags=re.S)
        if len(literal) > SMS_MAX_CHARS:
            reason = f"SMS body has {len(literal)} characters, at most {SMS_MAX_CHARS}"
            yield Problem(f"{path}.body", reason)


def channel_problems(path: str, channel: Mapping[str, Any]) -> list[Problem]:
    """Checks between a raw channel's type, provider and templates."""
    kind = channel.get("type")
    if kind not in PROVIDERS:
        return []
    problems: list[Problem] = []
    provider = channel.get("provider")
    provider_kind = provider.get("kind") if isinstance(provider, Mapping) else None
    allowed = PROVIDERS[kind]
    if isinstance(provider_kind, str) and provider_kind not in allowed:
        article = "an" if kind[0] in "aeiou" else "a"
        reason = f"{article} {kind} channel cannot use provider kind {provider_kind} "
        problems.append(Problem(f"{path}.provider.kind", reason + f"(use {' or '.join(allowed)})"))
    templates = channel.get("templates")
    for name, template in templates.items() if isinstance(templates, Mapping) else ():
        if isinstance(template, Mapping):
            problems.extend(_template_problems(kind, template, f"{path}.templates.{name}"))
    return problems


def check_channels(data: object) -> tuple[ChannelsFile | None, list[Problem]]:
    """Validate a parsed channels document; the model only when there is no problem."""
    if not isinstance(data, Mapping):
        return None, [Problem("", "a channels file must hold a mapping with a channels key")]
    problems: list[Problem] = []
    model: ChannelsFile | None = None
    whole_file: list[Problem] = []
    try:
        model = ChannelsFile.model_validate(data)
    except ValidationError as exc:
        # the models' own consistency checks run again below with exact paths
        problems.extend(problems_from_error(exc, skip={CROSS_CHECK}))
        whole_file = problems_from_error(exc)
    channels = data.get("channels")
    for name, channel in channels.items() if isinstance(channels, Mapping) else ():
        if isinstance(channel, Mapping):
            problems.extend(channel_problems(f"channels.{name}", channel))
    if model is None and not problems:
        problems = whole_file
    problems = sorted_problems(problems)
    return (model if not problems else None), problems


def load_channels(path: Path) -> ChannelsFile:
    """Read and validate a channels file; raise :class:`ChannelsInvalid` listing every problem."""
    return load_checked(path, check_channels, refused=ChannelsInvalid)


def channels_at(path: Path) -> ChannelsFile | None:
    """The channels file at ``path`` (``settings.channels_file``), or None when there is none
    (the ingest API runs without one: it then maps no engagement events)."""
    return load_channels(path) if path.exists() else None
