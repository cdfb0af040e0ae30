"""OTLP spans: the JSON ``ExportTraceServiceRequest`` and the typed spans of MLflow's REST API.

The HTTP ``POST /v1/traces`` endpoint of a later issue reuses :func:`parse_otlp_request`
(after decoding protobuf into the same dict shape).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from .records import SpanRecord, TraceFormatError, TraceRecord
from .semconv import map_span_conventions
from .span_cycles import break_parent_cycles
from .validation import check_span, check_trace, check_unique_span_ids
from .values import decode_json_string, hex_id, otlp_attributes, preview, short_id, timestamp_ns

OTLP_STATUS = {0: "UNSET", 1: "OK", 2: "ERROR"}
STATUS_NAMES = {"STATUS_CODE_OK": "OK", "STATUS_CODE_ERROR": "ERROR", "STATUS_CODE_UNSET": "UNSET"}


def _get(raw: dict[str, Any], snake: str, camel: str) -> Any:
    return raw[snake] if snake in raw else raw.get(camel)


def _status(raw: Any) -> tuple[str, str]:
    if not isinstance(raw, dict):
        return "UNSET", ""
    code = raw.get("code", 0)
    if isinstance(code, int):
        name = OTLP_STATUS.get(code, "UNSET")
    else:
        name = STATUS_NAMES.get(str(code), str(code) if str(code) in {"OK", "ERROR", "UNSET"} else "UNSET")
    return name, str(raw.get("message") or "")


def _or(value: Any, fallback: Any) -> Any:
    return fallback if value is None else value


def span_from_otlp(raw: dict[str, Any], index: int, *, decode_strings: bool) -> SpanRecord:
    """One OTLP span; ``decode_strings`` JSON-decodes ``mlflow.*`` string values (the OTLP exporter encodes them)."""
    attributes = otlp_attributes(raw.get("attributes") or [])
    if decode_strings:
        attributes = {k: decode_json_string(v) if k.startswith("mlflow.") else v for k, v in attributes.items()}
    attributes.pop("mlflow.traceRequestId", None)
    span_type = attributes.pop("mlflow.spanType", None)
    inputs = attributes.pop("mlflow.spanInputs", None)
    outputs = attributes.pop("mlflow.spanOutputs", None)
    parent = _get(raw, "parent_span_id", "parentSpanId")
    end = _get(raw, "end_time_unix_nano", "endTimeUnixNano")
    status_code, status_message = _status(raw.get("status"))
    raw_events = raw.get("events") or []
    if not isinstance(raw_events, list):
        raise TraceFormatError(f"span {index} events must be a list")
    events = []
    for event in raw_events:
        if not isinstance(event, dict):
            raise TraceFormatError(f"span {index} event must be an object")
        events.append(
            {
                "name": str(event.get("name", "")),
                "time_unix_nano": timestamp_ns(
                    _get(event, "time_unix_nano", "timeUnixNano") or 0, what=f"span {index} event time"
                ),
                "attributes": otlp_attributes(event.get("attributes") or []),
            }
        )
    if span_type is None or inputs is None or outputs is None:  # other instrumentations' conventions
        mapped = map_span_conventions(str(raw.get("name") or ""), attributes, events=events)
        span_type, inputs, outputs = span_type or mapped[0], _or(inputs, mapped[1]), _or(outputs, mapped[2])
    span = SpanRecord(
        span_id=hex_id(_get(raw, "span_id", "spanId"), what=f"span {index} span id"),
        parent_id=hex_id(parent, what=f"span {index} parent span id") if parent else "",
        name=str(raw.get("name") or ""),
        span_type=str(span_type or "UNKNOWN"),
        status_code=status_code,
        status_message=status_message,
        start_time_ns=timestamp_ns(
            _get(raw, "start_time_unix_nano", "startTimeUnixNano"), what=f"span {index} start time"
        ),
        end_time_ns=timestamp_ns(end, what=f"span {index} end time") if end is not None else None,
        inputs=inputs,
        outputs=outputs,
        attributes=attributes,
        events=events,
    )
    return check_span(span, what=f"span {index}")


def _trace_from_spans(
    otel_trace_id: str, spans: list[SpanRecord], request_id: str, tags: dict[str, str]
) -> TraceRecord:
    ids = check_unique_span_ids(spans)
    warnings = break_parent_cycles(spans)
    root = next((s for s in spans if not s.parent_id or s.parent_id not in ids), spans[0])
    start = min(span.start_time_ns for span in spans)
    ends = [span.end_time_ns for span in spans if span.end_time_ns is not None]
    in_progress = any(span.end_time_ns is None for span in spans)
    state = "IN_PROGRESS" if in_progress else ("ERROR" if root.status_code == "ERROR" else "OK")
    record = TraceRecord(
        trace_id=short_id(request_id or f"tr-{otel_trace_id}", what="trace id"),
        experiment_id="",
        name=root.name,
        state=state,
        request_time=datetime.fromtimestamp(start / 1e9, tz=UTC),
        execution_duration_ms=(max(ends) - start) // 1_000_000 if ends else None,
        request_preview=preview(root.inputs),
        response_preview=preview(root.outputs),
        client_request_id="",
        tags=tags,
        trace_metadata={},
        spans=spans,
        warnings=warnings,
    )
    return check_trace(record)


def resource_span_groups(resource_spans: list[Any]) -> Iterator[tuple[dict[str, Any], list[Any]]]:
    """Each scope's raw spans with their resource's attributes, checking the nesting on the way."""
    for resource_span in resource_spans:
        if not isinstance(resource_span, dict):
            raise TraceFormatError("a resourceSpans item must be an object")
        resource_object = resource_span.get("resource") or {}
        if not isinstance(resource_object, dict):
            raise TraceFormatError("'resource' must be an object")
        resource = otlp_attributes(resource_object.get("attributes") or [])
        scopes = (
            _get(resource_span, "scope_spans", "scopeSpans") or resource_span.get("instrumentationLibrarySpans") or []
        )
        if not isinstance(scopes, list) or not all(isinstance(scope, dict) for scope in scopes):
            raise TraceFormatError("'scopeSpans' must be a list of objects")
        for scope in scopes:
            raw_spans = scope.get("spans") or []
            if not isinstance(raw_spans, list):
                raise TraceFormatError("'spans' of a scope must be a list")
            yield resource, raw_spans


def parse_otlp_request(document: dict[str, Any]) -> list[TraceRecord]:
    """Group the spans of an ``ExportTraceServiceRequest`` by trace id into traces."""
    resource_spans = _get(document, "resource_spans", "resourceSpans")
    if not isinstance(resource_spans, list):
        raise TraceFormatError("'resourceSpans' must be a list")
    grouped: dict[str, tuple[list[SpanRecord], str, dict[str, str]]] = {}
    index = 0
    for resource, raw_spans in resource_span_groups(resource_spans):
        tags = {str(k): str(v) for k, v in resource.items()}
        for raw in raw_spans:
            if not isinstance(raw, dict):
                raise TraceFormatError(f"span {index} is not an object")
            otel_trace_id = hex_id(_get(raw, "trace_id", "traceId"), what=f"span {index} trace id")
            request_id = decode_json_string(otlp_attributes(raw.get("attributes") or []).get("mlflow.traceRequestId"))
            span = span_from_otlp(raw, index, decode_strings=True)
            spans, known_request_id, trace_tags = grouped.setdefault(otel_trace_id, ([], "", dict(tags)))
            spans.append(span)
            if request_id and not known_request_id:
                grouped[otel_trace_id] = (spans, str(request_id), trace_tags)
            index += 1
    if not grouped:
        raise TraceFormatError("the OTLP request holds no spans")
    return [_trace_from_spans(tid, spans, rid, tags) for tid, (spans, rid, tags) in grouped.items()]
