"""Rules compiled to one parameterised SQL query over ``users`` and ``events``.

The semantics are :mod:`journeys.rule_eval`'s, leaf for leaf (its docstring is the contract;
a property test holds the two together): a tag reads ``attrs -> tag`` (``timezone``,
``email`` and ``phone`` fall back to the profile columns), JSON null is absent, each leaf is
closed with ``IS TRUE`` so ``not`` of a leaf on an absent value is true, kinds follow the
operand, and date-like text is read by ``journeys_date`` / ``journeys_ts``
(migrations/006_rule_functions.sql), which read the same forms as the evaluator. No value is
ever written into the SQL text: every operand, tag, event and property name is a parameter.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from journeys.rule_eval import anniversary_days
from journeys.rules import (
    ENTRY_PREFIX,
    AllOf,
    AnyOf,
    EventCondition,
    NotRule,
    PropertyFilter,
    RelativeDate,
    Rule,
    TagCondition,
)

_PROFILE_COLUMNS = ("timezone", "email", "phone")
_ORDER = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
_FALSE, _TRUE = "false", "true"
_VALUE = "\x01value\x01"
"""Where the tested value goes in a leaf's SQL, filled in once the leaf is known to read it."""

SqlParam = str | int | datetime | date | list[str]
TagReader = Callable[[str, "Compiled", datetime], "str | None"]
"""The jsonb expression over ``users u`` that a tag's value is (binding into the compiled
query), or None when no SQL can know it (a pass-through value: absent). Registry tags get
theirs from :mod:`journeys.tag_sql`."""


@dataclass
class Compiled:
    """SQL text with ``$n`` placeholders and the values for them, in order.

    ``grouped`` (segments): a count of events per user is one grouped scan of the events,
    LEFT JOINed to the users (``joins``), so a million users cost one pass over the events
    of that name and window, not a million index probes. Pages (a few hundred known users)
    use one correlated subquery per user instead. The two read the same values.
    """

    params: list[SqlParam] = field(default_factory=list)
    grouped: bool = True
    joins: list[str] = field(default_factory=list)

    def bind(self, value: SqlParam, cast: str) -> str:
        self.params.append(value)
        return f"${len(self.params)}::{cast}"

    def per_user(self, aggregate: str, where: str) -> str:
        """``aggregate`` (over ``events e``) of each user's events matching ``where``: SQL NULL
        for a user with none."""
        if not self.grouped:
            return f"(SELECT {aggregate} FROM events e WHERE e.user_id = u.user_id AND {where})"
        alias = f"j{len(self.joins)}"
        self.joins.append(
            f"LEFT JOIN (SELECT e.user_id, {aggregate} AS v FROM events e WHERE {where}"
            f" GROUP BY e.user_id) {alias} ON {alias}.user_id = u.user_id"
        )
        return f"{alias}.v"


def attribute_value(attribute: str, out: Compiled) -> str:
    """The jsonb value of profile attribute ``attribute`` of ``users u``."""
    value = f"(u.attrs -> {out.bind(attribute, 'text')})"
    if attribute in _PROFILE_COLUMNS:  # attrs first, as the page's facts read them
        value = f"COALESCE({value}, to_jsonb(u.{attribute}))"
    return value


def read_attribute(tag: str, out: Compiled, now: datetime) -> str | None:
    """The reader of tags outside the registry: the profile attribute of the tag's name."""
    return attribute_value(tag, out)


def segment_query(
    rule: Rule, *, now: datetime, read_tag: TagReader = read_attribute
) -> tuple[str, list[SqlParam]]:
    """``SELECT user_id FROM users`` of the users ``rule`` holds for at ``now``."""
    compiled = Compiled()
    predicate = _rule(rule, compiled, now, read_tag)
    joins = "".join(f" {join}" for join in compiled.joins)
    return f"SELECT u.user_id FROM users u{joins} WHERE {predicate}", compiled.params


