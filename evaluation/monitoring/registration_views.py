"""Pages of an experiment's registered scorers: the list with the register form, and one registration
with its actions (start or restart, update, stop, delete after a confirm) and its version history.

Explorers see them; only admins change them (403 for the others' posts, 404 for non-explorers).
Every refusal of the services shows as a form error on the re-rendered page (status 400), nothing changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import OuterRef, QuerySet, Subquery
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import NoReverseMatch, reverse
from django.views.decorators.http import require_http_methods, require_POST

from evaluation.scorers.catalogue import Catalogue, load_catalogue
from traces.models import Experiment

from . import registrations
from .access import can_change_monitoring, monitored_experiment
from .models import RegisteredScorer, RegisteredScorerVersion, RegistrationStatus
from .registration_forms import (
    FilterStringForm,
    RegisterScorerForm,
    StartScorerForm,
    UpdateScorerForm,
    rate_to_percent,
)
from .registrations import RegistrationError

LIST_TEMPLATE = "evaluation/monitoring/scorers.html"
DETAIL_TEMPLATE = "evaluation/monitoring/scorer_detail.html"
DELETE_TEMPLATE = "evaluation/monitoring/scorer_delete.html"


@dataclass(frozen=True)
class Row:
    """One registration as the list shows it."""

    registration: RegisteredScorer
    kind: str  # "code", "judge", or "" when the catalogue no longer has it
    percent: float
    changed_by: str
    url: str


def kind_of(catalogue: Catalogue, scorer_name: str) -> str:
    if scorer_name in catalogue.scorers:
        return catalogue.scorers[scorer_name].kind
    if scorer_name in catalogue.judges or any(
        name.lower() == scorer_name.replace("_", "") for name in catalogue.judges
    ):
        return "judge"
    return ""


def dashboard_url(experiment: Experiment) -> str:
    """The experiment's monitoring dashboard (its path, until the dashboard's url name exists)."""
    try:
        return reverse("evaluation:monitoring", args=[experiment.pk])
    except NoReverseMatch:
        return reverse("evaluation:monitoring_scorers", args=[experiment.pk]).removesuffix("scorers/")


def _list_url(experiment: Experiment) -> str:
    return reverse("evaluation:monitoring_scorers", args=[experiment.pk])


def _detail_url(registration: RegisteredScorer) -> str:
    return reverse("evaluation:monitoring_scorer", args=[registration.experiment_id, registration.pk])


def _require_change(request: HttpRequest) -> None:
    if not can_change_monitoring(request.user):
        raise PermissionDenied("Only admins change what production traffic is scored.")


def _registrations(experiment: Experiment) -> QuerySet[RegisteredScorer]:
    """Live registrations with who made their latest change (one query)."""
    latest = RegisteredScorerVersion.objects.filter(registration=OuterRef("pk"), version=OuterRef("version"))
    return (
        RegisteredScorer.objects.filter(experiment=experiment)
        .live()
        .annotate(last_changed_by=Subquery(latest.values("changed_by__username")[:1]))
        .order_by("name", "id")
    )


def _registration(experiment: Experiment, pk: int) -> RegisteredScorer:
    return get_object_or_404(
        RegisteredScorer.objects.select_related("experiment", "created_by"), pk=pk, experiment=experiment
    )


def _list_page(
    request: HttpRequest, experiment: Experiment, form: RegisterScorerForm | None, *, status: int = 200
) -> HttpResponse:
    catalogue = load_catalogue()
    can_change = can_change_monitoring(request.user)
    if can_change and form is None:
        form = RegisterScorerForm(catalogue=catalogue)
    rows = [
        Row(
            registration=r,
            kind=kind_of(catalogue, r.scorer_name),
            percent=rate_to_percent(r.sample_rate),
            changed_by=r.last_changed_by or "",
            url=_detail_url(r),
        )
        for r in _registrations(experiment)
    ]
    context = {
        "experiment": experiment,
        "rows": rows,
        "active": sum(1 for row in rows if row.registration.is_active),
        "limit": registrations.MAX_ACTIVE_PER_EXPERIMENT,
        "form": form if can_change else None,
        "can_change": can_change,
        "catalogue_errors": catalogue.errors,
        "dashboard_url": dashboard_url(experiment),
        "examples_url": reverse("traces:list"),
    }
    return render(request, LIST_TEMPLATE, context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def monitoring_scorers(request: HttpRequest, experiment_pk: int) -> HttpResponse:
    """The experiment's registered scorers; a POST registers one."""
    experiment = monitored_experiment(request.user, experiment_pk)
    if request.method == "GET":
        return _list_page(request, experiment, None)
    _require_change(request)
    form = RegisterScorerForm(request.POST, catalogue=load_catalogue())
    if form.is_valid():
        try:
            registration = registrations.register_scorer(
                experiment=experiment,
                name=form.cleaned_data["name"],
                scorer_name=form.cleaned_data["scorer"],
                sample_rate=form.rate(),
                filter_string=form.cleaned_data["filter_string"],
                by=request.user,
            )
        except RegistrationError as error:
            form.add_registration_error(error)
        else:
            state = "sampling" if registration.is_active else "not sampling yet"
            messages.success(request, f"Registered “{registration.name}” ({state}).")
            return redirect(_list_url(experiment))
    return _list_page(request, experiment, form, status=400)


