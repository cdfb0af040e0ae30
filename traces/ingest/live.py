"""Live ingest: spans that arrive in pieces, as OTLP exporters send them, stored idempotently.

An exporter sends spans as they end, batched: children usually come before their root, one trace
spans many requests, and a retry resends a batch. Each request is stored in one transaction:

1. every trace the spans belong to gets a row (``INSERT … ON CONFLICT DO NOTHING``; a new trace is
   ``IN_PROGRESS``), and those rows are locked (``SELECT … FOR UPDATE``, in trace-id order, so two
   requests carrying spans of the same trace take turns instead of racing; one statement on PostgreSQL);
2. the spans are inserted ``ON CONFLICT (trace, span_id) DO NOTHING`` (on PostgreSQL one
   ``INSERT … SELECT FROM unnest(…) RETURNING``, with the COPY path's rows), which tells which are new;
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

import orjson
import psycopg
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from traces.completion import traces_completed
from traces.models import Experiment, ExperimentKind, Span, Trace, TraceState

from .otlp import span_from_otlp
from .records import SpanRecord, TraceFormatError
from .store import MODEL_ID_KEY, SPAN_COLUMNS, _json, _span_models, _span_row, model_id_of
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
    completed_pks: list[int] = field(default_factory=list)
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
    """Parse each span on its own (a bad one is refused and counted, the others kept) and group by trace.

    A trace's id is ``tr-<OTel trace id>`` unless a span of it in the request names MLflow's
    ``mlflow.traceRequestId``; then all of its spans in the request take that.
    """
    decoded: list[tuple[int, dict[str, Any], dict[str, Any], str]] = []
    request_ids: dict[str, str] = {}
    for index, item in enumerate(raw_spans):
        result.spans_received += 1
        try:
            if not isinstance(item.raw, dict):
                raise TraceFormatError("is not an object")
            otel_trace_id = hex_id(item.raw.get("trace_id", item.raw.get("traceId")), what="trace id")
            attributes = otlp_attributes(item.raw.get("attributes") or [])
        except TraceFormatError as exc:
            result.reject(_span_message(index, exc))
            continue
        if not request_ids.get(otel_trace_id):
            request_ids[otel_trace_id] = str(decode_json_string(attributes.get(REQUEST_ID_KEY)) or "")
        decoded.append((index, {**item.raw, "attributes": attributes}, item.resource, otel_trace_id))
    by_trace: dict[str, TraceSpans] = {}
    for index, raw, resource, otel_trace_id in decoded:
        try:
            trace_id = short_id(request_ids[otel_trace_id] or f"tr-{otel_trace_id}", what="trace id")
            check_text(trace_id, what="trace id")
            # The one place MLflow's span attributes (type, inputs, outputs) are read, for both encodings.
            span = span_from_otlp(raw, index, decode_strings=True)
        except TraceFormatError as exc:
            result.reject(_span_message(index, exc))
            continue
        group = by_trace.setdefault(trace_id, TraceSpans(trace_id))
        group.spans[span.span_id] = span
        if not span.parent_id:  # what the trace takes when its root arrives
            tags, metadata = _trace_level(raw["attributes"], resource)
            group.tags.update(tags)
            group.metadata.update(metadata)
    return sorted(by_trace.values(), key=lambda group: group.trace_id)


def _span_message(index: int, error: TraceFormatError) -> str:
    message = str(error)
    return message if f"span {index}" in message else f"span {index}: {message}"


def store_live_spans(groups: Sequence[TraceSpans], *, experiment: Experiment, result: LiveResult) -> LiveResult:
    """Store one request's spans (see the module docstring) in one transaction."""
    if not groups:
        return result
    postgresql = connection.vendor == "postgresql"
    with transaction.atomic(), connection.wrap_database_errors:
        lock = _lock_traces_postgresql if postgresql else _lock_traces_orm
        traces = lock(groups, experiment)
        incoming = []
        for group in groups:
            trace = traces[group.trace_id]
            if trace.experiment_id != experiment.pk:
                for _ in group.spans:
                    result.reject(f"trace {trace.trace_id} belongs to another experiment")
            else:
                incoming.append((trace, group))
        if postgresql:
            _store_spans_postgresql(incoming, result)
        else:
            changed = _apply_new_spans(incoming, _insert_spans_orm(incoming), result)
            _update_traces_orm(changed)
        traces_completed(result.completed_pks)
    return result


