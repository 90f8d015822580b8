"""Checks on the step graph, run on the raw document so they work even when steps are broken.

References must name existing steps; every step must be reachable from the start step; the
graph must have no cycles. Cycles are reported starting at their smallest step id.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Mapping

from journeys.errors import Problem
from journeys.plan.steps import STEP_TYPES

# "branches[].next" stands for the `next` of every item of the `branches` list
EDGE_FIELDS: dict[str, tuple[str, ...]] = {
    "send": ("next",),
    "wait": ("next",),
    "wait_until": ("next",),
    "update": ("next",),
    "webhook": ("next",),
    "branch": ("branches[].next", "else"),
    "decide": ("branches[].next", "else"),
    "check": ("branches[].next", "else", "on_failure"),
    "ab_split": ("arms[].next",),
    "wait_for_event": ("on_event", "on_timeout"),
    "exit": (),
}
# a step of unknown type may still point somewhere; following every field avoids reporting
# the steps after it as unreachable because of one typo
_ANY_TYPE = (
    "next",
    "else",
    "on_event",
    "on_timeout",
    "on_failure",
    "branches[].next",
    "arms[].next",
)


def step_path(step_id: str, raw_step: object) -> str:
    """``steps.<id>.<type>``, the prefix pydantic uses for the fields of a step."""
    kind = raw_step.get("type") if isinstance(raw_step, Mapping) else None
    return f"steps.{step_id}.{kind}" if kind in STEP_TYPES else f"steps.{step_id}"


def step_edges(raw_step: object) -> Iterator[tuple[str, str]]:
    """``(field path, target step id)`` for every step a raw step points to, in file order."""
    if not isinstance(raw_step, Mapping):
        return
    kind = raw_step.get("type")
    for field in EDGE_FIELDS.get(kind, _ANY_TYPE) if isinstance(kind, str) else _ANY_TYPE:
        if field.endswith("[].next"):
            name = field.removesuffix("[].next")
            items = raw_step.get(name)
            for index, item in enumerate(items if isinstance(items, list) else []):
                target = item.get("next") if isinstance(item, Mapping) else None
                if isinstance(target, str):
                    yield f"{name}.{index}.next", target
        elif isinstance(target := raw_step.get(field), str):
            yield field, target


def graph_problems(document: Mapping[str, object]) -> list[Problem]:
    """Unknown step references, an unknown start, unreachable steps and cycles."""
    steps = document.get("steps")
    if not isinstance(steps, Mapping) or not steps:
        return []
    ids = [key for key in steps if isinstance(key, str)]
    problems: list[Problem] = []
    graph: dict[str, list[str]] = {}
    for step_id in ids:
        graph[step_id] = []
        for field, target in step_edges(steps[step_id]):
            if target in steps:
                graph[step_id].append(target)
            else:
                path = f"{step_path(step_id, steps[step_id])}.{field}"
                problems.append(Problem(path, f'unknown step "{target}"'))
    start = document.get("start")
    if start is None and ids:
        start = ids[0]
    if isinstance(start, str) and start not in graph:
        problems.append(Problem("start", f'unknown step "{start}"'))
    elif isinstance(start, str):
        seen = _reachable(graph, start)
        problems.extend(
            Problem(f"steps.{step_id}", f'unreachable from start step "{start}"')
            for step_id in ids
            if step_id not in seen
        )
    problems.extend(Problem("steps", f"cycle {' -> '.join(cycle)}") for cycle in find_cycles(graph))
    return problems


def arm_paths(
    steps: Mapping[str, Mapping[str, object]],
    arms: Mapping[str, str | None],
    *,
    start: str,
    split: str,
) -> dict[str, set[str]]:
    """For the ab_split ``split`` whose arms (name -> next step) lead into ``steps`` (raw,
    as dumped by alias): the steps only that arm leads to. Steps two arms lead to (their
    paths merge), and steps a user can reach from ``start`` without passing the split,
    belong to no arm."""
    graph = {sid: [t for _, t in step_edges(step) if t in steps] for sid, step in steps.items()}
    around = _reachable({**graph, split: []}, start) if start in graph else set()
    reach = {arm: _reachable(graph, nxt) if nxt in graph else set() for arm, nxt in arms.items()}
    seen: dict[str, int] = {}
    for nodes in reach.values():
        for node in nodes:
            seen[node] = seen.get(node, 0) + 1
    return {arm: {n for n in nodes if seen[n] == 1} - around for arm, nodes in reach.items()}


def _reachable(graph: Mapping[str, list[str]], start: str) -> set[str]:
    seen = {start}
    queue = deque([start])
    while queue:
        for target in graph[queue.popleft()]:
            if target not in seen:
                seen.add(target)
                queue.append(target)
    return seen


def find_cycles(graph: Mapping[str, list[str]]) -> list[list[str]]:
    """One shortest cycle per group of steps that loop, each as ``[a, b, ..., a]``, sorted.

    Each cycle starts at the smallest step id of its group, so the same loop always reads the
    same way.
    """
    cycles: list[list[str]] = []
    for group in _strong_components(graph):
        first = min(group)
        if len(group) > 1 or first in graph[first]:
            cycles.append([*_shortest_cycle(graph, first, group), first])
    return sorted(cycles)


def _strong_components(graph: Mapping[str, list[str]]) -> list[set[str]]:
    # Tarjan's algorithm, iterative so a long chain of steps cannot exhaust the stack
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)

    for root in graph:
        if root in index:
            continue
        visit(root)
        work = [(root, iter(graph[root]))]
        while work:
            node, targets = work[-1]
            descended = False
            for target in targets:
                if target not in index:
                    visit(target)
                    work.append((target, iter(graph[target])))
                    descended = True
                    break
                if target in on_stack:
                    low[node] = min(low[node], index[target])
            if descended:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component: set[str] = set()
                while node not in component:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                components.append(component)
    return components


def _shortest_cycle(graph: Mapping[str, list[str]], start: str, allowed: set[str]) -> list[str]:
    parents: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for target in sorted(set(graph[node])):
            if target == start:
                path = [node]
                while path[-1] != start:
                    path.append(parents[path[-1]])
                return path[::-1]
            if target in allowed and target not in parents:
                parents[target] = node
                queue.append(target)
    return [start]  # not reached: `allowed` is a strongly connected group holding `start`
