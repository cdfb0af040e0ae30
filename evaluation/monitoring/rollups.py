"""Hourly verdict counts per registration (``MonitoringRollup``), kept with the ledger.

``add_to_rollups`` runs in the transaction that inserts ledger rows it is given (rows that are new:
the worker checked, under its claim, that no result exists for them). Rows to change are created
and updated in sorted key order, so two workers adding to the same hours wait for each other and
never deadlock. ``rebuild_rollups`` recounts registrations from the ledger (after a bulk load).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from django.db import transaction
from django.db.models import Count, F, Q, Sum
from django.db.models.functions import TruncHour

from .models import MonitoringResult, MonitoringRollup, Verdict


@dataclass
class _Counts:
    total: int = 0
    passed: int = 0
    failed: int = 0
    errors: int = 0
    numbers: int = 0
    value_sum: float = 0.0

    def add(self, verdict: str, value: float | None) -> None:
        self.total += 1
        self.passed += verdict == Verdict.PASSED
        self.failed += verdict == Verdict.FAILED
        self.errors += verdict == Verdict.ERROR
        if verdict == Verdict.NUMBER:
            self.numbers += 1
            self.value_sum += value or 0.0


def hour_of(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def add_to_rollups(results: Iterable[MonitoringResult]) -> None:
    counts: dict[tuple[int, datetime], _Counts] = {}
    for result in results:
        counts.setdefault((result.registration_id, hour_of(result.request_time)), _Counts()).add(
            result.verdict, result.value
        )
    if not counts:
        return
    keys = sorted(counts)
    MonitoringRollup.objects.bulk_create(
        [MonitoringRollup(registration_id=pk, hour=hour) for pk, hour in keys], ignore_conflicts=True
    )
    for pk, hour in keys:
        c = counts[(pk, hour)]
        MonitoringRollup.objects.filter(registration_id=pk, hour=hour).update(
            total=F("total") + c.total,
            passed=F("passed") + c.passed,
            failed=F("failed") + c.failed,
            errors=F("errors") + c.errors,
            numbers=F("numbers") + c.numbers,
            value_sum=F("value_sum") + c.value_sum,
        )


def rebuild_rollups(registration_ids: Iterable[int]) -> int:
    """Recount these registrations' rollups from the ledger; how many hour rows they have now."""
    pks = list(registration_ids)
    rows = (
        MonitoringResult.objects.filter(registration_id__in=pks)
        .annotate(hour=TruncHour("request_time", tzinfo=UTC))
        .values("registration_id", "hour")
        .annotate(
            total=Count("id"),
            passed=Count("id", filter=Q(verdict=Verdict.PASSED)),
            failed=Count("id", filter=Q(verdict=Verdict.FAILED)),
            errors=Count("id", filter=Q(verdict=Verdict.ERROR)),
            numbers=Count("id", filter=Q(verdict=Verdict.NUMBER)),
            value_sum=Sum("value", filter=Q(verdict=Verdict.NUMBER)),
        )
        .order_by()
    )
    rollups = [
        MonitoringRollup(
            registration_id=row["registration_id"],
            hour=row["hour"],
            total=row["total"],
            passed=row["passed"],
            failed=row["failed"],
            errors=row["errors"],
            numbers=row["numbers"],
            value_sum=row["value_sum"] or 0.0,
        )
        for row in rows
    ]
    with transaction.atomic():
        MonitoringRollup.objects.filter(registration_id__in=pks).delete()
        MonitoringRollup.objects.bulk_create(rollups, batch_size=2000)
    return len(rollups)
