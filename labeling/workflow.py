"""Team review: handing out items with leases, flags, explicit assignment, adjudication, roles.

Claiming is safe under concurrency: a claimer locks the item row (``SELECT … FOR UPDATE
SKIP LOCKED`` on PostgreSQL; SQLite serializes write transactions) and re-counts the item's
load with a fresh statement before taking a slot. Submits lock the same row.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import orjson
from django.contrib.auth.models import AbstractBaseUser, User
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, transaction
from django.db.models import Count, F, IntegerField, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from traces.models import Assessment, AssessmentSource

from .answers import is_blank, parse_answer
from .models import (
    Adjudication,
    ItemAssignment,
    ItemReview,
    LabelingSession,
    LabelSchema,
    ReviewItem,
    ReviewStatus,
    SessionStatus,
)
from .services import SessionClosedError

MAX_CLAIM_ATTEMPTS = 20
ADJUDICATION_KEY = "adjudicated"
COPIED_KEY = "copied_from"  # set on assessments copied with a trace into a session


# ---------------------------------------------------------------- roles and access


def is_admin(user: Any) -> bool:
    return bool(user.is_authenticated and user.is_staff)


def can_manage(user: Any, session: LabelingSession) -> bool:
    """Admins manage every session; a lead manages the sessions they lead (cached per session object)."""
    cache = session.__dict__.setdefault("_can_manage", {})
    if user.pk not in cache:
        cache[user.pk] = is_admin(user) or session.leads.filter(pk=user.pk).exists()
    return cache[user.pk]


def lease_needs_renewal(review: ItemReview | None, now: datetime | None = None) -> bool:
    """A reviewer opening an item takes a lease, or renews one that is past its first half."""
    if review is None:
        return True
    if review.status == ReviewStatus.SUBMITTED:
        return False
    if review.status == ReviewStatus.SKIPPED or review.lease_expires_at is None or review.claimed_at is None:
        return True
    now = now or timezone.now()
    return review.lease_expires_at - now < (review.lease_expires_at - review.claimed_at) / 2


def is_lead_anywhere(user: Any) -> bool:
    return bool(user.is_authenticated and (user.is_staff or user.led_sessions.exists()))


def managed_sessions(user: Any) -> QuerySet[LabelingSession]:
    if is_admin(user):
        return LabelingSession.objects.all()
    return LabelingSession.objects.filter(leads=user)


def visible_items(session: LabelingSession, user: Any) -> QuerySet[ReviewItem]:
    """Items a user may open: everything for managers; for reviewers, the ones given to them."""
    items = session.items.all()
    if can_manage(user, session):
        return items
    given = Q(reviews__reviewer=user)
    if session.assignment_mode == "assigned":
        given |= Q(assignments__reviewer=user)
    return items.filter(given).distinct()


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


def set_session_leads(*, session: LabelingSession, leads: Iterable[AbstractBaseUser]) -> None:
    with transaction.atomic():
        session.leads.set(list(leads))


# ---------------------------------------------------------------- claiming


def _lease_end(session: LabelingSession, now: datetime) -> datetime:
    return now + timedelta(minutes=session.lease_minutes)


def _item_load(item_id: int, reviewer: AbstractBaseUser, now: datetime) -> int:
    """Slots taken on an item: submitted reviews plus other reviewers' running leases (fresh read)."""
    return (
        ItemReview.objects.filter(item_id=item_id)
        .filter(
            Q(status=ReviewStatus.SUBMITTED)
            | (Q(status=ReviewStatus.CLAIMED, lease_expires_at__gt=now) & ~Q(reviewer=reviewer))
        )
        .count()
    )


