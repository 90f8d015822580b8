"""Reading plan and channels documents from YAML or JSON files.

YAML is read with YAML 1.2 scalars (``yes``/``no``/``on`` stay strings, ``21:30`` is not the
number 1290, dates stay strings) so a YAML file means exactly what the same JSON file means, and
a repeated mapping key is an error instead of silently dropping the first value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml

from journeys.errors import Problem


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
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+.0123456789"),
)


def parse_yaml(text: str) -> object:
    """Parse one YAML document; raise :class:`DocumentError` with the line and column."""
    try:
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


def parse_json(text: str) -> object:
    """Parse a JSON document; raise :class:`DocumentError` with the line and column."""
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as exc:
        where = f"bad JSON at line {exc.lineno}, column {exc.colno}"
        raise DocumentError(Problem("", f"{where}: {exc.msg}")) from None


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
