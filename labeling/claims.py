"""Claims and leases: handing items out, holding them while a reviewer reads, skips and flags.

A session needs ``reviewers_per_item`` answers per item. A *slot* of an item is taken by a
submitted review or by another reviewer's running lease. Claiming is safe under concurrency: a
claimer locks the item row (``SELECT … FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite serializes
write transactions) and re-counts the item's load with a fresh statement before taking a slot.
Submits lock the same row (see ``labeling.submissions``).

While the review page is open it sends a heartbeat (``renew_lease``), so an expert who is reading
keeps the item; a lease only runs out when the page was closed or the machine slept.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Count, F, IntegerField, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from .errors import CLOSED_MESSAGE, SessionClosedError
from .models import ItemAssignment, ItemReview, LabelingSession, ReviewItem, ReviewStatus, SessionStatus

MAX_CLAIM_ATTEMPTS = 20


def require_open(session: LabelingSession) -> None:
    """Archived sessions refuse answers, skips, flags and final answers alike."""
    if not session.accepts_answers:
        raise SessionClosedError(CLOSED_MESSAGE)


# ---------------------------------------------------------------- leases


def lease_end(session: LabelingSession, now: datetime) -> datetime:
    return now + timedelta(minutes=session.lease_minutes)


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


def item_load(item_id: int, reviewer: AbstractBaseUser, now: datetime) -> int:
    """Slots taken on an item by others: counted submitted reviews plus other reviewers' running leases.

    A fresh read: call it with the item row locked. Late answers do not take a slot.
    """
    return (
        ItemReview.objects.filter(item_id=item_id)
        .exclude(reviewer=reviewer)
        .filter(Q(status=ReviewStatus.SUBMITTED, late=False) | Q(status=ReviewStatus.CLAIMED, lease_expires_at__gt=now))
        .count()
    )


def holds_running_lease(review: ItemReview, now: datetime) -> bool:
    return review.lease_expires_at is not None and review.lease_expires_at > now


def has_free_slot(item: ReviewItem, reviewer: AbstractBaseUser, now: datetime) -> bool:
    return item_load(item.pk, reviewer, now) < item.session.reviewers_per_item


# ---------------------------------------------------------------- claiming


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
            own.lease_expires_at = lease_end(session, now)
            own.save(update_fields=["lease_expires_at", "updated_at"])
            return own.item
        for skipped in (False, True):
            tried: list[int] = []
            for _ in range(MAX_CLAIM_ATTEMPTS):
                item = _candidates(session, reviewer, now, skipped=skipped).exclude(pk__in=tried).first()
                if item is None:
                    break
                if item_load(item.pk, reviewer, now) < session.reviewers_per_item:
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
            "lease_expires_at": lease_end(session, now),
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
        if item_load(item.pk, reviewer, now) >= session.reviewers_per_item:
            return False
        _take_slot(session, item, reviewer, now)
    return True


class LeaseState(StrEnum):
    """What a heartbeat found: the page shows a warning only for ``LOST``."""

    HELD = "held"  # the lease runs on (renewed, or taken again because the slot was still free)
    LOST = "lost"  # others filled the item meanwhile: an answer now is kept but counted as late
    SUBMITTED = "submitted"  # this reviewer already answered; nothing to hold
    NOT_CLAIMED = "not_claimed"  # a lead or admin looking, or an item never claimed
    CLOSED = "closed"  # the session no longer hands out items


def renew_lease(*, item: ReviewItem, reviewer: AbstractBaseUser, now: datetime | None = None) -> LeaseState:
    """The review page's heartbeat: keep the reviewer's lease running while they read.

    Only a reviewer holding (or having held) a claim on the item is renewed; a lapsed lease is
    taken again if the slot is still free. Nothing else changes, so a heartbeat is safe to repeat.
    """
    now = now or timezone.now()
    session = item.session
    if session.status != SessionStatus.ACTIVE:
        return LeaseState.CLOSED
    with transaction.atomic():
        ReviewItem.objects.select_for_update().get(pk=item.pk)
        review = ItemReview.objects.filter(item=item, reviewer=reviewer).first()
        if review is None or review.status == ReviewStatus.SKIPPED:
            return LeaseState.NOT_CLAIMED
        if review.status == ReviewStatus.SUBMITTED:
            return LeaseState.SUBMITTED
        running = review.lease_expires_at is not None and review.lease_expires_at > now
        if not running and item_load(item.pk, reviewer, now) >= session.reviewers_per_item:
            return LeaseState.LOST
        review.lease_expires_at = lease_end(session, now)
        if not running:
            review.claimed_at = review.claimed_at or now
        review.save(update_fields=["lease_expires_at", "claimed_at", "updated_at"])
    return LeaseState.HELD


# ---------------------------------------------------------------- skips and flags


def skip_item(*, item: ReviewItem, reviewer: AbstractBaseUser, reason: str = "") -> None:
    """The reviewer passes on the item: their lease ends and the slot goes back to the pool."""
    require_open(item.session)
    if "\x00" in reason:
        raise ValidationError({"reason": "The reason contains a NUL character; remove it."})
    with transaction.atomic():
        ReviewItem.objects.select_for_update().get(pk=item.pk)
        review, created = ItemReview.objects.get_or_create(
            item=item, reviewer=reviewer, defaults={"status": ReviewStatus.SKIPPED, "skip_reason": reason[:500]}
        )
        if not created and review.status != ReviewStatus.SUBMITTED:
            review.status, review.skip_reason, review.lease_expires_at = ReviewStatus.SKIPPED, reason[:500], None
            review.save(update_fields=["status", "skip_reason", "lease_expires_at", "updated_at"])


def flag_item(*, item: ReviewItem, reviewer: AbstractBaseUser, note: str) -> ItemReview:
    """Tell the session's admins something is wrong with the item (a broken trace, a wrong question)."""
    require_open(item.session)
    note = note.strip()
    if not note:
        raise ValidationError({"note": "Say what is wrong, so an admin can act on it."})
    if "\x00" in note:
        raise ValidationError({"note": "The note contains a NUL character; remove it."})
    with transaction.atomic():
        review, _ = ItemReview.objects.get_or_create(
            item=item, reviewer=reviewer, defaults={"status": ReviewStatus.CLAIMED, "claimed_at": timezone.now()}
        )
        review.flagged, review.flag_note = True, note[:1000]
        review.save(update_fields=["flagged", "flag_note", "updated_at"])
    return review
