"""Labeling writes: schemas, roles, sessions and their settings, copying traces in.

A reviewer's own writes live with their concept: claims, skips and flags in ``claims``, answers in
``submissions``, assignment in ``assignment``, final answers in ``adjudication``.
"""

from __future__ import annotations

import logging
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

from traces.ingest.store import copy_traces
from traces.models import Assessment, AssessmentSource, Experiment, ExperimentKind, Trace

from .answers import clear_unused_config, validate_schema_config
from .models import (
    CONFIG_FIELDS,
    COPIED_KEY,
    JobState,
    LabelingSession,
    LabelSchema,
    LabelSchemaVersion,
    ReviewItem,
    SessionSchema,
    SessionStatus,
    TraceAddJob,
)

COPY_BATCH = 500  # source traces per transaction (a few statements each on PostgreSQL)
logger = logging.getLogger(__name__)


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
    job: TraceAddJob | None = None  # a large add runs in the background: this job copies it


@dataclass(slots=True)
class TraceSelection:
    """What an add will copy: source trace primary keys in copy order, and pasted ids that name no trace."""

    source_ids: list[int]
    unknown: list[str] = dataclass_field(default_factory=list)


def resolve_trace_selection(
    *, trace_ids: Iterable[str] | None = None, traces: QuerySet[Trace] | None = None
) -> TraceSelection:
    """Pasted ``trace_id``s or a filtered queryset → the source traces to copy, oldest first (one query).

    Only traces of ordinary experiments count: a session's frozen copies are never copied again.
    """
    if (trace_ids is None) == (traces is None):
        raise ValueError("pass exactly one of trace_ids or traces")
    source = Trace.objects.explorable()
    if trace_ids is not None:
        wanted = list(dict.fromkeys(trace_ids))
        rows = list(source.filter(trace_id__in=wanted).order_by("request_time", "id").values_list("pk", "trace_id"))
        found = {trace_id for _, trace_id in rows}
        return TraceSelection([pk for pk, _ in rows], [t for t in wanted if t not in found])
    queryset = traces.filter(experiment__kind=ExperimentKind.TRACES)  # type: ignore[union-attr]
    return TraceSelection(list(queryset.order_by("request_time", "id").values_list("pk", flat=True)))


def add_traces_to_session(
    *,
    session: LabelingSession,
    trace_ids: Iterable[str] | None = None,
    traces: QuerySet[Trace] | None = None,
    background_from: int | None = None,
    requested_by: AbstractBaseUser | None = None,
) -> AddResult:
    """Copy traces (by ``trace_id``, or every trace of a filtered queryset) into the session.

    Each copy is frozen: its own Trace row with its spans and assessments, linked to the
    source. A trace the session already holds is skipped; ids that name no trace are returned
    in ``unknown`` (the known ones are still added). With ``background_from``, a selection of at
    least that many traces is not copied now but handed to a background job (``result.job``).
    """
    selection = resolve_trace_selection(trace_ids=trace_ids, traces=traces)
    if background_from is not None and len(selection.source_ids) >= background_from:
        job = start_trace_add(session=session, source_ids=selection.source_ids, requested_by=requested_by)
        return AddResult(added=0, already_there=0, unknown=selection.unknown, job=job)
    added = already = 0
    with transaction.atomic():
        for start in range(0, len(selection.source_ids), COPY_BATCH):
            batch = _copy_batch(session, selection.source_ids[start : start + COPY_BATCH])
            added, already = added + batch.added, already + batch.skipped + batch.missing
    return AddResult(added=added, already_there=already, unknown=selection.unknown)


@dataclass(slots=True)
class BatchResult:
    added: int = 0
    skipped: int = 0  # already in the session
    missing: int = 0  # deleted since the add was requested


def _copy_batch(session: LabelingSession, source_ids: Sequence[int]) -> BatchResult:
    """Copy one batch into the session (inside the caller's transaction), skipping traces it already holds.

    The session row lock makes copiers take turns, so the skip test and the positions are exact
    and the ``(session, source trace)`` uniqueness rule holds however often a batch is run.
    """
    LabelingSession.objects.select_for_update().filter(pk=session.pk).values_list("pk").get()
    wanted = list(dict.fromkeys(source_ids))
    sources = dict(Trace.objects.filter(pk__in=wanted).values_list("pk", "trace_id"))
    present = set(
        session.items.filter(source_trace_id_text__in=list(sources.values())).values_list(
            "source_trace_id_text", flat=True
        )
    )
    todo = [pk for pk in wanted if pk in sources and sources[pk] not in present]
    result = BatchResult(skipped=len(sources) - len(todo), missing=len(wanted) - len(sources))
    if not todo:
        return result
    copy_of = copy_traces(source_ids=todo, experiment=session.experiment, provenance_key=COPIED_KEY)
    position = (session.items.aggregate(m=Max("position"))["m"] or 0) + 1
    now = timezone.now()
    ReviewItem.objects.bulk_create(
        [
            ReviewItem(
                session=session,
                trace_id=copy_of[pk],
                source_trace_id=pk,
                source_trace_id_text=sources[pk],
                position=position + i,
                created_at=now,
            )
            for i, pk in enumerate(todo)
        ]
    )
    result.added = len(todo)
    return result


