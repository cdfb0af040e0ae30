"""The per-experiment archive setting: "archive traces older than N days" to a Delta table, run by the workers.

Explorers see the setting and its last run; admins change it (403 for other explorers, 404 for anyone else).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods

from traces.models import Experiment, ExperimentKind, Trace

from .archive_forms import ArchivePolicyForm, archive_root
from .monitoring.access import can_change_monitoring, can_see_monitoring, monitored_experiment
from .monitoring.archive import DUE_EVERY, save_archive_policy
from .monitoring.models import ArchivePolicy

TEMPLATE = "evaluation/archive_settings.html"


@login_required
@require_GET
def archive_list(request: HttpRequest) -> HttpResponse:
    """Every experiment with its archive setting and last run (two queries)."""
    if not can_see_monitoring(request.user):
        raise Http404("No such page.")
    policies = {policy.experiment_id: policy for policy in ArchivePolicy.objects.all()}
    experiments = list(Experiment.objects.filter(kind=ExperimentKind.TRACES).order_by("name"))
    rows = [(experiment, policies.get(experiment.pk)) for experiment in experiments]
    return render(request, "evaluation/archive_list.html", {"rows": rows, "archive_root": archive_root()})


def _context(
    request: HttpRequest, experiment: Experiment, policy: ArchivePolicy | None, form: ArchivePolicyForm
) -> dict[str, Any]:
    days = policy.older_than_days if policy is not None else None
    now = timezone.now()
    waiting = None
    if days is not None:  # what the next run would take
        waiting = Trace.objects.filter(experiment=experiment, request_time__lt=now - timedelta(days=days)).count()
    next_run = None
    if policy is not None and days is not None and policy.path:
        next_run = policy.last_run_at + DUE_EVERY if policy.last_run_at else now
    return {
        "experiment": experiment,
        "policy": policy,
        "result": (policy.last_result or {}) if policy is not None else {},
        "form": form,
        "can_change": can_change_monitoring(request.user),
        "archive_root": archive_root(),
        "waiting": waiting,
        "next_run": next_run,
        "due_now": next_run is not None and next_run <= now,
    }


@login_required
@require_http_methods(["GET", "POST"])
def archive_settings(request: HttpRequest, experiment_pk: int) -> HttpResponse:
    experiment = monitored_experiment(request.user, experiment_pk)
    policy = ArchivePolicy.objects.filter(experiment=experiment).select_related("updated_by").first()
    if request.method == "GET":
        form = ArchivePolicyForm(initial=ArchivePolicyForm.initial_of(policy))
        partial = f"{TEMPLATE}#status" if request.htmx else TEMPLATE
        return render(request, partial, _context(request, experiment, policy, form))
    if not can_change_monitoring(request.user):
        raise PermissionDenied("Only admins change the archive setting.")
    form = ArchivePolicyForm(request.POST)
    if not form.is_valid():
        return render(request, TEMPLATE, _context(request, experiment, policy, form), status=400)
    data = form.cleaned_data
    save_archive_policy(
        experiment=experiment,
        older_than_days=data["older_than_days"],
        path=data["path"],
        delete_after=data["delete_after"],
        user=request.user,
    )
    if data["older_than_days"] is None:
        messages.success(request, "Archiving is off for this experiment.")
    else:
        messages.success(
            request, f"Traces older than {data['older_than_days']} days will be archived to {data['path']}."
        )
    return redirect("evaluation:archive_settings", experiment_pk=experiment.pk)
