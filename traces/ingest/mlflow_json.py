"""Parse the trace JSON that MLflow writes into :class:`TraceRecord` objects.

Formats read:

* MLflow 3 ``Trace.to_json()``: ``{"info": {"trace_id": …}, "data": {"spans": [...]}}`` with
  base64 span ids and JSON-encoded attribute values;
* MLflow 2 ``Trace.to_json()``: ``{"info": {"request_id": …}, "data": {"spans": [{"context": …}]}}``;
* the REST ``GET /api/3.0/mlflow/traces/get`` response ``{"trace": {"trace_info": …, "spans": [...]}}``
  with OTLP-style typed attribute lists, and ``search`` responses ``{"traces": [...]}``;
* an OTLP/JSON ``ExportTraceServiceRequest`` (``{"resourceSpans": [...]}``), see :mod:`.otlp`.

Nothing here touches the database: a document either parses completely or raises
:class:`TraceFormatError`, so a bad file never leaves half a trace behind.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from .otlp import parse_otlp_request, span_from_otlp
from .records import AssessmentRecord, SpanRecord, TraceFormatError, TraceRecord
from .span_cycles import break_parent_cycles
from .validation import check_assessment, check_depth, check_span, check_trace, check_unique_span_ids
from .values import (
    as_str_dict,
    decode_json_string,
    hex_id,
    otlp_attributes,
    parse_duration_ms,
    parse_time,
    preview,
    short_id,
    timestamp_ns,
)

STATUS_NAMES = {
    "STATUS_CODE_OK": "OK",
    "OK": "OK",
    "STATUS_CODE_ERROR": "ERROR",
    "ERROR": "ERROR",
    "STATUS_CODE_UNSET": "UNSET",
    "UNSET": "UNSET",
    "0": "UNSET",
    "1": "OK",
    "2": "ERROR",
}
TRACE_STATES = {"OK", "ERROR", "IN_PROGRESS", "STATE_UNSPECIFIED"}
V2_STATES = {"TRACE_STATUS_UNSPECIFIED": "STATE_UNSPECIFIED", "UNSPECIFIED": "STATE_UNSPECIFIED"}


MAX_LIST_NESTING = 3  # a list of search responses, each a list of traces, is as deep as real files go


def parse_document(document: Any, *, nesting: int = 0) -> list[TraceRecord]:
    """Every trace in one decoded JSON document, in any of the formats above."""
    if isinstance(document, list):
        if nesting >= MAX_LIST_NESTING:
            raise TraceFormatError(f"lists of traces nested more than {MAX_LIST_NESTING} levels deep")
        records: list[TraceRecord] = []
        for index, item in enumerate(document):
            try:
                records.extend(parse_document(item, nesting=nesting + 1))
            except TraceFormatError as exc:
                raise TraceFormatError(f"item {index}: {exc}") from None
        return records
    if not isinstance(document, dict):
        raise TraceFormatError(f"expected a JSON object or list, got {type(document).__name__}")
    if "resourceSpans" in document or "resource_spans" in document:
        return parse_otlp_request(document)
    if "trace" in document and isinstance(document["trace"], dict):
        return [parse_trace(document["trace"])]
    if "traces" in document and isinstance(document["traces"], list):
        return parse_document(document["traces"], nesting=nesting)
    return [parse_trace(document)]


def parse_trace(document: dict[str, Any]) -> TraceRecord:
    """One trace: ``{info, data}`` (v2/v3), ``{trace_info, spans}`` (REST), or a bare trace info."""
    if "info" in document:
        info, data = document["info"], document.get("data") or {}
    elif "trace_info" in document:
        info, data = document["trace_info"], {"spans": document.get("spans") or []}
    elif "trace_id" in document or "request_id" in document:
        info, data = document, {"spans": []}
    else:
        keys = ", ".join(sorted(map(str, document))[:6]) or "none"
        raise TraceFormatError(f"not an MLflow trace: no 'info' or 'trace_info' object (keys: {keys})")
    if not isinstance(info, dict) or not isinstance(data, dict):
        raise TraceFormatError("'info' and 'data' must be objects")
    spans_raw = data.get("spans") or []
    if not isinstance(spans_raw, list):
        raise TraceFormatError("'data.spans' must be a list")
    if "request_id" in info and "trace_id" not in info:
        return _trace_from_v2(info, data, spans_raw)
    return _trace_from_v3(info, spans_raw)


def _trace_from_v3(info: dict[str, Any], spans_raw: list[Any]) -> TraceRecord:
    trace_id = info.get("trace_id")
    if not isinstance(trace_id, str) or not trace_id:
        raise TraceFormatError("missing trace_id in trace info")
    spans = [_span_from_v3(raw, index) for index, raw in enumerate(spans_raw)]
    location = info.get("trace_location") or {}
    if not isinstance(location, dict) or not isinstance(location.get("mlflow_experiment") or {}, dict):
        raise TraceFormatError("'trace_location' must be an object")
    experiment_id = str(
        ((location.get("mlflow_experiment") or {}).get("experiment_id")) or info.get("experiment_id") or ""
    )
    duration_key = "execution_duration_ms" if info.get("execution_duration_ms") is not None else "execution_duration"
    metadata = as_str_dict(info.get("trace_metadata"), what="trace_metadata")
    tags = as_str_dict(info.get("tags"), what="tags")
    state = str(info.get("state") or "STATE_UNSPECIFIED")
    if state not in TRACE_STATES:
        raise TraceFormatError(f"unknown trace state {state!r}")
    return _finish_trace(
        TraceRecord(
            trace_id=trace_id,
            experiment_id=experiment_id,
            name=tags.get("mlflow.traceName", ""),
            state=state,
            request_time=parse_time(info.get("request_time"), what="request_time"),
            execution_duration_ms=parse_duration_ms(info.get(duration_key), what=duration_key),
            request_preview=str(info.get("request_preview") or metadata.get("mlflow.traceInputs", "")),
            response_preview=str(info.get("response_preview") or metadata.get("mlflow.traceOutputs", "")),
            client_request_id=str(info.get("client_request_id") or ""),
            tags=tags,
            trace_metadata=metadata,
            spans=spans,
        ),
        info.get("assessments"),
    )


def _trace_from_v2(info: dict[str, Any], data: dict[str, Any], spans_raw: list[Any]) -> TraceRecord:
    trace_id = info.get("request_id")
    if not isinstance(trace_id, str) or not trace_id:
        raise TraceFormatError("missing request_id in trace info")
    spans = [_span_from_v2(raw, index) for index, raw in enumerate(spans_raw)]
    metadata = as_str_dict(info.get("request_metadata"), what="request_metadata")
    tags = as_str_dict(info.get("tags"), what="tags")
    status = str(info.get("status") or "STATE_UNSPECIFIED")
    status = V2_STATES.get(status, status)
    if status not in TRACE_STATES:
        raise TraceFormatError(f"unknown trace status {status!r}")
    return _finish_trace(
        TraceRecord(
            trace_id=trace_id,
            experiment_id=str(info.get("experiment_id") or ""),
            name=tags.get("mlflow.traceName", ""),
            state=status,
            request_time=parse_time(info.get("timestamp_ms"), what="timestamp_ms"),
            execution_duration_ms=parse_duration_ms(info.get("execution_time_ms"), what="execution_time_ms"),
            request_preview=preview(data.get("request") or metadata.get("mlflow.traceInputs")),
            response_preview=preview(data.get("response") or metadata.get("mlflow.traceOutputs")),
            client_request_id="",
            tags=tags,
            trace_metadata=metadata,
            spans=spans,
        ),
        info.get("assessments"),
    )


def _finish_trace(record: TraceRecord, assessments_raw: Any) -> TraceRecord:
    """Break parent loops, fill what the info may leave out from the root span, attach assessments, check."""
    short_id(record.trace_id, what="trace_id")
    short_id(record.experiment_id, what="experiment_id")
    seen = check_unique_span_ids(record.spans)
    record.warnings.extend(break_parent_cycles(record.spans))
    root = next((s for s in record.spans if not s.parent_id or s.parent_id not in seen), None)
    if root is not None:
        record.name = record.name or root.name
        if not record.request_preview:
            record.request_preview = preview(root.inputs)
        if not record.response_preview:
            record.response_preview = preview(root.outputs)
        if record.execution_duration_ms is None and root.end_time_ns is not None:
            record.execution_duration_ms = (root.end_time_ns - root.start_time_ns) // 1_000_000
    record.request_preview = record.request_preview[:1000]
    record.response_preview = record.response_preview[:1000]
    if assessments_raw is not None:
        if not isinstance(assessments_raw, list):
            raise TraceFormatError("'assessments' must be a list")
        record.assessments = [parse_assessment(raw, record.trace_id) for raw in assessments_raw]
    return check_trace(record)


def _split_mlflow_attributes(attributes: dict[str, Any]) -> tuple[str, Any, Any, dict[str, Any]]:
    """Decode MLflow's JSON-encoded attribute values and pull out span type, inputs and outputs."""
    decoded = {key: decode_json_string(value) for key, value in attributes.items()}
    decoded.pop("mlflow.traceRequestId", None)
    span_type = decoded.pop("mlflow.spanType", None) or "UNKNOWN"
    inputs = decoded.pop("mlflow.spanInputs", None)
    outputs = decoded.pop("mlflow.spanOutputs", None)
    return str(span_type), inputs, outputs, decoded


