"""Live ingest: spans that arrive in pieces, as OTLP exporters send them, stored idempotently.

An exporter sends spans as they end, batched: children usually come before their root, one trace
spans many requests, and a retry resends a batch. Each request is stored in one transaction:

1. every trace the spans belong to gets a row (``INSERT … ON CONFLICT DO NOTHING``; a new trace is
   ``IN_PROGRESS``), and those rows are locked (``SELECT … FOR UPDATE``, in trace-id order, so two
   requests carrying spans of the same trace take turns instead of racing);
2. the spans are inserted ``ON CONFLICT (trace, span_id) DO NOTHING`` (on PostgreSQL through ``COPY``
   into a temporary table), which tells which of them are new;
3. each trace's ``span_count`` grows by its new spans, and when the root span (no parent) is among
   them the trace takes its state, request time, duration, name and previews from it, with the trace
   tags and metadata MLflow's exporter puts on the root span.

Nothing is stored twice and nothing is lost, whatever the order and however often a span comes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from traces.models import Experiment, ExperimentKind, Span, Trace, TraceState

from .otlp import span_from_otlp
from .records import SpanRecord, TraceFormatError
from .store import SPAN_COLUMNS, _span_models, _span_row, model_id_of
from .validation import check_text
from .values import decode_json_string, hex_id, otlp_attributes, preview, short_id

REQUEST_ID_KEY = "mlflow.traceRequestId"
TRACE_TAG_PREFIX = "mlflow.traceTag."
TRACE_NAME_TAG = "mlflow.traceName"
# Root-span attributes that are trace metadata: MLflow copies the session and user ids to the OTel
# semantic-convention keys on export; other exporters may send MLflow's own metadata keys.
METADATA_ATTRIBUTES = {
    "session.id": "mlflow.trace.session",
    "gen_ai.conversation.id": "mlflow.trace.session",
    "user.id": "mlflow.trace.user",
    "mlflow.trace.session": "mlflow.trace.session",
    "mlflow.trace.user": "mlflow.trace.user",
    "mlflow.modelId": "mlflow.modelId",
}
MAX_REJECTION_MESSAGES = 3
TEMP_TABLE = "otlp_incoming_span"


@dataclass(slots=True)
class TraceSpans:
    """The spans of one trace that came in one request, and what they say about the trace."""

    trace_id: str
    spans: dict[str, SpanRecord] = field(default_factory=dict)  # by span id: a span sent twice is one
    tags: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def root(self) -> SpanRecord | None:
        return next((span for span in self.spans.values() if not span.parent_id), None)


@dataclass(slots=True)
class LiveResult:
    spans_received: int = 0
    spans_stored: int = 0  # new spans; the rest of the received ones were already there (retries)
    traces_created: int = 0
    traces_completed: int = 0  # traces whose root span arrived with this request
    rejected: list[str] = field(default_factory=list)  # one message per refused span

    def reject(self, message: str) -> None:
        self.rejected.append(message)

    @property
    def rejection_message(self) -> str:
        shown = "; ".join(self.rejected[:MAX_REJECTION_MESSAGES])
        more = len(self.rejected) - MAX_REJECTION_MESSAGES
        return shown + (f"; … and {more} more" if more > 0 else "")


def _clean(value: Any) -> str:
    """A tag or metadata value as text the database takes (jsonb refuses NUL)."""
    return (value if isinstance(value, str) else str(value)).replace("\x00", "\ufffd")


def _trace_level(attributes: dict[str, Any], resource: dict[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """Tags and metadata a root span carries: ``mlflow.traceTag.*``, session/user/model ids, resource."""
    tags = {
        _clean(key): _clean(value)
        for key, value in resource.items()
        if not key.startswith(("telemetry.sdk.", "mlflow."))
    }
    metadata: dict[str, str] = {}
    for key, value in attributes.items():
        if key.startswith(TRACE_TAG_PREFIX) and value is not None:
            tags[_clean(key.removeprefix(TRACE_TAG_PREFIX))] = _clean(value)
        elif key in METADATA_ATTRIBUTES and value not in (None, ""):
            metadata.setdefault(METADATA_ATTRIBUTES[key], _clean(decode_json_string(value)))
    return tags, metadata


def group_spans(raw_spans: Sequence[Any], result: LiveResult) -> list[TraceSpans]:
    """Parse each span on its own (a bad one is refused and counted, the others kept) and group by trace."""
    by_trace: dict[str, TraceSpans] = {}
    request_ids: dict[str, str] = {}
    for index, item in enumerate(raw_spans):
        raw, resource = item.raw, item.resource
        result.spans_received += 1
        try:
            if not isinstance(raw, dict):
                raise TraceFormatError("is not an object")
            otel_trace_id = hex_id(raw.get("trace_id", raw.get("traceId")), what="trace id")
            attributes = otlp_attributes(raw.get("attributes") or [])
            raw = {**raw, "attributes": attributes}
            request_id = request_ids.get(otel_trace_id) or str(decode_json_string(attributes.get(REQUEST_ID_KEY)) or "")
            trace_id = short_id(request_id or f"tr-{otel_trace_id}", what="trace id")
            check_text(trace_id, what="trace id")
            # The one place MLflow's span attributes (type, inputs, outputs) are read, for both encodings.
            span = span_from_otlp(raw, index, decode_strings=True)
        except TraceFormatError as exc:
            message = str(exc)
            result.reject(message if f"span {index}" in message else f"span {index}: {message}")
            continue
        request_ids.setdefault(otel_trace_id, request_id)
        group = by_trace.setdefault(trace_id, TraceSpans(trace_id))
        group.spans[span.span_id] = span
        if not span.parent_id:
            tags, metadata = _trace_level(attributes, resource)
            group.tags.update(tags)
            group.metadata.update(metadata)
        else:
            for key, value in _trace_level({}, resource)[0].items():
                group.tags.setdefault(key, value)
    return sorted(by_trace.values(), key=lambda group: group.trace_id)


def store_live_spans(groups: Sequence[TraceSpans], *, experiment: Experiment, result: LiveResult) -> LiveResult:
    """Store one request's spans (see the module docstring) in one transaction."""
    if not groups:
        return result
    with transaction.atomic():
        traces = _lock_traces(groups, experiment, result)
        incoming = [(traces[g.trace_id], g) for g in groups if g.trace_id in traces]
        new_spans = _insert_spans(incoming)
        _update_traces(incoming, new_spans, result)
    return result


