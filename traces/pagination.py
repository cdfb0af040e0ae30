"""Keyset pagination and cheap counts for trace lists that may hold millions of rows.

A page is "the next N rows after the last one shown", found through an index on the list order
(see ``Trace.Meta.indexes``) whatever the depth, instead of an OFFSET that reads and drops every
row before it. The position travels as an opaque, signed cursor. Counts are the planner's
estimate ("about N") unless they are small enough to count exactly for little cost; an exact
count is a separate request.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.core import signing
from django.db import connections
from django.db.models import Q, QuerySet, Value
from django.db.models.functions import Coalesce

CURSOR_SALT = "traces.pagination.cursor"
EXACT_COUNT_UP_TO = 1000


class InvalidCursor(ValueError):
    """A cursor that was not made here, was cut, or belongs to another list order."""


class InvalidOrdering(ValueError):
    """A list order we do not offer."""


@dataclass(frozen=True)
class Ordering:
    """One list order: a key (a field, or an alias of ``expression``) then ``id``, both one way."""

    key: str
    label: str
    field: str
    descending: bool
    expression: Any = None  # for an alias: a non-null expression the index covers
    value_of: Callable[[Any], Any] | None = None  # the row's key value when it is an alias
    parse: Callable[[Any], Any] = lambda raw: raw  # cursor JSON → value

    def apply(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.expression is not None:
            queryset = queryset.alias(**{self.field: self.expression})
        sign = "-" if self.descending else ""
        return queryset.order_by(f"{sign}{self.field}", f"{sign}id")

    def row_value(self, row: Any) -> Any:
        return self.value_of(row) if self.value_of else getattr(row, self.field)

    def after(self, value: Any, pk: int) -> Q:
        """Rows after (value, pk) in this order. The redundant ``<=``/``>=`` bound lets the index
        start at the cursor instead of filtering its way there."""
        f = self.field
        if self.descending:
            return Q(**{f"{f}__lte": value}) & (Q(**{f"{f}__lt": value}) | Q(pk__lt=pk))
        return Q(**{f"{f}__gte": value}) & (Q(**{f"{f}__gt": value}) | Q(pk__gt=pk))


def _duration(row: Any) -> int:
    return -1 if row.execution_duration_ms is None else row.execution_duration_ms


def _parse_time(raw: Any) -> datetime:
    if not isinstance(raw, str):
        raise ValueError("not a time")
    return datetime.fromisoformat(raw)


def _parse_int(raw: Any) -> int:
    if not isinstance(raw, int) or isinstance(raw, bool):
        raise ValueError("not an integer")
    return raw


def _parse_str(raw: Any) -> str:
    if not isinstance(raw, str):
        raise ValueError("not a string")
    return raw


# Durations sort with "none yet" (in-progress traces) as -1: below every real duration, on every
# database, and the same expression as trace_duration_id_idx.
_DURATION = Coalesce("execution_duration_ms", Value(-1))
ORDERINGS: dict[str, Ordering] = {
    o.key: o
    for o in [
        Ordering("-request_time", "Newest first", "request_time", True, parse=_parse_time),
        Ordering("request_time", "Oldest first", "request_time", False, parse=_parse_time),
        Ordering("-duration", "Slowest first", "_duration", True, _DURATION, _duration, _parse_int),
        Ordering("duration", "Fastest first", "_duration", False, _DURATION, _duration, _parse_int),
        Ordering("name", "Name A–Z", "name", False, parse=_parse_str),
        Ordering("-name", "Name Z–A", "name", True, parse=_parse_str),
    ]
}
DEFAULT_ORDERING = "-request_time"


def ordering_for(key: str | None) -> Ordering:
    """The list order named ``key`` (the default when empty); ``InvalidOrdering`` otherwise."""
    ordering = ORDERINGS.get(key or DEFAULT_ORDERING)
    if ordering is None:
        raise InvalidOrdering(f"Unknown order {str(key)[:40]!r}: use one of {', '.join(ORDERINGS)}.")
    return ordering


def encode_cursor(ordering: Ordering, row: Any) -> str:
    value = ordering.row_value(row)
    if isinstance(value, datetime):
        value = value.isoformat()
    return signing.dumps([ordering.key, value, row.pk], salt=CURSOR_SALT)


def decode_cursor(raw: str, ordering: Ordering) -> tuple[Any, int]:
    try:
        key, value, pk = signing.loads(raw, salt=CURSOR_SALT)
        if key != ordering.key:
            raise InvalidCursor("This cursor belongs to another list order.")
        return ordering.parse(value), _parse_int(pk)
    except InvalidCursor:
        raise
    except (signing.BadSignature, ValueError, TypeError) as exc:
        raise InvalidCursor("This page link is damaged or out of date.") from exc


@dataclass(frozen=True)
class KeysetPage:
    rows: list[Any]
    next_cursor: str | None
    is_first: bool


def keyset_page(queryset: QuerySet[Any], ordering: Ordering, cursor: str | None, size: int) -> KeysetPage:
    """The ``size`` rows after ``cursor`` (from the start when None) in ``ordering``: one query
    (plus the queryset's prefetches). ``InvalidCursor`` for a bad cursor."""
    queryset = ordering.apply(queryset)
    if cursor:
        value, pk = decode_cursor(cursor, ordering)
        queryset = queryset.filter(ordering.after(value, pk))
    rows = list(queryset[: size + 1])
    more = len(rows) > size
    rows = rows[:size]
    return KeysetPage(rows, encode_cursor(ordering, rows[-1]) if more else None, is_first=not cursor)


@dataclass(frozen=True)
class CountEstimate:
    value: int
    exact: bool

    def __str__(self) -> str:
        return f"{self.value:,}" if self.exact else f"about {self.value:,}"


def _round(value: int) -> int:
    """Two significant figures: an estimate should not look precise."""
    if value < 100:
        return value
    digits = len(str(value)) - 2
    return round(value, -digits)


def planner_estimate(queryset: QuerySet[Any]) -> int | None:
    """PostgreSQL's row estimate for ``queryset`` (one EXPLAIN, nothing read); None elsewhere."""
    if connections[queryset.db].vendor != "postgresql":
        return None
    plan = json.loads(queryset.order_by().explain(format="json"))
    return int(plan[0]["Plan"]["Plan Rows"])


def estimate_count(queryset: QuerySet[Any], exact_up_to: int = EXACT_COUNT_UP_TO) -> CountEstimate:
    """How many rows ``queryset`` has, in at most two queries whatever the table size.

    Exact when the planner expects at most ``exact_up_to`` rows (counted with a LIMIT, so a wrong
    guess costs at most that many rows), else the planner's estimate, rounded. SQLite: exact.
    """
    estimate = planner_estimate(queryset)
    if estimate is None:
        return CountEstimate(queryset.count(), exact=True)
    if estimate <= exact_up_to:
        counted = queryset.order_by()[: exact_up_to + 1].count()
        if counted <= exact_up_to:
            return CountEstimate(counted, exact=True)
        estimate = counted
    return CountEstimate(_round(estimate), exact=False)
