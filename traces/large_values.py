"""Large span values on pages: how much is read from the database, how much is shown, and what is left off.

Two limits, both from ``settings.TRACE_VALUE_LIMIT`` (characters, env ``TRACE_VALUE_LIMIT``):

* **shown**: every text a page displays (a message, a JSON block, a tool's arguments) is cut at
  the limit, with a "show all" / download link to the whole stored value;
* **read**: a span value whose JSON text is longer than :func:`read_limit` characters is not
  loaded into Python at all. The database cuts its JSON text (a substring, PostgreSQL and
  SQLite alike) and the beginning is parsed leniently (``jiter``'s partial mode), so a 100 MB
  input costs the page a few hundred kilobytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import jiter
import orjson
from django.conf import settings
from django.db.models import Func, TextField

DEFAULT_VALUE_LIMIT = 20_000
MIN_READ_CHARS = 1_000_000


def value_limit() -> int:
    """Characters of one value a page shows before cutting it."""
    return int(getattr(settings, "TRACE_VALUE_LIMIT", DEFAULT_VALUE_LIMIT))


def read_limit() -> int:
    """Characters of a value's JSON text read from the database: enough to show every part of it."""
    return max(MIN_READ_CHARS, 10 * value_limit())


@dataclass(frozen=True, slots=True)
class ValueRef:
    """One stored span value, for its "show all" / download links."""

    span_id: str
    field: str  # inputs, outputs, attributes or events
    total_chars: int | None = None  # length of its JSON text, when known
    partial: bool = False  # only its beginning was read from the database


@dataclass(frozen=True, slots=True)
class ShownText:
    """A text as a page shows it: at most the limit, and where the rest is."""

    text: str
    hidden_chars: int = 0  # characters of this text left off the page
    ref: ValueRef | None = None

    @property
    def shortened(self) -> bool:
        return self.hidden_chars > 0 or (self.ref is not None and self.ref.partial)

    def __str__(self) -> str:
        return self.text

    def __bool__(self) -> bool:
        return bool(self.text)


def shorten(text: str, ref: ValueRef | None = None, limit: int | None = None) -> ShownText:
    limit = value_limit() if limit is None else limit
    if len(text) <= limit:
        return ShownText(text, 0, ref)
    return ShownText(text[:limit], len(text) - limit, ref)


class JsonTextHead(Func):
    """SQL: ``'<length>:<first n characters>'`` of a JSON column's text, NULL for SQL NULL.

    PostgreSQL turns jsonb into text once per row (the ``OFFSET 0`` subquery keeps the planner
    from doing it twice for the length and the substring); SQLite stores the text as it is.
    """

    output_field = TextField()
    arity = 1

    def __init__(self, expression: Any, chars: int) -> None:
        super().__init__(expression)
        self.chars = chars

    def as_sql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list[Any]]:
        column, params = compiler.compile(self.source_expressions[0])
        return f"(length({column}) || ':' || substr({column}, 1, %s))", [*params, self.chars]

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list[Any]]:
        column, params = compiler.compile(self.source_expressions[0])
        sql = f"(SELECT length(v.t) || ':' || substr(v.t, 1, %s) FROM (SELECT ({column})::text AS t OFFSET 0) AS v)"
        return sql, [*params, self.chars]


def loads_json(text: str) -> Any:
    """Stored JSON text as a value; Python's own JSON (NaN, Infinity) where orjson refuses, else the text."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        try:
            return json.loads(text)
        except ValueError:
            return text


@dataclass(frozen=True, slots=True)
class ReadValue:
    value: Any
    total_chars: int
    partial: bool


def decode_head(head: str | None) -> ReadValue | None:
    """Decode a :class:`JsonTextHead` result; a cut value is parsed leniently (or kept as text)."""
    if head is None:
        return None
    length, _, text = head.partition(":")
    total = int(length)
    if total <= len(text):
        return ReadValue(loads_json(text), total, partial=False)
    try:
        value = jiter.from_json(text.encode(), partial_mode="trailing-strings", cache_mode="none")
    except ValueError:
        value = text
    return ReadValue(value, total, partial=True)