def _candidates(session: LabelingSession, reviewer: AbstractBaseUser, now: datetime, *, skipped: bool) -> QuerySet:
    mine = ItemReview.objects.filter(item__session=session, reviewer=reviewer)
    running = (
        ItemReview.objects.filter(item=OuterRef("pk"), status=ReviewStatus.CLAIMED, lease_expires_at__gt=now)
        .exclude(reviewer=reviewer)
        .order_by()
        .values("item")
        .annotate(n=Count("pk"))
        .values("n")
    )
    items = ReviewItem.objects.filter(session=session, submitted_count__lt=session.reviewers_per_item)
    if skipped:
        items = items.filter(pk__in=mine.filter(status=ReviewStatus.SKIPPED).values("item_id"))
    else:
        items = items.exclude(
            pk__in=mine.filter(status__in=[ReviewStatus.SUBMITTED, ReviewStatus.SKIPPED]).values("item_id")
        )
    if session.assignment_mode == "assigned":
        items = items.filter(pk__in=ItemAssignment.objects.filter(reviewer=reviewer).values("item_id"))
    items = items.annotate(running=Coalesce(Subquery(running, output_field=IntegerField()), Value(0)))
    items = items.filter(submitted_count__lt=session.reviewers_per_item - F("running"))
    items = items.order_by("submitted_count", "position")
    if connection.features.has_select_for_update_skip_locked:
        items = items.select_for_update(skip_locked=True, of=("self",))
    return items


def claim_next_item(
    *, session: LabelingSession, reviewer: AbstractBaseUser, now: datetime | None = None
) -> ReviewItem | None:
    """Hand the reviewer the next item that still needs answers, with a lease; ``None`` when none is left.

    Order: the reviewer's own running lease first; then items with the fewest submitted
    reviews, in session order; items the reviewer skipped come back only when nothing else is left.
    """
    now = now or timezone.now()
    if session.status != SessionStatus.ACTIVE:
        return None
    with transaction.atomic():
        own = (
            ItemReview.objects.select_related("item")
            .filter(item__session=session, reviewer=reviewer, status=ReviewStatus.CLAIMED, lease_expires_at__gt=now)
            .order_by("item__position")
            .first()
        )
        if own is not None:
            own.lease_expires_at = _lease_end(session, now)
            own.save(update_fields=["lease_expires_at", "updated_at"])
            return own.item
        for skipped in (False, True):
            tried: list[int] = []
            for _ in range(MAX_CLAIM_ATTEMPTS):
                item = _candidates(session, reviewer, now, skipped=skipped).exclude(pk__in=tried).first()
                if item is None:
                    break
                if _item_load(item.pk, reviewer, now) < session.reviewers_per_item:
                    _take_slot(session, item, reviewer, now)
                    return item
                tried.append(item.pk)
    return None


def _take_slot(session: LabelingSession, item: ReviewItem, reviewer: AbstractBaseUser, now: datetime) -> None:
    ItemReview.objects.update_or_create(
        item=item,
        reviewer=reviewer,
        defaults={
            "status": ReviewStatus.CLAIMED,
            "claimed_at": now,
            "lease_expires_at": _lease_end(session, now),
            "skip_reason": "",
        },
    )


def claim_item(*, item: ReviewItem, reviewer: AbstractBaseUser, now: datetime | None = None) -> bool:
    """Start (or renew) the reviewer's lease on one item they opened; ``False`` if it has no free slot."""
    now = now or timezone.now()
    session = item.session
    with transaction.atomic():
        ReviewItem.objects.select_for_update().get(pk=item.pk)
        review = ItemReview.objects.filter(item=item, reviewer=reviewer).first()
        if review is not None and review.status == ReviewStatus.SUBMITTED:
            return True  # revisiting own work
        if _item_load(item.pk, reviewer, now) >= session.reviewers_per_item:
            return False
        _take_slot(session, item, reviewer, now)
    return True


def flag_item(*, item: ReviewItem, reviewer: AbstractBaseUser, note: str) -> ItemReview:
    note = note.strip()
    if not note:
        raise ValidationError({"note": "Say what is wrong, so an admin can act on it."})
    with transaction.atomic():
        review, _ = ItemReview.objects.get_or_create(
            item=item, reviewer=reviewer, defaults={"status": ReviewStatus.CLAIMED, "claimed_at": timezone.now()}
        )
        review.flagged, review.flag_note = True, note[:1000]
        review.save(update_fields=["flagged", "flag_note", "updated_at"])
    return review


# ---------------------------------------------------------------- explicit assignment


