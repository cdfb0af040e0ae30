"""Quality over time: what the monitoring dashboard shows for an experiment's registered scorers.

The charts are read from the hourly ``MonitoringRollup`` counts (kept with the ledger), summed in SQL
by hour or day of the traces' request time and grouped by registration, so a page runs the same few
queries over a few hundred rows whatever the volume; the latest failures come from the
``MonitoringResult`` ledger (one row per trace × registration version) by its failure index.
The scorers shown are the experiment's live registrations plus deleted ones that still have
results in the window (their verdicts stay; the dashboard says they were deleted).

Pass rate is passed / (passed + failed + error): an erroring scorer counts against quality. A scorer
whose results in the window are mostly numbers is numeric and shows its mean value instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.db.models import QuerySet, Sum
from django.db.models.functions import Trunc
from django.utils import timezone

from traces.models import Assessment, Experiment, ExperimentKind, Trace

from .models import MonitoringResult, MonitoringRollup, RegisteredScorer, RegistrationStatus, Verdict
from .scoring import REGISTRATION_KEY, REGISTRATION_VERSION_KEY

FAILURES_SHOWN = 25
FAILED_VERDICTS = (Verdict.FAILED, Verdict.ERROR)
FAILURE_FIELDS = (
    *("id", "verdict", "request_time", "scored_at", "value"),
    *("trace__id", "trace__trace_id", "trace__request_preview"),
    *("registration__id", "registration__name", "registration__status", "registration__experiment_id"),
    *("registration_version__id", "registration_version__version"),
)


@dataclass(frozen=True)
class Window:
    """A time window of the dashboard: the last ``count`` hours or days, one bucket each."""

    key: str
    label: str
    unit: str  # "hour" or "day": the SQL truncation
    count: int

    def bucket_starts(self, now: datetime | None = None) -> list[datetime]:
        """The buckets' starts, oldest first, in the current time zone; the last holds ``now``."""
        local = timezone.localtime(now or timezone.now())
        if self.unit == "hour":  # in UTC: an hour is 60 minutes across DST changes
            current = local.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
            return [timezone.localtime(current - timedelta(hours=back)) for back in range(self.count - 1, -1, -1)]
        # wall-clock arithmetic on one tzinfo: a day is a calendar day (23 or 25 hours across DST changes)
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
        return [timezone.localtime(midnight - timedelta(days=back)) for back in range(self.count - 1, -1, -1)]

    def bounds(self, now: datetime | None = None) -> tuple[datetime, datetime]:
        """From the first bucket's start to the last one's end."""
        starts = self.bucket_starts(now)
        if self.unit == "hour":
            return starts[0], starts[-1].astimezone(UTC) + timedelta(hours=1)
        return starts[0], timezone.localtime(starts[-1] + timedelta(days=1))


WINDOWS: dict[str, Window] = {
    "24h": Window("24h", "Last 24 hours", "hour", 24),
    "7d": Window("7d", "Last 7 days", "day", 7),
    "30d": Window("30d", "Last 30 days", "day", 30),
}
DEFAULT_WINDOW = WINDOWS["7d"]


class WindowError(ValueError):
    """An unknown window; the message lists the known ones."""


def parse_window(value: str | None) -> Window:
    """``24h``, ``7d`` or ``30d``; blank is the default (7 days); anything else is a ``WindowError``."""
    key = (value or "").strip()
    if not key:
        return DEFAULT_WINDOW
    if key not in WINDOWS:
        raise WindowError(f"Unknown window “{key[:40]}”: choose {', '.join(WINDOWS)}.")
    return WINDOWS[key]


@dataclass
class Bucket:
    """One hour or day of one scorer's results (or the window's totals)."""

    start: datetime
    total: int = 0
    passed: int = 0
    failed: int = 0
    errors: int = 0
    numbers: int = 0
    value_sum: float = 0.0

    @property
    def judged(self) -> int:
        """Results that count for the pass rate: passed, failed or erroring."""
        return self.passed + self.failed + self.errors

    @property
    def pass_rate(self) -> float | None:
        return self.passed / self.judged if self.judged else None

    @property
    def mean(self) -> float | None:
        return self.value_sum / self.numbers if self.numbers else None

    def add(self, other: Bucket) -> None:
        self.total += other.total
        self.passed += other.passed
        self.failed += other.failed
        self.errors += other.errors
        self.numbers += other.numbers
        self.value_sum += other.value_sum


@dataclass
class ScorerSeries:
    """A registered scorer's buckets over the window, its totals and its current configuration."""

    registration: RegisteredScorer
    buckets: list[Bucket]
    totals: Bucket
    failures: int = field(default=0)

    @property
    def numeric(self) -> bool:
        """Mostly numbers (a length, a score): the chart shows the mean value instead of a pass rate."""
        return self.totals.numbers > self.totals.passed + self.totals.failed

    @property
    def deleted(self) -> bool:
        return self.registration.status == RegistrationStatus.DELETED

    def value(self, bucket: Bucket) -> float | None:
        return bucket.mean if self.numeric else bucket.pass_rate


def _registrations(experiment: Experiment) -> list[RegisteredScorer]:
    return list(RegisteredScorer.objects.filter(experiment=experiment).order_by("name", "id"))


