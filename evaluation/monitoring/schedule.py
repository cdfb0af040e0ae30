"""Periodic work that every ``manage.py db_worker`` process offers to do and exactly one does per period.

Each worker runs a scheduler thread (``evaluation/management/commands/db_worker.py``) that, every
``MONITORING_TICK_SECONDS``, claims the ``PeriodicRun`` row of each job that is due with
``SELECT … FOR UPDATE SKIP LOCKED``, moves its ``last_run_at`` on in the same transaction and
enqueues the job as a task: with any number of workers a due job runs once, in a worker's task loop.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import close_old_connections, connection, transaction
from django.utils import timezone

from .models import PeriodicRun

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PeriodicJob:
    name: str
    every: timedelta
    function: str  # dotted path of a function taking no arguments; what it returns must be JSON


JOBS = (
    # work left in the queue by a killed worker, or queued while no task was waiting: wake a worker for it
    PeriodicJob("sweep_monitoring_queue", timedelta(seconds=30), "evaluation.monitoring.scoring.sweep"),
    # the experiments' "archive traces older than N days" settings
    # the worker tasks monitoring enqueues (one per burst of traffic, one per periodic run) once finished a day
    PeriodicJob("prune_monitoring_tasks", timedelta(hours=1), "evaluation.monitoring.schedule.prune_finished_tasks"),
    PeriodicJob(
        "archive_due_experiments", timedelta(minutes=10), "evaluation.monitoring.archive.archive_due_experiments"
    ),
)


PRUNED_TASKS = ("evaluation.tasks.score_monitoring_queue", "evaluation.tasks.run_periodic_job")
PRUNE_AFTER = timedelta(days=1)


def prune_finished_tasks(*, now: datetime | None = None) -> dict[str, int]:
    """Delete the finished (successful) results of monitoring's own worker tasks older than ``PRUNE_AFTER``;
    failed ones stay for a look. Other tasks' results are left alone."""
    from django_tasks.base import TaskResultStatus
    from django_tasks_db.models import DBTaskResult

    cutoff = (now or timezone.now()) - PRUNE_AFTER
    old = DBTaskResult.objects.filter(
        task_path__in=PRUNED_TASKS, status=TaskResultStatus.SUCCESSFUL, finished_at__lte=cutoff
    )
    deleted, _ = old.delete()
    return {"deleted": deleted}


def _claim_due(job: PeriodicJob, now: datetime) -> bool:
    """Take this period's run of ``job``: True for exactly one caller per period."""
    PeriodicRun.objects.get_or_create(name=job.name)
    with transaction.atomic():
        rows = PeriodicRun.objects.filter(name=job.name)
        if connection.features.has_select_for_update_skip_locked:
            rows = rows.select_for_update(skip_locked=True)
        run = rows.first()
        if run is None or (run.last_run_at is not None and run.last_run_at + job.every > now):
            return False
        PeriodicRun.objects.filter(pk=run.pk).update(last_run_at=now)
    return True


def run_due_jobs(*, now: datetime | None = None, jobs: tuple[PeriodicJob, ...] = JOBS) -> list[str]:
    """Enqueue each due job's task; the names of those enqueued."""
    from ..tasks import run_periodic_job

    moment = now or timezone.now()
    enqueued = []
    for job in jobs:
        if _claim_due(job, moment):
            run_periodic_job.enqueue(name=job.name, function=job.function)
            enqueued.append(job.name)
    return enqueued


class Scheduler(threading.Thread):
    """The worker's scheduler thread: ``run_due_jobs`` every ``tick`` seconds until stopped."""

    def __init__(self, tick: float) -> None:
        super().__init__(name="monitoring-scheduler", daemon=True)
        self.tick = tick
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.tick):
            try:
                close_old_connections()
                run_due_jobs()
            except Exception:  # a database hiccup must not end the scheduler: the next tick tries again
                logger.exception("monitoring scheduler tick failed")
            finally:
                close_old_connections()

    def stop(self) -> None:
        self.stopped.set()
