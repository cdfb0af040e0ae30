"""The workers' periodic jobs: each due job is enqueued once per period, however many workers ask."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from evaluation.monitoring.models import MonitoringWork, PeriodicRun
from evaluation.monitoring.registrations import register_scorer
from evaluation.monitoring.schedule import PeriodicJob, run_due_jobs
from evaluation.monitoring.scoring import sweep
from tests.factories import make_experiment, make_trace
from traces.models import Assessment

pytestmark = pytest.mark.django_db
COUNTING = "tests.evaluation.monitoring.test_schedule.count_a_run"
RUNS: list[int] = []


def count_a_run() -> int:
    RUNS.append(1)
    return len(RUNS)


def test_a_due_job_runs_once_per_period() -> None:
    RUNS.clear()
    job = PeriodicJob("counting", timedelta(minutes=5), COUNTING)
    now = timezone.now()
    assert run_due_jobs(now=now, jobs=(job,)) == ["counting"]
    assert run_due_jobs(now=now + timedelta(minutes=1), jobs=(job,)) == []  # a second worker in the same period
    assert run_due_jobs(now=now + timedelta(minutes=5), jobs=(job,)) == ["counting"]
    assert RUNS == [1, 1]
    assert PeriodicRun.objects.get(name="counting").last_run_at == now + timedelta(minutes=5)


def test_the_sweep_scores_work_left_in_the_queue(settings: Any) -> None:
    experiment = make_experiment("Production")
    registration = register_scorer(
        experiment=experiment, name="docs", scorer_name="has_retrieved_documents", sample_rate=1.0
    )
    trace = make_trace(experiment=experiment)
    # queued, but its worker was killed before it committed anything (no task waits for it)
    MonitoringWork.objects.create(trace=trace, registration_version=registration.versions.get())
    assert sweep() == {"queued": 1}
    assert Assessment.objects.filter(trace=trace, name="docs").count() == 1
    assert sweep() == {"queued": 0}


def test_finished_monitoring_tasks_are_pruned_after_a_day(settings: Any) -> None:
    from django_tasks_db.models import DBTaskResult

    from evaluation.monitoring.schedule import prune_finished_tasks
    from evaluation.tasks import run_evaluation, score_monitoring_queue

    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
    old = timezone.now() - timedelta(days=2)
    for task in (score_monitoring_queue, score_monitoring_queue, run_evaluation):
        result = task.enqueue() if task is score_monitoring_queue else task.enqueue(run_pk=1)
        DBTaskResult.objects.filter(pk=result.id).update(status="SUCCESSFUL", finished_at=old)
    failed = score_monitoring_queue.enqueue()
    DBTaskResult.objects.filter(pk=failed.id).update(status="FAILED", finished_at=old)
    waiting = score_monitoring_queue.enqueue()
    assert prune_finished_tasks() == {"deleted": 2}
    remaining = set(DBTaskResult.objects.values_list("pk", flat=True))
    assert {str(pk) for pk in remaining} >= {str(failed.id), str(waiting.id)} and len(remaining) == 3
