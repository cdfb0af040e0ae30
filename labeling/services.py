"""Labeling writes: schemas, roles, sessions and their settings, copying traces in.

A reviewer's own writes live with their concept: claims, skips and flags in ``claims``, answers in
``submissions``, assignment in ``assignment``, final answers in ``adjudication``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max, QuerySet
from django.utils import timezone

from traces.models import Assessment, AssessmentSource, Experiment, ExperimentKind, Span, Trace

from .answers import clear_unused_config, validate_schema_config
from .models import (
    CONFIG_FIELDS,
    COPIED_KEY,
    LabelingSession,
    LabelSchema,
    LabelSchemaVersion,
    ReviewItem,
    SessionSchema,
    SessionStatus,
)

COPY_BATCH = 200


# ---------------------------------------------------------------- schemas


def save_label_schema(*, schema: LabelSchema, changed_by: AbstractBaseUser | None = None) -> LabelSchema:
    """Create or edit a schema. Edits keep the previous version; the input kind is frozen once answered."""
    clear_unused_config(schema)
    validate_schema_config(schema)
    if LabelSchema.objects.filter(name=schema.name).exclude(pk=schema.pk).exists():
        raise ValidationError({"name": f"A question named “{schema.name}” already exists."})
    with transaction.atomic():
        if schema.pk is None:
            schema.save()
            return schema
        previous = LabelSchema.objects.select_for_update().get(pk=schema.pk)
        if previous.input_type != schema.input_type and schema_has_answers(previous):
            raise ValidationError(
                {
                    "input_type": "This question already has answers, so its input kind cannot change. "
                    "Create a new question instead."
                }
            )
        if previous.name != schema.name and schema_has_answers(previous):
            raise ValidationError({"name": "This question already has answers, so its name cannot change."})
        if previous.snapshot() != schema.snapshot():
            LabelSchemaVersion.objects.create(
                schema=previous, version=previous.version, snapshot=previous.snapshot(), changed_by=changed_by
            )
            schema.version = previous.version + 1
        schema.save()
    return schema


def schema_has_answers(schema: LabelSchema) -> bool:
    return Assessment.objects.filter(
        name=schema.name,
        source_type=AssessmentSource.HUMAN,
        trace__review_item__session__schema_links__schema=schema,
    ).exists()


# ---------------------------------------------------------------- roles


def set_user_role(*, user: User, role: str, changed_by: AbstractBaseUser) -> User:
    """``admin`` or ``reviewer``; leads are set per session. Nobody can demote themselves."""
    if role not in ("admin", "reviewer"):
        raise ValidationError({"role": "Choose admin or reviewer."})
    if user.pk == changed_by.pk and role != "admin":
        raise ValidationError({"role": "You cannot take away your own admin role."})
    with transaction.atomic():
        user.is_staff = role == "admin"
        user.save(update_fields=["is_staff"])
    return user


# ---------------------------------------------------------------- sessions


def create_labeling_session(
    *,
    name: str,
    schemas: Sequence[LabelSchema] = (),
    reviewers: Iterable[AbstractBaseUser] = (),
    instructions: str = "",
    created_by: AbstractBaseUser | None = None,
) -> LabelingSession:
    name = name.strip()
    if not name:
        raise ValidationError({"name": "Give the session a name."})
    if LabelingSession.objects.filter(name=name).exists():
        raise ValidationError({"name": f"A session named “{name}” already exists."})
    with transaction.atomic():
        experiment = Experiment.objects.create(
            name=f"labeling-session-{uuid.uuid4().hex[:12]}", kind=ExperimentKind.LABELING
        )
        session = LabelingSession.objects.create(
            name=name, instructions=instructions, experiment=experiment, created_by=created_by
        )
        set_session_schemas(session=session, schemas=schemas)
        session.reviewers.set(list(reviewers))
    return session


def update_labeling_session(
    *, session: LabelingSession, name: str, instructions: str, status: str, schemas: Sequence[LabelSchema]
) -> LabelingSession:
    name = name.strip()
    if not name:
        raise ValidationError({"name": "Give the session a name."})
    if LabelingSession.objects.filter(name=name).exclude(pk=session.pk).exists():
        raise ValidationError({"name": f"A session named “{name}” already exists."})
    if status not in SessionStatus.values:
        raise ValidationError({"status": "Unknown status."})
    with transaction.atomic():
        session.name, session.instructions, session.status = name, instructions, status
        session.save()
        set_session_schemas(session=session, schemas=schemas)
    return session


def update_review_settings(
    *,
    session: LabelingSession,
    reviewers_per_item: int,
    lease_minutes: int,
    blind: bool,
    assignment_mode: str,
    status: str,
) -> LabelingSession:
    """Overlap, lease length, blind mode and how items are handed out."""
    errors: dict[str, str] = {}
    if not 1 <= reviewers_per_item <= 10:
        errors["reviewers_per_item"] = "Choose between 1 and 10 reviewers per item."
    if not 1 <= lease_minutes <= 24 * 60:
        errors["lease_minutes"] = "Choose between 1 minute and 24 hours."
    if assignment_mode not in ("pool", "assigned"):
        errors["assignment_mode"] = "Unknown way of handing out items."
    if status not in SessionStatus.values:
        errors["status"] = "Unknown status."
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        session.reviewers_per_item, session.lease_minutes = reviewers_per_item, lease_minutes
        session.blind, session.assignment_mode, session.status = blind, assignment_mode, status
        session.save()
    return session


def set_session_schemas(*, session: LabelingSession, schemas: Sequence[LabelSchema]) -> None:
    """The session's questions, in this order."""
    with transaction.atomic():
        SessionSchema.objects.filter(session=session).delete()
        SessionSchema.objects.bulk_create(
            [SessionSchema(session=session, schema=schema, position=i) for i, schema in enumerate(schemas)]
        )