@dataclass(slots=True)
class LiveTrace:
    """The columns of a locked trace row that arriving spans read and change."""

    pk: int
    trace_id: str
    experiment_id: int
    state: str
    request_time: datetime
    span_count: int
    tags: dict[str, Any]
    trace_metadata: dict[str, Any]
    finished: bool = False  # its root span came with this request: the fields below are to be written
    name: str = ""
    execution_duration_ms: int | None = None
    request_preview: str = ""
    response_preview: str = ""
    model_id: str = ""


LIVE_COLUMNS = "id, trace_id, experiment_id, state, request_time, span_count, tags, trace_metadata"
_LOCK_SQL = f"""
WITH created AS (
    INSERT INTO traces_trace (trace_id, name, state, request_time, request_preview, response_preview,
        client_request_id, model_id, tags, trace_metadata, span_count, experiment_id, created_at, updated_at)
    SELECT v.trace_id, '', 'IN_PROGRESS', v.request_time, '', '', '', '', '{{}}', '{{}}', 0, %b, %b, %b
    FROM unnest(%b::text[], %b::timestamptz[]) AS v(trace_id, request_time)
    ORDER BY v.trace_id
    ON CONFLICT (trace_id) DO NOTHING
    RETURNING {LIVE_COLUMNS}
), existing AS (
    SELECT {LIVE_COLUMNS} FROM traces_trace WHERE trace_id = ANY(%b) ORDER BY trace_id FOR UPDATE
)
SELECT {LIVE_COLUMNS} FROM created UNION ALL SELECT {LIVE_COLUMNS} FROM existing
"""
_RELOCK_SQL = f"SELECT {LIVE_COLUMNS} FROM traces_trace WHERE trace_id = ANY(%b) ORDER BY trace_id FOR UPDATE"


def _first_start(group: TraceSpans) -> datetime:
    return datetime.fromtimestamp(min(span.start_time_ns for span in group.spans.values()) / 1e9, tz=UTC)


def _live_trace(row: Sequence[Any]) -> LiveTrace:
    pk, trace_id, experiment_id, state, request_time, span_count, tags, metadata = row
    tags = orjson.loads(tags) if isinstance(tags, (str, bytes)) else tags
    metadata = orjson.loads(metadata) if isinstance(metadata, (str, bytes)) else metadata
    return LiveTrace(pk, trace_id, experiment_id, state, request_time, span_count, tags or {}, metadata or {})


def _lock_traces_postgresql(groups: Sequence[TraceSpans], experiment: Experiment) -> dict[str, LiveTrace]:
    """Create the missing trace rows and lock all of them, in one statement (usually)."""
    now = timezone.now()
    ids = [group.trace_id for group in groups]
    rows = _execute(_LOCK_SQL, [experiment.pk, now, now, ids, [_first_start(g) for g in groups], ids])
    traces = {row[1]: _live_trace(row) for row in rows}
    missing = [trace_id for trace_id in ids if trace_id not in traces]
    if missing:  # created by a request that committed after this statement's snapshot: lock them now
        traces.update({row[1]: _live_trace(row) for row in _execute(_RELOCK_SQL, [missing])})
    return traces


def _execute(sql: str, params: Sequence[Any], *, fetch: bool = True) -> list[tuple[Any, ...]]:
    """Run ``sql`` with binary parameters bound by the server (``%b``): Django's client-side binding would
    quote every JSON string of a span array in Python, the slowest part of a request."""
    connection.ensure_connection()
    with psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall() if fetch else []


def _lock_traces_orm(groups: Sequence[TraceSpans], experiment: Experiment) -> dict[str, LiveTrace]:
    """The same with the ORM (SQLite, whose writers take turns on the whole database anyway)."""
    now = timezone.now()
    placeholders = [
        Trace(
            trace_id=g.trace_id,
            experiment=experiment,
            state=TraceState.IN_PROGRESS,
            request_time=_first_start(g),
            tags={},
            trace_metadata={},
            created_at=now,
            updated_at=now,
        )
        for g in groups
    ]
    Trace.objects.bulk_create(placeholders, ignore_conflicts=True)
    rows = (
        Trace.objects.select_for_update()
        .filter(trace_id__in=[g.trace_id for g in groups])
        .order_by("trace_id")
        .values_list("id", "trace_id", "experiment_id", "state", "request_time", "span_count", "tags", "trace_metadata")
    )
    return {row[1]: _live_trace(row) for row in rows}