def _bucket_rows(registration_ids: list[int], window: Window, start: datetime, end: datetime) -> QuerySet:
    """One row per (registration, bucket) with its counts, summed from the hourly rollups (one query)."""
    return (
        MonitoringRollup.objects.filter(registration_id__in=registration_ids, hour__gte=start, hour__lt=end)
        .annotate(bucket=Trunc("hour", window.unit, tzinfo=timezone.get_current_timezone()))
        .values("registration_id", "bucket")
        .annotate(
            total=Sum("total"),
            passed=Sum("passed"),
            failed=Sum("failed"),
            errors=Sum("errors"),
            numbers=Sum("numbers"),
            value_sum=Sum("value_sum"),
        )
        .order_by()
    )


def quality_over_time(experiment: Experiment, window: Window, *, now: datetime | None = None) -> list[ScorerSeries]:
    """Each scorer's series over ``window`` (two queries): live registrations, and deleted ones with results."""
    registrations = _registrations(experiment)
    if not registrations:
        return []
    now = now or timezone.now()
    starts = window.bucket_starts(now)
    start, end = window.bounds(now)
    counted: dict[tuple[int, float], Bucket] = {}
    for row in _bucket_rows([r.pk for r in registrations], window, start, end):
        key = (row["registration_id"], row["bucket"].timestamp())
        counted[key] = Bucket(
            start=row["bucket"],
            total=row["total"],
            passed=row["passed"],
            failed=row["failed"],
            errors=row["errors"],
            numbers=row["numbers"],
            value_sum=row["value_sum"] or 0.0,
        )
    with_results = {pk for pk, _ in counted}
    series = []
    for registration in registrations:
        if registration.status == RegistrationStatus.DELETED and registration.pk not in with_results:
            continue
        buckets = [counted.get((registration.pk, s.timestamp())) or Bucket(start=s) for s in starts]
        totals = Bucket(start=start)
        for bucket in buckets:
            totals.add(bucket)
        series.append(ScorerSeries(registration, buckets, totals, failures=totals.failed + totals.errors))
    # live scorers first, then deleted ones (by name within each)
    return sorted(series, key=lambda s: (s.deleted, s.registration.name, s.registration.pk))


@dataclass(frozen=True)
class FailureRow:
    """A failed or erroring verdict: its trace, scorer, version, the Feedback's reason and when."""

    result: MonitoringResult
    message: str

    @property
    def trace(self) -> Trace:
        return self.result.trace

    @property
    def registration(self) -> RegisteredScorer:
        return self.result.registration

    @property
    def version(self) -> int:
        return self.result.registration_version.version

    @property
    def is_error(self) -> bool:
        return self.result.verdict == Verdict.ERROR


def _reason(feedback: list[Assessment], is_error: bool) -> str:
    """The error message of an erroring verdict, else the first rationale given."""
    if is_error:
        for a in feedback:
            if a.error:
                code, message = a.error.get("error_code", ""), a.error.get("error_message", "")
                return f"{code}: {message}" if code and message else str(code or message)
    return next((a.rationale for a in feedback if a.rationale), "")


def latest_failures(
    registrations: list[RegisteredScorer], window: Window, *, now: datetime | None = None, limit: int = FAILURES_SHOWN
) -> list[FailureRow]:
    """The latest failed or erroring verdicts of these scorers in the window, with their reasons (two queries)."""
    if not registrations:
        return []
    start, end = window.bounds(now)
    results = list(
        MonitoringResult.objects.filter(
            registration__in=registrations,
            verdict__in=FAILED_VERDICTS,
            request_time__gte=start,
            request_time__lt=end,
        )
        .select_related("trace", "registration", "registration_version")
        .only(*FAILURE_FIELDS)
        .order_by("-request_time", "-id")[:limit]
    )
    if not results:
        return []
    feedback: dict[tuple[int, str, str], list[Assessment]] = {}
    assessments = Assessment.objects.filter(trace_id__in={r.trace_id for r in results}, valid=True).only(
        "id", "trace_id", "name", "rationale", "error", "metadata"
    )
    for a in assessments.order_by("id"):
        meta = a.metadata if isinstance(a.metadata, dict) else {}
        if REGISTRATION_KEY in meta:
            key = (a.trace_id, str(meta[REGISTRATION_KEY]), str(meta.get(REGISTRATION_VERSION_KEY, "")))
            feedback.setdefault(key, []).append(a)
    rows = []
    for r in results:
        found = feedback.get((r.trace_id, r.registration.name, str(r.registration_version.version)), [])
        rows.append(FailureRow(r, _reason(found, r.verdict == Verdict.ERROR)))
    return rows


def failed_traces(
    experiment: Experiment,
    window: Window,
    *,
    registration: RegisteredScorer | None = None,
    now: datetime | None = None,
) -> QuerySet[Trace]:
    """The experiment's traces a scorer (or any of its scorers) failed or errored on in the window.

    Any version's verdict counts (a backfill that re-scored a trace adds a row, it does not replace one).
    """
    start, end = window.bounds(now)
    results = MonitoringResult.objects.filter(
        registration__experiment=experiment,
        verdict__in=FAILED_VERDICTS,
        request_time__gte=start,
        request_time__lt=end,
    )
    if registration is not None:
        results = results.filter(registration=registration)
    return Trace.objects.filter(
        pk__in=results.order_by().values("trace_id"), experiment=experiment, experiment__kind=ExperimentKind.TRACES
    )