def set_assigned_reviewers(*, session: LabelingSession, reviewers: Iterable[AbstractBaseUser]) -> None:
    with transaction.atomic():
        session.reviewers.set(list(reviewers))


def set_session_leads(*, session: LabelingSession, leads: Iterable[AbstractBaseUser]) -> None:
    with transaction.atomic():
        session.leads.set(list(leads))


def complete_session(*, session: LabelingSession) -> LabelingSession:
    with transaction.atomic():
        session.status = SessionStatus.COMPLETED
        session.save(update_fields=["status", "updated_at"])
    return session


# ---------------------------------------------------------------- copying traces in


@dataclass(slots=True)
class AddResult:
    added: int
    already_there: int
    unknown: list[str] = dataclass_field(default_factory=list)  # pasted ids that name no trace, in the order given


def add_traces_to_session(
    *,
    session: LabelingSession,
    trace_ids: Iterable[str] | None = None,
    traces: QuerySet[Trace] | None = None,
) -> AddResult:
    """Copy traces (by ``trace_id``, or every trace of a filtered queryset) into the session.

    Each copy is frozen: its own Trace row with its spans and assessments, linked to the
    source. A trace the session already holds is skipped; ids that name no trace are returned
    in ``unknown`` (the known ones are still added).
    """
    if (trace_ids is None) == (traces is None):
        raise ValueError("pass exactly one of trace_ids or traces")
    unknown: list[str] = []
    source = Trace.objects.explorable()
    if trace_ids is not None:
        wanted = list(dict.fromkeys(trace_ids))
        found = set(source.filter(trace_id__in=wanted).values_list("trace_id", flat=True))
        unknown = [t for t in wanted if t not in found]
        queryset = source.filter(trace_id__in=found)
    else:
        queryset = traces.filter(experiment__kind=ExperimentKind.TRACES)  # type: ignore[union-attr]
    added = already = 0
    with transaction.atomic():
        LabelingSession.objects.select_for_update().get(pk=session.pk)  # one copier at a time per session
        present = set(session.items.values_list("source_trace_id_text", flat=True))
        next_position = (session.items.aggregate(m=Max("position"))["m"] or 0) + 1
        batch: list[Trace] = []
        for trace in queryset.order_by("request_time", "id").iterator(chunk_size=COPY_BATCH):
            if trace.trace_id in present:
                already += 1
                continue
            present.add(trace.trace_id)
            batch.append(trace)
            if len(batch) >= COPY_BATCH:
                next_position = _copy_batch(session, batch, next_position)
                added += len(batch)
                batch = []
        if batch:
            _copy_batch(session, batch, next_position)
            added += len(batch)
    return AddResult(added=added, already_there=already, unknown=unknown)


