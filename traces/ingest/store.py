"""Store parsed traces: idempotent on ``trace_id``, one transaction per call.

PostgreSQL takes spans through ``COPY`` (an order of magnitude faster than INSERTs for
big imports); other databases use ``bulk_create``. Both paths write the same rows.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from django.db import connection, transaction
from django.utils import timezone

from traces.completion import traces_completed
from traces.models import Assessment, Experiment, Span, Trace

from .records import AssessmentRecord, SpanRecord, TraceRecord

DEFAULT_EXPERIMENT_NAME = "Default"
MODEL_ID_KEY = "mlflow.modelId"
TRACE_FIELDS = [
    "name",
    "state",
    "request_time",
    "execution_duration_ms",
    "request_preview",
    "response_preview",
    "client_request_id",
    "model_id",
    "tags",
    "trace_metadata",
    "span_count",
    "experiment_id",
]
SPAN_COLUMNS = [
    "trace_id",
    "span_id",
    "parent_id",
    "name",
    "span_type",
    "status_code",
    "status_message",
    "start_time_ns",
    "end_time_ns",
    "inputs",
    "outputs",
    "attributes",
    "events",
]
TRACE_COLUMNS = ["trace_id", *TRACE_FIELDS, "created_at", "updated_at"]
ASSESSMENT_UPDATE_FIELDS = [
    "trace",
    "name",
    "kind",
    "value",
    "rationale",
    "error",
    "source_type",
    "source_id",
    "span_id",
    "overrides",
    "valid",
    "metadata",
    "create_time",
    "last_update_time",
]


@dataclass(slots=True)
class StoreResult:
    created: int = 0
    updated: int = 0
    spans: int = 0
    warnings: list[tuple[str, str]] = field(default_factory=list)  # (trace_id, what the importer changed)

    def add(self, other: StoreResult) -> None:
        self.created += other.created
        self.updated += other.updated
        self.spans += other.spans
        self.warnings.extend(other.warnings)


def resolve_experiment(name: str) -> Experiment:
    experiment, _ = Experiment.objects.get_or_create(name=name)
    return experiment


def _experiment_for(record: TraceRecord, cache: dict[str, Experiment]) -> Experiment:
    key = record.experiment_id
    if key not in cache:
        cache[key] = _experiment_for_mlflow_id(key) if key else resolve_experiment(DEFAULT_EXPERIMENT_NAME)
    return cache[key]


def _experiment_for_mlflow_id(mlflow_id: str) -> Experiment:
    """The experiment holding MLflow experiment ``mlflow_id``; its default name may already be taken."""
    found = Experiment.objects.filter(mlflow_experiment_id=mlflow_id, kind="traces").first()
    if found is not None:
        return found
    name, suffix = f"MLflow experiment {mlflow_id}", 1
    while Experiment.objects.filter(name=name).exists():
        suffix += 1
        name = f"MLflow experiment {mlflow_id} ({suffix})"
    return Experiment.objects.create(name=name, mlflow_experiment_id=mlflow_id)


def experiment_for_mlflow(mlflow_id: str, name: str) -> Experiment:
    """The experiment for MLflow experiment ``mlflow_id``, created with its MLflow name (suffixed if taken)."""
    with transaction.atomic():
        found = Experiment.objects.filter(mlflow_experiment_id=mlflow_id, kind="traces").first()
        if found is not None:
            return found
        name = name.strip()[:200] or f"MLflow experiment {mlflow_id}"
        candidate, suffix = name, 1
        while Experiment.objects.filter(name=candidate).exists():
            suffix += 1
            candidate = f"{name} (MLflow {mlflow_id})" if suffix == 2 else f"{name} (MLflow {mlflow_id}, {suffix})"
        return Experiment.objects.create(name=candidate, mlflow_experiment_id=mlflow_id)


def store_traces(records: Sequence[TraceRecord], *, experiment: Experiment | None = None) -> StoreResult:
    """Insert new traces and replace existing ones (same ``trace_id``) with their spans, atomically."""
    unique = list({record.trace_id: record for record in records}.values())
    if not unique:
        return StoreResult()
    with transaction.atomic():
        cache: dict[str, Experiment] = {}
        experiments = {r.trace_id: experiment or _experiment_for(r, cache) for r in unique}
        existing = dict(Trace.objects.filter(trace_id__in=[r.trace_id for r in unique]).values_list("trace_id", "id"))
        new = [r for r in unique if r.trace_id not in existing]
        old = [r for r in unique if r.trace_id in existing]
        _update_traces(old, existing, experiments)
        Span.objects.filter(trace_id__in=list(existing.values())).delete()
        if connection.vendor == "postgresql":
            # COPY runs on the raw psycopg cursor: let Django turn its errors into django.db errors.
            with connection.wrap_database_errors:
                _copy_traces(new, experiments)
            ids = dict(Trace.objects.filter(trace_id__in=[r.trace_id for r in unique]).values_list("trace_id", "id"))
            with connection.wrap_database_errors:
                _copy_spans(unique, ids)
        else:
            created = Trace.objects.bulk_create([_trace_model(r, experiments[r.trace_id]) for r in new])
            ids = existing | {t.trace_id: t.pk for t in created}
            Span.objects.bulk_create(_span_models(unique, ids), batch_size=500)
        _upsert_assessments(unique, ids)
        traces_completed([ids[r.trace_id] for r in unique])
    return StoreResult(
        created=len(new),
        updated=len(old),
        spans=sum(len(r.spans) for r in unique),
        warnings=[(r.trace_id, warning) for r in unique for warning in r.warnings],
    )


def model_id_of(metadata: dict[str, Any]) -> str:
    """The application version a trace belongs to: MLflow's ``mlflow.modelId`` metadata."""
    value = metadata.get(MODEL_ID_KEY) if isinstance(metadata, dict) else None
    return str(value)[:255] if value else ""


