"""A stored trace in the layout of MLflow 3's ``Trace.to_dict()``, so ``mlflow.entities.Trace.from_dict`` reads it.

``{"info": TraceInfo.to_dict(), "data": {"spans": [Span.to_dict(), ...]}}``: span and trace ids
base64-encoded as OpenTelemetry bytes, span attributes as JSON strings (``mlflow.spanType``,
``mlflow.spanInputs``, ``mlflow.spanOutputs``, ``mlflow.traceRequestId``…), status codes
``STATUS_CODE_*``, and the trace's assessments in the info. Pure functions over model rows; the
loader reads a batch of traces in three queries.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections import defaultdict
from collections.abc import Collection, Iterable
from datetime import UTC, datetime
from typing import Any

import orjson

from .models import Assessment, Experiment, Span, Trace

HEX_TRACE_ID = re.compile(r"(?:tr-)?([0-9a-f]{32})")
HEX_SPAN_ID = re.compile(r"[0-9a-f]{16}")
STATUS_CODES = {"OK": "STATUS_CODE_OK", "ERROR": "STATUS_CODE_ERROR"}


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def otel_trace_id(trace_id: str) -> str:
    """The 16-byte OpenTelemetry id: the hex of ``tr-<32 hex>``, else a stable hash of the id."""
    match = HEX_TRACE_ID.fullmatch(trace_id)
    raw = bytes.fromhex(match.group(1)) if match else hashlib.md5(trace_id.encode()).digest()
    return _b64(raw)


def otel_span_id(span_id: str) -> str:
    raw = bytes.fromhex(span_id) if HEX_SPAN_ID.fullmatch(span_id) else hashlib.md5(span_id.encode()).digest()[:8]
    return _b64(raw)


def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def _utc_iso(moment: datetime) -> str:
    """MLflow's timestamp text: UTC with milliseconds and a ``Z``."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def span_dict(span: Span, *, trace_id: str, otel_id: str) -> dict[str, Any]:
    attributes = {key: _json(value) for key, value in (span.attributes or {}).items()}
    attributes["mlflow.traceRequestId"] = _json(trace_id)
    attributes["mlflow.spanType"] = _json(span.span_type)
    if span.inputs is not None:
        attributes["mlflow.spanInputs"] = _json(span.inputs)
    if span.outputs is not None:
        attributes["mlflow.spanOutputs"] = _json(span.outputs)
    return {
        "trace_id": otel_id,
        "span_id": otel_span_id(span.span_id),
        "parent_span_id": otel_span_id(span.parent_id) if span.parent_id else None,
        "name": span.name,
        "start_time_unix_nano": span.start_time_ns,
        "end_time_unix_nano": span.end_time_ns,
        "events": [
            {
                "name": event.get("name", ""),
                "time_unix_nano": int(event.get("time_unix_nano") or 0),
                "attributes": event.get("attributes") or {},
            }
            for event in span.events or []
        ],
        "status": {"code": STATUS_CODES.get(span.status_code, "STATUS_CODE_UNSET"), "message": span.status_message},
        "attributes": attributes,
    }


def assessment_dict(assessment: Assessment, *, trace_id: str) -> dict[str, Any]:
    result: dict[str, Any] = {
        "assessment_id": assessment.assessment_id,
        "assessment_name": assessment.name,
        "trace_id": trace_id,
        "source": {"source_type": assessment.source_type, "source_id": assessment.source_id},
        "create_time": _utc_iso(assessment.create_time),
        "last_update_time": _utc_iso(assessment.last_update_time),
        "valid": assessment.valid,
    }
    if assessment.span_id:
        result["span_id"] = assessment.span_id
    if assessment.kind == "expectation":
        result["expectation"] = {"value": assessment.value}
    else:
        feedback: dict[str, Any] = {"value": assessment.value}
        if assessment.error:
            feedback["error"] = assessment.error
        result["feedback"] = feedback
    if assessment.rationale:
        result["rationale"] = assessment.rationale
    if assessment.metadata:
        result["metadata"] = {key: str(value) for key, value in assessment.metadata.items()}
    if assessment.overrides:
        result["overrides"] = assessment.overrides
    return result


