"""MLflow's ``order_by`` for traces: ``["timestamp_ms DESC", "name"]`` → ORM ordering.

Keys as in ``SearchTraceUtils.VALID_ORDER_BY_ATTRIBUTE_KEYS`` (with an optional ``attributes.`` /
``trace.`` prefix); the direction is ASC unless DESC is given. The request time (newest first)
and then ``id`` follow as tiebreakers, so the order is total and pages never overlap.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db.models import F, OrderBy

from .grammar import FilterError, Kind, tokenize
from .keys import PREFIXES, Entity

ORDER_COLUMNS: dict[str, str] = {
    "timestamp_ms": "request_time",
    "timestamp": "request_time",
    "execution_time_ms": "execution_duration_ms",
    "execution_time": "execution_duration_ms",
    "status": "state",
    "state": "state",
    "name": "name",
    "request_id": "trace_id",
    "trace_id": "trace_id",
    "client_request_id": "client_request_id",
    "model_id": "model_id",
}
DEFAULT_ORDER: tuple[str, ...] = ("timestamp_ms DESC",)
NULLABLE = frozenset({"execution_duration_ms"})  # no duration yet (in progress): last either way


def parse_order_by(items: Sequence[str] | None) -> list[OrderBy]:
    """The ORM ordering for MLflow ``order_by`` strings; raises ``FilterError`` naming the item."""
    ordering: list[OrderBy] = []
    directions: dict[str, bool] = {}
    for number, item in enumerate(items or DEFAULT_ORDER, start=1):
        column, descending = _one(item, number)
        if column in directions:
            continue
        directions[column] = descending
        nulls_last = True if column in NULLABLE else None  # plain ORDER BY elsewhere, so indexes match
        ordering.append(F(column).desc(nulls_last=nulls_last) if descending else F(column).asc(nulls_last=nulls_last))
    if "request_time" not in directions:
        directions["request_time"] = True
        ordering.append(F("request_time").desc())
    ordering.append(F("id").desc() if directions["request_time"] else F("id").asc())
    return ordering


def _one(item: str, number: int) -> tuple[str, bool]:
    where = f"order_by item {number}"
    try:
        tokens = [t for t in tokenize(item) if t.kind is not Kind.END]
    except FilterError as exc:
        raise FilterError(exc.position, f"{where}: {exc.message}") from None
    words = [t.value for t in tokens]
    if len(tokens) >= 3 and tokens[1].kind is Kind.DOT:
        if PREFIXES.get(words[0].lower()) is not Entity.ATTRIBUTE:
            raise FilterError(tokens[0].position, f"{where}: only trace attributes can order traces, not {words[0]!r}")
        tokens, words = tokens[2:], words[2:]
    if not tokens or tokens[0].kind not in (Kind.WORD, Kind.BACKQUOTED):
        raise FilterError(1, f"{where}: expected a key such as timestamp_ms, got {item!r}")
    column = ORDER_COLUMNS.get(words[0].lower())
    if column is None:
        known = "timestamp_ms, execution_time_ms, status, name, request_id, client_request_id, model_id"
        raise FilterError(tokens[0].position, f"{where}: cannot order by {words[0]!r}; use one of {known}")
    if len(tokens) == 1:
        return column, False
    direction = words[1].upper()
    if len(tokens) > 2 or direction not in ("ASC", "DESC"):
        raise FilterError(tokens[1].position, f"{where}: expected ASC or DESC after {words[0]!r}")
    return column, direction == "DESC"