def _trace_values(record: TraceRecord, experiment: Experiment) -> dict[str, Any]:
    return {
        "name": record.name[:255],
        "state": record.state,
        "request_time": record.request_time,
        "execution_duration_ms": record.execution_duration_ms,
        "request_preview": record.request_preview,
        "response_preview": record.response_preview,
        "client_request_id": record.client_request_id[:255],
        "model_id": model_id_of(record.trace_metadata),
        "tags": record.tags,
        "trace_metadata": record.trace_metadata,
        "span_count": len(record.spans),
        "experiment_id": experiment.pk,
    }


def _trace_model(record: TraceRecord, experiment: Experiment) -> Trace:
    return Trace(trace_id=record.trace_id, **_trace_values(record, experiment))


def _update_traces(records: list[TraceRecord], existing: dict[str, int], experiments: dict[str, Experiment]) -> None:
    if not records:
        return
    now = timezone.now()
    models = []
    for record in records:
        trace = _trace_model(record, experiments[record.trace_id])
        trace.pk = existing[record.trace_id]
        trace.updated_at = now
        models.append(trace)
    Trace.objects.bulk_update(models, [*TRACE_FIELDS, "updated_at"], batch_size=500)


def _span_models(records: Iterable[TraceRecord], ids: dict[str, int]) -> list[Span]:
    return [
        Span(
            trace_id=ids[record.trace_id],
            span_id=span.span_id,
            parent_id=span.parent_id,
            name=span.name[:500],
            span_type=span.span_type[:40],
            status_code=span.status_code,
            status_message=span.status_message,
            start_time_ns=span.start_time_ns,
            end_time_ns=span.end_time_ns,
            inputs=span.inputs,
            outputs=span.outputs,
            attributes=span.attributes,
            events=span.events,
        )
        for record in records
        for span in record.spans
    ]


_NUL_ESCAPE = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


def _json(value: Any) -> str | None:
    # JSON null is stored as SQL NULL, matching what the ORM path writes for JSONField(null=True).
    if value is None:
        return None
    text = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    if "\\u0000" in text:  # PostgreSQL's jsonb refuses NUL characters: keep a visible replacement
        text = _NUL_ESCAPE.sub(r"\1\\ufffd", text)
    return text