def _rule(rule: Rule, out: Compiled, now: datetime, read: TagReader) -> str:
    if isinstance(rule, AllOf):
        return "(" + " AND ".join(_rule(child, out, now, read) for child in rule.all) + ")"
    if isinstance(rule, AnyOf):
        return "(" + " OR ".join(_rule(child, out, now, read) for child in rule.any) + ")"
    if isinstance(rule, NotRule):
        return f"(NOT {_rule(rule.not_, out, now, read)})"
    if isinstance(rule, TagCondition):
        if rule.tag.startswith(ENTRY_PREFIX):  # a segment has no entry event: always absent
            return _absent(rule.op, rule.value)
        test = _test(rule.op, _VALUE, rule.value, out, now)
        if _VALUE in test:  # bound only when used: PostgreSQL cannot type an unused parameter
            value = read(rule.tag, out, now)
            if value is None:
                return _absent(rule.op, rule.value)
            test = test.replace(_VALUE, value)
        return f"({test}) IS TRUE"
    return _behaviour(rule, out, now)


def _absent(op: str, operand: object) -> str:
    if op == "exists":
        return _FALSE if operand in (None, True) else _TRUE
    return _FALSE


def _behaviour(rule: EventCondition, out: Compiled, now: datetime) -> str:
    where = [f"e.name = {out.bind(rule.event, 'text')}"]
    if rule.within is not None:
        since = out.bind(now - rule.within, "timestamptz")
        where.append(f"e.ts BETWEEN {since} AND {out.bind(now, 'timestamptz')}")
    where.append(props_predicate(rule.where, out, now))
    count = f"COALESCE({out.per_user('count(*)', ' AND '.join(where))}, 0)"
    bounds = []
    if rule.count.gte is not None:
        bounds.append(f"{count} >= {rule.count.gte:d}")
    if rule.count.lte is not None:
        bounds.append(f"{count} <= {rule.count.lte:d}")
    return "(" + " AND ".join(bounds) + ")"


def props_predicate(where: PropertyFilter | None, out: Compiled, now: datetime) -> str:
    """The filters ``where`` on the properties of ``events e``."""
    if not where:
        return _TRUE
    tests = []
    for name, test in where.items():
        for op, operand in test.root.items():
            sql = _test(op, _VALUE, operand, out, now)
            if _VALUE in sql:
                sql = sql.replace(_VALUE, f"(e.props -> {out.bind(name, 'text')})")
            tests.append(f"({sql}) IS TRUE")
    return " AND ".join(tests)


def _test(op: str, value: str, operand: object, out: Compiled, now: datetime) -> str:
    """One operator on the jsonb expression ``value`` (SQL NULL or JSON null: absent)."""
    present = f"({value} IS NOT NULL AND jsonb_typeof({value}) <> 'null')"
    if op == "exists":
        return present if operand in (None, True) else f"NOT {present}"
    assert operand is not None
    if op in ("in", "not_in") and _plain_texts(operand):
        # one read of the value against the whole list, where an OR of equalities reads it
        # once per item: what `_compare` gives item by item, for text items
        assert isinstance(operand, list)
        found = f"({value} #>> '{{}}') = ANY({out.bind(list(operand), 'text[]')})"
        return _when(f"jsonb_typeof({value}) = 'string'", found if op == "in" else f"NOT {found}")
    if op == "in":
        assert isinstance(operand, list)
        return "(" + " OR ".join(_compare("eq", value, item, out, now) for item in operand) + ")"
    if op == "not_in":
        assert isinstance(operand, list)
        return "(" + " AND ".join(_compare("ne", value, item, out, now) for item in operand) + ")"
    if op == "between":
        assert isinstance(operand, list)
        low, high = operand
        at_least = _compare("gte", value, low, out, now)
        return f"({at_least} AND {_compare('lte', value, high, out, now)})"
    if op == "contains":
        return _contains(value, operand, out, now)
    if op == "anniversary":
        return _anniversary(value, str(operand), out, now)
    return _compare(op, value, operand, out, now)


def _plain_texts(operand: object) -> bool:
    """A list of texts none of which holds NUL (which no stored text can equal)."""
    return isinstance(operand, list) and all(
        isinstance(item, str) and "\x00" not in item for item in operand
    )


