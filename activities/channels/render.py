"""Templates rendered per user: sandboxed Jinja2, compiled once, failures as :class:`RenderError`.

A template sees ``user`` (the recipient's contact points and every profile attribute),
``vars`` (the step's vars) and ``event`` (the entry event). Names that do not exist render
empty, so a missing profile field never blocks a message; anything the sandbox forbids, or
any other exception while rendering, fails that user's message with a reason.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import jinja2
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from journeys.channels_config import SMS_MAX_CHARS, ChannelsFile
from journeys.errors import JourneysError

from .message import Recipient

_TEXT_FIELDS = ("title", "subject", "body", "html", "url", "image")


class RenderError(JourneysError):
    """A template could not be rendered for one user; that user's message is not sent."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class _Sandbox(ImmutableSandboxedEnvironment):
    # The stock sandbox answers unsafe attribute access with an Undefined, which a lenient
    # undefined type would then render as "" and hide the attempt; make it an error instead.
    def unsafe_undefined(self, obj: Any, attribute: str) -> jinja2.Undefined:
        raise SecurityError(
            f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe"
        )


def _blank_none(value: Any) -> Any:
    # a profile attribute stored as null should read as nothing, not as "None"
    return "" if value is None else value


def _environment(*, autoescape: bool) -> _Sandbox:
    return _Sandbox(
        undefined=jinja2.ChainableUndefined,
        autoescape=autoescape,
        finalize=_blank_none,
        keep_trailing_newline=True,
    )


def user_context(recipient: Recipient) -> dict[str, Any]:
    """The ``user`` a template sees: every attribute, then the recipient's own fields."""
    user = dict(recipient.attrs)
    user["user_id"] = user["id"] = recipient.user_id
    for key in ("email", "phone", "timezone"):
        value = getattr(recipient, key)
        if value is not None:
            user[key] = value
    return user


class Renderer:
    """Renders the templates of one channels file; compiled templates are kept for reuse."""

    def __init__(self, channels: ChannelsFile) -> None:
        self._channels = channels
        self._text = _environment(autoescape=False)
        self._html = _environment(autoescape=True)
        self._compiled: dict[tuple[str, str, str], jinja2.Template] = {}

    def render(
        self,
        channel: str,
        template: str,
        *,
        recipient: Recipient,
        vars: Mapping[str, Any],
        event: Mapping[str, Any] | None = None,
    ) -> dict[str, str]:
        """The rendered fields of ``channel``'s ``template`` for one recipient.

        ``payload`` (a JSON object in the channels file) comes back as compact JSON text with
        its strings rendered. Raises :class:`RenderError`.
        """
        config = self._channels.channels.get(channel)
        if config is None:
            raise RenderError(f'unknown channel "{channel}"')
        source = config.templates.get(template)
        if source is None:
            raise RenderError(f'channel "{channel}" has no template "{template}"')
        context = {"user": user_context(recipient), "vars": dict(vars), "event": dict(event or {})}
        content: dict[str, str] = {}
        for field in _TEXT_FIELDS:
            text = getattr(source, field)
            if text is not None:
                content[field] = self._render(channel, template, field, text, context)
        if source.payload is not None:
            payload = self._render_json(channel, template, "payload", source.payload, context)
            content["payload"] = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
        body = content.get("body")
        if config.type == "sms" and body is not None and len(body) > SMS_MAX_CHARS:
            raise RenderError(f"sms body too long ({len(body)} > {SMS_MAX_CHARS} characters)")
        return content

    def _render_json(
        self, channel: str, template: str, path: str, value: Any, context: dict[str, Any]
    ) -> Any:
        if isinstance(value, str):
            return self._render(channel, template, path, value, context)
        if isinstance(value, Mapping):
            return {
                key: self._render_json(channel, template, f"{path}.{key}", item, context)
                for key, item in value.items()
            }
        if isinstance(value, list):
            return [
                self._render_json(channel, template, f"{path}.{index}", item, context)
                for index, item in enumerate(value)
            ]
        return value

    def _render(
        self, channel: str, template: str, field: str, text: str, context: dict[str, Any]
    ) -> str:
        where = f"{channel}.{template}.{field}"
        try:
            compiled = self._compiled.get((channel, template, field))
            if compiled is None:
                env = self._html if field == "html" else self._text
                compiled = self._compiled[(channel, template, field)] = env.from_string(text)
            return compiled.render(context)
        except SecurityError as exc:
            raise RenderError(f"{where}: not allowed in templates: {exc}") from None
        except Exception as exc:  # any failure inside a user's template is that message's
            raise RenderError(f"{where}: {type(exc).__name__}: {exc}") from None
