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
