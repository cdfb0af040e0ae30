"""Finding traces: the explorer's form and MLflow's ``search_traces`` filter strings and ``order_by``.

One parser (``grammar``) for the filter grammar, translated to ORM conditions (``translate``),
used by the trace explorer, by "add traces to a session" and by the API.
"""

from django.db.models import QuerySet

from ..models import Trace
from .form import ORDER_CHOICES, TraceFilterForm, TraceListForm, parse_tag_filters, traces_for_list
from .grammar import Clause, Filter, FilterError, Key, parse_filter
from .ordering import parse_order_by
from .translate import apply_filter

__all__ = [
    "ORDER_CHOICES",
    "Clause",
    "Filter",
    "FilterError",
    "Key",
    "TraceFilterForm",
    "TraceListForm",
    "apply_filter",
    "parse_filter",
    "parse_order_by",
    "parse_tag_filters",
    "search_traces",
    "traces_for_list",
]


def search_traces(
    queryset: QuerySet[Trace], filter_string: str | None = "", order_by: list[str] | None = None
) -> QuerySet[Trace]:
    """``queryset`` filtered by an MLflow filter string and ordered by MLflow ``order_by`` strings
    (what the API calls). Raises ``FilterError``."""
    return apply_filter(queryset, parse_filter(filter_string)).order_by(*parse_order_by(order_by))