def _placeholder(group: TraceSpans, experiment: Experiment, now: datetime) -> Trace:
    start = min(span.start_time_ns for span in group.spans.values())
    return Trace(
        trace_id=group.trace_id,
        experiment=experiment,
        state=TraceState.IN_PROGRESS,
        request_time=datetime.fromtimestamp(start / 1e9, tz=UTC),
        tags={},
        trace_metadata={},
        span_count=0,
        created_at=now,
        updated_at=now,
    )


def _lock_traces(groups: Sequence[TraceSpans], experiment: Experiment, result: LiveResult) -> dict[str, Trace]:
    """The (new or existing) trace rows of ``groups``, locked; a trace of another experiment is refused."""
    now = timezone.now()
    ids = [group.trace_id for group in groups]
    Trace.objects.bulk_create([_placeholder(g, experiment, now) for g in groups], ignore_conflicts=True)
    rows = (
        Trace.objects.select_for_update()
        .filter(trace_id__in=ids)
        .order_by("trace_id")
        .only("id", "trace_id", "experiment_id", "state", "request_time", "span_count", "tags", "trace_metadata")
    )
    by_id = {group.trace_id: group for group in groups}
    traces = {}
    for trace in rows:
        if trace.experiment_id != experiment.pk:
            for _ in by_id[trace.trace_id].spans:
                result.reject(f"trace {trace.trace_id} belongs to another experiment")
            continue
        traces[trace.trace_id] = trace
    return traces


def _insert_spans(incoming: list[tuple[Trace, TraceSpans]]) -> set[tuple[int, str]]:
    """Insert the spans that are not stored yet; returns the ``(trace pk, span id)`` of the new ones."""
    if not incoming:
        return set()
    if connection.vendor == "postgresql":
        with connection.wrap_database_errors:
            return _insert_spans_postgresql(incoming)
    keys = {(trace.pk, span_id) for trace, group in incoming for span_id in group.spans}
    existing = set(
        Span.objects.filter(
            trace_id__in={trace.pk for trace, _ in incoming}, span_id__in={span_id for _, span_id in keys}
        ).values_list("trace_id", "span_id")
    )
    models = [
        model
        for trace, group in incoming
        for model in _span_models([_Record(trace.trace_id, list(group.spans.values()))], {trace.trace_id: trace.pk})
        if (trace.pk, model.span_id) not in existing
    ]
    Span.objects.bulk_create(models, batch_size=500, ignore_conflicts=True)
    return keys - existing


@dataclass(slots=True)
class _Record:
    """What :func:`store._span_models` reads of a trace record."""

    trace_id: str
    spans: list[SpanRecord]