def _events(raw_events: Any, *, time_key: str, what: str) -> list[dict[str, Any]]:
    if not raw_events:
        return []
    if not isinstance(raw_events, list):
        raise TraceFormatError("span events must be a list")
    events = []
    for event in raw_events:
        if not isinstance(event, dict):
            raise TraceFormatError("span event must be an object")
        events.append(
            {
                "name": str(event.get("name", "")),
                "time_unix_nano": timestamp_ns(
                    event.get(time_key) or event.get("timeUnixNano") or 0, what=f"{what} event time"
                ),
                "attributes": {
                    key: decode_json_string(value) if key.startswith("mlflow.") else value
                    for key, value in otlp_attributes(event.get("attributes") or {}).items()
                },
            }
        )
    return events


def _span_from_v3(raw: Any, index: int) -> SpanRecord:
    if not isinstance(raw, dict):
        raise TraceFormatError(f"span {index} is not an object")
    if isinstance(raw.get("attributes"), list) or "spanId" in raw:
        return span_from_otlp(raw, index, decode_strings=False)
    span_id = hex_id(raw.get("span_id"), what=f"span {index} span_id")
    parent = raw.get("parent_span_id") or raw.get("parent_id")
    attributes = raw.get("attributes") or {}
    if not isinstance(attributes, dict):
        raise TraceFormatError(f"span {index} attributes must be an object")
    span_type, inputs, outputs, rest = _split_mlflow_attributes(attributes)
    status = raw.get("status") or {}
    if not isinstance(status, dict):
        raise TraceFormatError(f"span {index} status must be an object")
    end = raw.get("end_time_unix_nano")
    span = SpanRecord(
        span_id=span_id,
        parent_id=hex_id(parent, what=f"span {index} parent_span_id") if parent else "",
        name=str(raw.get("name") or ""),
        span_type=span_type,
        status_code=STATUS_NAMES.get(str(status.get("code", "UNSET")), "UNSET"),
        status_message=str(status.get("message") or ""),
        start_time_ns=timestamp_ns(raw.get("start_time_unix_nano"), what=f"span {index} start_time_unix_nano"),
        end_time_ns=timestamp_ns(end, what=f"span {index} end_time_unix_nano") if end is not None else None,
        inputs=inputs,
        outputs=outputs,
        attributes=rest,
        events=_events(raw.get("events"), time_key="time_unix_nano", what=f"span {index}"),
    )
    return check_span(span, what=f"span {index}")


