"""A reviewer's answers to an item: validation, storing them as MLflow assessments, completion.

Every answer is an MLflow assessment on the item's frozen trace copy (source HUMAN, the reviewer's
user name as source id). A changed answer overrides the previous one, which becomes invalid:
nothing is overwritten. A submit after the reviewer's lease ran out, when others filled the item
meanwhile, is kept as a *late* answer: stored and marked, but not counted towards the item's
``reviewers_per_item`` — no expert's work is thrown away and completion counts stay right.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from traces.models import Assessment, AssessmentSource

from .answers import is_blank, parse_answer
from .claims import has_free_slot, holds_running_lease, require_open
from .models import COPIED_KEY, LATE_KEY, ItemReview, LabelSchema, ReviewItem, ReviewStatus

MAX_COMMENT = 5000


@dataclass(slots=True)
class Submission:
    assessments: list[Assessment]
    late: bool = False  # kept, but others had filled the item after this reviewer's lease ran out


def current_answers(*, item: ReviewItem, reviewer: AbstractBaseUser) -> dict[str, Assessment]:
    """The reviewer's valid assessments on this item, by question name."""
    return {
        a.name: a
        for a in Assessment.objects.filter(
            trace_id=item.trace_id,
            source_type=AssessmentSource.HUMAN,
            source_id=reviewer.get_username(),
            valid=True,
        ).exclude(metadata__has_key=COPIED_KEY)
    }


def record_assessment(
    *,
    item: ReviewItem,
    reviewer: AbstractBaseUser,
    schema: LabelSchema,
    value: Any,
    rationale: str = "",
    previous: Assessment | None = None,
    late: bool = False,
) -> Assessment:
    """Store one typed answer as an MLflow assessment; a changed answer overrides the old one.

    An unchanged answer is a no-op (the existing assessment is returned), so double
    submits and retries never pile up duplicates.
    """
    if previous is None:
        previous = current_answers(item=item, reviewer=reviewer).get(schema.name)
    if previous is not None and previous.value == value and previous.rationale == rationale:
        return previous
    now = timezone.now()
    metadata: dict[str, Any] = {
        "labeling_session_id": item.session_id,
        "labeling_session": item.session.name,
        "review_item_id": item.pk,
        "source_trace_id": item.source_trace_id_text,
        "schema_version": schema.version,
    }
    if late or (previous is not None and previous.metadata.get(LATE_KEY)):
        metadata[LATE_KEY] = True
    assessment = Assessment.objects.create(
        assessment_id=f"a-{uuid.uuid4().hex}",
        trace_id=item.trace_id,
        name=schema.name,
        kind=schema.type,
        value=value,
        rationale=rationale,
        source_type=AssessmentSource.HUMAN,
        source_id=reviewer.get_username(),
        overrides=previous.assessment_id if previous else "",
        valid=True,
        metadata=metadata,
        create_time=now,
        last_update_time=now,
    )
    if previous is not None:
        Assessment.objects.filter(pk=previous.pk).update(valid=False, last_update_time=now)
    return assessment


def clean_answers(
    *, schemas: Sequence[LabelSchema], raw_answers: Mapping[str, Any], raw_comments: Mapping[str, str]
) -> tuple[dict[str, Any], dict[str, str]]:
    """Typed answers by question name, or ``ValidationError`` with one message per bad question."""
    values: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    for schema in schemas:
        raw = raw_answers.get(schema.name)
        if is_blank(raw):
            continue
        try:
            values[schema.name] = parse_answer(schema, raw)
        except ValidationError as exc:
            errors[schema.name] = exc.messages
    comments = {s.name: (raw_comments.get(s.name) or "").strip() for s in schemas if s.enable_comment}
    for name, comment in comments.items():
        if len(comment) > MAX_COMMENT:
            errors.setdefault(name, []).append("Keep the comment under 5,000 characters.")
        elif "\x00" in comment:
            errors.setdefault(name, []).append("The comment contains a NUL character; remove it.")
    if not values and not errors:
        errors["__all__"] = ["Answer at least one question, or skip this item."]
    if errors:
        raise ValidationError(errors)
    return values, comments


def submit_review(
    *,
    item: ReviewItem,
    reviewer: AbstractBaseUser,
    raw_answers: Mapping[str, Any],
    raw_comments: Mapping[str, str] | None = None,
) -> Submission:
    """Validate every answer (nothing is saved if one is bad), store them, mark the item done.

    The first submit of a reviewer on an item counts towards its ``reviewers_per_item`` when a
    slot is free for them (their lease still runs, or nobody took the slot after it ran out);
    otherwise the answers are stored as late (``metadata.late``, ``ItemReview.late``) and the
    item's count does not change. Later submits are edits and never change the count.
    """
    session = item.session
    require_open(session)
    schemas = session.ordered_schemas()
    values, comments = clean_answers(schemas=schemas, raw_answers=raw_answers, raw_comments=raw_comments or {})
    with transaction.atomic():
        # Lock the item first: every claim and submit on it is serialized, so counts never drift.
        locked = ReviewItem.objects.select_for_update().get(pk=item.pk)
        review = ItemReview.objects.select_for_update().filter(item=item, reviewer=reviewer).first()
        now = timezone.now()
        first_time = review is None or review.status != ReviewStatus.SUBMITTED
        if not first_time:
            late = bool(review and review.late)
        else:
            holds_lease = (
                review is not None and review.status == ReviewStatus.CLAIMED and holds_running_lease(review, now)
            )
            late = not holds_lease and not has_free_slot(item, reviewer, now)
        previous = current_answers(item=item, reviewer=reviewer)
        stored = [
            record_assessment(
                item=item,
                reviewer=reviewer,
                schema=schema,
                value=values[schema.name],
                rationale=comments.get(schema.name, ""),
                previous=previous.get(schema.name),
                late=late,
            )
            for schema in schemas
            if schema.name in values
        ]
        if review is None:
            ItemReview.objects.create(
                item=item,
                reviewer=reviewer,
                status=ReviewStatus.SUBMITTED,
                claimed_at=now,
                submitted_at=now,
                late=late,
            )
        elif first_time:
            review.status, review.submitted_at, review.skip_reason = ReviewStatus.SUBMITTED, now, ""
            review.lease_expires_at, review.late = None, late
            review.save(
                update_fields=["status", "submitted_at", "skip_reason", "lease_expires_at", "late", "updated_at"]
            )
        if first_time and not late:
            ReviewItem.objects.filter(pk=locked.pk).update(submitted_count=F("submitted_count") + 1)
    return Submission(assessments=stored, late=late)
