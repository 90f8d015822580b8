"""Templates that only substitute names (``Hi {{ user.first_name }}``), rendered without Jinja.

Most message templates are text with a few ``{{ user.x }}`` / ``{{ vars.x }}`` /
``{{ event.x }}`` (or ``{{ entry.x }}``, the same props) in it. Jinja renders those at about
6-13 us a message (a context per render, the sandbox's attribute lookup, an Undefined for a
missing name); a blast renders one per user.
:class:`Substitution` renders the same text by dictionary lookups, with Jinja's result:
a missing name or None is empty, str / int / float / bool print as ``str()`` does. Any other
value (a list, a date, ...) hands that message to the compiled Jinja template, so the output
never differs; names that are attributes of ``dict`` (``user.items``) are left to Jinja at
compile time for the same reason.
"""

from __future__ import annotations

import re
from typing import Any

import jinja2

_NAME = re.compile(r"\{\{ *(user|vars|event|entry)\.([A-Za-z][A-Za-z0-9_]*) *\}\}")
_SYNTAX = ("{{", "{%", "{#")
_DICT_ATTRIBUTES = frozenset(dir(dict))
_PLAIN = (str, int, float, bool)


class Substitution:
    """Literal text and ``(namespace, key)`` lookups; renders like the Jinja template it wraps."""

    def __init__(self, parts: list[str | tuple[str, str]], jinja: jinja2.Template) -> None:
        self._parts = parts
        self._jinja = jinja

    @classmethod
    def parse(cls, text: str, jinja: jinja2.Template) -> Substitution | None:
        """The substitution form of ``text``, or None when it uses more than names."""
        parts: list[str | tuple[str, str]] = []
        at = 0
        for match in _NAME.finditer(text):
            parts.append(text[at : match.start()])
            namespace, key = match.groups()
            if key in _DICT_ATTRIBUTES:
                return None
            parts.append((namespace, key))
            at = match.end()
        parts.append(text[at:])
        if any(s in part for part in parts if isinstance(part, str) for s in _SYNTAX):
            return None
        return cls([p for p in parts if p != ""], jinja)

    def render(self, context: dict[str, Any]) -> str:
        """The text for ``context`` (``user``, ``vars``, ``event`` / ``entry`` mappings)."""
        out: list[str] = []
        for part in self._parts:
            if isinstance(part, str):
                out.append(part)
                continue
            value = context[part[0]].get(part[1])
            if value is None:
                continue
            if type(value) not in _PLAIN:
                return self._jinja.render(context)
            out.append(value if type(value) is str else str(value))
        return "".join(out)
