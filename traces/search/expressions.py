"""Query expressions the filter translation needs beyond Django's own lookups.

Each compiles to fixed SQL per database with every user value (keys included) bound as a
parameter, like ``HasTag`` in ``traces.models``. They exist because:

* a JSON key must stay a value: Django's key transforms turn digits into array indexes and
  SQLite's JSON paths cannot name a key with a quote (``JSONKeyText``);
* MLflow's LIKE is case-sensitive and ILIKE is not, on both databases (SQLite's LIKE ignores
  ASCII case only, so a case-sensitive LIKE there is a GLOB and ILIKE compares the Python
  lower() of both sides, ``reviewapp_lower`` from ``traces.apps``) (``Like``);
* an assessment value is JSON: ``'yes'``, ``4``, ``true`` (``JSONScalarText``, ``JSONNumber``);
* span content search reads inputs, outputs and attributes as text (``SpanContentLike``).
"""

from __future__ import annotations

import json
from typing import Any

from django.db import NotSupportedError
from django.db.models import BooleanField, Expression, F, FloatField, Func, Lookup, TextField, Value


class _VendorFunc(Func):
    def as_sql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list[Any]]:
        raise NotSupportedError("Filter strings need PostgreSQL or SQLite.")


def _expr(column: str | Expression) -> Expression:
    return F(column) if isinstance(column, str) else column


class JSONKeyText(_VendorFunc):
    """The value under ``key`` of a JSON object column, as text (NULL when the key is absent)."""

    output_field = TextField()

    def __init__(self, column: str | Expression, key: str) -> None:
        super().__init__(_expr(column))
        self.key = key

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list[Any]]:
        column, params = compiler.compile(self.source_expressions[0])
        return f"({column} ->> %s)", [*params, self.key]

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list[Any]]:
        column, params = compiler.compile(self.source_expressions[0])
        sql = (
            "(SELECT CASE type WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' WHEN 'null' THEN NULL "
            f"ELSE CAST(value AS TEXT) END FROM json_each({column}) WHERE key = %s)"
        )
        return sql, [*params, self.key]


class JSONScalarText(_VendorFunc):
    """A JSON value as text: a string without its quotes, ``4``, ``true``; NULL for JSON null."""

    output_field = TextField()

    def __init__(self, column: str | Expression) -> None:
        super().__init__(_expr(column))

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list[Any]]:
        column, params = compiler.compile(self.source_expressions[0])
        return f"({column} #>> '{{}}')", params

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list[Any]]:
        column, params = compiler.compile(self.source_expressions[0])
        sql = (
            f"(CASE json_type({column}) WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' WHEN 'null' THEN NULL "
            f"WHEN 'object' THEN {column} WHEN 'array' THEN {column} "
            f"ELSE CAST(json_extract({column}, '$') AS TEXT) END)"
        )
        return sql, params * 5


class JSONNumber(_VendorFunc):
    """A JSON number as a float; NULL for anything else (a string "4" is not the number 4).

    PostgreSQL: ``assessment_valid_number_idx`` (migration 0005) indexes exactly this expression
    over ``traces_assessment.value``; change the two together."""

    output_field = FloatField()

    def __init__(self, column: str | Expression) -> None:
        super().__init__(_expr(column))

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list[Any]]:
        column, params = compiler.compile(self.source_expressions[0])
        sql = f"(CASE WHEN jsonb_typeof({column}) = 'number' THEN ({column} #>> '{{}}')::double precision END)"
        return sql, params * 2

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list[Any]]:
        column, params = compiler.compile(self.source_expressions[0])
        sql = f"(CASE WHEN json_type({column}) IN ('integer', 'real') THEN json_extract({column}, '$') END)"
        return sql, params * 2


def like_pattern(pattern: str) -> str:
    """An MLflow LIKE pattern as the database reads it: ``%`` and ``_`` are wildcards and a
    backslash escapes the next character; a lone trailing backslash is a literal one (PostgreSQL
    refuses a pattern that ends with its escape character)."""
    trailing = len(pattern) - len(pattern.rstrip("\\"))
    return pattern + "\\" if trailing % 2 else pattern