# ---------------------------------------------------------------- large adds, in the background


def start_trace_add(
    *,
    session: LabelingSession,
    source_ids: Sequence[int],
    requested_by: AbstractBaseUser | None,
    enqueue: bool = True,
) -> TraceAddJob:
    """Record a large add and queue the task that copies it (``labeling.tasks.run_trace_add``).

    The job row and the task row are written in one transaction, so a worker never sees one
    without the other.
    """
    with transaction.atomic():
        job = TraceAddJob.objects.create(
            session=session,
            requested_by=requested_by if requested_by is not None and requested_by.is_authenticated else None,
            source_ids=list(source_ids),
            total=len(source_ids),
        )
        if enqueue:
            _enqueue(job)
    return job


def retry_trace_add(*, job: TraceAddJob) -> TraceAddJob:
    """Queue a failed or stalled job again; it resumes after the last batch it finished."""
    if job.state == JobState.DONE:
        raise ValidationError("This add has already finished.")
    if not job.can_retry:
        raise ValidationError("This add is still running.")
    with transaction.atomic():
        TraceAddJob.objects.filter(pk=job.pk).update(state=JobState.QUEUED, error="", updated_at=timezone.now())
        job.refresh_from_db()
        _enqueue(job)
    return job


def _enqueue(job: TraceAddJob) -> None:
    from .tasks import run_trace_add  # tasks imports this module

    run_trace_add.enqueue(job_id=job.pk)


def run_trace_add_job(*, job_id: int) -> TraceAddJob | None:
    """Copy a job's traces batch by batch, one transaction each; ``None`` for a job that no longer exists.

    A batch cut off by a killed worker is rolled back whole and runs again on retry. A failing
    batch marks the job failed with the error; a retry resumes there.
    """
    with transaction.atomic():
        job = TraceAddJob.objects.select_for_update().defer("source_ids").filter(pk=job_id).first()
        if job is None or job.state == JobState.DONE:
            return job
        job.state, job.attempts = JobState.RUNNING, job.attempts + 1
        job.started_at = job.started_at or timezone.now()
        job.save(update_fields=["state", "attempts", "started_at", "updated_at"])
    try:
        while copy_next_batch(job_id=job_id):
            pass
    except Exception as exc:
        logger.exception("Adding traces to session %s failed (job %s)", job.session_id, job_id)
        TraceAddJob.objects.filter(pk=job_id).update(
            state=JobState.FAILED, error=f"{type(exc).__name__}: {exc}"[:2000], updated_at=timezone.now()
        )
    return TraceAddJob.objects.defer("source_ids").filter(pk=job_id).first()


def copy_next_batch(*, job_id: int) -> bool:
    """Copy the next ``COPY_BATCH`` traces of a job after ``done``, in one transaction; False once none is left.

    The job row is locked for the batch, so two workers on one job (a retry while the first was
    only slow) never copy the same batch, and the counters always match what was committed.
    """
    with transaction.atomic():
        job = TraceAddJob.objects.select_for_update().select_related("session").get(pk=job_id)
        if job.done >= job.total:
            job.state, job.finished_at = JobState.DONE, timezone.now()
            job.save(update_fields=["state", "finished_at", "updated_at"])
            return False
        batch = _copy_batch(job.session, job.source_ids[job.done : job.done + COPY_BATCH])
        job.done = min(job.total, job.done + COPY_BATCH)
        job.added, job.skipped, job.missing = (
            job.added + batch.added,
            job.skipped + batch.skipped,
            job.missing + batch.missing,
        )
        job.save(update_fields=["done", "added", "skipped", "missing", "updated_at"])
    return True


def copy_fields_from(schema: LabelSchema, data: Mapping[str, Any]) -> None:
    """Apply form data to a schema (used by the admin form before ``save_label_schema``)."""
    for field in ("name", "type", "title", "instruction", "enable_comment", "input_type", *CONFIG_FIELDS):
        if field in data:
            setattr(schema, field, data[field])


# ---------------------------------------------------------------- deleting


def delete_label_schema(*, schema: LabelSchema) -> None:
    """Delete a question no session asks; one in use is refused (``ValidationError``)."""
    with transaction.atomic():
        count = SessionSchema.objects.filter(schema=schema).count()
        if count:
            raise ValidationError(
                {"name": f"The question “{schema.name}” is used by {count} session(s); remove it from them first."}
            )
        schema.delete()


def delete_labeling_session(*, session: LabelingSession) -> None:
    """Delete a session with its items, answers and the experiment holding its frozen copies."""
    with transaction.atomic():
        experiment = Experiment.objects.get(pk=session.experiment_id)
        session.delete()
        experiment.delete()