def _copy_traces(records: list[TraceRecord], experiments: dict[str, Experiment]) -> None:
    if not records:
        return
    now = timezone.now()
    sql = f"COPY traces_trace ({', '.join(TRACE_COLUMNS)}) FROM STDIN"
    with connection.cursor() as cursor, cursor.cursor.copy(sql) as copy:
        for record in records:
            values = _trace_values(record, experiments[record.trace_id])
            values["tags"] = _json(values["tags"])
            values["trace_metadata"] = _json(values["trace_metadata"])
            copy.write_row([record.trace_id, *(values[f] for f in TRACE_FIELDS), now, now])


def _span_row(trace_pk: int, span: SpanRecord) -> tuple[Any, ...]:
    return (
        trace_pk,
        span.span_id,
        span.parent_id,
        span.name[:500],
        span.span_type[:40],
        span.status_code,
        span.status_message,
        span.start_time_ns,
        span.end_time_ns,
        _json(span.inputs),
        _json(span.outputs),
        _json(span.attributes),
        _json(span.events),
    )


def _copy_spans(records: list[TraceRecord], ids: dict[str, int]) -> None:
    sql = f"COPY traces_span ({', '.join(SPAN_COLUMNS)}) FROM STDIN"
    with connection.cursor() as cursor, cursor.cursor.copy(sql) as copy:
        for record in records:
            trace_pk = ids[record.trace_id]
            for span in record.spans:
                copy.write_row(_span_row(trace_pk, span))


def _assessment_model(record: AssessmentRecord, trace_pk: int) -> Assessment:
    return Assessment(
        assessment_id=record.assessment_id,
        trace_id=trace_pk,
        name=record.name[:255],
        kind=record.kind,
        value=record.value,
        rationale=record.rationale,
        error=record.error,
        source_type=record.source_type[:32],
        source_id=record.source_id[:255],
        span_id=record.span_id,
        overrides=record.overrides,
        valid=record.valid,
        metadata=record.metadata,
        create_time=record.create_time,
        last_update_time=record.last_update_time,
    )


def _upsert_assessments(records: list[TraceRecord], ids: dict[str, int]) -> None:
    """Assessments from the file are upserted by ``assessment_id``; ones made in the app are kept."""
    models = [_assessment_model(a, ids[r.trace_id]) for r in records for a in r.assessments]
    if models:
        Assessment.objects.bulk_create(
            list({m.assessment_id: m for m in models}.values()),
            update_conflicts=True,
            unique_fields=["assessment_id"],
            update_fields=ASSESSMENT_UPDATE_FIELDS,
        )


# ---------------------------------------------------------------- copying stored traces

# Trace columns a copy takes from its source unchanged (the rest: a new trace_id, the target
# experiment, the link to the source, and fresh created/updated times).
COPIED_TRACE_COLUMNS = [f for f in TRACE_FIELDS if f != "experiment_id"]
COPIED_SPAN_COLUMNS = [c for c in SPAN_COLUMNS if c != "trace_id"]
_NEW_ID = "replace(gen_random_uuid()::text, '-', '')"


def copy_traces(*, source_ids: Sequence[int], experiment: Experiment, provenance_key: str) -> dict[int, int]:
    """Copy traces (by primary key) with their spans and assessments into ``experiment``.

    Each copy gets a new ``trace_id`` and ``source_trace`` pointing at its original; each copied
    assessment a new ``assessment_id``, ``overrides`` pointing at the copy of what it overrode, and
    ``metadata[provenance_key]`` naming the original assessment. Returns source pk → copy pk.
    On PostgreSQL the rows never leave the server (``INSERT … SELECT``: three statements whatever
    the batch size); elsewhere they go through the ORM. Copies are made in their originals' order (copied
    assessments with the same ``create_time`` keep their order by id). Call inside a transaction.
    """
    if not source_ids:
        return {}
    if connection.vendor == "postgresql":
        return _copy_traces_server_side(list(source_ids), experiment, provenance_key)
    return _copy_traces_with_orm(list(source_ids), experiment, provenance_key)


