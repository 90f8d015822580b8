"""Templates rendered per user: sandboxed Jinja2, compiled once, failures as :class:`RenderError`.

A template sees ``user`` (the recipient's contact points and every profile attribute),
``vars`` (the step's vars) and ``event`` (the entry event). Names that do not exist render
empty, so a missing profile field never blocks a message; anything the sandbox forbids, a
template over its limits (:mod:`journeys.template_sandbox`: output size, steps, time), or
any other exception while rendering, fails that user's message with a reason.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import jinja2
from jinja2 import meta
from jinja2.exceptions import SecurityError

from journeys.channels_config import SMS_MAX_CHARS, ChannelsFile
from journeys.contracts import failures
from journeys.errors import JourneysError
from journeys.template_sandbox import BoundedSandbox, TemplateLimits, TemplateTooCostly

from .message import Recipient
from .substitution import Substitution

Compiled = jinja2.Template | Substitution

_TEXT_FIELDS = ("title", "subject", "body", "html", "url", "image")


class RenderError(JourneysError):
    """A template could not be rendered for one user; that user's message is not sent.

    ``category`` is the short, fixed name of the failure that counters and workflow state
    carry; ``reason`` (which may quote the user's data) goes only to the deliveries row."""

    def __init__(self, reason: str, *, category: str = failures.TEMPLATE_ERROR) -> None:
        self.reason = reason
        self.category = category
        super().__init__(reason)


def _blank_none(value: Any) -> Any:
    # a profile attribute stored as null should read as nothing, not as "None"
    return "" if value is None else value


def template_environment(*, autoescape: bool, limits: TemplateLimits) -> BoundedSandbox:
    """The environment message templates compile in (also what ``validate`` renders with)."""
    return BoundedSandbox(
        limits=limits,
        undefined=jinja2.ChainableUndefined,
        autoescape=autoescape,
        finalize=_blank_none,
        keep_trailing_newline=True,
    )


def user_context(recipient: Recipient) -> dict[str, Any]:
    """The ``user`` a template sees: every attribute, then the recipient's own fields."""
    return user_fields(
        recipient.user_id,
        email=recipient.email,
        phone=recipient.phone,
        timezone=recipient.timezone,
        attrs=recipient.attrs,
    )


def user_fields(
    user_id: str,
    *,
    email: str | None = None,
    phone: str | None = None,
    timezone: str | None = None,
    attrs: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """:func:`user_context` from a profile's parts, for pages that need no Recipient."""
    user = dict(attrs or ())
    user["user_id"] = user["id"] = user_id
    if email is not None:
        user["email"] = email
    if phone is not None:
        user["phone"] = phone
    if timezone is not None:
        user["timezone"] = timezone
    return user


Rendered = dict[str, str] | RenderError
"""A user's rendered fields, or why they could not be rendered."""
PageUser = tuple[dict[str, Any], Mapping[str, Any] | None]
"""What one user's message renders from: the ``user`` a template sees and the entry event."""


class PreparedTemplate:
    """One channel template made ready for a page: fields that read neither ``user`` nor
    ``event`` are rendered once here, so a blast renders only what differs per user."""

    def __init__(
        self,
        renderer: Renderer,
        *,
        channel: str,
        template: str,
        vars: Mapping[str, Any],
    ) -> None:
        config = renderer.channels.channels.get(channel)
        if config is None:
            raise RenderError(f'unknown channel "{channel}"', category=failures.UNKNOWN_TEMPLATE)
        source = config.templates.get(template)
        if source is None:
            reason = f'channel "{channel}" has no template "{template}"'
            raise RenderError(reason, category=failures.UNKNOWN_TEMPLATE)
        self._renderer = renderer
        self._channel = channel
        self._template = template
        self._vars = dict(vars)
        self._sms = config.type == "sms"
        # per field, in output order: its text, its failure, or the template to render per user
        self._fields: list[tuple[str, str | RenderError | Compiled]] = []
        fixed = {"vars": self._vars, "user": {}, "event": {}, "entry": {}}
        for field in _TEXT_FIELDS:
            text = getattr(source, field)
            if text is not None:
                self._fields.append((field, self._prepare(field, text, fixed)))
        self._payload = source.payload
        self._payload_text: str | RenderError | None = None
        if source.payload is not None and not renderer.reads_recipient(
            channel, template, "payload", source.payload
        ):
            try:
                self._payload_text = self._payload_json(fixed)
            except RenderError as exc:
                self._payload_text = exc

    def render(
        self, recipient: Recipient, *, event: Mapping[str, Any] | None = None
    ) -> dict[str, str]:
        """The rendered fields for one recipient; raises :class:`RenderError`."""
        return self.render_user(user_context(recipient), event=event)

    def render_user(
        self, user: dict[str, Any], *, event: Mapping[str, Any] | None = None
    ) -> dict[str, str]:
        """:meth:`render` for the ``user`` a template sees (:func:`user_fields`)."""
        context: dict[str, Any] | None = None
        content: dict[str, str] = {}
        for field, part in self._fields:
            if isinstance(part, str):
                content[field] = part
                continue
            if isinstance(part, RenderError):
                raise part
            if context is None:
                context = self._context(user, event)
            content[field] = self._renderer.run(self._where(field), part, context)
        if self._payload is not None:
            payload = self._payload_text
            if payload is None:
                payload = self._payload_json(context or self._context(user, event))
            if isinstance(payload, RenderError):
                raise payload
            content["payload"] = payload
        body = content.get("body")
        if self._sms and body is not None and len(body) > SMS_MAX_CHARS:
            reason = f"sms body too long ({len(body)} > {SMS_MAX_CHARS} characters)"
            raise RenderError(reason, category=failures.MESSAGE_TOO_LONG)
        return content

    def _context(self, user: dict[str, Any], event: Mapping[str, Any] | None) -> dict[str, Any]:
        # ``entry`` is the same mapping: an API entry's context reads as {{ entry.order_id }}
        props = dict(event or {})
        return {"user": user, "vars": self._vars, "event": props, "entry": props}

    def _prepare(
        self, field: str, text: str, fixed: dict[str, Any]
    ) -> str | RenderError | Compiled:
        where = self._where(field)
        try:
            compiled = self._renderer.compiled(self._channel, self._template, field, text)
        except RenderError as exc:
            return exc
        if self._renderer.reads_recipient(self._channel, self._template, field, text):
            return compiled
        try:
            return self._renderer.run(where, compiled, fixed)
        except RenderError as exc:
            return exc

    def _payload_json(self, context: dict[str, Any]) -> str:
        payload = self._render_json("payload", self._payload, context)
        return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)

    def _render_json(self, path: str, value: Any, context: dict[str, Any]) -> Any:
        if isinstance(value, str):
            compiled = self._renderer.compiled(self._channel, self._template, path, value)
            return self._renderer.run(self._where(path), compiled, context)
        if isinstance(value, Mapping):
            return {
                key: self._render_json(f"{path}.{key}", item, context)
                for key, item in value.items()
            }
        if isinstance(value, list):
            return [
                self._render_json(f"{path}.{index}", item, context)
                for index, item in enumerate(value)
            ]
        return value

    def _where(self, field: str) -> str:
        return f"{self._channel}.{self._template}.{field}"


class Renderer:
    """Renders the templates of one channels file; compiled templates are kept for reuse."""

    def __init__(self, channels: ChannelsFile, *, limits: TemplateLimits | None = None) -> None:
        self.channels = channels
        self.limits = limits or TemplateLimits()
        self._text = template_environment(autoescape=False, limits=self.limits)
        self._html = template_environment(autoescape=True, limits=self.limits)
        self._compiled: dict[tuple[str, str, str], Compiled] = {}
        self._reads: dict[tuple[str, str, str], bool] = {}
        self._runs_jinja: dict[tuple[str, str], bool] = {}

    def prepare(self, channel: str, template: str, *, vars: Mapping[str, Any]) -> PreparedTemplate:
        """``channel``'s ``template`` with ``vars`` bound, for rendering many recipients;
        raises :class:`RenderError` for an unknown channel or template."""
        return PreparedTemplate(self, channel=channel, template=template, vars=vars)

    def render_page(
        self, channel: str, template: str, *, vars: Mapping[str, Any], users: Sequence[PageUser]
    ) -> list[Rendered]:
        """Each user's fields, or why they could not be rendered, in order, in this process
        (for templates that only substitute names; :mod:`.isolated` renders the others)."""
        try:
            prepared = self.prepare(channel, template, vars=vars)
        except RenderError as exc:
            return [exc for _ in users]
        results: list[Rendered] = []
        for user, event in users:
            try:
                results.append(prepared.render_user(user, event=event))
            except RenderError as exc:
                results.append(exc)
        return results

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
        return self.prepare(channel, template, vars=vars).render(recipient, event=event)

    def compiled(self, channel: str, template: str, field: str, text: str) -> Compiled:
        """The compiled template of one field; a syntax error is a :class:`RenderError`.
        Text that only substitutes names renders without Jinja (:class:`Substitution`)."""
        compiled = self._compiled.get((channel, template, field))
        if compiled is None:
            env = self._html if field == "html" else self._text
            try:
                jinja = env.compile_text(text)
            except Exception as exc:
                raise RenderError(
                    f"{channel}.{template}.{field}: {type(exc).__name__}: {exc}"
                ) from None
            # Jinja keeps globals in a ChainMap and copies it into every render's context;
            # a plain dict copies several times faster (measured: 14.5 -> 6.2 us a render).
            jinja.globals = dict(jinja.globals)
            compiled = jinja
            if field != "html":  # escaping is Jinja's to do
                compiled = Substitution.parse(text, jinja) or jinja
            self._compiled[(channel, template, field)] = compiled
        return compiled

    def runs_jinja(self, channel: str, template: str) -> bool:
        """Whether rendering ``template`` runs Jinja code at all (loops, filters, calls),
        rather than only substituting names into text: only such templates can make work
        and render in the child process (:mod:`activities.channels.isolated`)."""
        known = self._runs_jinja.get((channel, template))
        if known is None:  # asked once a page: parsed once a worker
            known = self._runs_jinja[(channel, template)] = self._finds_jinja(channel, template)
        return known

    def _finds_jinja(self, channel: str, template: str) -> bool:
        config = self.channels.channels.get(channel)
        source = config.templates.get(template) if config is not None else None
        if source is None:
            return False
        texts = [(f, t) for f in _TEXT_FIELDS if (t := getattr(source, f)) is not None]
        texts += [(f"payload#{n}", t) for n, t in enumerate(_strings(source.payload or {}))]
        try:
            for field, text in texts:
                compiled = self.compiled(channel, template, field, text)
                # html compiles to Jinja for its escaping, but names alone make no work
                if not isinstance(compiled, Substitution) and not Substitution.parse(
                    text, compiled
                ):
                    return True
        except RenderError:
            pass  # a template that does not compile fails in place, with its reason
        return False

    def reads_recipient(self, channel: str, template: str, field: str, value: Any) -> bool:
        """Whether a field (text, or the payload object) reads ``user`` or ``event``; one
        that does not renders the same for everyone. Unparseable text counts as reading."""
        key = (channel, template, field)
        reads = self._reads.get(key)
        if reads is None:
            reads = self._reads[key] = any(
                _reads_recipient(self._text, text) for text in _strings(value)
            )
        return reads

    def run(self, where: str, compiled: Compiled, context: dict[str, Any]) -> str:
        """Render ``compiled`` in ``context`` within the limits; any failure is a
        :class:`RenderError`."""
        try:
            if isinstance(compiled, Substitution):
                text = compiled.render(context)
            else:
                env = compiled.environment
                assert isinstance(env, BoundedSandbox)
                text = env.render_bounded(compiled, context)
        except TemplateTooCostly as exc:
            reason = f"{where}: over the template limits: {exc.reason}"
            raise RenderError(reason, category=failures.TEMPLATE_LIMITS) from None
        except MemoryError:  # the render child's cap: more than a template may take
            reason = f"{where}: over the template limits: needed more memory than allowed"
            raise RenderError(reason, category=failures.TEMPLATE_LIMITS) from None
        except RecursionError:
            reason = f"{where}: over the template limits: nested too deep"
            raise RenderError(reason, category=failures.TEMPLATE_LIMITS) from None
        except SecurityError as exc:
            reason = f"{where}: not allowed in templates: {exc}"
            raise RenderError(reason, category=failures.TEMPLATE_FORBIDDEN) from None
        except Exception as exc:  # any failure inside a user's template is that message's
            raise RenderError(f"{where}: {type(exc).__name__}: {exc}") from None
        if len(text) > self.limits.max_chars:  # names substituted with long profile values
            reason = (
                f"{where}: over the template limits: text over {self.limits.max_chars} characters"
            )
            raise RenderError(reason, category=failures.TEMPLATE_LIMITS)
        return text


def _reads_recipient(env: jinja2.Environment, text: str) -> bool:
    try:
        names = meta.find_undeclared_variables(env.parse(text))
    except Exception:
        return True
    return bool(names & {"user", "event", "entry"})


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        return [s for item in value.values() for s in _strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return []
