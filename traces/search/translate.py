"""A parsed filter (``grammar.Filter``) as Django ORM conditions on ``Trace``.

Nothing here builds SQL from user text: keys and values are bound parameters of the
expressions in ``expressions.py`` or of Django's own lookups, and a user's key never becomes a
lookup name. Span and assessment keys are ``EXISTS`` subqueries, so one trace matches once
however many of its spans or assessments do.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import DataError, connections, transaction
from django.db.models import Exists, Expression, F, OuterRef, Q, QuerySet
from django.db.models.lookups import (
    Exact,
    GreaterThan,
    GreaterThanOrEqual,
    In,
    IsNull,
    LessThan,
    LessThanOrEqual,
    Regex,
)

from ..models import (
    Assessment,
    AssessmentKind,
    HasTag,
    Span,
    Trace,
    assessment_condition,
    span_content_condition,
    text_condition,
)
from .expressions import JSONKeyText, JSONNumber, JSONScalarText, Like, NotEqual, SpanContentLike, bound
from .grammar import Clause, Filter, FilterError, Scalar
from .keys import Entity

MODEL_ID_KEY = "mlflow.modelId"  # kept in the Trace.model_id column
SOURCE_RUN_KEY = "mlflow.sourceRun"  # MLflow's run_id attribute
ONE_MS = timedelta(milliseconds=1)

ORDERING_LOOKUPS: dict[str, Callable[[Any, Any], Any]] = {
    ">": GreaterThan,
    ">=": GreaterThanOrEqual,
    "<": LessThan,
    "<=": LessThanOrEqual,
}


def apply_filter(queryset: QuerySet[Trace], parsed: Filter) -> QuerySet[Trace]:
    """``queryset`` narrowed to the traces matching every clause. Raises ``FilterError`` for a
    value the database would refuse (a timestamp out of range, a regular expression PostgreSQL
    cannot read)."""
    for clause in parsed.clauses:
        queryset = queryset.filter(clause_condition(clause, using=queryset.db))
    return queryset


def clause_condition(clause: Clause, *, using: str = "default") -> Q:
    if clause.comparator == "RLIKE":
        _check_regex_on(using, str(clause.value), clause.value_position)
    entity = clause.key.entity
    if entity is Entity.ATTRIBUTE:
        return _attribute(clause)
    if entity is Entity.TAG:
        return _json_key("tags", clause.key.name, clause)
    if entity is Entity.METADATA:
        if clause.key.name == MODEL_ID_KEY:
            return _model_id(clause)
        return _json_key("trace_metadata", clause.key.name, clause)
    if entity is Entity.SPAN:
        return _span(clause)
    return _assessment(clause)


# ---------------------------------------------------------------- trace attributes


def _attribute(clause: Clause) -> Q:
    name = clause.key.name
    if name == "timestamp_ms":
        return _timestamp(clause)
    if name == "execution_time_ms":
        return _compare(F("execution_duration_ms"), clause.comparator, clause.value, numeric=True)
    if name == "status":
        return _compare(F("state"), clause.comparator, clause.value)
    if name == "run_id":
        return _json_key("trace_metadata", SOURCE_RUN_KEY, clause)
    if name == "model_id":
        return _model_id(clause)
    if name == "text":  # previews or span content, through their trigram indexes (traces.models)
        return text_condition(str(clause.value), case_sensitive=clause.comparator == "LIKE")
    column = {"trace_id": "trace_id", "name": "name", "client_request_id": "client_request_id"}[name]
    return _compare(F(column), clause.comparator, clause.value)


def _model_id(clause: Clause) -> Q:
    """The app version: an empty column is "no mlflow.modelId"."""
    if clause.comparator == "IS NULL":
        return Q(model_id="")
    if clause.comparator == "IS NOT NULL":
        return ~Q(model_id="")
    condition = _compare(F("model_id"), clause.comparator, clause.value)
    return condition & ~Q(model_id="") if clause.comparator in ("!=", "NOT IN") else condition


def _timestamp(clause: Clause) -> Q:
    """``timestamp_ms`` is the request time in milliseconds: ``= t`` is the millisecond [t, t+1)."""
    value = clause.value
    assert isinstance(value, int | float) and not isinstance(value, bool)
    try:
        start = datetime.fromtimestamp(value / 1000, tz=UTC)
        end = start + ONE_MS
    except (OverflowError, OSError, ValueError):
        raise FilterError(clause.value_position, f"{value} is not a timestamp in milliseconds since 1970") from None
    comparator = clause.comparator
    if comparator == "=":
        return Q(request_time__gte=start, request_time__lt=end)
    if comparator == "!=":
        return Q(request_time__lt=start) | Q(request_time__gte=end)
    if comparator == ">":
        return Q(request_time__gte=end)
    if comparator == ">=":
        return Q(request_time__gte=start)
    if comparator == "<":
        return Q(request_time__lt=start)
    return Q(request_time__lt=end)  # <=


# ---------------------------------------------------------------- tags, metadata


def _json_key(column: str, key: str, clause: Clause) -> Q:
    comparator = clause.comparator
    if comparator == "IS NULL":
        return ~Q(HasTag(column, key=key))
    if comparator == "IS NOT NULL":
        return Q(HasTag(column, key=key))
    if comparator == "=" and isinstance(clause.value, str):
        return Q(HasTag(column, key=key, value=clause.value))  # containment: what a GIN index serves
    return _compare(JSONKeyText(column, key), comparator, clause.value)


# ---------------------------------------------------------------- spans


def _span(clause: Clause) -> Q:
    name, comparator, value = clause.key.name, clause.comparator, clause.value
    if name == "content" and comparator in ("LIKE", "ILIKE"):  # the search documents narrow it first
        return span_content_condition(str(value), case_sensitive=comparator == "LIKE")
    if name == "content":
        condition = Q(SpanContentLike(str(value), case_sensitive=comparator == "LIKE"))
    elif name.startswith("attributes."):
        condition = _compare(JSONKeyText("attributes", name.removeprefix("attributes.")), comparator, value)
    elif name == "status":
        condition = _compare(F("status_code"), comparator, _span_status(value))
    else:
        condition = _compare(F("name" if name == "name" else "span_type"), comparator, value)
    return Q(Exists(Span.objects.filter(trace_id=OuterRef("pk")).filter(condition)))


def _span_status(value: Any) -> Any:
    """MLflow writes span statuses as OK / ERROR / UNSET or as STATUS_CODE_OK …; both mean the same."""
    if isinstance(value, tuple):
        return tuple(_span_status(v) for v in value)
    return value.removeprefix("STATUS_CODE_") if isinstance(value, str) else value


# ---------------------------------------------------------------- assessments


def _assessment(clause: Clause) -> Q:
    kind = AssessmentKind.FEEDBACK if clause.key.entity is Entity.FEEDBACK else AssessmentKind.EXPECTATION
    named = Assessment.objects.valid().filter(trace_id=OuterRef("pk"), kind=kind, name=clause.key.name)
    if clause.comparator == "IS NULL":
        return ~Q(Exists(named))
    if clause.comparator == "IS NOT NULL":
        return Q(Exists(named))
    if clause.comparator == "=" and _is_plain_string(clause.value):
        # Only a JSON string has this text: the (kind, name, value) index finds it directly.
        return assessment_condition(kind, clause.key.name, clause.value)
    return Q(Exists(named.filter(_assessment_value(clause.comparator, clause.value))))


def _is_plain_string(value: Any) -> bool:
    """A string that no JSON number, boolean, null, object or array prints as."""
    if not isinstance(value, str) or value in ("true", "false", "null") or value[:1] in ("{", "["):
        return False
    try:
        float(value)
    except ValueError:
        return True
    return False


def _assessment_value(comparator: str, value: Any) -> Q:
    """Compare with the JSON value: a number with numbers, true/false and strings with its text."""
    if comparator in ("IN", "NOT IN"):
        numbers = [float(v) for v in value if isinstance(v, int | float) and not isinstance(v, bool)]
        texts = [_as_text(v) for v in value if isinstance(v, str | bool)]
        parts = []
        if texts:
            parts.append(Q(In(JSONScalarText("value"), texts)))
        if numbers:
            parts.append(Q(In(JSONNumber("value"), numbers)))
        condition = parts[0] if len(parts) == 1 else parts[0] | parts[1]
        return ~condition & ~Q(IsNull(JSONScalarText("value"), True)) if comparator == "NOT IN" else condition
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _compare(JSONNumber("value"), comparator, float(value), numeric=True)
    return _compare(JSONScalarText("value"), comparator, _as_text(value))


def _as_text(value: Scalar) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# ---------------------------------------------------------------- comparisons


def _compare(lhs: Expression, comparator: str, value: Any, *, numeric: bool = False) -> Q:
    """One comparison of an expression with a bound value."""
    rhs = bound(value) if numeric else value
    if comparator == "=":
        return Q(Exact(lhs, rhs))
    if comparator == "!=":
        return Q(NotEqual(lhs, rhs))
    if comparator in ORDERING_LOOKUPS:
        return Q(ORDERING_LOOKUPS[comparator](lhs, rhs))
    if comparator == "IN":
        return Q(In(lhs, list(value)))
    if comparator == "NOT IN":
        return ~Q(In(lhs, list(value))) & Q(IsNull(lhs, False))
    if comparator in ("LIKE", "ILIKE"):
        return Q(Like(lhs, str(value), case_sensitive=comparator == "LIKE"))
    if comparator == "RLIKE":
        return Q(Regex(lhs, str(value)))
    if comparator == "IS NULL":
        return Q(IsNull(lhs, True))
    if comparator == "IS NOT NULL":
        return Q(IsNull(lhs, False))
    raise FilterError(0, f"unknown comparator {comparator}")  # the parser lets none through


def _check_regex_on(using: str, pattern: str, position: int) -> None:
    """PostgreSQL's regular expressions are not Python's: ask it whether it reads this one
    (Python's ``re``, which SQLite uses, already accepted it in the parser)."""
    if connections[using].vendor != "postgresql":
        return
    try:
        with transaction.atomic(using=using), connections[using].cursor() as cursor:
            cursor.execute("SELECT '' ~ %s", [pattern])
    except DataError as exc:  # invalid_regular_expression
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else "PostgreSQL refused it"
        raise FilterError(position, f"not a regular expression PostgreSQL can read: {reason}") from None