_STORE_SPANS_SQL = f"""
WITH new AS (
    INSERT INTO traces_span ({", ".join(SPAN_COLUMNS)})
    SELECT v.trace_id, v.span_id, v.parent_id, v.name, v.span_type, v.status_code, v.status_message,
        v.start_time_ns, v.end_time_ns, v.inputs::jsonb, v.outputs::jsonb, v.attributes::jsonb, v.events::jsonb
    FROM unnest(%b::bigint[], %b::text[], %b::text[], %b::text[], %b::text[], %b::text[], %b::text[], %b::bigint[],
        %b::bigint[], %b::text[], %b::text[], %b::text[], %b::text[])
        AS v({", ".join(SPAN_COLUMNS)})
    ON CONFLICT (trace_id, span_id) DO NOTHING
    RETURNING trace_id, parent_id, start_time_ns
), counts AS (
    SELECT trace_id, count(*) AS n, bool_or(parent_id = '') AS root_new, min(start_time_ns) AS first_start
    FROM new GROUP BY trace_id
), roots AS (
    SELECT * FROM unnest(%b::bigint[], %b::text[], %b::timestamptz[], %b::bigint[], %b::text[], %b::text[],
        %b::text[], %b::text[], %b::text[])
        AS r(id, state, request_time, execution_duration_ms, name, request_preview, response_preview, tags,
             trace_metadata)
)
UPDATE traces_trace AS t SET
    span_count = t.span_count + c.n,
    updated_at = %b,
    request_time = CASE WHEN c.root_new THEN r.request_time
        WHEN t.state = 'IN_PROGRESS' THEN LEAST(t.request_time, to_timestamp(c.first_start / 1e9))
        ELSE t.request_time END,
    state = CASE WHEN c.root_new THEN r.state ELSE t.state END,
    execution_duration_ms = CASE WHEN c.root_new THEN r.execution_duration_ms ELSE t.execution_duration_ms END,
    name = CASE WHEN c.root_new
        THEN left(coalesce(nullif((t.tags || r.tags::jsonb) ->> '{TRACE_NAME_TAG}', ''), r.name), 255)
        ELSE t.name END,
    request_preview = CASE WHEN c.root_new THEN r.request_preview ELSE t.request_preview END,
    response_preview = CASE WHEN c.root_new THEN r.response_preview ELSE t.response_preview END,
    tags = CASE WHEN c.root_new THEN t.tags || r.tags::jsonb ELSE t.tags END,
    trace_metadata = CASE WHEN c.root_new THEN t.trace_metadata || r.trace_metadata::jsonb ELSE t.trace_metadata END,
    model_id = CASE WHEN c.root_new
        THEN left(coalesce((t.trace_metadata || r.trace_metadata::jsonb) ->> '{MODEL_ID_KEY}', ''), 255)
        ELSE t.model_id END
FROM counts AS c LEFT JOIN roots AS r ON r.id = c.trace_id
WHERE t.id = c.trace_id
RETURNING t.id, c.n, c.root_new, t.span_count
"""


def _store_spans_postgresql(incoming: list[tuple[LiveTrace, TraceSpans]], result: LiveResult) -> None:
    """Insert the new spans and update their traces in one statement: ``INSERT … ON CONFLICT DO NOTHING
    RETURNING`` says which spans are new, and the ``UPDATE`` counts them in (``span_count + n``, on the
    row's latest version) and finishes the traces whose root is among them. The span rows are the COPY
    path's own (:func:`store._span_row`); one round trip beats COPY into a temporary table (three)."""
    rows = [_span_row(trace.pk, span) for trace, group in incoming for span in group.spans.values()]
    if not rows:
        return
    finished = [(trace, root, group) for trace, group in incoming if (root := group.root) is not None]
    root_columns = [
        [trace.pk for trace, _, _ in finished],
        [_root_state(root) for _, root, _ in finished],
        [datetime.fromtimestamp(root.start_time_ns / 1e9, tz=UTC) for _, root, _ in finished],
        [_root_duration_ms(root) for _, root, _ in finished],
        [root.name[:255] for _, root, _ in finished],
        [_preview(root.inputs) for _, root, _ in finished],
        [_preview(root.outputs) for _, root, _ in finished],
        [_json(group.tags) for _, _, group in finished],
        [_json(group.metadata) for _, _, group in finished],
    ]
    span_columns = [list(column) for column in zip(*rows, strict=True)]
    for pk, new, root_new, span_count in _execute(_STORE_SPANS_SQL, [*span_columns, *root_columns, timezone.now()]):
        result.spans_stored += new
        result.traces_created += span_count == new
        result.traces_completed += bool(root_new)
        if root_new:
            result.completed_pks.append(pk)


