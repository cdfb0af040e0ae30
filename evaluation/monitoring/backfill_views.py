"""Backfill pages: start a job over an experiment's history (with its jobs listed), follow a job, cancel, resume.

Explorers see them (``can_see_monitoring``), admins change (403 for other explorers), anyone else gets 404.
"""

from __future__ import annotations

import re
from datetime import UTC, timedelta
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from labeling.views.access import deny
from traces.models import Experiment, ExperimentKind

from .access import can_change_monitoring, can_see_monitoring, monitored_experiment
from .backfill import BackfillError, cancel_backfill, rate_and_eta, resume_backfill, start_backfill
from .backfill_forms import BackfillForm
from .models import BackfillJob, BackfillStatus, RegisteredScorer

JOBS_LISTED = 20
POLL_SECONDS = 2


def _get_job(request: HttpRequest, job_id: str) -> BackfillJob:
    """The job when the user may watch monitoring, else 404."""
    if not can_see_monitoring(request.user):
        raise Http404("No such backfill.")
    jobs = BackfillJob.objects.select_related("experiment", "created_by")
    if not re.fullmatch(r"[0-9a-f]{32}", job_id):  # job ids are 32 hex digits; anything else (NUL too) is none
        raise Http404("no such backfill")
    return get_object_or_404(jobs, job_id=job_id, experiment__kind=ExperimentKind.TRACES)


def _registrations(experiment: Experiment) -> list[RegisteredScorer]:
    return list(RegisteredScorer.objects.filter(experiment=experiment).live().order_by("name"))


def _jobs(experiment: Experiment) -> list[BackfillJob]:
    jobs = BackfillJob.objects.filter(experiment=experiment).select_related("created_by").defer("error")
    return list(jobs.order_by("-created_at", "-id")[:JOBS_LISTED])


def _start_page(request: HttpRequest, experiment: Experiment, form: BackfillForm, *, status: int = 200) -> HttpResponse:
    context = {
        "experiment": experiment,
        "form": form,
        "jobs": _jobs(experiment),
        "can_change": can_change_monitoring(request.user),
    }
    return render(request, "evaluation/monitoring/backfill_start.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def backfill_start(request: HttpRequest, experiment_pk: int) -> HttpResponse:
    """The form (admins) and the experiment's latest jobs; a POST queues a job and goes to its page at once."""
    experiment = monitored_experiment(request.user, experiment_pk)
    registrations = _registrations(experiment)
    if request.method == "GET":
        week_ago = (timezone.now() - timedelta(days=7)).astimezone(UTC).replace(microsecond=0)
        initial = {"start": week_ago.replace(tzinfo=None).isoformat(timespec="minutes")}
        return _start_page(request, experiment, BackfillForm(initial=initial, registrations=registrations))
    if not can_change_monitoring(request.user):
        deny(request)
    form = BackfillForm(request.POST, registrations=registrations)
    if not form.is_valid():
        return _start_page(request, experiment, form, status=400)
    try:
        job = start_backfill(experiment=experiment, by=request.user, **form.backfill_arguments())
    except BackfillError as error:
        form.add_error(None, _sentence(error))
        return _start_page(request, experiment, form, status=400)
    messages.success(request, f"Backfill {job.job_id[:8]} queued.")
    return redirect(job)


def _sentence(error: Exception) -> str:
    """A service's one-line message as a sentence on a page."""
    text = str(error)
    return f"{text[:1].upper()}{text[1:]}."


def _detail_context(request: HttpRequest, job: BackfillJob) -> dict[str, Any]:
    now = timezone.now()
    rate, eta = rate_and_eta(job, now=now)
    elapsed = ((job.finished_at or now) - job.started_at).total_seconds() if job.started_at else None
    active = job.status in (BackfillStatus.QUEUED, BackfillStatus.RUNNING)
    can_change = can_change_monitoring(request.user)
    return {
        "job": job,
        "active": active,
        "rate": rate,
        "eta": eta,
        "elapsed": elapsed,
        "percent": job.percent_done,
        "poll_seconds": POLL_SECONDS,
        "can_cancel": can_change and active,
        "can_resume": can_change and job.status in (BackfillStatus.CANCELLED, BackfillStatus.FAILED),
    }


def _detail_page(request: HttpRequest, job: BackfillJob, *, status: int = 200, **extra: Any) -> HttpResponse:
    context = {**_detail_context(request, job), **extra}
    return render(request, "evaluation/monitoring/backfill_detail.html", context, status=status)


@login_required
@require_GET
def backfill_detail(request: HttpRequest, job_id: str) -> HttpResponse:
    """The job's status and progress; HTMX polls ``?part=status`` while it is queued or running."""
    job = _get_job(request, job_id)
    if request.htmx and request.GET.get("part") == "status":
        return render(request, "evaluation/monitoring/backfill_detail.html#status", _detail_context(request, job))
    return _detail_page(request, job)


@login_required
@require_POST
def backfill_cancel(request: HttpRequest, job_id: str) -> HttpResponse:
    job = _get_job(request, job_id)
    if not can_change_monitoring(request.user):
        deny(request)
    if not cancel_backfill(job=job):
        message = f"This backfill has already ended ({job.get_status_display().lower()}): nothing to cancel."
        return _detail_page(request, job, status=400, page_error=message)
    messages.success(request, "Backfill cancelled: its queued work was dropped, what was scored stays.")
    return redirect(job)


@login_required
@require_POST
def backfill_resume(request: HttpRequest, job_id: str) -> HttpResponse:
    job = _get_job(request, job_id)
    if not can_change_monitoring(request.user):
        deny(request)
    try:
        resume_backfill(job=job)
    except BackfillError as error:
        return _detail_page(request, job, status=400, page_error=_sentence(error))
    messages.success(request, "Backfill resumed: traces already scored are skipped.")
    return redirect(job)
