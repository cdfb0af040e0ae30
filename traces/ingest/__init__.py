"""Trace ingest: parse MLflow/OTLP trace JSON into records, then store them idempotently.

The ``import_traces`` command goes through :func:`import_trace_file` (JSON Lines streamed in
batches, one transaction per file); the HTTP ingest endpoints through :func:`parse_bytes` and
:func:`store_traces`. Every format's parser ends in the checks of :mod:`.validation` and breaks
span parent loops with :func:`.span_cycles.break_parent_cycles`. ``POST /v1/traces`` (OTLP/HTTP)
decodes requests with :mod:`.otlp_http` and stores spans as they arrive, in pieces, with
:mod:`.live`.
A Delta table of archived traces (``archive_traces``) is read by :mod:`.delta_table`.
"""

from .delta_table import import_delta_table, is_delta_table, iter_delta_batches
from .files import expand_paths, import_trace_file, iter_trace_batches, parse_bytes, read_trace_file
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
    "import_delta_table",
    "import_trace_file",
    "is_delta_table",
    "iter_delta_batches",
    "iter_trace_batches",
    "parse_bytes",
    "parse_document",
    "read_trace_file",
    "resolve_experiment",
    "store_traces",
]