def _span_from_v2(raw: Any, index: int) -> SpanRecord:
    if not isinstance(raw, dict):
        raise TraceFormatError(f"span {index} is not an object")
    context = raw.get("context") or {}
    if not isinstance(context, dict):
        raise TraceFormatError(f"span {index} context must be an object")
    parent = raw.get("parent_id")
    attributes = raw.get("attributes") or {}
    if not isinstance(attributes, dict):
        raise TraceFormatError(f"span {index} attributes must be an object")
    span_type, inputs, outputs, rest = _split_mlflow_attributes(attributes)
    if "inputs" in raw and inputs is None:
        inputs = raw["inputs"]
    if "outputs" in raw and outputs is None:
        outputs = raw["outputs"]
    status = raw.get("status")
    status = raw.get("status_code") or (status.get("status_code") if isinstance(status, dict) else status) or "UNSET"
    end = raw.get("end_time")
    span = SpanRecord(
        span_id=hex_id(context.get("span_id"), what=f"span {index} context.span_id"),
        parent_id=hex_id(parent, what=f"span {index} parent_id") if parent else "",
        name=str(raw.get("name") or ""),
        span_type=str(raw.get("span_type") or span_type),
        status_code=STATUS_NAMES.get(str(status), "UNSET"),
        status_message=str(raw.get("status_message") or ""),
        start_time_ns=timestamp_ns(raw.get("start_time"), what=f"span {index} start_time"),
        end_time_ns=timestamp_ns(end, what=f"span {index} end_time") if end is not None else None,
        inputs=inputs,
        outputs=outputs,
        attributes=rest,
        events=_events(raw.get("events"), time_key="timestamp", what=f"span {index}"),
    )
    return check_span(span, what=f"span {index}")