def assign_items_evenly(*, session: LabelingSession, reviewers: Sequence[AbstractBaseUser]) -> int:
    """Give every item ``reviewers_per_item`` different reviewers, spreading the load evenly."""
    if not reviewers:
        raise ValidationError("Pick at least one reviewer.")
    per_item = min(session.reviewers_per_item, len(reviewers))
    with transaction.atomic():
        ItemAssignment.objects.filter(item__session=session).delete()
        rows = []
        item_ids = list(session.items.order_by("position").values_list("pk", flat=True))
        for index, item_id in enumerate(item_ids):
            for offset in range(per_item):
                reviewer = reviewers[(index * per_item + offset) % len(reviewers)]
                rows.append(ItemAssignment(item_id=item_id, reviewer=reviewer))
        ItemAssignment.objects.bulk_create(rows, ignore_conflicts=True)
        session.assignment_mode = "assigned"
        session.save(update_fields=["assignment_mode", "updated_at"])
    return len(rows)


def assign_items(*, session: LabelingSession, reviewer: AbstractBaseUser, item_ids: Iterable[int]) -> int:
    """Give these items to one reviewer (by hand)."""
    wanted = set(item_ids)
    found = set(session.items.filter(pk__in=wanted).values_list("pk", flat=True))
    if wanted - found:
        raise ValidationError(f"Not items of this session: {', '.join(map(str, sorted(wanted - found)[:5]))}")
    with transaction.atomic():
        ItemAssignment.objects.bulk_create(
            [ItemAssignment(item_id=pk, reviewer=reviewer) for pk in found], ignore_conflicts=True
        )
        session.assignment_mode = "assigned"
        session.save(update_fields=["assignment_mode", "updated_at"])
    return len(found)


# ---------------------------------------------------------------- disagreement and adjudication


def session_answers(session: LabelingSession | None = None) -> QuerySet[Assessment]:
    """Valid human answers given in labeling sessions (not the ones copied in with the traces)."""
    answers = Assessment.objects.filter(source_type=AssessmentSource.HUMAN, valid=True).exclude(
        metadata__has_key=COPIED_KEY
    )
    if session is not None:
        answers = answers.filter(trace__review_item__session=session)
    return answers


def canonical(value: Any) -> str:
    """Values compared as canonical JSON (lists of choices as sets)."""
    if isinstance(value, list):
        value = sorted(map(str, value))
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def reviewer_answers(items: Iterable[int]) -> dict[int, dict[str, list[Assessment]]]:
    """Current reviewer answers (not adjudications) per item and question, in one query."""
    grouped: dict[int, dict[str, list[Assessment]]] = defaultdict(lambda: defaultdict(list))
    rows = (
        session_answers()
        .filter(trace__review_item__in=list(items))
        .exclude(metadata__has_key=ADJUDICATION_KEY)
        .select_related("trace__review_item")
        .order_by("create_time", "id")
    )
    for assessment in rows:
        grouped[assessment.trace.review_item.pk][assessment.name].append(assessment)
    return grouped


def disagreements(session: LabelingSession) -> dict[int, list[str]]:
    """Items (by id) where reviewers gave different answers, with the questions they disagree on."""
    names = {s.name for s in session.ordered_schemas()}
    answers = reviewer_answers(session.items.filter(submitted_count__gte=2).values_list("pk", flat=True))
    result: dict[int, list[str]] = {}
    for item_id, by_name in answers.items():
        split = [n for n, rows in by_name.items() if n in names and len({canonical(a.value) for a in rows}) > 1]
        if split:
            result[item_id] = sorted(split)
    return result


def adjudicated_names(item: ReviewItem) -> set[str]:
    return set(item.adjudications.values_list("schema__name", flat=True))


def adjudication_queue(session: LabelingSession) -> list[tuple[ReviewItem, list[str], set[str]]]:
    """Items with disagreements, each with the split questions and those already settled."""
    split = disagreements(session)
    items = session.items.filter(pk__in=split).order_by("position").prefetch_related("adjudications__schema")
    return [(item, split[item.pk], {a.schema.name for a in item.adjudications.all()}) for item in items]