def _copy_batch(session: LabelingSession, sources: list[Trace], position: int) -> int:
    now = timezone.now()
    copies = [
        Trace(
            trace_id=f"tr-{uuid.uuid4().hex}",
            experiment=session.experiment,
            name=s.name,
            state=s.state,
            request_time=s.request_time,
            execution_duration_ms=s.execution_duration_ms,
            request_preview=s.request_preview,
            response_preview=s.response_preview,
            client_request_id=s.client_request_id,
            model_id=s.model_id,
            tags=s.tags,
            trace_metadata=s.trace_metadata,
            span_count=s.span_count,
            source_trace=s,
        )
        for s in sources
    ]
    Trace.objects.bulk_create(copies)
    if any(c.pk is None for c in copies):  # databases without RETURNING
        by_source = dict(
            Trace.objects.filter(source_trace__in=sources, experiment=session.experiment).values_list(
                "source_trace_id", "id"
            )
        )
        for copy in copies:
            copy.pk = by_source[copy.source_trace_id]
    copy_of = {s.pk: c for s, c in zip(sources, copies, strict=True)}
    spans = [
        Span(
            trace_id=copy_of[span.trace_id].pk,
            span_id=span.span_id,
            parent_id=span.parent_id,
            name=span.name,
            span_type=span.span_type,
            status_code=span.status_code,
            status_message=span.status_message,
            start_time_ns=span.start_time_ns,
            end_time_ns=span.end_time_ns,
            inputs=span.inputs,
            outputs=span.outputs,
            attributes=span.attributes,
            events=span.events,
        )
        for span in Span.objects.filter(trace__in=sources).iterator(chunk_size=2000)
    ]
    Span.objects.bulk_create(spans, batch_size=1000)
    _copy_assessments(sources, copy_of)
    ReviewItem.objects.bulk_create(
        [
            ReviewItem(
                session=session,
                trace=c,
                source_trace=s,
                source_trace_id_text=s.trace_id,
                position=position + i,
                created_at=now,
            )
            for i, (s, c) in enumerate(zip(sources, copies, strict=True))
        ]
    )
    return position + len(sources)


def _copy_assessments(sources: list[Trace], copy_of: Mapping[int, Trace]) -> None:
    originals = list(Assessment.objects.filter(trace__in=sources))
    new_ids = {a.assessment_id: f"a-{uuid.uuid4().hex}" for a in originals}
    Assessment.objects.bulk_create(
        [
            Assessment(
                assessment_id=new_ids[a.assessment_id],
                trace_id=copy_of[a.trace_id].pk,
                name=a.name,
                kind=a.kind,
                value=a.value,
                rationale=a.rationale,
                error=a.error,
                source_type=a.source_type,
                source_id=a.source_id,
                span_id=a.span_id,
                overrides=new_ids.get(a.overrides, a.overrides),
                valid=a.valid,
                metadata={**a.metadata, COPIED_KEY: a.assessment_id},
                create_time=a.create_time,
                last_update_time=a.last_update_time,
            )
            for a in originals
        ]
    )


def copy_fields_from(schema: LabelSchema, data: Mapping[str, Any]) -> None:
    """Apply form data to a schema (used by the admin form before ``save_label_schema``)."""
    for field in ("name", "type", "title", "instruction", "enable_comment", "input_type", *CONFIG_FIELDS):
        if field in data:
            setattr(schema, field, data[field])
