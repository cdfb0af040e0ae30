"""Load a trace's spans for a page in two constant queries, decoding big payloads only where shown.

Every span's light columns (tree, timings, status, events) and whether it recorded inputs and
outputs come in one query; inputs and outputs only for the spans a page displays: the root, the
spans the conversation comes from (``traces.conversation``), retrievers and the first tool calls.
A value longer than ``large_values.read_limit()`` characters of JSON is read only that far (the
database cuts it): ``span.payload_chars`` keeps each loaded value's full length for the page.
"""

from __future__ import annotations

from typing import Any

from django.db.models import F, TextField
from django.db.models.functions import Cast

from .conversation import SpanRow, conversation_spans, with_presence
from .large_values import JsonTextHead, decode_head, read_limit
from .models import Span

PAYLOAD_FIELDS = ("inputs", "outputs", "attributes")
SHOWN_FIELDS = ("inputs", "outputs")
PANEL_FIELDS = ("inputs", "outputs", "attributes", "events")
TOOL_CALLS_SHOWN = 20


def _heads(fields: tuple[str, ...]) -> dict[str, JsonTextHead]:
    chars = read_limit()
    return {f"{field}_head": JsonTextHead(F(field), chars) for field in fields}


def _attach(span: Span, row: dict[str, Any], fields: tuple[str, ...]) -> None:
    """Put the decoded (possibly cut) values on the span; ``payload_chars`` says how long each really is."""
    span.payload_chars = {}
    for field in fields:
        read = decode_head(row[f"{field}_head"])
        setattr(span, field, None if read is None else read.value)
        if read is not None:
            span.payload_chars[field] = read.total_chars


def load_spans_for_view(trace_pk: int, *, all_tools: bool = False) -> list[Span]:
    spans = list(
        with_presence(Span.objects.filter(trace_id=trace_pk)).defer(*PAYLOAD_FIELDS).order_by("start_time_ns", "id")
    )
    ids = {s.span_id for s in spans}
    roots = [s for s in spans if not s.parent_id or s.parent_id not in ids][:1]
    picked = conversation_spans(SpanRow.of(s) for s in spans)
    tools = [s for s in spans if s.span_type == "TOOL"]
    wanted = {s.pk for s in roots}
    wanted |= {row.pk for row in (picked.request, picked.response) if row is not None}
    wanted |= {s.pk for s in spans if s.span_type == "RETRIEVER"}
    wanted |= {s.pk for s in (tools if all_tools else tools[:TOOL_CALLS_SHOWN])}
    rows = {}
    if wanted:
        rows = {r["pk"]: r for r in Span.objects.filter(pk__in=wanted).order_by().values("pk", **_heads(SHOWN_FIELDS))}
    for span in spans:
        # Never let a template touch a deferred column: that would be one query per span.
        span.attributes = {}
        if span.pk in rows:
            _attach(span, rows[span.pk], SHOWN_FIELDS)
        else:
            span.inputs, span.outputs = None, None
            span.payload_loaded = False
    return spans


def load_span_for_panel(trace_pk: int, span_id: str) -> Span | None:
    """One span with every value (cut like the page's), for the span panel; None if there is no such span."""
    if "\x00" in span_id:  # no stored id holds NUL, and PostgreSQL refuses it in a query
        return None
    span = (
        Span.objects.filter(trace_id=trace_pk, span_id=span_id)
        .defer(*PANEL_FIELDS)
        .annotate(**_heads(PANEL_FIELDS))
        .first()
    )
    if span is None:
        return None
    row = {f"{field}_head": getattr(span, f"{field}_head") for field in PANEL_FIELDS}
    _attach(span, row, PANEL_FIELDS)
    return span


def full_value_text(trace_pk: int, span_id: str, field: str) -> tuple[bool, str | None]:
    """The whole stored value of one span field as JSON text: (span found, text or None for null)."""
    if "\x00" in span_id or field not in PANEL_FIELDS:
        return False, None
    rows = Span.objects.filter(trace_id=trace_pk, span_id=span_id).annotate(text=Cast(field, TextField()))
    found = list(rows.values_list("text", flat=True)[:1])
    return (True, found[0]) if found else (False, None)
