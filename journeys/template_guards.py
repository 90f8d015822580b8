"""Size checks made before a template builds a value, for :mod:`journeys.template_sandbox`.

Each check estimates what an operation would produce from its inputs, in constant time, and
refuses it if that is over the limit, so ``'a' * 10**9`` fails without allocating a byte, with
a reason an operator can act on. The estimates measure text, not what containers hold (a list
of many references to one big string passes as short), and no estimate sees a C-level
comparison of deep lists: what gets past them is held by the render child's memory cap and
deadline (:mod:`activities.channels.isolated`).
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Mapping, Sized
from functools import wraps
from typing import Any

from journeys.errors import JourneysError

MAX_INT_BITS = 4096
"""Largest integer a template may build (about 1,200 digits): no message needs more."""
_TOJSON_MAX_INDENT = 64

_STR_METHODS = frozenset(
    {
        *("capitalize", "casefold", "center", "count", "endswith", "find", "format"),
        *("format_map", "index", "isalnum", "isalpha", "isascii", "isdecimal", "isdigit"),
        *("islower", "isnumeric", "isspace", "istitle", "isupper", "join", "ljust", "lower"),
        *("lstrip", "partition", "removeprefix", "removesuffix", "replace", "rfind"),
        *("rindex", "rjust", "rpartition", "rsplit", "rstrip", "split", "splitlines"),
        *("startswith", "strip", "swapcase", "title", "upper", "zfill", "striptags"),
        "unescape",
    }
)
_DICT_METHODS = frozenset({"get", "items", "keys", "values"})
_SEQUENCE_METHODS = frozenset({"count", "index"})
_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")


class TemplateTooCostly(JourneysError):
    """A template went over a bound (a value too large, too many steps, too long); the
    message it was rendering cannot be sent."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def is_allowed_method(obj: object, name: str) -> bool:
    """Whether templates may call ``obj.name``: plain methods of strings, dicts and lists
    only (``int.to_bytes(10**9)`` or ``str.translate`` with a big table would build huge
    values that no estimate here covers); other objects are left to the stock sandbox."""
    if isinstance(obj, str):
        return name in _STR_METHODS
    if isinstance(obj, Mapping):
        return name in _DICT_METHODS
    if isinstance(obj, list | tuple):
        return name in _SEQUENCE_METHODS
    return not isinstance(obj, int | float | bytes | bytearray)


def _refuse(what: str, size: int, limit: int) -> None:
    if size > limit:
        raise TemplateTooCostly(f"{what} would be {size:,} characters, at most {limit:,}")


def check_binop(operator: str, left: object, right: object, *, max_chars: int) -> None:
    """Refuse ``left <operator> right`` if its result would be over the limits."""
    if operator == "*":
        for seq, times in ((left, right), (right, left)):
            if isinstance(seq, str | list | tuple) and isinstance(times, int):
                _refuse("a repeated value", len(seq) * times, max_chars)
                return
        if isinstance(left, int) and isinstance(right, int):
            _int_bits(left.bit_length() + right.bit_length())
    elif operator == "**":
        if isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
            _int_bits(left.bit_length() * right)
    elif operator == "+":
        if isinstance(left, str | list | tuple) and isinstance(right, str | list | tuple):
            _refuse("a joined value", len(left) + len(right), max_chars)
    elif operator == "%" and isinstance(left, str):
        _check_percent_format(left, max_chars)


def _int_bits(bits: int) -> None:
    if bits > MAX_INT_BITS:
        raise TemplateTooCostly(f"a number of about {bits:,} bits, at most {MAX_INT_BITS:,}")


def _check_percent_format(text: str, max_chars: int) -> None:
    for width, precision in _PERCENT_SPEC.findall(text):
        for number in (width, precision):
            if number == "*":
                raise TemplateTooCostly("a % format with * widths is not allowed in templates")
            if number:
                _refuse("a formatted field", int(number), max_chars)


def _check_format_spec(text: str, max_chars: int) -> None:
    for _, _, spec, _ in string.Formatter().parse(text):
        if not spec:
            continue
        if "{" in spec:
            raise TemplateTooCostly("nested format fields are not allowed in templates")
        for number in re.findall(r"\d+", spec):
            _refuse("a formatted field", int(number), max_chars)


