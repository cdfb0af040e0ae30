"""MLflow's ``search_traces`` filter grammar: a tokenizer and a parser into a small typed AST.

    filter      := clause ("AND" clause)*
    clause      := key comparator [value]
    key         := segment ("." segment)*          tags.env, tags.`mlflow.traceName`, status
    comparator  := = | != | > | >= | < | <= | IN | NOT IN | LIKE | ILIKE | RLIKE | IS NULL | IS NOT NULL
    value       := 'string' | "string" | number | true | false | "(" value ("," value)* ")"

Keywords are case-insensitive. There is no OR (MLflow has none). Every error is a ``FilterError``
with the 1-based character position and what was expected there.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import Enum

from .keys import (
    ALL_COMPARATORS,
    ATTRIBUTES,
    LISTS,
    NULLS,
    ORDERING,
    PATTERNS,
    PREFIXES,
    Entity,
    KeySpec,
    ValueKind,
    spec_for,
)

MAX_FILTER_LENGTH = 4000
MAX_LIST_VALUES = 1000
COMPARATOR_HINT = "a comparator (=, !=, <, <=, >, >=, IN, NOT IN, LIKE, ILIKE, RLIKE, IS NULL, IS NOT NULL)"

Scalar = str | int | float | bool
Value = Scalar | tuple[Scalar, ...] | None


class FilterError(ValueError):
    """A filter string that cannot be read; ``position`` is 1-based (0 when it is about the whole string)."""

    def __init__(self, position: int, message: str) -> None:
        self.position, self.message = position, message
        super().__init__(f"position {position}: {message}" if position else message)


class Kind(Enum):
    WORD = "word"
    BACKQUOTED = "backquoted name"
    STRING = "string"
    NUMBER = "number"
    OPERATOR = "operator"
    LPAREN = "("
    RPAREN = ")"
    COMMA = ","
    DOT = "."
    END = "end of the filter"


@dataclass(frozen=True)
class Token:
    kind: Kind
    text: str  # as typed
    value: str  # decoded: the string without quotes, the name without backquotes
    start: int  # 0-based offset

    @property
    def position(self) -> int:
        return self.start + 1

    def keyword(self) -> str:
        return self.value.upper() if self.kind is Kind.WORD else ""


@dataclass(frozen=True)
class Key:
    entity: Entity
    name: str  # canonical: "name", "timestamp_ms", a tag key, "attributes.model" for span attributes
    text: str  # as typed, for messages
    position: int


@dataclass(frozen=True)
class Clause:
    key: Key
    comparator: str
    value: Value
    position: int  # of the comparator
    value_position: int = 0  # of the value (its first token), 0 for IS NULL


@dataclass(frozen=True)
class Filter:
    clauses: tuple[Clause, ...]
    text: str = ""

    def __bool__(self) -> bool:
        return bool(self.clauses)


_WORD = re.compile(r"[^\W\d]\w*")
_NUMBER = re.compile(r"-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_OPERATOR = re.compile(r"!=|>=|<=|<>|==|=|>|<")


def tokenize(text: str) -> list[Token]:
    if len(text) > MAX_FILTER_LENGTH:
        raise FilterError(0, f"the filter is longer than {MAX_FILTER_LENGTH} characters")
    if "\x00" in text:
        raise FilterError(text.index("\x00") + 1, "a NUL character cannot appear in a filter")
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        if ch in "'\"":
            tokens.append(_string(text, i))
        elif ch == "`":
            tokens.append(_backquoted(text, i))
        elif ch == "(":
            tokens.append(Token(Kind.LPAREN, ch, ch, i))
        elif ch == ")":
            tokens.append(Token(Kind.RPAREN, ch, ch, i))
        elif ch == ",":
            tokens.append(Token(Kind.COMMA, ch, ch, i))
        elif ch == "." and not (i + 1 < n and text[i + 1].isdigit() and _after_value_start(tokens)):
            tokens.append(Token(Kind.DOT, ch, ch, i))
        elif m := _OPERATOR.match(text, i):
            op = m.group()
            if op in ("<>", "=="):
                raise FilterError(i + 1, f"{op!r} is not an MLflow comparator; use {'!=' if op == '<>' else '='}")
            tokens.append(Token(Kind.OPERATOR, op, op, i))
        elif (m := _NUMBER.match(text, i)) and (ch != "-" or _after_value_start(tokens)):
            tokens.append(Token(Kind.NUMBER, m.group(), m.group(), i))
        elif m := _WORD.match(text, i):
            tokens.append(Token(Kind.WORD, m.group(), m.group(), i))
        else:
            raise FilterError(i + 1, f"unexpected character {ch!r}")
        i = tokens[-1].start + len(tokens[-1].text)
    tokens.append(Token(Kind.END, "", "", n))
    return tokens


def _after_value_start(tokens: list[Token]) -> bool:
    """A number may start here: after a comparator, "(" or "," (not inside a dotted key)."""
    return bool(tokens) and tokens[-1].kind in (Kind.OPERATOR, Kind.LPAREN, Kind.COMMA)


def _string(text: str, start: int) -> Token:
    """A quoted string: ``''`` (or ``""``) and a backslash before the quote stand for the quote;
    other backslashes stay, so LIKE escapes and regular expressions arrive as typed."""
    quote, i, out = text[start], start + 1, []
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and text[i + 1] in (quote, "\\"):
            out.append(text[i + 1] if text[i + 1] == quote else "\\\\")
            i += 2
        elif ch == quote and i + 1 < len(text) and text[i + 1] == quote:
            out.append(quote)
            i += 2
        elif ch == quote:
            return Token(Kind.STRING, text[start : i + 1], "".join(out), start)
        else:
            out.append(ch)
            i += 1
    raise FilterError(start + 1, f"this string has no closing {quote}")


def _backquoted(text: str, start: int) -> Token:
    end = text.find("`", start + 1)
    if end < 0:
        raise FilterError(start + 1, "this backquoted name has no closing `")
    if end == start + 1:
        raise FilterError(start + 1, "a backquoted name cannot be empty")
    return Token(Kind.BACKQUOTED, text[start : end + 1], text[start + 1 : end], start)


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def next(self) -> Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def fail(self, expected: str, after: str = "") -> FilterError:
        tok = self.tok
        if tok.kind is Kind.END:
            got = "the end of the filter"
        else:
            got = tok.text if tok.kind is Kind.STRING else f"'{tok.text}'"
        where = f" after {after!r}" if after else ""
        return FilterError(tok.position, f"expected {expected}{where}, got {got}")

    def parse(self) -> Filter:
        if self.tok.kind is Kind.END:
            return Filter((), self.text)
        clauses = [self.clause()]
        while self.tok.kind is not Kind.END:
            word = self.tok.keyword()
            if word == "OR":
                raise FilterError(
                    self.tok.position,
                    "MLflow filter strings have no OR; join clauses with AND, or use IN (...) for one key",
                )
            if word != "AND":
                raise self.fail("AND between clauses", after=self.tokens[self.i - 1].text)
            and_token = self.next()
            if self.tok.kind is Kind.END:
                raise FilterError(and_token.position, "expected a clause after AND (the filter ends with AND)")
            clauses.append(self.clause())
        return Filter(tuple(clauses), self.text)

    # ------------------------------------------------------------ clause

    def clause(self) -> Clause:
        key = self.key()
        spec = spec_for(key.entity, key.name)
        assert spec is not None  # key() refuses unknown keys
        op_token = self.tok
        comparator = self.comparator(key)
        if comparator not in spec.comparators:
            allowed = ", ".join(c for c in ALL_COMPARATORS if c in spec.comparators)
            raise FilterError(op_token.position, f"{key.text} cannot be compared with {comparator}; use {allowed}")
        value_position = self.tok.position if comparator not in NULLS else 0
        value = self.value(key, spec, comparator)
        return Clause(key, comparator, value, op_token.position, value_position)

    def key(self) -> Key:
        first = self.tok
        if first.kind not in (Kind.WORD, Kind.BACKQUOTED):
            raise self.fail("a key such as status, tags.`name` or feedback.`correctness`")
        if first.kind is Kind.WORD and first.keyword() in ("AND", "OR", "NOT", "IN", "LIKE", "IS"):
            raise self.fail("a key such as status, tags.`name` or feedback.`correctness`")
        segments = [self.next()]
        while self.tok.kind is Kind.DOT:
            dot = self.next()
            if self.tok.kind not in (Kind.WORD, Kind.BACKQUOTED, Kind.STRING):
                raise self.fail("a name after '.'", after=self._typed(segments) + dot.text)
            segments.append(self.next())
        text = self._typed(segments)
        position = first.position
        head = segments[0].value
        if len(segments) == 1:
            if head.lower() in PREFIXES and head.lower() not in ATTRIBUTES:
                raise FilterError(position, f"expected '.' and a name after {head!r}, e.g. {head}.`my.key`")
            return self._attribute(head, text, position)
        entity = PREFIXES.get(head.lower()) if segments[0].kind is Kind.WORD else PREFIXES.get(head)
        if entity is None:
            raise FilterError(
                position,
                f"unknown key prefix {head!r}; use attributes., trace., tags., metadata., span., feedback. "
                "or expectation. (put a dotted name in backquotes: tags.`a.b`)",
            )
        name = ".".join(s.value for s in segments[1:])
        if entity is Entity.ATTRIBUTE:
            if len(segments) > 2:
                raise FilterError(position, f"unknown attribute {name!r}; attributes are {_attribute_list()}")
            return self._attribute(name, text, position)
        if entity is Entity.SPAN:
            return self._span(segments[1:], text, position)
        if name == "":
            raise FilterError(segments[1].position, f"the name after {head}. cannot be empty")
        return Key(entity, name, text, position)

    def _attribute(self, name: str, text: str, position: int) -> Key:
        found = ATTRIBUTES.get(name.lower())
        if found is None:
            raise FilterError(position, f"unknown key {text!r}; attributes are {_attribute_list()}")
        return Key(Entity.ATTRIBUTE, found[0], text, position)

    def _span(self, segments: list[Token], text: str, position: int) -> Key:
        field = segments[0].value.lower()
        if field == "attributes" and len(segments) >= 2:
            return Key(Entity.SPAN, "attributes." + ".".join(s.value for s in segments[1:]), text, position)
        if len(segments) == 1 and field in ("name", "type", "status", "content"):
            return Key(Entity.SPAN, field, text, position)
        raise FilterError(
            position,
            f"unknown span key {text!r}; use span.name, span.type, span.status, span.content or span.attributes.<key>",
        )

    @staticmethod
    def _typed(segments: list[Token]) -> str:
        return ".".join(s.text for s in segments)

    def comparator(self, key: Key) -> str:
        tok = self.tok
        if tok.kind is Kind.OPERATOR:
            self.next()
            return tok.value
        word = tok.keyword()
        if word in ("IN", "LIKE", "ILIKE", "RLIKE"):
            self.next()
            return word
        if word == "NOT":
            self.next()
            if self.tok.keyword() != "IN":
                raise self.fail("IN after NOT (MLflow has NOT IN, but no NOT LIKE)", after="NOT")
            self.next()
            return "NOT IN"
        if word == "IS":
            self.next()
            if self.tok.keyword() == "NULL":
                self.next()
                return "IS NULL"
            if self.tok.keyword() == "NOT":
                self.next()
                if self.tok.keyword() == "NULL":
                    self.next()
                    return "IS NOT NULL"
                raise self.fail("NULL", after="IS NOT")
            raise self.fail("NULL or NOT NULL", after="IS")
        raise self.fail(COMPARATOR_HINT, after=key.text)

    # ------------------------------------------------------------ values

    def value(self, key: Key, spec: KeySpec, comparator: str) -> Value:
        if comparator in NULLS:
            return None
        if comparator in LISTS:
            return self.value_list(key, spec)
        kind = spec.value
        if comparator in PATTERNS:
            kind = ValueKind.STRING
        elif comparator in ORDERING and kind is ValueKind.ANY:
            kind = ValueKind.NUMBER
        value = self.scalar(key, kind, after=comparator)
        if comparator == "RLIKE":
            _check_regex(str(value), self.tokens[self.i - 1].position)
        return value

    def value_list(self, key: Key, spec: KeySpec) -> tuple[Scalar, ...]:
        if self.tok.kind is not Kind.LPAREN:
            raise self.fail("a list in parentheses, e.g. ('a', 'b')", after=self.tokens[self.i - 1].text)
        open_paren = self.next()
        if self.tok.kind is Kind.RPAREN:
            raise FilterError(open_paren.position, "an IN list needs at least one value")
        values = [self.scalar(key, spec.value, after="(")]
        while self.tok.kind is Kind.COMMA:
            comma = self.next()
            values.append(self.scalar(key, spec.value, after=comma.text))
            if len(values) > MAX_LIST_VALUES:
                raise FilterError(comma.position, f"an IN list holds at most {MAX_LIST_VALUES} values")
        if self.tok.kind is not Kind.RPAREN:
            raise self.fail("',' or ')'", after=self.tokens[self.i - 1].text)
        self.next()
        return tuple(values)

    def scalar(self, key: Key, kind: ValueKind, *, after: str) -> Scalar:
        tok = self.tok
        if tok.kind is Kind.STRING and kind in (ValueKind.STRING, ValueKind.ANY):
            self.next()
            return tok.value
        if tok.kind is Kind.NUMBER and kind in (ValueKind.NUMBER, ValueKind.ANY):
            self.next()
            return _number(tok)
        if tok.kind is Kind.WORD and tok.keyword() in ("TRUE", "FALSE") and kind is ValueKind.ANY:
            self.next()
            return tok.keyword() == "TRUE"
        if tok.kind is Kind.STRING and kind is ValueKind.NUMBER:
            raise FilterError(tok.position, f"{key.text} compares with a number (no quotes), got {tok.text}")
        raise self.fail(f"{kind.value} for {key.text}", after=after)


def _number(tok: Token) -> int | float:
    text = tok.value
    try:
        number: int | float = float(text) if any(c in text for c in ".eE") else int(text)
    except ValueError:
        raise FilterError(tok.position, f"{text!r} is not a number") from None
    if isinstance(number, float) and not math.isfinite(number):
        raise FilterError(tok.position, f"{text} is too large a number")
    if isinstance(number, int) and abs(number) >= 2**63:
        raise FilterError(tok.position, f"{text} is too large a number (at most 19 digits)")
    return number


def _check_regex(pattern: str, position: int) -> None:
    try:
        re.compile(pattern)
    except (re.error, RecursionError, OverflowError) as exc:
        raise FilterError(position, f"not a valid regular expression: {exc}") from None


def _attribute_list() -> str:
    return ", ".join(sorted({name for name, _ in ATTRIBUTES.values()}))


def parse_filter(text: str | None) -> Filter:
    """The AST of an MLflow filter string; an empty string is the empty filter. Raises ``FilterError``."""
    return _Parser(text or "").parse()
