"""The Jinja2 environment templates render in: the stock sandbox (no attribute escapes, no
mutation) plus bounds on the work a template can make the worker do.

Jinja's sandbox stops ``__class__`` tricks but not ``{{ 'a' * 10**9 }}``, ``center(10**9)``,
``lipsum(10**6)`` or two nested ``range(10**5)`` loops. A template is an operator's input and
must not hang or starve the worker, so every place where template code can make work runs
through a hook of ours:

- operators that build values (``*``, ``**``, ``+``, ``%``) and every call, filter and string
  method check the size of what they would build *before* building it;
- every loop iteration, call and filter counts against a step budget and the time limit;
  every printed value (in macros and blocks too) against an output budget;
- only plain methods of strings, lists and dicts are callable, ``range`` is bounded and
  ``lipsum`` is gone.

A template that breaks a bound raises :class:`TemplateTooCostly` with the reason; callers
fail that one message. These bounds are the first line, the one with clear reasons; the
worker renders templates that run Jinja code in a child process that can be stopped
(:mod:`activities.channels.isolated`), the line that holds whatever gets past them.

The hooks reach loops, concatenation (``~``) and output by rewriting the parsed template
(:meth:`BoundedSandbox.compile_text`), with Jinja's public node API.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context, markup_join, str_join
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.visitor import NodeTransformer

from journeys.template_guards import (
    TemplateTooCostly,
    check_binop,
    check_method_call,
    guarded_filters,
    is_allowed_method,
)


@dataclass(frozen=True)
class TemplateLimits:
    """Bounds on one rendered field (``JOURNEYS_TEMPLATE_*`` settings)."""

    max_chars: int = 256 * 1024
    """Largest rendered field; also bounds every value a template builds on the way."""
    time_limit: timedelta = timedelta(milliseconds=250)
    max_steps: int = 100_000
    """Loop iterations, calls and filters in one render."""
    max_memory: int = 512 * 1024 * 1024
    """Bytes a render child may allocate beyond what it holds at start
    (:mod:`activities.channels.isolated`)."""


@dataclass
class _Budget:
    limits: TemplateLimits
    deadline: float
    steps: int
    output: int


_BUDGET: ContextVar[_Budget | None] = ContextVar("template_budget", default=None)
_OUTPUT_WORK = 4
"""Printed characters, counted wherever printed (a macro's output printed again counts
twice), may reach this many times ``max_chars``."""


def tick(steps: int = 1) -> None:
    """Spend ``steps`` of the current render's budget; raises :class:`TemplateTooCostly`."""
    budget = _BUDGET.get()
    if budget is None:  # compile-time folding of constants: sizes are still checked
        return
    budget.steps -= steps
    if budget.steps < 0:
        raise TemplateTooCostly(f"template took more than {budget.limits.max_steps} steps")
    if budget.steps % 32 == 0 and time.monotonic() > budget.deadline:
        ms = round(budget.limits.time_limit.total_seconds() * 1000)
        raise TemplateTooCostly(f"template took longer than {ms} ms")


def _spend_output(chars: int) -> None:
    budget = _BUDGET.get()
    if budget is None:
        return
    budget.output -= chars
    if budget.output < 0:
        most = budget.limits.max_chars * _OUTPUT_WORK
        raise TemplateTooCostly(f"template printed more than {most} characters in all")
    tick()


class _Bounding(NodeTransformer):
    """Route loops, ``~`` and buffered output through the budget filters below.

    Output at the top level streams to :meth:`BoundedSandbox.render_bounded`, which counts
    it; output inside a macro, a call block, a filter block or a ``{% set %}`` block is joined
    in memory before anything sees it, so there every printed value is counted as it goes.
    """

    def __init__(self) -> None:
        self._buffered = 0

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        assert isinstance(node.iter, nodes.Expr)
        node.iter = _filter(node.iter, "_journeys_loop")
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return _filter(nodes.List(node.nodes, lineno=node.lineno), "_journeys_concat")

    def visit_Output(self, node: nodes.Output) -> nodes.Node:
        self.generic_visit(node)
        if self._buffered:
            node.nodes = [_filter(child, "_journeys_out") for child in node.nodes]
        return node

    def _in_buffer(self, node: nodes.Node) -> nodes.Node:
        self._buffered += 1
        try:
            self.generic_visit(node)
        finally:
            self._buffered -= 1
        return node

    visit_Macro = visit_CallBlock = visit_FilterBlock = visit_AssignBlock = _in_buffer


