"""Hostile files: generated plan, channels and policy documents only ever give problems with
paths, never a traceback; hostile YAML and JSON shapes are refused before anything walks
them; fuzzed audience and profile files load exactly or name their bad lines.

Generated with hypothesis, derandomized so every run tries the same cases."""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from journeys.audience_file import HEADER_NAMES, MAX_USER_ID, parse_audience_lines
from journeys.channels_config import ChannelsFile, check_channels, load_channels
from journeys.errors import InvalidInput, Problem
from journeys.plan.source import MAX_DEPTH, DocumentError, parse_json, parse_yaml
from journeys.plan.validate import check_plan
from journeys.policy import check_policy
from journeys.profile_file import BadRow, ProfileRow, read_rows
from starter.plan_files import NOT_PLANS
from tests.conftest import settings_env, spawn_journeys

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
CHANNELS = load_channels(EXAMPLES / "channels.yaml")
FUZZ = settings(
    max_examples=int(os.environ.get("JOURNEYS_FUZZ_EXAMPLES", "150")),
    deadline=None,
    derandomize="JOURNEYS_FUZZ_EXAMPLES" not in os.environ,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

Check = Callable[[object], tuple[object | None, list[Problem]]]


def _plan_check(data: object) -> tuple[object | None, list[Problem]]:
    return check_plan(data, channels=CHANNELS)


CHECKS: dict[str, Check] = {
    "plan": _plan_check,
    "channels": check_channels,
    "policy": check_policy,
}

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
    | st.sampled_from(["", "1d", "-5m", "21:00", "push", "sms", "immediate", "event", "*"])
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=25,
)


def holds_up(kind: str, data: object) -> list[Problem]:
    """``data`` checked as a ``kind`` document: a model and no problem, or problems each with
    a path and a readable reason. Anything raised fails the test."""
    model, problems = CHECKS[kind](data)
    assert (model is None) == bool(problems), (model, problems)
    for problem in problems:
        assert isinstance(problem.path, str) and isinstance(problem.reason, str)
        assert problem.reason.strip(), problem
    str(InvalidInput(kind, problems))  # the CLI's one-line message renders
    return problems


@FUZZ
@given(kind=st.sampled_from(sorted(CHECKS)), data=json_values)
def test_random_documents_only_give_problems_with_paths(kind: str, data: object) -> None:
    holds_up(kind, data)


def _examples() -> list[tuple[str, object]]:
    docs: list[tuple[str, object]] = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        kind = {"channels.yaml": "channels", "policy.yaml": "policy"}.get(path.name, "plan")
        if kind == "plan" and path.name in NOT_PLANS:
            continue
        docs.append((kind, parse_yaml(path.read_text())))
    return docs


EXAMPLE_DOCS = _examples()


def _mutate(data: st.DataObject, doc: object) -> object:
    """``doc`` with one value somewhere in it replaced, removed, or joined by an unknown key."""
    doc = copy.deepcopy(doc)
    parent: object = None
    key: Any = None
    node: Any = doc
    while isinstance(node, dict | list) and node and data.draw(st.booleans()):
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        parent, key = node, data.draw(st.sampled_from(keys))
        node = node[key]
    action = data.draw(st.sampled_from(["replace", "remove", "add"]))
    if parent is None or (action == "add" and not isinstance(node, dict)):
        return data.draw(json_values) if action == "replace" else doc
    if action == "replace":
        parent[key] = data.draw(json_values)  # type: ignore[index]
    elif action == "remove":
        del parent[key]  # type: ignore[attr-defined]
    else:
        assert isinstance(node, dict)
        node[data.draw(st.text(max_size=12))] = data.draw(json_values)
    return doc


@FUZZ
@given(example=st.sampled_from(EXAMPLE_DOCS), data=st.data())
def test_mutated_examples_only_give_problems_with_paths(
    example: tuple[str, object], data: st.DataObject
) -> None:
    kind, doc = example
    mutated = doc
    for _ in range(data.draw(st.integers(min_value=1, max_value=3))):
        mutated = _mutate(data, mutated)
    holds_up(kind, mutated)