def glob_pattern(pattern: str) -> str:
    """A LIKE pattern (see ``like_pattern``) as an SQLite GLOB, which is case-sensitive."""
    out, i = [], 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            i += 1
            ch = pattern[i]
            out.append(f"[{ch}]" if ch in "*?[" else ch)
        elif ch == "%":
            out.append("*")
        elif ch == "_":
            out.append("?")
        else:
            out.append(f"[{ch}]" if ch in "*?[" else ch)
        i += 1
    return "".join(out)


def json_text_pattern(pattern: str) -> str:
    """A LIKE pattern for text inside JSON, as PostgreSQL writes ``jsonb::text``: each literal
    character is JSON-escaped (``"`` → ``\\"``, a backslash doubled, a newline ``\\n``), so a
    pattern for a string's content matches its JSON text; wildcards stay wildcards."""
    out, i = [], 0
    while i < len(pattern):
        ch = pattern[i]
        if ch in "%_":
            out.append(ch)
        else:
            if ch == "\\" and i + 1 < len(pattern):
                i += 1
                ch = pattern[i]
            for escaped in json.dumps(ch, ensure_ascii=False)[1:-1]:
                out.append("\\" + escaped if escaped in "\\%_" else escaped)
        i += 1
    return "".join(out)


class Like(_VendorFunc):
    """``expression LIKE pattern`` (case-sensitive) or ILIKE (case-insensitive), MLflow's way."""

    output_field = BooleanField()

    def __init__(self, expression: str | Expression, pattern: str, *, case_sensitive: bool) -> None:
        super().__init__(_expr(expression))
        self.pattern, self.case_sensitive = like_pattern(pattern), case_sensitive

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list[Any]]:
        lhs, params = compiler.compile(self.source_expressions[0])
        operator = "LIKE" if self.case_sensitive else "ILIKE"
        return f"({lhs}) {operator} %s", [*params, self.pattern]

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list[Any]]:
        lhs, params = compiler.compile(self.source_expressions[0])
        if self.case_sensitive:
            return f"({lhs}) GLOB %s", [*params, glob_pattern(self.pattern)]
        return f"reviewapp_lower({lhs}) LIKE reviewapp_lower(%s) ESCAPE '\\'", [*params, self.pattern]


class SpanContentLike(_VendorFunc):
    """True where a span's inputs, outputs or attributes hold text matching a LIKE pattern.

    PostgreSQL matches the JSON text of the three columns (what a trigram index can serve), with
    the pattern escaped as JSON text is (``json_text_pattern``);
    SQLite walks the JSON and matches each string and number, since it stores JSON with
    non-ASCII characters escaped.
    """

    output_field = BooleanField()
    COLUMNS = ("inputs", "outputs", "attributes")

    def __init__(self, pattern: str, *, case_sensitive: bool) -> None:
        super().__init__(*(F(c) for c in self.COLUMNS))
        self.pattern, self.case_sensitive = like_pattern(pattern), case_sensitive

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list[Any]]:
        operator = "LIKE" if self.case_sensitive else "ILIKE"
        pattern = json_text_pattern(self.pattern)
        parts, params = [], []
        for expression in self.source_expressions:
            column, column_params = compiler.compile(expression)
            parts.append(f"({column})::text {operator} %s")
            params += [*column_params, pattern]
        return "(" + " OR ".join(parts) + ")", params

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list[Any]]:
        if self.case_sensitive:
            match, pattern = "CAST(atom AS TEXT) GLOB %s", glob_pattern(self.pattern)
        else:
            match, pattern = "reviewapp_lower(CAST(atom AS TEXT)) LIKE reviewapp_lower(%s) ESCAPE '\\'", self.pattern
        parts, params = [], []
        for expression in self.source_expressions:
            column, column_params = compiler.compile(expression)
            parts.append(f"EXISTS (SELECT 1 FROM json_tree({column}) WHERE atom IS NOT NULL AND {match})")
            params += [*column_params, pattern]
        return "(" + " OR ".join(parts) + ")", params


class NotEqual(Lookup):
    """``lhs <> rhs``: NULL (no such key) is not "different", as in MLflow's SQL store."""

    lookup_name = "ne"

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, list[Any]]:
        lhs, lhs_params = self.process_lhs(compiler, connection)
        rhs, rhs_params = self.process_rhs(compiler, connection)
        return f"{lhs} <> {rhs}", [*lhs_params, *rhs_params]


def bound(value: Any) -> Value:
    """A user value as a bound parameter, never SQL."""
    return Value(value)
