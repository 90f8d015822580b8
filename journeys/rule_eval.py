"""Evaluate a :data:`journeys.rules.Rule` for one user, in memory.

Every branch, entry and exit rule is checked here; segments use the same rules compiled to SQL
(:mod:`journeys.rule_sql`), which must give the same answers on every input
(``tests/test_rule_sql.py`` holds the two together with hypothesis), so the semantics are
spelled out here, once, for both.

Where values come from
    A tag reads ``facts.attrs[tag]`` (a flat key lookup: ``a.b`` is the key ``"a.b"``, not a
    path). A tag starting with :data:`~journeys.rules.ENTRY_PREFIX` reads the entry event's
    property: ``entry.reason`` is ``facts.entry["reason"]``. An event property filter reads
    ``props[name]``. A missing key and a JSON null are the same thing: *absent*.

Absent values (SQL NULL logic, made two-valued at each leaf)
    ``exists`` (operand true or nothing) is false and ``exists: false`` is true; every other
    operator is false, ``ne`` and ``not_in`` included. Each leaf is a plain boolean, so ``not``
    of a leaf on an absent value is *true*: a SQL translation must close every leaf with
    ``(...) IS TRUE`` (or ``COALESCE(..., false)``) before combining leaves.

Comparing a value with an operand, by the operand's kind
    * bool: equal only to a JSON boolean.
    * number (int or float, never bool): compares with JSON numbers only, numerically
      (``3 == 3.0``); a numeric string such as ``"18"`` is a mismatch.
    * string: equal only to an identical string (case-sensitive); strings are not ordered.
    * date, date-time or relative date (``T-7d`` is ``now - 7d``): compares with strings that
      are ISO dates (``2025-06-01``) or date-times (``2025-06-01T09:00``, seconds and up to six
      fraction digits optional, ``T`` or a space, ``Z`` or an offset up to 14:59; exactly the
      forms of ``_DATE`` / ``_DATETIME``, shared with the SQL readers) and with ``date`` /
      ``datetime`` objects. Naive date-times in the data are taken as UTC. When
      either side is a plain date, both sides are compared as UTC calendar dates (the
      date-time side is converted to UTC and its date taken); otherwise as instants.
    A mismatch of kinds makes the comparison false, for every operator (``ne`` included);
    nothing here raises on data.

Operators
    ``eq`` / ``ne``: equal / same kind and not equal. ``gt gte lt lte``: ordered kinds only
    (numbers, dates, date-times). ``between [low, high]``: ``low <= value <= high``.
    ``in [a, b]``: ``value eq a OR value eq b``; ``not_in [a, b]``: ``value ne a AND value ne
    b`` (as SQL expands them). ``contains x``: a list value has an element that is ``eq x``;
    a string value has ``x`` (a string) as a substring; anything else is false.
    ``anniversary day|week|month``: the value is a date or date-time (its UTC date) whose
    month and day fall on ``now``'s date, in ``now``'s Monday-to-Sunday week, or in
    ``now``'s month, all in ``now``'s own zone (callers pass ``now`` in the plan's zone); a
    29 February counts on 28 February in a year without one.

Behaviours
    An event condition counts ``facts.events`` with its name whose properties match ``where``
    and, with ``within``, whose time is in ``[now - within, now]``; without ``within`` every
    event counts, whenever it happened. The count must satisfy ``gte`` and ``lte``. Naive event
    times are taken as UTC.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

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
    iter_conditions,
)

ALL_HISTORY = timedelta(days=36500)
"""The :func:`lookback` of a rule with an event condition that has no ``within``."""


@dataclass(frozen=True)
class EventFact:
    """One event the user did: its name, when, and its properties."""

    name: str
    ts: datetime
    props: Mapping[str, Any]


@dataclass(frozen=True)
class UserFacts:
    """What a rule can read about a user.

    ``attrs`` holds the profile attributes, plus the profile columns ``timezone``, ``email``
    and ``phone`` when the caller adds them; ``events`` the user's events (at least those within
    :func:`lookback` of the rule); ``entry`` the properties of the event that started the
    journey, if any.
    """

    attrs: Mapping[str, Any]
    events: Sequence[EventFact] = ()
    entry: Mapping[str, Any] = field(default_factory=dict)


def evaluate(rule: Rule, facts: UserFacts, *, now: datetime) -> bool:
    """Whether ``rule`` holds for the user described by ``facts`` at the aware moment ``now``."""
    _check_aware(now)
    return _evaluate(rule, facts, now)


def property_matches(
    where: PropertyFilter | None, props: Mapping[str, Any], *, now: datetime
) -> bool:
    """Whether event properties ``props`` pass the filter ``where`` (``None`` passes all).

    Every test of every listed property must hold, with the semantics of tag conditions.
    """
    _check_aware(now)
    return _props_match(where, props, now)


def event_names(rule: Rule) -> set[str]:
    """The names of the events any event condition in ``rule`` counts."""
    return {leaf.event for leaf in iter_conditions(rule) if isinstance(leaf, EventCondition)}


def reads_entry(rule: Rule) -> bool:
    """Whether ``rule`` has a tag condition on the entry event (``entry.reason``), so its
    facts need :attr:`UserFacts.entry`."""
    return any(
        isinstance(leaf, TagCondition) and leaf.tag.startswith(ENTRY_PREFIX)
        for leaf in iter_conditions(rule)
    )


def lookback(rule: Rule) -> timedelta | None:
    """How far back the events of ``rule`` must be loaded.

    ``None`` when the rule has no event condition, :data:`ALL_HISTORY` when one of them has no
    ``within``, else the longest ``within``.
    """
    windows = [leaf.within for leaf in iter_conditions(rule) if isinstance(leaf, EventCondition)]
    if not windows:
        return None
    return max(ALL_HISTORY if window is None else window for window in windows)


def in_zone(moment: datetime, zone: str) -> datetime:
    """``moment`` seen from ``zone`` (the plan's): the same instant, whose date is the day
    "today" means to an anniversary rule."""
    return moment.astimezone(ZoneInfo(zone))


def _check_aware(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"now must be an aware datetime, got {now.isoformat()}")


def _evaluate(rule: Rule, facts: UserFacts, now: datetime) -> bool:
    if isinstance(rule, AllOf):
        return all(_evaluate(child, facts, now) for child in rule.all)
    if isinstance(rule, AnyOf):
        return any(_evaluate(child, facts, now) for child in rule.any)
    if isinstance(rule, NotRule):
        return not _evaluate(rule.not_, facts, now)
    if isinstance(rule, TagCondition):
        if rule.tag.startswith(ENTRY_PREFIX):
            value = facts.entry.get(rule.tag.removeprefix(ENTRY_PREFIX))
        else:
            value = facts.attrs.get(rule.tag)
        return _test(rule.op, value, rule.value, now)
    return _count_holds(rule, facts.events, now)


def _count_holds(rule: EventCondition, events: Sequence[EventFact], now: datetime) -> bool:
    since = None if rule.within is None else now - rule.within
    count = 0
    for event in events:
        if event.name != rule.event:
            continue
        if since is not None and not since <= _as_utc(event.ts) <= now:
            continue
        if _props_match(rule.where, event.props, now):
            count += 1
    bounds = rule.count
    return (bounds.gte is None or count >= bounds.gte) and (
        bounds.lte is None or count <= bounds.lte
    )


def _props_match(where: PropertyFilter | None, props: Mapping[str, Any], now: datetime) -> bool:
    if where is None:
        return True
    return all(
        _test(op, props.get(name), operand, now)
        for name, tests in where.items()
        for op, operand in tests.root.items()
    )


def _test(op: str, value: Any, operand: Any, now: datetime) -> bool:
    """One operator on one value; ``value`` is ``None`` when absent."""
    if op == "exists":
        present = value is not None
        return present if operand in (None, True) else not present
    if value is None:
        return False
    if op == "anniversary":
        moment = as_moment(value)
        if moment is None:
            return False
        day = _utc_date(moment)
        if operand == "month":
            return day.month == now.month
        return f"{day.month:02d}-{day.day:02d}" in anniversary_days(operand, now.date())
    if op == "in":
        return any(_equals(value, item, now) for item in operand)
    if op == "not_in":
        return all(_differs(value, item, now) for item in operand)
    if op == "contains":
        return _contains(value, operand, now)
    if op == "between":
        low, high = operand
        return _ordered(value, low, now, _at_least) and _ordered(value, high, now, _at_most)
    if op == "eq":
        return _equals(value, operand, now)
    if op == "ne":
        return _differs(value, operand, now)
    return _ordered(value, operand, now, _ORDER_OPS[op])


def anniversary_days(unit: str, today: date) -> frozenset[str]:
    """The ``MM-DD`` of every date whose anniversary falls ``today`` (``unit`` day) or in
    today's Monday-to-Sunday week (``week``). A 29 February is kept on 28 February in a
    year without one, so it is never skipped."""
    start = today if unit == "day" else today - timedelta(days=today.weekday())
    days = [start + timedelta(days=n) for n in range(1 if unit == "day" else 7)]
    keys = {f"{d.month:02d}-{d.day:02d}" for d in days}
    if any(d.month == 2 and d.day == 28 and not calendar.isleap(d.year) for d in days):
        keys.add("02-29")
    return frozenset(keys)


def _at_least(left: Any, right: Any) -> bool:
    return bool(left >= right)


def _at_most(left: Any, right: Any) -> bool:
    return bool(left <= right)


_ORDER_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "gt": lambda left, right: bool(left > right),
    "gte": _at_least,
    "lt": lambda left, right: bool(left < right),
    "lte": _at_most,
}


def _contains(value: Any, operand: Any, now: datetime) -> bool:
    if isinstance(value, list | tuple):
        return any(_equals(item, operand, now) for item in value)
    if isinstance(value, str) and isinstance(operand, str):
        return operand in value
    return False


def _equals(value: Any, operand: Any, now: datetime) -> bool:
    pair = _same_kind(value, operand, now)
    return pair is not None and pair[0] == pair[1]


def _differs(value: Any, operand: Any, now: datetime) -> bool:
    pair = _same_kind(value, operand, now)
    return pair is not None and pair[0] != pair[1]


def _ordered(value: Any, operand: Any, now: datetime, compare: Callable[[Any, Any], bool]) -> bool:
    pair = _same_kind(value, operand, now)
    if pair is None or isinstance(pair[0], bool | str):
        return False  # booleans and strings have no order in the rule language
    return compare(*pair)


def _same_kind(value: Any, operand: Any, now: datetime) -> tuple[Any, Any] | None:
    """``(value, operand)`` made comparable by the operand's kind, or ``None`` on a mismatch."""
    if isinstance(operand, bool):
        return (value, operand) if isinstance(value, bool) else None
    if isinstance(operand, int | float):
        return (value, operand) if _is_number(value) else None
    if isinstance(operand, RelativeDate):
        operand = now + operand.offset
    if isinstance(operand, date):  # datetime too
        moment = as_moment(value)
        if moment is None:
            return None
        if isinstance(operand, datetime) and isinstance(moment, datetime):
            return _as_utc(moment), _as_utc(operand)
        return _utc_date(moment), _utc_date(operand)
    if isinstance(operand, str):
        return (value, operand) if isinstance(value, str) else None
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# The data forms read as dates and date-times: the same patterns as journeys_date and
# journeys_ts (migrations/006_rule_functions.sql), so compiled rules read the same values.
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_DATETIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ]([01][0-9]|2[0-3]):[0-5][0-9]"
    r"(:[0-5][0-9](\.[0-9]{1,6})?)?(Z|[+-](0[0-9]|1[0-4]):[0-5][0-9])?"
)


def as_moment(value: Any) -> date | None:
    """A date or date-time read from a data value, or ``None`` if it is neither."""
    if isinstance(value, date):  # datetime too
        return value
    if not isinstance(value, str):
        return None
    try:
        if _DATE.fullmatch(value):
            return date.fromisoformat(value)
        if _DATETIME.fullmatch(value):
            return datetime.fromisoformat(value)
    except ValueError:
        return None
    return None


def _as_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _utc_date(moment: date) -> date:
    return _as_utc(moment).date() if isinstance(moment, datetime) else moment