def _detail_page(
    request: HttpRequest,
    registration: RegisteredScorer,
    *,
    start_form: StartScorerForm | None = None,
    update_form: UpdateScorerForm | None = None,
    error: str = "",
    status: int = 200,
) -> HttpResponse:
    can_change = can_change_monitoring(request.user) and registration.status != RegistrationStatus.DELETED
    percent = rate_to_percent(registration.sample_rate)
    current = {"sample_rate": f"{percent:g}", "filter_string": registration.filter_string}
    if not can_change:  # a deleted registration shows no forms, but says why a change was refused
        refused = start_form or update_form
        error = error or (" ".join(e for errors in refused.errors.values() for e in errors) if refused else "")
    else:
        start_form = start_form or StartScorerForm(initial={"filter_string": registration.filter_string})
        update_form = update_form or UpdateScorerForm(initial=current)
    versions = list(registration.versions.select_related("changed_by").order_by("-version"))
    catalogue = load_catalogue()
    context = {
        "experiment": registration.experiment,
        "registration": registration,
        "kind": kind_of(catalogue, registration.scorer_name),
        "percent": percent,
        "versions": [(v, rate_to_percent(v.sample_rate)) for v in versions],
        "can_change": can_change,
        "start_form": start_form if can_change else None,
        "update_form": update_form if can_change else None,
        "error": error,
        "list_url": _list_url(registration.experiment),
        "dashboard_url": dashboard_url(registration.experiment),
        "examples_url": reverse("traces:list"),
    }
    return render(request, DETAIL_TEMPLATE, context, status=status)


@login_required
@require_http_methods(["GET"])
def monitoring_scorer(request: HttpRequest, experiment_pk: int, pk: int) -> HttpResponse:
    """One registration: its configuration, its actions and every version."""
    experiment = monitored_experiment(request.user, experiment_pk)
    return _detail_page(request, _registration(experiment, pk))


def _changed(request: HttpRequest, registration: RegisteredScorer, verb: str) -> HttpResponse:
    percent = rate_to_percent(registration.sample_rate)
    messages.success(request, f"{verb} “{registration.name}”: version {registration.version}, sampling {percent:g} %.")
    back = _list_url(registration.experiment) if request.POST.get("back") == "list" else _detail_url(registration)
    return redirect(back)


def _act(request: HttpRequest, experiment_pk: int, pk: int) -> tuple[RegisteredScorer, dict[str, Any]]:
    experiment = monitored_experiment(request.user, experiment_pk)
    _require_change(request)
    return _registration(experiment, pk), {"by": request.user}


def _form_error(request: HttpRequest, registration: RegisteredScorer, form: FilterStringForm, key: str) -> HttpResponse:
    return _detail_page(request, registration, status=400, **{key: form})


@login_required
@require_POST
def monitoring_scorer_start(request: HttpRequest, experiment_pk: int, pk: int) -> HttpResponse:
    """Start sampling at a rate (a restart when it was stopped)."""
    registration, by = _act(request, experiment_pk, pk)
    form = StartScorerForm(request.POST)
    if form.is_valid():
        restart = registration.status == RegistrationStatus.STOPPED
        filter_string = form.cleaned_data["filter_string"] if "filter_string" in request.POST else None
        try:
            registration = registrations.start_scorer(
                registration=registration, sample_rate=form.rate(), filter_string=filter_string, **by
            )
        except RegistrationError as error:
            form.add_registration_error(error)
        else:
            return _changed(request, registration, "Restarted" if restart else "Started")
    return _form_error(request, registration, form, "start_form")


@login_required
@require_POST
def monitoring_scorer_update(request: HttpRequest, experiment_pk: int, pk: int) -> HttpResponse:
    """A new sample rate and/or filter string."""
    registration, by = _act(request, experiment_pk, pk)
    form = UpdateScorerForm(request.POST)
    if form.is_valid():
        filter_string = form.cleaned_data["filter_string"] if "filter_string" in request.POST else None
        try:
            registration = registrations.update_scorer(
                registration=registration, sample_rate=form.rate(), filter_string=filter_string, **by
            )
        except RegistrationError as error:
            form.add_registration_error(error)
        else:
            return _changed(request, registration, "Updated")
    return _form_error(request, registration, form, "update_form")


@login_required
@require_POST
def monitoring_scorer_stop(request: HttpRequest, experiment_pk: int, pk: int) -> HttpResponse:
    """Sample nothing more (its verdicts stay)."""
    registration, by = _act(request, experiment_pk, pk)
    try:
        registration = registrations.stop_scorer(registration=registration, **by)
    except RegistrationError as error:
        return _detail_page(request, registration, error=str(error), status=400)
    return _changed(request, registration, "Stopped")


@login_required
@require_http_methods(["GET", "POST"])
def monitoring_scorer_delete(request: HttpRequest, experiment_pk: int, pk: int) -> HttpResponse:
    """GET asks to confirm; POST deletes (the name is free again; verdicts and history stay)."""
    experiment = monitored_experiment(request.user, experiment_pk)
    registration = _registration(experiment, pk)
    _require_change(request)
    if request.method == "GET":
        return render(request, DELETE_TEMPLATE, {"experiment": experiment, "registration": registration})
    try:
        registrations.delete_scorer(registration=registration, by=request.user)
    except RegistrationError as error:
        return _detail_page(request, registration, error=str(error), status=400)
    messages.success(request, f"Deleted “{registration.name}”: its verdicts and version history stay.")
    return redirect(_list_url(experiment))
