"""Load a trace's spans for a page in two constant queries, decoding big payloads only where shown.

Every span's light columns (tree, timings, status, events) come in one query; inputs, outputs
and attributes only for the spans a page displays: the root, retrievers and the first tool calls.
"""

from __future__ import annotations

from .models import Span

PAYLOAD_FIELDS = ("inputs", "outputs", "attributes")
TOOL_CALLS_SHOWN = 20


def load_spans_for_view(trace_pk: int, *, all_tools: bool = False) -> list[Span]:
    spans = list(Span.objects.filter(trace_id=trace_pk).defer(*PAYLOAD_FIELDS).order_by("start_time_ns", "id"))
    ids = {s.span_id for s in spans}
    roots = [s for s in spans if not s.parent_id or s.parent_id not in ids][:1]
    tools = [s for s in spans if s.span_type == "TOOL"]
    wanted = {s.pk for s in roots}
    wanted |= {s.pk for s in spans if s.span_type == "RETRIEVER"}
    wanted |= {s.pk for s in (tools if all_tools else tools[:TOOL_CALLS_SHOWN])}
    full = {s.pk: s for s in Span.objects.filter(pk__in=wanted)} if wanted else {}
    loaded = []
    for span in spans:
        if span.pk in full:
            loaded.append(full[span.pk])
            continue
        # Never let a template touch a deferred column: that would be one query per span.
        span.inputs, span.outputs, span.attributes = None, None, {}
        span.payload_loaded = False
        loaded.append(span)
    return loaded