def experiment_id_of(trace: Trace) -> str:
    """The MLflow experiment the trace came from; else an id no MLflow experiment has (MLflow's are numbers):
    ``mlflow.genai.evaluate`` takes a trace "from its own experiment" as already stored and logs to it."""
    return mlflow_experiment_id(trace.experiment)


def mlflow_experiment_id(experiment: Experiment) -> str:
    """What trace infos show as an experiment's ``experiment_id`` (see ``experiment_id_of``)."""
    return experiment.mlflow_experiment_id or f"reviewapp-{experiment.pk}"


def trace_info_dict(trace: Trace, assessments: Iterable[Assessment] = ()) -> dict[str, Any]:
    """``TraceInfo.to_dict()`` of MLflow 3 for one stored trace (``trace.experiment`` should be loaded)."""
    info: dict[str, Any] = {
        "trace_id": trace.trace_id,
        "trace_location": {
            "type": "MLFLOW_EXPERIMENT",
            "mlflow_experiment": {"experiment_id": experiment_id_of(trace)},
        },
        "request_time": _utc_iso(trace.request_time),
        "state": trace.state,
        "trace_metadata": {key: str(value) for key, value in (trace.trace_metadata or {}).items()},
        "tags": {key: str(value) for key, value in (trace.tags or {}).items()},
        "request_preview": trace.request_preview,
        "response_preview": trace.response_preview,
        "assessments": [assessment_dict(a, trace_id=trace.trace_id) for a in assessments],
    }
    if trace.execution_duration_ms is not None:
        info["execution_duration_ms"] = trace.execution_duration_ms
    if trace.client_request_id:
        info["client_request_id"] = trace.client_request_id
    return info


def trace_dict(trace: Trace, spans: Iterable[Span], assessments: Iterable[Assessment] = ()) -> dict[str, Any]:
    """``Trace.to_dict()`` of MLflow 3 for one stored trace (``trace.experiment`` should be loaded)."""
    otel_id = otel_trace_id(trace.trace_id)
    info = trace_info_dict(trace, assessments)
    # Root first: MLflow takes the first span without a parent as the root, and copy_trace_to_experiment
    # (mlflow.genai.evaluate cloning a trace) needs it before its children, even one that started earlier.
    ordered = sorted(spans, key=lambda s: (bool(s.parent_id), s.start_time_ns, s.span_id))
    rendered = [span_dict(s, trace_id=trace.trace_id, otel_id=otel_id) for s in ordered]
    if ordered and ordered[0].parent_id:
        # No span without a parent (its root was never exported): MLflow would find no root at all, so
        # the first span whose parent is missing becomes it, as the trace page shows the trace.
        ids = {s.span_id for s in ordered}
        orphan = next((i for i, s in enumerate(ordered) if s.parent_id not in ids), None)
        if orphan is not None:
            rendered.insert(0, {**rendered.pop(orphan), "parent_span_id": None})
    return {"info": info, "data": {"spans": rendered}}


def trace_dicts(trace_pks: Collection[int]) -> dict[int, dict[str, Any]]:
    """``trace_dict`` for many traces in three queries (traces, spans, assessments), keyed by trace pk."""
    traces = Trace.objects.filter(pk__in=trace_pks).select_related("experiment")
    spans: dict[int, list[Span]] = defaultdict(list)
    for span in Span.objects.filter(trace_id__in=trace_pks):
        spans[span.trace_id].append(span)
    assessments: dict[int, list[Assessment]] = defaultdict(list)
    for assessment in Assessment.objects.filter(trace_id__in=trace_pks).order_by("create_time", "id"):
        assessments[assessment.trace_id].append(assessment)
    return {t.pk: trace_dict(t, spans[t.pk], assessments[t.pk]) for t in traces}
