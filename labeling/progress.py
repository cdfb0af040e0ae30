"""Progress: a reviewer's place in a session ("N of M left") and per-reviewer numbers for the dashboard."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, DurationField, F, Max, Min, Q, Sum

from .access import can_manage
from .models import ItemReview, LabelingSession, ReviewItem, ReviewStatus


@dataclass(slots=True)
class Progress:
    total: int
    submitted: int
    position: int  # 1-based index of the current item

    @property
    def left(self) -> int:
        return self.total - self.submitted

    @property
    def percent(self) -> int:
        return round(100 * self.submitted / self.total) if self.total else 100


def reviewer_position(session: LabelingSession, user: Any, item: ReviewItem) -> Progress:
    """“N of M left”: M items in this reviewer's scope, N of them still waiting for this reviewer.

    An item counts as done for the reviewer when they answered it or when others filled it.
    """
    scope = session.items.all()
    if session.assignment_mode == "assigned" and not can_manage(user, session):
        scope = scope.filter(assignments__reviewer=user)
    mine_done = Q(reviews__reviewer=user, reviews__status=ReviewStatus.SUBMITTED)
    counts = scope.aggregate(
        total=Count("pk", distinct=True),
        submitted=Count("pk", filter=mine_done, distinct=True),
        closed=Count("pk", filter=Q(submitted_count__gte=session.reviewers_per_item) & ~mine_done, distinct=True),
        before=Count("pk", filter=Q(position__lt=item.position), distinct=True),
    )
    return Progress(
        total=counts["total"],
        submitted=counts["submitted"] + counts["closed"],
        position=counts["before"] + 1,
    )


@dataclass(slots=True)
class SessionSummary:
    """What the "all done" page tells a reviewer."""

    done: int
    skipped: int
    late: int
    still_open: int  # items that still need answers from someone


def reviewer_summary(session: LabelingSession, user: Any) -> SessionSummary:
    mine = ItemReview.objects.filter(item__session=session, reviewer=user).aggregate(
        done=Count("pk", filter=Q(status=ReviewStatus.SUBMITTED)),
        skipped=Count("pk", filter=Q(status=ReviewStatus.SKIPPED)),
        late=Count("pk", filter=Q(status=ReviewStatus.SUBMITTED, late=True)),
    )
    still_open = session.items.filter(submitted_count__lt=session.reviewers_per_item).count()
    return SessionSummary(done=mine["done"], skipped=mine["skipped"], late=mine["late"], still_open=still_open)


def _pace(count: int, total: timedelta | None, first: datetime | None, last: datetime | None) -> tuple[Any, Any]:
    """Average seconds from claim to submit, and items per hour over the reviewer's working span."""
    if not count or total is None or first is None or last is None:
        return None, None
    hours = (last - first).total_seconds() / 3600
    return total.total_seconds() / count, (round(count / hours, 1) if hours > 0 else None)


def reviewer_progress(session: LabelingSession) -> list[dict[str, Any]]:
    """Per reviewer: done, late, skipped, flagged, in progress, average seconds per item, items per hour."""
    rows = (
        ItemReview.objects.filter(item__session=session)
        .values("reviewer__username")
        .annotate(
            done=Count("pk", filter=Q(status=ReviewStatus.SUBMITTED)),
            late=Count("pk", filter=Q(status=ReviewStatus.SUBMITTED, late=True)),
            skipped=Count("pk", filter=Q(status=ReviewStatus.SKIPPED)),
            flagged=Count("pk", filter=Q(flagged=True)),
            in_progress=Count("pk", filter=Q(status=ReviewStatus.CLAIMED)),
        )
        .order_by("reviewer__username")
    )
    timed = Q(status=ReviewStatus.SUBMITTED, claimed_at__isnull=False, submitted_at__isnull=False)
    paces = {
        row["reviewer__username"]: row
        for row in ItemReview.objects.filter(timed, item__session=session)
        .values("reviewer__username")
        .annotate(
            timed=Count("pk"),
            spent=Sum(F("submitted_at") - F("claimed_at"), output_field=DurationField()),
            first=Min("claimed_at"),
            last=Max("submitted_at"),
        )
        .order_by()
    }
    result = []
    for row in rows:
        pace = paces.get(row["reviewer__username"])
        average, per_hour = _pace(pace["timed"], pace["spent"], pace["first"], pace["last"]) if pace else (None, None)
        result.append({**row, "average_seconds": average, "items_per_hour": per_hour})
    return result
