"""Explicit assignment: which reviewer answers which item (sessions in ``assigned`` mode)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction

from .models import ItemAssignment, LabelingSession


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