def _anniversary(value: str, unit: str, out: Compiled, now: datetime) -> str:
    text = f"({value} #>> '{{}}')"
    day = f"COALESCE((journeys_ts({text}) AT TIME ZONE 'UTC')::date, journeys_date({text}))"
    if unit == "month":
        month = out.bind(now.month, "integer")
        test = f"extract(month FROM {day}) = {month}"
        # a plain date (most birthdays): its month is in its text, no date arithmetic needed
        quick = f"substr({text}, 6, 2)::integer = {month}"
    else:
        keys = out.bind(sorted(anniversary_days(unit, now.date())), "text[]")
        test = f"to_char({day}, 'MM-DD') = ANY({keys})"
        quick = f"substr({text}, 6, 5) = ANY({keys})"
    plain = f"length({text}) = 10 AND {text} ~ '^[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}$'"
    either = f"CASE WHEN {plain} THEN {quick} AND journeys_date({text}) IS NOT NULL ELSE {test} END"
    return _when(f"jsonb_typeof({value}) = 'string'", either)


def _contains(value: str, operand: object, out: Compiled, now: datetime) -> str:
    element = _compare("eq", "x.item", operand, out, now)
    in_list = (
        f"(jsonb_typeof({value}) = 'array' AND EXISTS "
        f"(SELECT 1 FROM jsonb_array_elements({value}) AS x(item) WHERE {element}))"
    )
    if not isinstance(operand, str):
        return in_list
    if "\x00" in operand:  # no stored text holds NUL, and PostgreSQL cannot take it as text
        return in_list
    text = f"({value} #>> '{{}}')"
    needle = out.bind(operand, "text")
    substring = _when(f"jsonb_typeof({value}) = 'string'", f"strpos({text}, {needle}) > 0")
    return f"({in_list} OR {substring})"


def _compare(op: str, value: str, operand: object, out: Compiled, now: datetime) -> str:
    """``value <op> operand`` by the operand's kind; NULL or false on a mismatch of kinds.

    The kind is tested in a CASE: PostgreSQL may evaluate the two sides of an AND in either
    order, and a cast of the wrong kind (a JSON string to numeric) raises."""
    kind = f"jsonb_typeof({value})"
    text = f"({value} #>> '{{}}')"
    if isinstance(operand, bool):
        if op not in ("eq", "ne"):
            return _FALSE
        return _when(f"{kind} = 'boolean'", f"({value})::boolean {_sql_op(op)} {operand}")
    if isinstance(operand, int | float):
        number = out.bind(repr(operand) if isinstance(operand, float) else str(operand), "numeric")
        return _when(f"{kind} = 'number'", f"({value})::numeric {_sql_op(op)} {number}")
    if isinstance(operand, str):
        if op not in ("eq", "ne"):
            return _FALSE  # strings have no order in the rule language
        if "\x00" in operand:  # equal to no stored text, different from every one
            return _FALSE if op == "eq" else f"({kind} = 'string')"
        return _when(f"{kind} = 'string'", f"{text} {_sql_op(op)} {out.bind(operand, 'text')}")
    if isinstance(operand, RelativeDate):
        operand = now + operand.offset
    if isinstance(operand, datetime):
        moment = operand.astimezone(UTC)
        as_ts = f"journeys_ts({text}) {_sql_op(op)} {out.bind(moment, 'timestamptz')}"
        as_date = f"journeys_date({text}) {_sql_op(op)} {out.bind(moment.date(), 'date')}"
        # an instant against an instant; against a plain date, as UTC calendar dates. The
        # instant's test is NULL exactly when the text is no instant, so COALESCE reads the
        # text as an instant once (a CASE on "IS NOT NULL" read it twice)
        either = f"COALESCE({as_ts}, {as_date})"
        return _when(f"{kind} = 'string'", either)
    if isinstance(operand, date):
        day = out.bind(operand, "date")
        value_day = (
            f"COALESCE((journeys_ts({text}) AT TIME ZONE 'UTC')::date, journeys_date({text}))"
        )
        return _when(f"{kind} = 'string'", f"{value_day} {_sql_op(op)} {day}")
    return _FALSE


def _when(condition: str, test: str) -> str:
    return f"(CASE WHEN {condition} THEN {test} END)"


def _sql_op(op: str) -> str:
    return {"eq": "=", "ne": "<>", **_ORDER}[op]
