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