def _copy_traces_server_side(source_ids: list[int], experiment: Experiment, provenance_key: str) -> dict[int, int]:
    now = timezone.now()
    columns = ", ".join(COPIED_TRACE_COLUMNS)
    span_columns = ", ".join(COPIED_SPAN_COLUMNS)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO traces_trace (trace_id, experiment_id, source_trace_id, created_at, updated_at, {columns}) "
            f"SELECT 'tr-' || {_NEW_ID}, %s, id, %s, %s, {columns} FROM traces_trace WHERE id = ANY(%s) "
            "ORDER BY id RETURNING source_trace_id, id",
            [experiment.pk, now, now, source_ids],
        )
        copy_of = dict(cursor.fetchall())
        sources, copies = list(copy_of), list(copy_of.values())
        cursor.execute(
            f"INSERT INTO traces_span (trace_id, {span_columns}) "
            f"SELECT m.copy_id, {', '.join(f's.{c}' for c in COPIED_SPAN_COLUMNS)} FROM traces_span s "
            "JOIN unnest(%s::bigint[], %s::bigint[]) AS m(source_id, copy_id) ON s.trace_id = m.source_id "
            "ORDER BY s.id",
            [sources, copies],
        )
        # One CTE row per original with its new id, so ``overrides`` can point at the copy it replaces.
        cursor.execute(
            f"""
            WITH src AS MATERIALIZED (
                SELECT a.*, 'a-' || {_NEW_ID} AS new_id FROM traces_assessment a WHERE a.trace_id = ANY(%s)
            )
            INSERT INTO traces_assessment (assessment_id, trace_id, name, kind, value, rationale, error, source_type,
                source_id, span_id, overrides, valid, metadata, create_time, last_update_time)
            SELECT src.new_id, m.copy_id, src.name, src.kind, src.value, src.rationale, src.error, src.source_type,
                src.source_id, src.span_id, COALESCE(o.new_id, src.overrides), src.valid,
                CASE WHEN jsonb_typeof(src.metadata) = 'object' THEN src.metadata ELSE '{{}}'::jsonb END
                    || jsonb_build_object(%s::text, src.assessment_id),
                src.create_time, src.last_update_time
            FROM src
            JOIN unnest(%s::bigint[], %s::bigint[]) AS m(source_id, copy_id) ON src.trace_id = m.source_id
            LEFT JOIN src o ON o.assessment_id = src.overrides AND src.overrides <> ''
            ORDER BY src.id
            """,
            [sources, provenance_key, sources, copies],
        )
    return copy_of


def _copy_traces_with_orm(source_ids: list[int], experiment: Experiment, provenance_key: str) -> dict[int, int]:
    sources = list(Trace.objects.filter(pk__in=source_ids).order_by("id"))
    copies = [
        Trace(
            trace_id=f"tr-{uuid.uuid4().hex}",
            experiment=experiment,
            source_trace=source,
            **{f: getattr(source, f) for f in COPIED_TRACE_COLUMNS},
        )
        for source in sources
    ]
    Trace.objects.bulk_create(copies)
    if any(c.pk is None for c in copies):  # databases without RETURNING
        by_source = dict(
            Trace.objects.filter(source_trace__in=sources, experiment=experiment).values_list("source_trace_id", "id")
        )
        for copy in copies:
            copy.pk = by_source[copy.source_trace_id]
    copy_of = {s.pk: c.pk for s, c in zip(sources, copies, strict=True)}
    spans = (
        Span(trace_id=copy_of[span.trace_id], **{c: getattr(span, c) for c in COPIED_SPAN_COLUMNS})
        for span in Span.objects.filter(trace__in=sources).order_by("id").iterator(chunk_size=2000)
    )
    Span.objects.bulk_create(list(spans), batch_size=1000)
    originals = list(Assessment.objects.filter(trace__in=sources).order_by("id"))
    new_ids = {a.assessment_id: f"a-{uuid.uuid4().hex}" for a in originals}
    Assessment.objects.bulk_create(
        [
            Assessment(
                assessment_id=new_ids[a.assessment_id],
                trace_id=copy_of[a.trace_id],
                **{f: getattr(a, f) for f in _COPIED_ASSESSMENT_FIELDS},
                overrides=new_ids.get(a.overrides, a.overrides),
                metadata={**(a.metadata if isinstance(a.metadata, dict) else {}), provenance_key: a.assessment_id},
            )
            for a in originals
        ],
        batch_size=500,
    )
    return copy_of


_COPIED_ASSESSMENT_FIELDS = [f for f in ASSESSMENT_UPDATE_FIELDS if f not in ("trace", "overrides", "metadata")]
