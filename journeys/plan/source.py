"""Reading plan and channels documents from YAML or JSON files.

YAML is read with YAML 1.2 scalars (``yes``/``no``/``on`` stay strings, ``21:30`` is not the
number 1290, dates stay strings) so a YAML file means exactly what the same JSON file means, and
a repeated mapping key is an error instead of silently dropping the first value.

A hostile document is refused before anything walks it: nesting deeper than
:data:`MAX_DEPTH` (the parsers and validators recurse), YAML aliases that expand past
:data:`MAX_VALUES` values (a "billion laughs" file is a few lines), and integers longer
than Python converts (4,300 digits).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml

from journeys.errors import Problem

MAX_DEPTH = 64
"""The deepest nesting of lists and mappings a document may have."""
MAX_VALUES = 1_000_000
"""The most values a YAML document may expand to, its aliases followed."""
MAX_INT_DIGITS = 4300  # Python's own limit on int(str)


class DocumentError(Exception):
    """A document could not be read or parsed; :attr:`problem` says where and why."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(str(problem))
        self.problem = problem


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 core scalars and duplicate-key detection."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, str | int | float | bool) and key in seen:
                mark = key_node.start_mark
                raise DocumentError(
                    Problem(
                        "",
                        f"bad YAML at line {mark.line + 1}, column {mark.column + 1}: "
                        f'duplicate key "{key}"',
                    )
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_REPLACED = {"tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"}
_REPLACED.add("tag:yaml.org,2002:timestamp")
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in _REPLACED]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^[-+]?[0-9]+$"), list("-+0123456789")
)


def _construct_int(loader: _Loader, node: yaml.ScalarNode) -> object:
    text = loader.construct_scalar(node)
    if len(text.lstrip("+-")) > MAX_INT_DIGITS:
        raise yaml.constructor.ConstructorError(
            None, None, f"a number longer than {MAX_INT_DIGITS} digits", node.start_mark
        )
    return loader.construct_yaml_int(node)


_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+.0123456789"),
)


def _yaml_shape_problem(text: str) -> Problem | None:
    """Too deep, or aliases that expand too far, from the parser's events (which take no
    recursion and follow no alias), before anything builds the document."""
    sizes: dict[str, int] = {}
    open_: list[tuple[str | None, int]] = []  # per open collection: its anchor, values so far
    total = 0
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.CollectionStartEvent):
            open_.append((event.anchor, 1))
            if len(open_) > MAX_DEPTH:
                return _at(event, f"nested more than {MAX_DEPTH} levels deep")
            continue
        if isinstance(event, yaml.CollectionEndEvent):
            anchor, size = open_.pop()
        elif isinstance(event, yaml.AliasEvent):
            anchor, size = None, sizes.get(event.anchor or "", 1)
        elif isinstance(event, yaml.ScalarEvent):
            anchor, size = event.anchor, 1
        else:
            continue
        if anchor is not None:
            sizes[anchor] = size
        if open_:
            open_[-1] = (open_[-1][0], open_[-1][1] + size)
        else:
            total += size
        if total + sum(n for _, n in open_) > MAX_VALUES:
            return _at(event, f"expands to more than {MAX_VALUES:,} values (aliases)")
    return None


def _at(event: yaml.Event, reason: str) -> Problem:
    mark = event.start_mark
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    return Problem("", f"bad YAML{where}: {reason}")


def parse_yaml(text: str) -> object:
    """Parse one YAML document; raise :class:`DocumentError` with the line and column."""
    try:
        problem = _yaml_shape_problem(text)
        if problem is not None:
            raise DocumentError(problem)
        return yaml.load(text, Loader=_Loader)  # _Loader derives from SafeLoader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        reason = exc.problem or exc.context or "cannot parse"
        raise DocumentError(Problem("", f"bad YAML{where}: {reason}")) from None
    except yaml.YAMLError as exc:
        raise DocumentError(Problem("", f"bad YAML: {exc}")) from None


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise DocumentError(Problem("", f'bad JSON: duplicate key "{key}"'))
        result[key] = value
    return result


TOO_DEEP_JSON = Problem("", f"bad JSON: nested more than {MAX_DEPTH} levels deep")


def parse_json(text: str) -> object:
    """Parse a JSON document; raise :class:`DocumentError` with the line and column."""
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as exc:
        where = f"bad JSON at line {exc.lineno}, column {exc.colno}"
        raise DocumentError(Problem("", f"{where}: {exc.msg}")) from None
    except RecursionError:
        raise DocumentError(TOO_DEEP_JSON) from None
    except ValueError as exc:  # an integer past Python's digit limit
        raise DocumentError(Problem("", f"bad JSON: {exc}")) from None
    if _depth(data) > MAX_DEPTH:
        raise DocumentError(TOO_DEEP_JSON)
    return data


def _depth(data: object) -> int:
    """How deep ``data`` nests, without recursion."""
    deepest, stack = 0, [(data, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            deepest = max(deepest, depth + 1)
            stack.extend(
                (v, depth + 1) for v in (value.values() if isinstance(value, dict) else value)
            )
    return deepest


def read_document(path: Path) -> object:
    """Read ``path`` as JSON (``.json``) or YAML (anything else, JSON being valid YAML)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DocumentError(Problem("", "file not found")) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DocumentError(Problem("", f"cannot read the file: {exc}")) from None
    data = parse_json(text) if path.suffix.lower() == ".json" else parse_yaml(text)
    if data is None:
        raise DocumentError(Problem("", "the file is empty"))
    return data


Model = TypeVar("Model")


def load_checked(
    path: Path,
    check: Callable[[object], tuple[Model | None, list[Problem]]],
    *,
    refused: Callable[[str, list[Problem]], Exception],
) -> Model:
    """Read ``path`` and validate it with ``check``; raise ``refused(path, problems)`` (a
    document that cannot be read, or every problem of one that can)."""
    try:
        data = read_document(path)
    except DocumentError as exc:
        raise refused(str(path), [exc.problem]) from None
    model, problems = check(data)
    if model is None:
        raise refused(str(path), problems)
    return model
