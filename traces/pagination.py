"""Keyset pagination and cheap counts for trace lists that may hold millions of rows.

A page is "the next N rows after the last one shown", found through an index on the list order
(see ``Trace.Meta.indexes``) whatever the depth, instead of an OFFSET that reads and drops every
row before it. The position travels as an opaque, signed cursor. Counts are the planner's
estimate ("about N") unless they are small enough to count exactly for little cost; an exact
count is a separate request.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.core import signing
from django.db import connections
from django.db.models import F, OrderBy, Q, QuerySet

from .models import DURATION_ASC, DURATION_DESC, Trace

CURSOR_SALT = "traces.pagination.cursor"
EXACT_COUNT_UP_TO = 1000


class InvalidCursor(ValueError):
    """A cursor that was not made here, was cut, or belongs to another list order."""


@dataclass(frozen=True)
class SortKey:
    """One column of a list order: a field, or an annotation of a non-null ``expression``."""

    name: str
    descending: bool
    kind: str  # "datetime", "int" or "str": how a cursor value is read back
    expression: Any = None

    def strict(self, value: Any) -> Q:
        return Q(**{f"{self.name}__{'lt' if self.descending else 'gt'}": value})

    def bound(self, value: Any) -> Q:
        return Q(**{f"{self.name}__{'lte' if self.descending else 'gte'}": value})

    def dump(self, value: Any) -> Any:
        return value.isoformat() if isinstance(value, datetime) else value

    def load(self, raw: Any) -> Any:
        if self.kind == "datetime" and isinstance(raw, str):
            return datetime.fromisoformat(raw)
        if self.kind == "int" and isinstance(raw, int) and not isinstance(raw, bool):
            return raw
        if self.kind == "str" and isinstance(raw, str):
            return raw
        raise ValueError(f"not a {self.kind}")


# Execution time sorts with "none yet" last in both directions (MLflow's NULLS LAST), as the
# non-null expressions that trace_duration_desc_idx / trace_duration_asc_idx hold.
NULLABLE_KEYS = {
    ("execution_duration_ms", True): SortKey("_duration_desc", True, "int", DURATION_DESC),
    ("execution_duration_ms", False): SortKey("_duration_asc", False, "int", DURATION_ASC),
}


@dataclass(frozen=True)
class Ordering:
    """A total list order (it ends with ``id``) that keyset pagination can resume."""

    keys: tuple[SortKey, ...]

    @classmethod
    def from_order_by(cls, order_by: Sequence[Any]) -> Ordering:
        """From ORM ``OrderBy`` expressions over Trace fields (``traces.search.ordering``),
        which end with ``id``; a nullable field becomes its non-null sort expression."""
        keys: list[SortKey] = []
        for item in order_by:
            expression = item if isinstance(item, OrderBy) else F(str(item).lstrip("-")).desc()
            name = expression.expression.name
            descending = bool(expression.descending)
            field = Trace._meta.get_field("id" if name == "pk" else name)
            if (name, descending) in NULLABLE_KEYS:
                keys.append(NULLABLE_KEYS[(name, descending)])
            elif field.null:
                raise InvalidCursor(f"Cannot page through an order by {name}.")
            else:
                keys.append(SortKey(field.name, descending, _kind(field)))
        if not keys or keys[-1].name != "id":
            keys.append(SortKey("id", keys[-1].descending if keys else True, "int"))
        return cls(tuple(keys))

    @property
    def signature(self) -> str:
        return ",".join(f"{'-' if k.descending else ''}{k.name}" for k in self.keys)

    def apply(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        annotations = {k.name: k.expression for k in self.keys if k.expression is not None}
        if annotations:
            queryset = queryset.annotate(**annotations)
        return queryset.order_by(*(f"{'-' if k.descending else ''}{k.name}" for k in self.keys))

    def values_of(self, row: Any) -> list[Any]:
        return [getattr(row, k.name) for k in self.keys]

    def after(self, values: Sequence[Any]) -> Q:
        """Rows after ``values`` in this order (lexicographically). The leading non-strict bound
        lets the index start at the cursor instead of filtering its way there."""
        condition = self.keys[-1].strict(values[-1])
        for key, value in zip(reversed(self.keys[:-1]), reversed(values[:-1]), strict=True):
            condition = key.strict(value) | (Q(**{key.name: value}) & condition)
        return self.keys[0].bound(values[0]) & condition


def _kind(field: Any) -> str:
    internal = field.get_internal_type()
    if internal == "DateTimeField":
        return "datetime"
    if internal in ("AutoField", "BigAutoField", "IntegerField", "BigIntegerField", "PositiveIntegerField"):
        return "int"
    return "str"


NEWEST_FIRST = Ordering((SortKey("request_time", True, "datetime"), SortKey("id", True, "int")))


def encode_cursor(ordering: Ordering, row: Any) -> str:
    values = [k.dump(v) for k, v in zip(ordering.keys, ordering.values_of(row), strict=True)]
    return signing.dumps([ordering.signature, values], salt=CURSOR_SALT)


def decode_cursor(raw: str, ordering: Ordering) -> list[Any]:
    try:
        signature, values = signing.loads(raw, salt=CURSOR_SALT)
        if signature != ordering.signature:
            raise InvalidCursor("This page link belongs to another list order: start from the first page.")
        if not isinstance(values, list) or len(values) != len(ordering.keys):
            raise ValueError("wrong length")
        return [k.load(v) for k, v in zip(ordering.keys, values, strict=True)]
    except InvalidCursor:
        raise
    except (signing.BadSignature, ValueError, TypeError) as exc:
        raise InvalidCursor("This page link is damaged or out of date: start from the first page.") from exc


def _after(queryset: QuerySet[Any], ordering: Ordering, values: list[Any], limit: int) -> QuerySet[Any]:
    """``queryset`` (in ``ordering``) restricted to (at least) the first ``limit`` rows after ``values``.

    With two sort keys, ``Ordering.after`` is one bounded range of the order's index. With more
    (name, or execution time, then request time and id), the rows after ``values`` are two ranges
    of it: the same first key with the rest after (``name = x AND request_time <= t AND …``) and
    the later first keys (``name > x``). As one OR, PostgreSQL reads the first key's whole range up
    to the cursor (125,000 index entries within one common name); as a UNION ALL of the first
    ``limit`` ids of each range, it reads at most ``2 × limit``. SQLite (no LIMIT inside a UNION
    part) keeps the OR."""
    if len(ordering.keys) < 3 or connections[queryset.db].vendor != "postgresql":
        return queryset.filter(ordering.after(values))
    first, rest = ordering.keys[0], Ordering(ordering.keys[1:])
    same = queryset.filter(Q(**{first.name: values[0]}) & rest.after(values[1:]))
    later = queryset.filter(first.strict(values[0]))
    ids = [part.values("pk")[:limit] for part in (same, later)]
    return queryset.filter(pk__in=ids[0].union(ids[1], all=True))


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
        queryset = _after(queryset, ordering, decode_cursor(cursor, ordering), size + 1)
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