def test_the_examples_themselves_are_valid() -> None:
    assert len(EXAMPLE_DOCS) > 10
    for kind, doc in EXAMPLE_DOCS:
        assert holds_up(kind, doc) == [], kind


@FUZZ
@given(text=st.text(max_size=400) | st.binary(max_size=400).map(lambda b: b.decode("latin-1")))
def test_any_text_parses_or_is_refused_with_a_reason(text: str) -> None:
    for parse in (parse_yaml, parse_json):
        try:
            data = parse(text)
        except DocumentError as exc:
            assert exc.problem.reason.startswith(("bad YAML", "bad JSON")), exc.problem
            continue
        for kind in CHECKS:
            holds_up(kind, data)


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


LAUGHS = "a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(
    f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]\n" for a, b in zip("abcdef", "bcdefg", strict=True)
)


@pytest.mark.parametrize(
    ("parse", "text", "reason"),
    [
        (parse_yaml, "steps: " + _nested(5_000), f"nested more than {MAX_DEPTH} levels deep"),
        (parse_yaml, "a:\n" + "".join("  " * i + "-\n" for i in range(1, 200)), "nested more"),
        (parse_yaml, "{a: " * 3_000 + "1" + "}" * 3_000, "nested more than"),
        (parse_yaml, LAUGHS, "expands to more than 1,000,000 values (aliases)"),
        (parse_yaml, "shards: " + "9" * 5_000, "a number longer than 4300 digits"),
        (parse_json, _nested(5_000), "nested more than"),
        (parse_json, '{"a": ' + _nested(MAX_DEPTH) + "}", "nested more than"),
        (parse_json, '{"shards": ' + "9" * 5_000 + "}", "bad JSON"),
        (parse_yaml, "!!python/object/apply:os.system [id]", "could not determine a constructor"),
    ],
)
def test_hostile_shapes_are_refused_before_they_are_walked(
    parse: Callable[[str], object], text: str, reason: str
) -> None:
    with pytest.raises(DocumentError) as refused:
        parse(text)
    assert reason in refused.value.problem.reason


def test_aliases_within_the_bound_still_read() -> None:
    doc = parse_yaml("base: &b {title: Hi, body: There}\ncopy: *b\nlist: [*b, *b]\n")
    assert doc == {"base": {"title": "Hi", "body": "There"}, "copy": {"title": "Hi", "body":
                   "There"}, "list": [{"title": "Hi", "body": "There"}] * 2}  # fmt: skip
    assert parse_yaml("a: " + _nested(MAX_DEPTH - 1)) is not None


async def test_the_cli_refuses_a_hostile_file_in_one_line(tmp_path: Path) -> None:
    env = settings_env_offline()
    for name, text in {"laughs.yaml": LAUGHS, "deep.json": _nested(10_000)}.items():
        path = tmp_path / name
        path.write_text(text)
        proc = await spawn_journeys("validate", str(path), env=env)
        out, err = await proc.communicate()
        output = out.decode() + err.decode()
        assert proc.returncode == 1 and "Traceback" not in output, output
        assert ("aliases" if name == "laughs.yaml" else "nested more than") in output


def settings_env_offline() -> dict[str, str]:
    """``journeys validate`` needs no service: the test stack's variables are not needed."""
    from journeys.settings import Settings

    return settings_env(Settings())


# --- uploads ------------------------------------------------------------------------------

ids = st.text(
    st.characters(codec="utf-8", exclude_categories=["Cc", "Cs", "Zs", "Zl", "Zp", "Cf", "Co",
                  "Cn"], exclude_characters="#,\t\"'\r\n\x85"),
    min_size=1,
    max_size=MAX_USER_ID,
).filter(lambda s: s.lower() not in HEADER_NAMES and s.isprintable())  # fmt: skip
hostile_ids = st.sampled_from(["a b", "x\x00y", "tab\u200bin", "x" * (MAX_USER_ID + 1), "c\x7fd"])
fillers = st.sampled_from(["", "   ", "# a comment"])