def _filter(node: nodes.Expr, name: str) -> nodes.Filter:
    return nodes.Filter(node, name, [], [], None, None, lineno=node.lineno)


@jinja2.pass_context
def _loop(_: Context, iterable: Iterable[Any]) -> Iterator[Any]:
    # pass_context: Jinja never folds such a filter at compile time, so it always runs
    for item in iterable:
        tick()
        yield item


@jinja2.pass_context
def _concat(context: Context, parts: list[Any]) -> str:
    tick()
    joined = (markup_join if context.eval_ctx.autoescape else str_join)(parts)
    _check_size(len(joined), context.environment)
    return joined


@jinja2.pass_context
def _out(_: Context, value: object) -> object:
    _spend_output(len(value) if isinstance(value, str) else 1)
    return value


def _check_size(size: int, environment: jinja2.Environment) -> None:
    limit = environment.limits.max_chars if isinstance(environment, BoundedSandbox) else 0
    if limit and size > limit:
        raise TemplateTooCostly(f"template built a value of {size} characters, at most {limit}")


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """The sandbox with work bounds; compile with :meth:`compile_text`, render with
    :meth:`render_bounded`."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, *, limits: TemplateLimits | None = None, **options: Any) -> None:
        super().__init__(**options)
        self.limits = limits or TemplateLimits()
        self.globals = {
            "range": self._range,
            "dict": dict,
            "cycler": self.globals["cycler"],
            "joiner": self.globals["joiner"],
            "namespace": self.globals["namespace"],
        }
        self.filters = guarded_filters(self.filters, self.limits.max_chars, tick)
        self.filters.update(_journeys_loop=_loop, _journeys_concat=_concat, _journeys_out=_out)

    def compile_text(self, text: str) -> jinja2.Template:
        """Compile ``text`` with its loops, ``~`` and output bounded."""
        tree = self.parse(text)
        bounded = _Bounding().visit(tree)
        assert isinstance(bounded, nodes.Template)
        bounded.set_environment(self)
        return self.from_string(bounded)

    def render_bounded(self, template: jinja2.Template, context: Mapping[str, Any]) -> str:
        """Render within the limits; raises :class:`TemplateTooCostly` past any of them."""
        limits = self.limits
        budget = _Budget(
            limits=limits,
            deadline=time.monotonic() + limits.time_limit.total_seconds(),
            steps=limits.max_steps,
            output=limits.max_chars * _OUTPUT_WORK,
        )
        token = _BUDGET.set(budget)
        try:
            parts: list[str] = []
            size = 0
            for chunk in template.generate(context):
                size += len(chunk)
                if size > limits.max_chars:
                    raise TemplateTooCostly(f"rendered text over {limits.max_chars} characters")
                parts.append(chunk)
            return "".join(parts)
        finally:
            _BUDGET.reset(token)

    # --- the sandbox's hooks ---------------------------------------------------------------

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if not super().is_safe_attribute(obj, attr, value):
            return False
        return not callable(value) or is_allowed_method(obj, attr)

    def unsafe_undefined(self, obj: Any, attribute: str) -> jinja2.Undefined:
        # the stock sandbox answers with an Undefined, which a lenient undefined type renders
        # as "" and so hides the attempt; make it an error instead
        raise SecurityError(
            f"access to attribute {attribute!r} of {type(obj).__name__!r} object is not allowed"
        )

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        tick()
        check_binop(operator, left, right, max_chars=self.limits.max_chars)
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        tick()
        check_method_call(__obj, args, kwargs, max_chars=__self.limits.max_chars)
        result = super().call(__context, __obj, *args, **kwargs)
        if isinstance(result, str | list | tuple | dict):
            _check_size(len(result), __self)
        return result

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        template: str = value.__self__
        max_chars = self.limits.max_chars

        def bounded(*args: Any, **kwargs: Any) -> str:
            check_method_call(value, (template, *args), kwargs, max_chars=max_chars)
            return wrapped(*args, **kwargs)

        return bounded

    def _range(self, *args: int) -> range:
        numbers = range(*args)
        if len(numbers) > self.limits.max_steps:
            raise TemplateTooCostly(
                f"range of {len(numbers)} numbers, at most {self.limits.max_steps}"
            )
        return numbers


__all__ = ["BoundedSandbox", "TemplateLimits", "TemplateTooCostly", "tick"]
