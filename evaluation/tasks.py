"""Background work of the evaluation app (django-tasks; run by ``python manage.py db_worker``). Ids in and out."""

from __future__ import annotations

from typing import Any

from django_tasks import task


@task()
def run_evaluation(*, run_pk: int) -> dict[str, Any]:
    """Run an ``EvaluationRun``'s scorers over its traces, resuming after its last written batch."""
    from .runs import execute_run  # MLflow is imported by the run, never at worker start-up

    run = execute_run(run_pk)
    if run is None:
        return {"run_pk": run_pk, "status": "missing"}
    return {"run_pk": run.pk, "status": run.status, "done": run.progress_done, "metrics": run.metrics}


@task()
def score_monitoring_queue() -> dict[str, Any]:
    """Score the monitoring queue's work (live traffic and backfills) until none is left to claim."""
    from .monitoring.scoring import drain_queue

    return {"scored": drain_queue()}


@task()
def run_backfill(*, job_pk: int) -> dict[str, Any]:
    """Plan a backfill job's work into the monitoring queue and score it."""
    from .monitoring.backfill import execute_backfill

    job = execute_backfill(job_pk)
    if job is None:
        return {"job_pk": job_pk, "status": "missing"}
    return {"job_pk": job.pk, "status": job.status, "done": job.progress_done, "total": job.progress_total}


@task()
def run_periodic_job(*, name: str, function: str) -> Any:
    """One run of periodic job ``name`` of ``evaluation.monitoring.schedule`` (enqueued by the workers' schedulers)."""
    from django.utils.module_loading import import_string

    return {"job": name, "result": import_string(function)()}
