"""The traces a session holds (its frozen copies), as a filter that stays an index lookup at any database size.

Answers, judge feedback and copied assessments of a session live on its copies. Joining
``traces_assessment`` to the session's items lets PostgreSQL estimate the match from the average
trace of the whole database, so past a few thousand items it scans every assessment there (all
sessions, all experiments). ``trace_id = ANY(ARRAY(SELECT …))`` is planned as an index lookup of
exactly the session's copies instead, so the cost follows the session, not the rest of the data.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db.models import BooleanField, F, Func, QuerySet, Subquery

from .models import LabelingSession, ReviewItem


class AnyOf(Func):
    """``column`` is one of the values the one-column ``queryset`` yields."""

    output_field = BooleanField()

    def __init__(self, column: str, queryset: QuerySet[Any]) -> None:
        super().__init__(F(column), Subquery(queryset))

    def as_sql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list[Any]]:
        column, column_params = compiler.compile(self.source_expressions[0])
        values, value_params = compiler.compile(self.source_expressions[1])
        return f"{column} IN {values}", [*column_params, *value_params]

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list[Any]]:
        column, column_params = compiler.compile(self.source_expressions[0])
        values, value_params = compiler.compile(self.source_expressions[1])
        return f"{column} = ANY(ARRAY{values})", [*column_params, *value_params]


def on_session_copies(sessions: LabelingSession | Iterable[LabelingSession], column: str = "trace_id") -> AnyOf:
    """A filter: ``column`` (a trace id) is a copy held by one of ``sessions``."""
    chosen = [sessions] if isinstance(sessions, LabelingSession) else list(sessions)
    items = ReviewItem.objects.filter(session__in=[s.pk for s in chosen]).order_by().values("trace_id")
    return AnyOf(column, items)


# A session's MLflow run id: 32 hex digits, a fixed prefix then the session's id, so the API's
# ``run_id`` filter finds the session's copies without a stored column.
RUN_ID_PREFIX = "1abe15e5"


def session_run_id(session_pk: int) -> str:
    return f"{RUN_ID_PREFIX}{session_pk:024x}"


def session_pk_from_run_id(run_id: str) -> int | None:
    """The session id a ``session_run_id`` names, or None for any other run id (or one past a row id's range)."""
    if len(run_id) != 32 or not run_id.startswith(RUN_ID_PREFIX):
        return None
    try:
        pk = int(run_id[len(RUN_ID_PREFIX) :], 16)
    except ValueError:
        return None
    return pk if pk < 2**63 else None