def _replaced_size(text: str, old: object, new: object) -> int:
    if not isinstance(old, str) or not isinstance(new, str):
        return len(text)
    count = text.count(old) if old else len(text) + 1
    return len(text) + count * (len(new) - len(old))


def _joined_size(separator: str, items: object) -> int:
    return len(separator) * len(items) if isinstance(items, Sized) else 0


def check_method_call(
    method: object, args: tuple[Any, ...], kwargs: Mapping[str, Any], *, max_chars: int
) -> None:
    """Refuse a call of a string method whose result would be over the limits (``format``
    comes with the string as its first argument)."""
    owner = getattr(method, "__self__", None)
    if not isinstance(owner, str):
        return
    name = getattr(method, "__name__", "")
    for value in (*args, *kwargs.values()):
        if isinstance(value, int) and not isinstance(value, bool):
            _refuse(f"str.{name}'s argument", value, max_chars)
    if name == "replace" and len(args) >= 2:
        _refuse("the replaced text", _replaced_size(owner, args[0], args[1]), max_chars)
    elif name == "join" and args:
        _refuse("the joined text", _joined_size(owner, args[0]), max_chars)
    elif name == "expandtabs":
        size = args[0] if args else kwargs.get("tabsize", 8)
        _refuse("the expanded text", owner.count("\t") * int(size), max_chars)
    elif name in ("format", "format_map") and args and isinstance(args[0], str):
        _check_format_spec(args[0], max_chars)


def _filter_check(name: str, args: tuple[Any, ...], kwargs: Mapping[str, Any], most: int) -> None:
    """Estimates for the stock filters that can grow their input; the others are at most a
    small factor over it (escape, urlencode, tojson) and meet the result check."""
    value = args[0] if args else None
    rest = args[1:]

    def arg(index: int, key: str, default: object = None) -> object:
        return rest[index] if len(rest) > index else kwargs.get(key, default)

    # only text is measured here: str() of a big container would build what we are guarding
    text = value if isinstance(value, str) else ""
    if name == "center":
        _refuse("the centred text", _int(arg(0, "width", 80)), most)
    elif name == "indent":
        width = arg(0, "width", 4)
        step = len(width) if isinstance(width, str) else _int(width)
        _refuse("the indented text", len(text) + (text.count("\n") + 1) * step, most)
    elif name == "wordwrap":
        wrap = arg(3, "wrapstring", "\n")
        lines = len(text) // max(_int(arg(0, "width", 79)), 1) + text.count("\n") + 1
        _refuse("the wrapped text", len(text) + lines * len(str(wrap or "\n")), most)
    elif name in ("batch", "slice"):
        _refuse(f"{name}'s count", _int(arg(0, "linecount" if name == "batch" else "slices")), most)
    elif name == "replace":
        _refuse("the replaced text", _replaced_size(text, arg(0, "old"), arg(1, "new")), most)
    elif name == "join":
        _refuse("the joined text", _joined_size(str(arg(0, "d", "")), value), most)
    elif name == "format":
        _check_percent_format(text, most)
    elif name == "tojson" and _int(arg(0, "indent", 0)) > _TOJSON_MAX_INDENT:
        raise TemplateTooCostly(f"tojson indent over {_TOJSON_MAX_INDENT}")
    elif name == "sum" and isinstance(arg(1, "start", 0), str | list | tuple):
        total = sum(len(x) for x in value if isinstance(x, Sized)) if isinstance(value, list) else 0
        _refuse("the summed value", total, most)


def _int(value: object) -> int:
    return value if isinstance(value, int) else 0


def guarded_filters(
    filters: Mapping[str, Callable[..., Any]], max_chars: int, tick: Callable[[], None]
) -> dict[str, Callable[..., Any]]:
    """Every filter wrapped: a step of the budget, the estimate above, a check of the
    result's size. Jinja's pass-context markers are kept (``wraps`` copies them)."""

    def guard(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        passes = getattr(function, "jinja_pass_arg", None) is not None

        @wraps(function)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            tick()
            _filter_check(name, args[1:] if passes else args, kwargs, max_chars)
            result = function(*args, **kwargs)
            if isinstance(result, str | list | tuple):
                _refuse(f"the {name} filter's result", len(result), max_chars)
            return result

        return guarded

    return {name: guard(name, function) for name, function in filters.items()}
