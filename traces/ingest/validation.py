"""Checks a parsed trace passes before it is stored, whatever format it came in.

Each check raises :class:`TraceFormatError` naming the field and the reason. They guard what
the database and the pages cannot take: NUL characters in text columns (PostgreSQL refuses
them), numbers past BIGINT, values nested deeper than the JSON encoders go, and times the
pages cannot show (a year-10000 ``request_time`` stores fine and then breaks every page that
lists it). They are plain functions over records, so every ingest path (files, HTTP, a
streaming OTLP receiver batch by batch) runs the same ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from traces.models import INGEST_WARNINGS_KEY

from .records import AssessmentRecord, SpanRecord, TraceFormatError, TraceRecord

EARLIEST_TIME = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_TIME = datetime(2200, 1, 1, tzinfo=UTC)  # exclusive
EARLIEST_NS = 0
LATEST_NS = int(LATEST_TIME.timestamp()) * 1_000_000_000
TIME_RANGE = "1970–2200"
BIGINT_MIN, BIGINT_MAX = -(2**63), 2**63 - 1
# orjson serializes at most 254 levels and Python's json (the pages, SQLite) recurses per level;
# real traces stay far below this, so a deeper value is refused rather than half stored.
MAX_JSON_DEPTH = 128
MAX_WARNINGS = 20


def check_time(value: datetime, *, what: str, shown: str | None = None) -> datetime:
    """``value`` if it lies in 1970–2200; the pages (and timezone conversion) cannot show much else."""
    try:
        inside = EARLIEST_TIME <= value < LATEST_TIME
    except OverflowError:
        inside = False
    if not inside:
        raise TraceFormatError(f"{what} {shown or value.isoformat()} is outside {TIME_RANGE}")
    return value


def check_time_ns(value: int, *, what: str) -> int:
    """A timestamp in nanoseconds since the epoch, in 1970–2200."""
    if not EARLIEST_NS <= value < LATEST_NS:
        raise TraceFormatError(f"{what} {value} is outside {TIME_RANGE}")
    return value


def check_bigint(value: int, *, what: str) -> int:
    if not BIGINT_MIN <= value <= BIGINT_MAX:
        raise TraceFormatError(f"{what} {value} is out of range (at most 2^63 - 1)")
    return value


def check_text(value: str, *, what: str) -> str:
    """Text for a text column: PostgreSQL cannot store NUL, so neither database is given one."""
    if "\x00" in value:
        raise TraceFormatError(f"{what} contains a NUL character (\\u0000), which cannot be stored")
    return value


def json_depth_exceeds(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether ``value`` nests lists/objects more than ``limit`` levels (iterative, no recursion)."""
    if not isinstance(value, (dict, list)):
        return False
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        for child in node.values() if isinstance(node, dict) else node:
            if isinstance(child, (dict, list)):
                stack.append((child, depth + 1))
    return False


def check_depth(value: Any, *, what: str, verb: str = "are") -> Any:
    if json_depth_exceeds(value):
        raise TraceFormatError(f"{what} {verb} nested more than {MAX_JSON_DEPTH} levels deep")
    return value


def dump_json(value: Any, *, what: str) -> str:
    """``value`` as compact JSON text, or :class:`TraceFormatError` saying why it cannot be."""
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError as exc:
        if "recursion" in str(exc).lower():
            raise TraceFormatError(f"{what} are nested more than {MAX_JSON_DEPTH} levels deep") from None
        raise TraceFormatError(f"{what} cannot be stored as JSON ({exc})") from None


def check_unique_span_ids(spans: Sequence[SpanRecord]) -> set[str]:
    """The span ids of one trace, or :class:`TraceFormatError` if one appears twice."""
    seen: set[str] = set()
    for span in spans:
        if span.span_id in seen:
            raise TraceFormatError(f"span id {span.span_id} appears twice")
        seen.add(span.span_id)
    return seen


def check_span(span: SpanRecord, *, what: str) -> SpanRecord:
    """Text columns and JSON payloads of one span (its times are checked where they are parsed).

    One pass over everything first (this runs for every span of every import); only a span that
    fails it is looked at field by field, to name the field.
    """
    if "\x00" in span.name or "\x00" in span.span_type or "\x00" in span.status_message:
        check_text(span.name, what=f"{what} name")
        check_text(span.span_type, what=f"{what} span type")
        check_text(span.status_message, what=f"{what} status message")
    if json_depth_exceeds([span.inputs, span.outputs, span.attributes, span.events], MAX_JSON_DEPTH + 1):
        check_depth(span.inputs, what=f"{what} inputs")
        check_depth(span.outputs, what=f"{what} outputs")
        check_depth(span.attributes, what=f"{what} attributes")
        check_depth(span.events, what=f"{what} events")
    return span


def check_assessment(assessment: AssessmentRecord, *, what: str) -> AssessmentRecord:
    for field in ("assessment_id", "name", "rationale", "source_type", "overrides"):
        check_text(getattr(assessment, field), what=f"{what} {field}")
    check_text(assessment.source_id, what=f"{what} source id")
    check_depth(assessment.value, what=f"{what} value", verb="is")
    check_depth(assessment.error, what=f"{what} error", verb="is")
    check_depth(assessment.metadata, what=f"{what} metadata", verb="is")
    return assessment


def check_trace(record: TraceRecord) -> TraceRecord:
    """The trace's own fields, then its warnings kept in ``trace_metadata`` (spans are checked as parsed)."""
    check_text(record.trace_id, what="trace_id")
    check_text(record.experiment_id, what="experiment_id")
    check_text(record.name, what="trace name")
    check_text(record.request_preview, what="request preview")
    check_text(record.response_preview, what="response preview")
    check_text(record.client_request_id, what="client_request_id")
    check_bigint(record.execution_duration_ms or 0, what="execution_duration_ms")
    keep_warnings(record)
    return record


def keep_warnings(record: TraceRecord) -> None:
    """Record the trace's ingest warnings on the trace itself (and drop any stale ones from a file)."""
    record.trace_metadata.pop(INGEST_WARNINGS_KEY, None)
    if record.warnings:
        shown = record.warnings[:MAX_WARNINGS]
        if len(record.warnings) > MAX_WARNINGS:
            shown.append(f"… and {len(record.warnings) - MAX_WARNINGS} more")
        record.trace_metadata[INGEST_WARNINGS_KEY] = orjson.dumps(shown).decode()