def _root_state(root: SpanRecord) -> str:
    if root.end_time_ns is None:
        return TraceState.IN_PROGRESS
    return TraceState.ERROR if root.status_code == "ERROR" else TraceState.OK


def _root_duration_ms(root: SpanRecord) -> int | None:
    return None if root.end_time_ns is None else max(0, root.end_time_ns - root.start_time_ns) // 1_000_000


def _preview(value: Any) -> str:
    return preview(value).replace("\x00", "\ufffd")


def _insert_spans_orm(incoming: list[tuple[LiveTrace, TraceSpans]]) -> set[tuple[int, str]]:
    keys = {(trace.pk, span_id) for trace, group in incoming for span_id in group.spans}
    if not keys:
        return set()
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


def _apply_new_spans(
    incoming: list[tuple[LiveTrace, TraceSpans]], new_spans: set[tuple[int, str]], result: LiveResult
) -> list[LiveTrace]:
    """Count the new spans into each trace and finish the traces whose root arrived; the traces to write."""
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
            result.completed_pks.append(trace.pk)
        elif trace.state == TraceState.IN_PROGRESS:
            start = min(span.start_time_ns for span in new)
            trace.request_time = min(trace.request_time, datetime.fromtimestamp(start / 1e9, tz=UTC))
        changed.append(trace)
    return changed


def _update_traces_orm(changed: list[LiveTrace]) -> None:
    now = timezone.now()
    for trace in changed:
        fields: dict[str, Any] = {"span_count": trace.span_count, "request_time": trace.request_time, "updated_at": now}
        if trace.finished:
            fields.update(
                state=trace.state,
                execution_duration_ms=trace.execution_duration_ms,
                name=trace.name,
                request_preview=trace.request_preview,
                response_preview=trace.response_preview,
                tags=trace.tags,
                trace_metadata=trace.trace_metadata,
                model_id=trace.model_id,
            )
        Trace.objects.filter(pk=trace.pk).update(**fields)


def _finish_from_root(trace: LiveTrace, root: SpanRecord, group: TraceSpans) -> None:
    trace.finished = True
    trace.tags = {**(trace.tags or {}), **group.tags}
    trace.trace_metadata = {**(trace.trace_metadata or {}), **group.metadata}
    trace.model_id = model_id_of(trace.trace_metadata)
    trace.name = (trace.tags.get(TRACE_NAME_TAG) or root.name)[:255]
    trace.request_time = datetime.fromtimestamp(root.start_time_ns / 1e9, tz=UTC)
    trace.state, trace.execution_duration_ms = _root_state(root), _root_duration_ms(root)
    trace.request_preview, trace.response_preview = _preview(root.inputs), _preview(root.outputs)


def experiment_for_header(value: str, *, may_create: bool) -> Experiment | None:
    """The trace experiment named by ``x-mlflow-experiment-id``: its MLflow id, our id, or its name.

    An unknown name is created when ``may_create`` (admins); otherwise ``None``. Labeling sessions'
    experiments of frozen copies never receive spans.
    """
    is_id = value.isascii() and value.isdigit() and len(value) < 19
    match = Q(mlflow_experiment_id=value) | Q(name=value) | (Q(pk=int(value)) if is_id else Q(pk__in=[]))
    candidates = list(Experiment.objects.filter(match, kind=ExperimentKind.TRACES).order_by("pk")[:10])
    found = (
        next((e for e in candidates if e.mlflow_experiment_id == value), None)
        or next((e for e in candidates if is_id and e.pk == int(value)), None)
        or next((e for e in candidates if e.name == value), None)
    )
    # Digits are an id, never a new name: a mistyped id must not make an experiment.
    if found is None and may_create and not is_id and not Experiment.objects.filter(name=value).exists():
        found, _ = Experiment.objects.get_or_create(name=value[:255], defaults={"kind": ExperimentKind.TRACES})
    return found
