"""Large adds of traces to a session: the job's progress (full page or the HTMX partial) and retrying it."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from .. import services
from ..models import JobState, LabelingSession, TraceAddJob
from .access import get_session_for_manager


def _get_job_for_manager(request: HttpRequest, pk: int, job_pk: int) -> tuple[LabelingSession, TraceAddJob]:
    """The job if it belongs to a session the user manages; 404 otherwise (as for the session itself)."""
    session = get_session_for_manager(request, pk)
    job = get_object_or_404(TraceAddJob.objects.defer("source_ids"), pk=job_pk, session=session)
    return session, job


@login_required
@require_GET
def trace_add_job(request: HttpRequest, pk: int, job_pk: int) -> HttpResponse:
    """Progress of one add; HTMX polls the ``job`` partial until it is done or failed."""
    session, job = _get_job_for_manager(request, pk, job_pk)
    template = "labeling/manage/trace_add_job.html"
    if request.htmx:
        template += "#job"
    response = render(request, template, {"session": session, "job": job})
    if request.htmx and job.state == JobState.DONE:
        response["HX-Trigger"] = "trace-add-done"  # the dashboard's progress card refreshes at once
    return response


@login_required
@require_POST
def trace_add_job_retry(request: HttpRequest, pk: int, job_pk: int) -> HttpResponse:
    """Queue a failed or stalled add again; it resumes after its last finished batch."""
    session, job = _get_job_for_manager(request, pk, job_pk)
    try:
        job = services.retry_trace_add(job=job)
    except ValidationError as exc:
        if request.htmx:
            return render(
                request,
                "labeling/manage/trace_add_job.html#job",
                {"session": session, "job": job, "job_error": " ".join(exc.messages)},
                status=409,
            )
        messages.error(request, " ".join(exc.messages))
        return redirect("labeling:trace_add_job", session.pk, job.pk)
    if request.htmx:
        job.refresh_from_db()
        return render(request, "labeling/manage/trace_add_job.html#job", {"session": session, "job": job})
    messages.success(request, "The add continues where it stopped.")
    return redirect("labeling:trace_add_job", session.pk, job.pk)