@FUZZ
@given(
    first=ids,
    lines=st.lists(st.tuples(st.sampled_from(["id", "bad", "filler"]), ids, hostile_ids, fillers),
                   max_size=60),
    crlf=st.booleans(),
    bom=st.booleans(),
)  # fmt: skip
def test_an_audience_file_loads_exactly_or_names_its_bad_lines(
    first: str,
    lines: list[tuple[str, str, str, str]],
    crlf: bool,
    bom: bool,
) -> None:
    rows = [first]
    expected_ids = [first]
    expected_bad: list[int] = []
    for kind, good, bad, filler in lines:
        if kind == "id":
            rows.append(good)
            expected_ids.append(good)
        elif kind == "bad":
            rows.append(bad)
            expected_bad.append(len(rows))  # 1-based line number
        else:
            rows.append(filler)
    text = ("\ufeff" if bom else "") + ("\r\n" if crlf else "\n").join(rows)
    lines_in = text.replace("\r\n", "\n").split("\n")
    parsed = parse_audience_lines(lines_in, source="fuzz.txt", max_bad_share=1.0)
    assert parsed.ids == list(dict.fromkeys(expected_ids))
    assert [b.line for b in parsed.bad] == expected_bad
    if expected_bad:
        with pytest.raises(InvalidInput) as refused:
            parse_audience_lines(lines_in, source="fuzz.txt", max_bad_share=0.0)
        assert refused.value.problems[0].path == f"line {expected_bad[0]}"


attr_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=20),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(st.characters(codec="utf-8", exclude_characters="\x00"),
                              min_size=1, max_size=8), inner, max_size=3),
    max_leaves=10,
)  # fmt: skip
hostile_lines = st.sampled_from([
    "not json", "[1, 2]", '"text"', "{", '{"user_id": ""}', '{"user_id": 7}',
    '{"user_id": "a\\u0000b"}', '{"user_id": "u", "attrs": [1]}', '{"user_id": "u", "a": NaN}',
    '{"user_id": "u", "timezone": "Mars/Olympus"}', '{"user_id": "u", "email": 5}',
    "[" * 5_000 + "]" * 5_000,
])  # fmt: skip


@FUZZ
@given(
    rows=st.lists(
        st.one_of(
            st.tuples(st.just("ok"), ids, st.dictionaries(
                st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1,
                        max_size=8).filter(lambda k: k not in ("user_id", "email", "phone",
                                                               "timezone", "attrs")),
                attr_values, max_size=4)),
            st.tuples(st.just("bad"), hostile_lines, st.just({})),
        ),
        min_size=1,
        max_size=30,
    )
)  # fmt: skip
def test_a_profiles_file_reads_exactly_or_names_its_bad_lines(
    rows: list[tuple[str, str, dict[str, object]]], tmp_path_factory: pytest.TempPathFactory
) -> None:
    lines = [
        json.dumps({"user_id": text, "attrs": attrs}) if kind == "ok" else text
        for kind, text, attrs in rows
    ]
    path = tmp_path_factory.mktemp("profiles") / "fuzz.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    read = list(read_rows(path))
    assert [r.line for r in read] == list(range(1, len(rows) + 1))
    for (kind, text, attrs), got in zip(rows, read, strict=True):
        if kind == "bad":
            assert isinstance(got, BadRow) and got.reason, (text[:40], got)
        else:
            assert isinstance(got, ProfileRow), (text, attrs, got)
            assert (got.user_id, got.attrs) == (text, attrs)


def test_channels_models_accept_their_own_dump() -> None:
    """The fuzzers above start from documents the checks accept; so does a dumped model."""
    dumped = yaml.safe_load(yaml.safe_dump(CHANNELS.model_dump(mode="json", exclude_none=True)))
    model, problems = check_channels(dumped)
    assert problems == [] and isinstance(model, ChannelsFile)