def adjudicate(
    *,
    item: ReviewItem,
    lead: AbstractBaseUser,
    raw_answers: Mapping[str, Any],
    rationale: str = "",
) -> list[Assessment]:
    """Store the lead's final answers as authoritative assessments that override the reviewers' ones."""
    session = item.session
    if not can_manage(lead, session):
        raise PermissionDenied("Only this session's leads and admins can settle disagreements.")
    if not session.accepts_answers:
        raise SessionClosedError("This session is archived; it no longer accepts answers.")
    schemas = {s.name: s for s in session.ordered_schemas()}
    values: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    for name, raw in raw_answers.items():
        if name not in schemas or is_blank(raw):
            continue
        try:
            values[name] = parse_answer(schemas[name], raw)
        except ValidationError as exc:
            errors[name] = exc.messages
    if not values and not errors:
        errors["__all__"] = ["Pick or write the final answer for at least one question."]
    if errors:
        raise ValidationError(errors)
    stored = []
    now = timezone.now()
    with transaction.atomic():
        ReviewItem.objects.select_for_update().get(pk=item.pk)
        current = reviewer_answers([item.pk]).get(item.pk, {})
        previous_final = {
            a.schema.name: a.assessment for a in item.adjudications.select_related("assessment", "schema")
        }
        for name, value in values.items():
            superseded = previous_final.get(name)
            overridden = [a.assessment_id for a in current.get(name, [])]
            assessment = Assessment.objects.create(
                assessment_id=f"a-{uuid.uuid4().hex}",
                trace_id=item.trace_id,
                name=name,
                kind=schemas[name].type,
                value=value,
                rationale=rationale.strip(),
                source_type=AssessmentSource.HUMAN,
                source_id=lead.get_username(),
                overrides=superseded.assessment_id if superseded else (overridden[0] if overridden else ""),
                valid=True,
                metadata={
                    ADJUDICATION_KEY: True,
                    "overrides_all": overridden,
                    "labeling_session_id": session.pk,
                    "labeling_session": session.name,
                    "review_item_id": item.pk,
                    "source_trace_id": item.source_trace_id_text,
                },
                create_time=now,
                last_update_time=now,
            )
            if superseded is not None:
                Assessment.objects.filter(pk=superseded.pk).update(valid=False, last_update_time=now)
            Adjudication.objects.create(item=item, schema=schemas[name], assessment=assessment, decided_by=lead)
            stored.append(assessment)
    return stored


# ---------------------------------------------------------------- progress


def reviewer_progress(session: LabelingSession) -> list[dict[str, Any]]:
    """Per reviewer: done, skipped, flagged, in progress, average seconds per item, items per hour."""
    rows = (
        ItemReview.objects.filter(item__session=session)
        .values("reviewer__username")
        .annotate(
            done=Count("pk", filter=Q(status=ReviewStatus.SUBMITTED)),
            skipped=Count("pk", filter=Q(status=ReviewStatus.SKIPPED)),
            flagged=Count("pk", filter=Q(flagged=True)),
            in_progress=Count("pk", filter=Q(status=ReviewStatus.CLAIMED)),
        )
        .order_by("reviewer__username")
    )
    timings = defaultdict(list)
    for username, claimed, submitted in ItemReview.objects.filter(
        item__session=session, status=ReviewStatus.SUBMITTED, claimed_at__isnull=False, submitted_at__isnull=False
    ).values_list("reviewer__username", "claimed_at", "submitted_at"):
        timings[username].append((claimed, submitted))
    result = []
    for row in rows:
        spans = timings.get(row["reviewer__username"], [])
        seconds = [(s - c).total_seconds() for c, s in spans]
        average = sum(seconds) / len(seconds) if seconds else None
        hours = (max(s for _, s in spans) - min(c for c, _ in spans)).total_seconds() / 3600 if spans else 0
        result.append(
            {
                **row,
                "average_seconds": average,
                "items_per_hour": round(len(spans) / hours, 1) if hours > 0 else None,
            }
        )
    return result


def schema_names(schemas: Iterable[LabelSchema]) -> list[str]:
    return [s.name for s in schemas]