def _assessment_value(raw: dict[str, Any]) -> tuple[str, Any, dict[str, Any] | None]:
    if isinstance(raw.get("feedback"), dict):
        feedback = raw["feedback"]
        error = feedback.get("error")
        if error is not None and not isinstance(error, dict):
            raise TraceFormatError("feedback error must be an object")
        return "feedback", feedback.get("value"), error
    if isinstance(raw.get("expectation"), dict):
        expectation = raw["expectation"]
        serialized = expectation.get("serialized_value")
        if isinstance(serialized, dict):
            try:
                return "expectation", orjson.loads(serialized.get("value") or "null"), None
            except orjson.JSONDecodeError:
                raise TraceFormatError("expectation serialized_value is not valid JSON") from None
        return "expectation", expectation.get("value"), None
    raise TraceFormatError("assessment has neither 'feedback' nor 'expectation'")


def parse_assessment(raw: Any, trace_id: str) -> AssessmentRecord:
    if not isinstance(raw, dict):
        raise TraceFormatError("assessment is not an object")
    name = raw.get("assessment_name") or raw.get("name")
    if not isinstance(name, str) or not name:
        raise TraceFormatError("assessment without a name")
    what = f"assessment {name[:80]!r}"
    kind, value, error = _assessment_value(raw)
    check_depth(value, what=f"{what} value", verb="is")
    source = raw.get("source") or {}
    if not isinstance(source, dict):
        raise TraceFormatError(f"{what}: source must be an object")
    created_raw = raw.get("create_time") or raw.get("create_time_ms")
    created = parse_time(created_raw, what=f"{what} create_time")
    updated_raw = raw.get("last_update_time") or raw.get("last_update_time_ms") or created_raw
    assessment_id = raw.get("assessment_id")
    if not assessment_id:
        # Stable id for assessments written without one, so re-imports stay idempotent.
        try:
            fingerprint = orjson.dumps([trace_id, name, source, str(created_raw), value], option=orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError:
            raise TraceFormatError(f"{what}: source is nested too deeply") from None
        assessment_id = "a-" + hashlib.sha1(fingerprint).hexdigest()[:32]
    metadata = raw.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise TraceFormatError(f"{what}: metadata must be an object")
    span_id = raw.get("span_id")
    assessment = AssessmentRecord(
        assessment_id=short_id(str(assessment_id), what=f"{what} assessment_id"),
        name=name,
        kind=kind,
        value=value,
        rationale=str(raw.get("rationale") or ""),
        error=error,
        source_type=str(source.get("source_type") or "SOURCE_TYPE_UNSPECIFIED"),
        source_id=str(source.get("source_id") or ""),
        span_id=hex_id(span_id, what=f"{what} span_id") if span_id else "",
        overrides=short_id(str(raw.get("overrides") or ""), what=f"{what} overrides"),
        valid=raw.get("valid") is not False,
        metadata=metadata,
        create_time=created,
        last_update_time=parse_time(updated_raw, what=f"{what} last_update_time"),
    )
    return check_assessment(assessment, what=what)
