"""Writes to traces from the outside (the API): tags, and assessments logged or overridden.

Each is one transaction that locks the row it changes, so two concurrent calls never lose each
other's work: two tag writes both land, and of two overrides of one assessment, the second is
refused (the assessment it names is no longer valid) instead of leaving two valid successors.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.utils import timezone

from .models import Assessment, AssessmentKind, AssessmentSource, Trace


class AssessmentConflict(ValueError):
    """An override of an assessment that another one has already overridden."""


@dataclass(frozen=True)
class NewAssessment:
    """What a caller says about a trace (MLflow's ``log_feedback`` / ``log_expectation`` arguments)."""

    name: str
    kind: str  # AssessmentKind
    value: Any = None
    error: dict[str, Any] | None = None
    rationale: str = ""
    source_type: str = AssessmentSource.HUMAN
    source_id: str = ""
    span_id: str = ""
    metadata: dict[str, str] = field(default_factory=dict)


def set_trace_tags(*, trace: Trace, tags: dict[str, str]) -> dict[str, str]:
    """Set (or replace) these tags of ``trace``; the others stay. Returns all its tags."""
    with transaction.atomic():
        locked = Trace.objects.select_for_update().only("pk", "tags").get(pk=trace.pk)
        locked.tags = {**(locked.tags or {}), **tags}
        locked.save(update_fields=["tags", "updated_at"])
    trace.tags = locked.tags
    return locked.tags


def delete_trace_tag(*, trace: Trace, key: str) -> bool:
    """Remove the tag ``key`` of ``trace``; False (and nothing written) when it has no such tag."""
    with transaction.atomic():
        locked = Trace.objects.select_for_update().only("pk", "tags").get(pk=trace.pk)
        tags = dict(locked.tags or {})
        if key not in tags:
            return False
        del tags[key]
        locked.tags = tags
        locked.save(update_fields=["tags", "updated_at"])
    trace.tags = locked.tags
    return True


def log_assessment(*, trace: Trace, new: NewAssessment) -> Assessment:
    """Store a new Feedback or Expectation on ``trace`` (valid, overriding nothing)."""
    with transaction.atomic():
        return _create(trace_pk=trace.pk, new=new, overrides="")


def override_assessment(*, old: Assessment, new: NewAssessment) -> Assessment:
    """A correction of ``old``: a new assessment (same trace, name, kind and span) whose ``overrides``
    names it, and ``old`` becomes invalid. Nothing is overwritten. ``AssessmentConflict`` when
    ``old`` is already invalid (someone overrode it first)."""
    with transaction.atomic():
        locked = Assessment.objects.select_for_update().get(pk=old.pk)
        if not locked.valid:
            successors = Assessment.objects.filter(overrides=locked.assessment_id)
            later = next(iter(successors.values_list("assessment_id", flat=True)), "")
            raise AssessmentConflict(
                f"Assessment {locked.assessment_id} is no longer valid"
                + (f" (overridden by {later}); override that one instead." if later else ".")
            )
        corrected = NewAssessment(
            name=locked.name,
            kind=locked.kind,
            value=new.value,
            error=new.error,
            rationale=new.rationale,
            source_type=new.source_type,
            source_id=new.source_id,
            span_id=locked.span_id,
            metadata=new.metadata,
        )
        created = _create(trace_pk=locked.trace_id, new=corrected, overrides=locked.assessment_id)
        Assessment.objects.filter(pk=locked.pk).update(valid=False, last_update_time=created.create_time)
    return created


def _create(*, trace_pk: int, new: NewAssessment, overrides: str) -> Assessment:
    now = timezone.now()
    return Assessment.objects.create(
        assessment_id=f"a-{uuid.uuid4().hex}",
        trace_id=trace_pk,
        name=new.name,
        kind=new.kind,
        value=new.value,
        error=new.error if new.kind == AssessmentKind.FEEDBACK else None,
        rationale=new.rationale,
        source_type=new.source_type,
        source_id=new.source_id,
        span_id=new.span_id,
        overrides=overrides,
        valid=True,
        metadata=new.metadata,
        create_time=now,
        last_update_time=now,
    )
