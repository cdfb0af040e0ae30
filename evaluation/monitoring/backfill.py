"""Re-scoring history: chosen registered scorers (at their rates or an override) over traces in a time range.

``start_backfill`` checks everything first and returns the queued job at once. Its task plans the
work (``plan_backfill``: the sampled, filter-matching, completed traces of the range, in trace-pk
chunks, skipping traces already scored by the same registration version) into the monitoring queue
at backfill priority, then scores it with the live scorers' machinery (``scoring``). Progress is
counted from the ledger and the queue, so it is right after a crash, a cancel or two workers.
Cancel drops the job's queued work; resume plans again from the start, and what was scored is skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from traces.models import Experiment, Trace, TraceState

from .models import BackfillJob, BackfillStatus, MonitoringResult, MonitoringWork, RegisteredScorer
from .registrations import RegistrationError, check_rate
from .sampling import sampled_traces

PLAN_CHUNK = 5000
BACKFILL_PRIORITY = 1
logger = logging.getLogger(__name__)


class BackfillError(ValueError):
    """The backfill cannot start; one line for a page or the command line."""


def parse_scorer_spec(spec: str) -> tuple[str, float | None]:
    """``NAME`` or ``NAME:RATE`` (the command line's form)."""
    name, _, rate = spec.partition(":")
    if not name.strip():
        raise BackfillError(f"bad scorer {spec!r}: give NAME or NAME:RATE")
    if not rate:
        return name.strip(), None
    try:
        return name.strip(), float(rate)
    except ValueError:
        raise BackfillError(f"bad sample rate in {spec!r}: give a number from 0 to 1") from None


def _chosen(experiment: Experiment, scorers: Sequence[tuple[str, float | None]]) -> list[dict[str, Any]]:
    if not scorers:
        raise BackfillError("pick at least one registered scorer")
    chosen = []
    for name, override in dict(scorers).items():
        registration = RegisteredScorer.objects.filter(experiment=experiment, name=name).live().first()
        if registration is None:
            raise BackfillError(f"experiment {experiment.name!r} has no scorer registered as {name!r}")
        try:
            rate = registration.sample_rate if override is None else check_rate(override)
        except RegistrationError as error:
            raise BackfillError(f"{name}: {error}") from None
        if rate <= 0:
            raise BackfillError(f"scorer {name!r} samples nothing (rate 0): give a rate for this job ({name}:RATE)")
        version = registration.versions.get(version=registration.version)
        chosen.append(
            {
                "registration": registration.pk,
                "name": registration.name,
                "version_pk": version.pk,
                "version": version.version,
                "sample_rate": rate,
                "filter_string": registration.filter_string,
            }
        )
    return chosen


def start_backfill(
    *,
    experiment: Experiment,
    scorers: Sequence[tuple[str, float | None]],
    start: datetime | None = None,
    end: datetime | None = None,
    by: AbstractBaseUser | None = None,
    enqueue: bool = True,
) -> BackfillJob:
    """A queued backfill job (and its task, with ``enqueue``). Raises ``BackfillError``."""
    for moment in (start, end):
        if moment is not None and timezone.is_naive(moment):
            raise BackfillError("give times with a time zone (e.g. 2026-11-01T00:00:00Z)")
    end = end or timezone.now()
    if start is not None and start >= end:
        raise BackfillError("the start of the range must be before its end")
    chosen = _chosen(experiment, scorers)
    with transaction.atomic():
        job = BackfillJob.objects.create(
            experiment=experiment,
            scorers=chosen,
            start_time=start,
            end_time=end,
            created_by=by if by is not None and by.is_authenticated else None,
        )
        if enqueue:
            _enqueue(job)
    return job


def _enqueue(job: BackfillJob) -> None:
    from ..tasks import run_backfill

    transaction.on_commit(lambda: run_backfill.enqueue(job_pk=job.pk))


def _range(job: BackfillJob):
    traces = Trace.objects.filter(experiment_id=job.experiment_id).exclude(state=TraceState.IN_PROGRESS)
    if job.start_time is not None:
        traces = traces.filter(request_time__gte=job.start_time)
    if job.end_time is not None:
        traces = traces.filter(request_time__lte=job.end_time)
    return traces


def _plan_chunk(job: BackfillJob, chunk: list[tuple[int, str]]) -> int:
    pks = [pk for pk, _ in chunk]
    versions = [scorer["version_pk"] for scorer in job.scorers]
    scored = set(
        MonitoringResult.objects.filter(trace_id__in=pks, registration_version_id__in=versions).values_list(
            "trace_id", "registration_version_id"
        )
    )
    now = timezone.now()
    rows = [
        MonitoringWork(
            trace_id=pk,
            registration_version_id=scorer["version_pk"],
            backfill=job,
            priority=BACKFILL_PRIORITY,
            queued_at=now,
        )
        for scorer in job.scorers
        for pk in sorted(sampled_traces(scorer["name"], scorer["sample_rate"], scorer["filter_string"], chunk))
        if (pk, scorer["version_pk"]) not in scored
    ]
    MonitoringWork.objects.bulk_create(rows, batch_size=2000, ignore_conflicts=True)
    return len(rows)


def _is_cancelled(job: BackfillJob) -> bool:
    return BackfillJob.objects.filter(pk=job.pk, status=BackfillStatus.CANCELLED).exists()


def plan_backfill(job: BackfillJob) -> bool:
    """Queue the job's work chunk by chunk (resuming after ``planned_through``); False when it was cancelled."""
    traces = _range(job)
    while not job.planned:
        if _is_cancelled(job):
            return False
        chunk = list(
            traces.filter(pk__gt=job.planned_through).order_by("pk").values_list("pk", "trace_id")[:PLAN_CHUNK]
        )
        with transaction.atomic():
            _plan_chunk(job, chunk)
            job.planned_through = chunk[-1][0] if chunk else job.planned_through
            job.planned = len(chunk) < PLAN_CHUNK
            BackfillJob.objects.filter(pk=job.pk).update(planned_through=job.planned_through, planned=job.planned)
            count_progress([job.pk])
    return True


def count_progress(job_pks: Iterable[int]) -> None:
    """Recount done (its ledger rows) and total (done + still queued); finish jobs fully planned with none queued."""
    pks = list(job_pks)
    done = dict(
        MonitoringResult.objects.filter(backfill_id__in=pks)
        .values("backfill_id")
        .annotate(n=Count("id"))
        .values_list("backfill_id", "n")
    )
    queued = dict(
        MonitoringWork.objects.filter(backfill_id__in=pks)
        .values("backfill_id")
        .annotate(n=Count("id"))
        .values_list("backfill_id", "n")
    )
    for job in BackfillJob.objects.filter(pk__in=pks).exclude(status=BackfillStatus.CANCELLED):
        job.progress_done = done.get(job.pk, 0)
        job.progress_total = job.progress_done + queued.get(job.pk, 0)
        fields = ["progress_done", "progress_total"]
        if job.planned and not queued.get(job.pk) and job.status != BackfillStatus.FINISHED:
            job.status, job.finished_at = BackfillStatus.FINISHED, timezone.now()
            fields += ["status", "finished_at"]
        job.save(update_fields=fields)


def execute_backfill(job_pk: int) -> BackfillJob | None:
    """The task: plan the job's work, then score the queue until the job's work is done."""
    from .scoring import drain_queue

    job = BackfillJob.objects.filter(pk=job_pk).first()
    if job is None or job.status in (BackfillStatus.FINISHED, BackfillStatus.CANCELLED):
        return job
    BackfillJob.objects.filter(pk=job.pk).update(
        status=BackfillStatus.RUNNING, started_at=job.started_at or timezone.now(), error=""
    )
    job.status = BackfillStatus.RUNNING
    try:
        if plan_backfill(job):
            drain_queue()
            count_progress([job.pk])
    except Exception as error:  # our side failed (scorers give error Feedback): say so on the job
        logger.exception("backfill %s failed", job.job_id)
        BackfillJob.objects.filter(pk=job.pk).exclude(status=BackfillStatus.CANCELLED).update(
            status=BackfillStatus.FAILED, finished_at=timezone.now(), error=f"{type(error).__name__}: {error}"[:2000]
        )
    job.refresh_from_db()
    return job


def cancel_backfill(*, job: BackfillJob) -> bool:
    """Stop the job: its queued work is dropped (what was scored stays). False when it had ended."""
    with transaction.atomic():
        changed = BackfillJob.objects.filter(
            pk=job.pk, status__in=[BackfillStatus.QUEUED, BackfillStatus.RUNNING]
        ).update(status=BackfillStatus.CANCELLED, finished_at=timezone.now())
        if changed:
            MonitoringWork.objects.filter(backfill=job).delete()
    job.refresh_from_db()
    return bool(changed)


def resume_backfill(*, job: BackfillJob, enqueue: bool = True) -> BackfillJob:
    """Go on with a cancelled, failed or interrupted job: plan again from the start (scored traces are skipped)."""
    if job.status == BackfillStatus.FINISHED:
        raise BackfillError(f"backfill {job.job_id} has finished")
    with transaction.atomic():
        BackfillJob.objects.filter(pk=job.pk).update(
            status=BackfillStatus.QUEUED, planned=False, planned_through=0, finished_at=None, error=""
        )
        if enqueue:
            _enqueue(job)
    job.refresh_from_db()
    return job


def rate_and_eta(job: BackfillJob, *, now: datetime | None = None) -> tuple[float | None, float | None]:
    """Traces scored per second since it started, and the seconds left at that rate (None while unknown)."""
    if job.started_at is None or not job.progress_done:
        return None, None
    end = job.finished_at or now or timezone.now()
    elapsed = max((end - job.started_at).total_seconds(), 1e-3)
    rate = job.progress_done / elapsed
    left = max(job.progress_total - job.progress_done, 0)
    return rate, (left / rate if job.planned else None)
