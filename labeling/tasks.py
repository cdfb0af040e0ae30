"""Background work of the labeling app (django-tasks; run by ``python manage.py db_worker``). Ids in and out."""

from __future__ import annotations

from typing import Any

from django_tasks import task

from . import services


@task()
def run_trace_add(*, job_id: int) -> dict[str, Any]:
    """Copy the traces of a ``TraceAddJob`` into its session, resuming after its last finished batch."""
    job = services.run_trace_add_job(job_id=job_id)
    if job is None:
        return {"job_id": job_id, "state": "missing"}
    return {"job_id": job.pk, "state": job.state, "added": job.added, "skipped": job.skipped}