def _insert_spans_postgresql(incoming: list[tuple[Trace, TraceSpans]]) -> set[tuple[int, str]]:
    columns = ", ".join(SPAN_COLUMNS)
    with connection.cursor() as cursor:
        raw = cursor.cursor
        # One temporary table per connection, emptied at commit (and here, inside a test's transaction).
        raw.execute(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {TEMP_TABLE} (trace_id bigint, span_id varchar(32), "
            "parent_id varchar(32), name varchar(500), span_type varchar(40), status_code varchar(20), "
            "status_message text, start_time_ns bigint, end_time_ns bigint, inputs jsonb, outputs jsonb, "
            f"attributes jsonb, events jsonb) ON COMMIT DELETE ROWS; DELETE FROM {TEMP_TABLE}"
        )
        with raw.copy(f"COPY {TEMP_TABLE} ({columns}) FROM STDIN") as copy:
            for trace, group in incoming:
                for span in group.spans.values():
                    copy.write_row(_span_row(trace.pk, span))
        raw.execute(
            f"INSERT INTO traces_span ({columns}) SELECT {columns} FROM {TEMP_TABLE} "
            "ON CONFLICT (trace_id, span_id) DO NOTHING RETURNING trace_id, span_id"
        )
        return {(trace_pk, span_id) for trace_pk, span_id in raw.fetchall()}


def _update_traces(
    incoming: list[tuple[Trace, TraceSpans]], new_spans: set[tuple[int, str]], result: LiveResult
) -> None:
    now = timezone.now()
    changed = []
    for trace, group in incoming:
        new = [span for span_id, span in group.spans.items() if (trace.pk, span_id) in new_spans]
        if not new:
            continue
        if trace.span_count == 0:
            result.traces_created += 1
        result.spans_stored += len(new)
        trace.span_count += len(new)
        root = next((span for span in new if not span.parent_id), None)
        if root is not None:
            _finish_from_root(trace, root, group)
            result.traces_completed += 1
        elif trace.state == TraceState.IN_PROGRESS:
            start = min(span.start_time_ns for span in new)
            trace.request_time = min(trace.request_time, datetime.fromtimestamp(start / 1e9, tz=UTC))
        trace.updated_at = now
        changed.append(trace)
    if changed:
        fields = [
            "span_count",
            "state",
            "request_time",
            "execution_duration_ms",
            "name",
            "request_preview",
            "response_preview",
            "tags",
            "trace_metadata",
            "model_id",
            "updated_at",
        ]
        Trace.objects.bulk_update(changed, fields, batch_size=500)


def _finish_from_root(trace: Trace, root: SpanRecord, group: TraceSpans) -> None:
    trace.tags = {**(trace.tags or {}), **group.tags}
    trace.trace_metadata = {**(trace.trace_metadata or {}), **group.metadata}
    trace.model_id = model_id_of(trace.trace_metadata)
    trace.name = (trace.tags.get(TRACE_NAME_TAG) or root.name)[:255]
    trace.request_time = datetime.fromtimestamp(root.start_time_ns / 1e9, tz=UTC)
    if root.end_time_ns is None:
        trace.state, trace.execution_duration_ms = TraceState.IN_PROGRESS, None
    else:
        trace.state = TraceState.ERROR if root.status_code == "ERROR" else TraceState.OK
        trace.execution_duration_ms = max(0, root.end_time_ns - root.start_time_ns) // 1_000_000
    trace.request_preview = preview(root.inputs).replace("\x00", "\ufffd")
    trace.response_preview = preview(root.outputs).replace("\x00", "\ufffd")


def experiment_for_header(value: str, *, may_create: bool) -> Experiment | None:
    """The trace experiment named by ``x-mlflow-experiment-id``: its MLflow id, our id, or its name.

    An unknown name is created when ``may_create`` (admins); otherwise ``None``. Labeling sessions'
    experiments of frozen copies never receive spans.
    """
    experiments = Experiment.objects.filter(kind=ExperimentKind.TRACES)
    found = experiments.filter(mlflow_experiment_id=value).order_by("pk").first()
    if found is None and value.isdigit() and value.isascii() and len(value) < 19:
        found = experiments.filter(pk=int(value)).first()
    if found is None:
        found = experiments.filter(name=value).first()
    # Digits are an id, never a new name: a mistyped id must not make an experiment.
    if found is None and may_create and not value.isdigit() and not Experiment.objects.filter(name=value).exists():
        found, _ = Experiment.objects.get_or_create(name=value[:255], defaults={"kind": ExperimentKind.TRACES})
    return found
