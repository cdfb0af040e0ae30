"""Who may see and manage what: admins, session leads, reviewers.

Admins (``is_staff``) manage every session. A lead manages the sessions they lead. A reviewer
sees the sessions they are assigned to and, inside them, the items handed to them. Reads of what
one may not see are 404 in the views; these helpers only answer the question.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Exists, OuterRef, Q, QuerySet

from .models import ItemAssignment, ItemReview, LabelingSession, ReviewItem, ReviewStatus


def is_admin(user: Any) -> bool:
    return bool(user.is_authenticated and user.is_staff)


def can_manage(user: Any, session: LabelingSession) -> bool:
    """Admins manage every session; a lead manages the sessions they lead (cached per session object)."""
    cache = session.__dict__.setdefault("_can_manage", {})
    if user.pk not in cache:
        cache[user.pk] = is_admin(user) or session.leads.filter(pk=user.pk).exists()
    return cache[user.pk]


def is_lead_anywhere(user: Any) -> bool:
    return bool(user.is_authenticated and (user.is_staff or user.led_sessions.exists()))


def managed_sessions(user: Any) -> QuerySet[LabelingSession]:
    if is_admin(user):
        return LabelingSession.objects.all()
    return LabelingSession.objects.filter(leads=user)


def managed_copy_experiments(user: Any) -> QuerySet[LabelingSession]:
    """The experiments holding the frozen trace copies of the sessions a user manages (ids, for a subquery)."""
    return managed_sessions(user).values("experiment_id")


def reviewable_sessions(user: Any) -> QuerySet[LabelingSession]:
    """Sessions a user may open the review screen of: as a reviewer, a lead, or an admin."""
    sessions = LabelingSession.objects.select_related("experiment")
    if is_admin(user):
        return sessions
    return sessions.filter(Q(reviewers=user) | Q(leads=user)).distinct()


def is_session_reviewer(user: Any, session: LabelingSession) -> bool:
    """Assigned to review this session (leads and admins may open items without being reviewers)."""
    cache = session.__dict__.setdefault("_is_reviewer", {})
    if user.pk not in cache:
        cache[user.pk] = session.reviewers.filter(pk=user.pk).exists()
    return cache[user.pk]


def visible_items(session: LabelingSession, user: Any) -> QuerySet[ReviewItem]:
    """Items a user may open: everything for managers; for reviewers, the ones given to them."""
    items = session.items.all()
    if can_manage(user, session):
        return items
    given = Q(reviews__reviewer=user)
    if session.assignment_mode == "assigned":
        given |= Q(assignments__reviewer=user)
    return items.filter(given).distinct()


def reviewer_copy_traces(user: Any) -> QuerySet[ReviewItem]:
    """The pks of the frozen copies a reviewer may read over the API, for a subquery: ``visible_items``'
    rule for a reviewer (items they took up; in assigned sessions also the ones given to them) in the
    sessions they review. In a blind session only once they have submitted it, since a copy carries
    the other reviewers' answers and the automatic verdicts, which the review screen hides until then."""
    reviewed = ItemReview.objects.filter(item=OuterRef("pk"), reviewer=user)
    assigned = ItemAssignment.objects.filter(item=OuterRef("pk"), reviewer=user)
    given = Q(Exists(reviewed)) | (Q(session__assignment_mode="assigned") & Q(Exists(assigned)))
    not_blinded = Q(session__blind=False) | Q(Exists(reviewed.filter(status=ReviewStatus.SUBMITTED)))
    return ReviewItem.objects.filter(given, not_blinded, session__reviewers=user).values("trace_id")
