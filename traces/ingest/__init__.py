"""Trace ingest: parse MLflow/OTLP trace JSON into records, then store them idempotently.

The ``import_traces`` command and the HTTP ingest endpoints both go through
:func:`parse_bytes` / :func:`read_trace_file` and :func:`store_traces`.
"""

from .files import expand_paths, parse_bytes, read_trace_file
from .mlflow_json import parse_document
from .records import AssessmentRecord, SpanRecord, TraceFormatError, TraceRecord
from .store import StoreResult, resolve_experiment, store_traces

__all__ = [
    "AssessmentRecord",
    "SpanRecord",
    "StoreResult",
    "TraceFormatError",
    "TraceRecord",
    "expand_paths",
    "parse_bytes",
    "parse_document",
    "read_trace_file",
    "resolve_experiment",
    "store_traces",
]
