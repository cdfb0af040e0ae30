"""Re-scoring history: chosen registered scorers (at their rates or an override) over traces in a time range.

``start_backfill`` checks everything first and returns the queued job at once. Its task plans the
work (``plan_backfill``: the sampled, filter-matching, completed traces of the range, in trace-pk
chunks, skipping traces already scored by the same registration version) into the monitoring queue
at backfill priority, then scores it with the live scorers' machinery (``scoring``) until the job
ends. Progress is counted from the ledger and the queue, so it is right after a crash, a cancel or
two workers. Cancel drops the job's queued work; resume plans again from the start, and what was
scored is skipped.

Locks are taken in one order, queue rows then the job row (a worker holds its claimed rows when it
counts progress; a planner inserts its chunk before it locks the job), and cancelling skips the rows
a worker holds: so planners, workers and a cancel never wait on each other in a circle.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.db.models import Count, F, QuerySet
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from traces.models import Experiment, ExperimentKind, Trace, TraceState
from traces.references import acting_user

from .models import BackfillJob, BackfillStatus, MonitoringResult, MonitoringWork, RegisteredScorer
from .registrations import RegistrationError, check_rate
from .sampling import sampled_traces

PLAN_CHUNK = 5000
BACKFILL_PRIORITY = 1
RATE_WINDOW = timedelta(seconds=60)
ENDED = (BackfillStatus.FINISHED, BackfillStatus.CANCELLED, BackfillStatus.FAILED)
RESUMABLE = (BackfillStatus.CANCELLED, BackfillStatus.FAILED, BackfillStatus.RUNNING)
logger = logging.getLogger(__name__)


class BackfillError(ValueError):
    """The backfill cannot start (or be resumed); one line for a page or the command line."""


@dataclass(frozen=True)
class Progress:
    """Where a job stands, as a progress bar needs it."""

    status: str
    done: int
    total: int
    planned: bool


ProgressCallback = Callable[[Progress], object]


def parse_scorer_spec(spec: str) -> tuple[str, float | None]:
    """``NAME`` or ``NAME:RATE`` (the command line's form)."""
    name, colon, rate = spec.partition(":")
    if not name.strip():
        raise BackfillError(f"bad scorer {spec!r}: give NAME or NAME:RATE")
    if not colon:
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
            raise BackfillError(f"scorer {name!r} samples nothing (rate 0): give it a rate for this job")
        version = registration.versions.get(version=registration.version)
        chosen.append(
            {
                "registration": registration.pk,
                "name": registration.name,
                "scorer_name": registration.scorer_name,
                "version_pk": version.pk,
                "version": version.version,
                "sample_rate": rate,
                "rate_overridden": override is not None,
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
    """A queued backfill job (and its task, with ``enqueue``). Raises ``BackfillError`` before writing anything."""
    if experiment.kind != ExperimentKind.TRACES:
        raise BackfillError(f"experiment {experiment.name!r} holds a labeling session's copies, not live traffic")
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
            created_by=acting_user(by),
        )
        if enqueue:
            _enqueue(job)
    return job


def _enqueue(job: BackfillJob) -> None:
    from ..tasks import run_backfill

    transaction.on_commit(lambda: run_backfill.enqueue(job_pk=job.pk))


def _range(job: BackfillJob) -> QuerySet[Trace]:
    traces = Trace.objects.filter(experiment_id=job.experiment_id).exclude(state=TraceState.IN_PROGRESS)
    if job.start_time is not None:
        traces = traces.filter(request_time__gte=job.start_time)
    if job.end_time is not None:
        traces = traces.filter(request_time__lte=job.end_time)
    return traces


def _plan_chunk(job: BackfillJob, chunk: list[tuple[int, str]]) -> int:
    """Queue the chunk's sampled traces for each scorer, but not those its version already scored."""
    if not chunk:
        return 0
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
    # Work already queued for the same trace × version (live, or another job's) is left to whoever queued it.
    MonitoringWork.objects.bulk_create(rows, batch_size=2000, ignore_conflicts=True)
    return len(rows)


def _plan_next_chunk(job: BackfillJob, traces: QuerySet[Trace]) -> bool | None:
    """Plan one chunk after the job's ``planned_through``: True when all is planned, False when it was cancelled
    (or is gone), None when there is more to plan.

    The chunk's rows are inserted before the job row is locked (the lock order of the module docstring);
    if meanwhile the job was cancelled, or resumed (``planned_through`` moved), the chunk is rolled back.
    """
    with transaction.atomic():
        state = BackfillJob.objects.filter(pk=job.pk).values_list("status", "planned", "planned_through").first()
        if state is None:
            return False
        status, planned, through = state
        if status == BackfillStatus.CANCELLED:
            return False
        if planned:
            return True
        chunk = list(traces.filter(pk__gt=through).order_by("pk").values_list("pk", "trace_id")[:PLAN_CHUNK])
        _plan_chunk(job, chunk)
        locked = BackfillJob.objects.select_for_update().filter(pk=job.pk).values_list("status", "planned_through")
        now_state = locked.first()
        if now_state is None or now_state[0] == BackfillStatus.CANCELLED:
            transaction.set_rollback(True)
            return False
        if now_state[1] != through:
            transaction.set_rollback(True)  # another planner (or a resume) moved on: read again
            return None
        job.planned_through = chunk[-1][0] if chunk else through
        job.planned = len(chunk) < PLAN_CHUNK
        BackfillJob.objects.filter(pk=job.pk).update(planned_through=job.planned_through, planned=job.planned)
        count_progress([job.pk])
    return True if job.planned else None


def plan_backfill(job: BackfillJob, *, on_progress: ProgressCallback | None = None) -> bool:
    """Queue the job's work chunk by chunk (resuming after ``planned_through``); False when it was cancelled."""
    traces = _range(job)
    while True:
        outcome = _plan_next_chunk(job, traces)
        if outcome is not None:
            return outcome
        if on_progress is not None:
            _report(job, on_progress)


def count_progress(job_pks: Iterable[int]) -> None:
    """Recount done (its ledger rows) and total (done + still queued); finish jobs fully planned with none queued.

    Each write is a conditional UPDATE, so a count racing with a cancel never undoes it (a cancelled job's
    ``done`` still follows the ledger: a batch a worker was scoring when it was cancelled is kept).
    """
    pks = sorted(set(job_pks))  # one order for the row locks of every worker
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
    for pk in pks:
        n_done, n_queued = done.get(pk, 0), queued.get(pk, 0)
        jobs = BackfillJob.objects.filter(pk=pk)
        counted = jobs.exclude(status=BackfillStatus.CANCELLED).update(
            progress_done=n_done, progress_total=n_done + n_queued
        )
        if not counted:
            jobs.update(progress_done=n_done, progress_total=Greatest(F("progress_total"), n_done))
        elif not n_queued:
            jobs.filter(planned=True, status__in=[BackfillStatus.QUEUED, BackfillStatus.RUNNING]).update(
                status=BackfillStatus.FINISHED, finished_at=timezone.now()
            )


def progress_of(job_pk: int) -> Progress | None:
    found = BackfillJob.objects.filter(pk=job_pk).values_list("status", "progress_done", "progress_total", "planned")
    row = found.first()
    return Progress(*row) if row is not None else None


def _report(job: BackfillJob, on_progress: ProgressCallback) -> None:
    progress = progress_of(job.pk)
    if progress is not None:
        on_progress(progress)


def _score_until_ended(job: BackfillJob, on_progress: ProgressCallback | None) -> None:
    """Score queued work (the job's and whatever comes before it) until the job ends or nothing is claimable."""
    from .scoring import BatchScorer, score_next_batch

    scorer = BatchScorer()
    try:
        while True:
            progress = progress_of(job.pk)
            if progress is None or progress.status in ENDED:
                break
            if not score_next_batch(scorer):
                break
            if on_progress is not None:
                _report(job, on_progress)
    finally:
        scorer.close()
    count_progress([job.pk])


def execute_backfill(job_pk: int, *, on_progress: ProgressCallback | None = None) -> BackfillJob | None:
    """The task: plan the job's work, then score the queue until the job's work is done.

    Running it again (a retried task, a second worker, ``backfill_scorers --wait``) adds nothing twice.
    """
    job = BackfillJob.objects.filter(pk=job_pk).first()
    if job is None:
        return None
    startable = BackfillJob.objects.filter(pk=job.pk).exclude(
        status__in=[BackfillStatus.FINISHED, BackfillStatus.CANCELLED]
    )
    started_at = Coalesce(F("started_at"), timezone.now())
    if not startable.update(status=BackfillStatus.RUNNING, started_at=started_at, error=""):
        return job  # it had ended (or was cancelled before its task started)
    job.refresh_from_db()
    try:
        if plan_backfill(job, on_progress=on_progress):
            _score_until_ended(job, on_progress)
    except Exception as error:  # our side failed (scorers give error Feedback): say so on the job
        logger.exception("backfill %s failed", job.job_id)
        BackfillJob.objects.filter(pk=job.pk, status=BackfillStatus.RUNNING).update(
            status=BackfillStatus.FAILED, finished_at=timezone.now(), error=f"{type(error).__name__}: {error}"[:2000]
        )
    job.refresh_from_db()
    if on_progress is not None:
        _report(job, on_progress)
    return job


def _drop_queued_work(job: BackfillJob) -> None:
    """Delete the job's queued rows, but not those a worker is scoring now (its batch commits as usual)."""
    work = MonitoringWork.objects.filter(backfill=job)
    if connection.features.has_select_for_update_skip_locked:
        work = MonitoringWork.objects.filter(pk__in=work.select_for_update(skip_locked=True).values("pk"))
    work.delete()


def cancel_backfill(*, job: BackfillJob) -> bool:
    """Stop the job: its queued work is dropped (what was scored stays). False when it had ended."""
    with transaction.atomic():
        changed = BackfillJob.objects.filter(
            pk=job.pk, status__in=[BackfillStatus.QUEUED, BackfillStatus.RUNNING]
        ).update(status=BackfillStatus.CANCELLED, finished_at=timezone.now())
        if changed:
            _drop_queued_work(job)
            done = MonitoringResult.objects.filter(backfill=job).count()  # the total stays: "cancelled at 2 of 5"
            BackfillJob.objects.filter(pk=job.pk).update(
                progress_done=done, progress_total=Greatest("progress_total", done)
            )
    job.refresh_from_db()
    return bool(changed)


def resume_backfill(*, job: BackfillJob, enqueue: bool = True) -> BackfillJob:
    """Go on with a cancelled, failed or interrupted (running, its worker gone) job: plan again from the start
    (what was scored is skipped). Raises ``BackfillError`` for a finished or queued job."""
    with transaction.atomic():
        changed = BackfillJob.objects.filter(pk=job.pk, status__in=RESUMABLE).update(
            status=BackfillStatus.QUEUED,
            planned=False,
            planned_through=0,
            started_at=None,
            finished_at=None,
            error="",
        )
        if not changed:
            job.refresh_from_db()
            raise BackfillError(f"backfill {job.job_id} is {job.get_status_display().lower()}: nothing to resume")
        if enqueue:
            _enqueue(job)
    job.refresh_from_db()
    return job


def rate_and_eta(job: BackfillJob, *, now: datetime | None = None) -> tuple[float | None, float | None]:
    """Verdicts written per second and the seconds left at that rate (None while unknown).

    The rate is the job's ledger rows over the last minute of its current stretch (since it started or
    was resumed; for an ended job, the whole stretch), so a pause or a resume does not skew it.
    """
    if job.started_at is None:
        return None, None
    ended = job.status in ENDED and job.finished_at is not None
    end = job.finished_at if ended else (now or timezone.now())
    begin = job.started_at if ended else max(job.started_at, end - RATE_WINDOW)
    seconds = (end - begin).total_seconds()
    if seconds <= 0:
        return None, None
    scored = MonitoringResult.objects.filter(backfill_id=job.pk, scored_at__gte=begin, scored_at__lte=end).count()
    if not scored:
        return None, None
    rate = scored / seconds
    left = max(job.progress_total - job.progress_done, 0)
    return rate, (left / rate if job.planned and not ended else None)
