"""Plain, validated records that every ingest format is parsed into before anything is stored."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class TraceFormatError(ValueError):
    """Input that is not a trace we can read; the message names the problem for the user."""


@dataclass(slots=True)
class SpanRecord:
    span_id: str
    parent_id: str
    name: str
    span_type: str
    status_code: str
    status_message: str
    start_time_ns: int
    end_time_ns: int | None
    inputs: Any
    outputs: Any
    attributes: dict[str, Any]
    events: list[dict[str, Any]]


@dataclass(slots=True)
class AssessmentRecord:
    assessment_id: str
    name: str
    kind: str  # "feedback" | "expectation"
    value: Any
    rationale: str
    error: dict[str, Any] | None
    source_type: str
    source_id: str
    span_id: str
    overrides: str
    valid: bool
    metadata: dict[str, Any]
    create_time: datetime
    last_update_time: datetime


@dataclass(slots=True)
class TraceRecord:
    trace_id: str
    experiment_id: str
    name: str
    state: str
    request_time: datetime
    execution_duration_ms: int | None
    request_preview: str
    response_preview: str
    client_request_id: str
    tags: dict[str, str]
    trace_metadata: dict[str, str]
    spans: list[SpanRecord] = field(default_factory=list)
    assessments: list[AssessmentRecord] = field(default_factory=list)
    # What the importer changed to make the trace showable (e.g. a parent loop broken); kept on the trace.
    warnings: list[str] = field(default_factory=list)
