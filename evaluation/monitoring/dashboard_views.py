"""The monitoring pages for explorers: the experiments list and an experiment's quality-over-time dashboard.

Reads are for those who may watch monitoring (404 for anyone else); sending failures to a labeling
session follows the runs' add-to-session rule: admins and session leads, into a session they manage.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.db.models import Count, Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import NoReverseMatch, reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_GET, require_POST

from labeling.views.access import deny
from traces.models import Experiment, ExperimentKind
from traces.references import pk_from_text

from ..access import can_start_runs, sessions_to_add_to
from ..run_forms import AddToSessionForm
from ..session_adds import add_and_redirect
from .access import can_change_monitoring, can_see_monitoring, monitored_experiment
from .charts import ChartPoint, quality_chart
from .dashboard import (
    DEFAULT_WINDOW,
    WINDOWS,
    ScorerSeries,
    Window,
    WindowError,
    failed_traces,
    latest_failures,
    parse_window,
    quality_over_time,
)
from .models import RegisteredScorer, RegistrationStatus


def _page_link(name: str, experiment: Experiment, suffix: str) -> str:
    """A monitoring page built elsewhere: its URL when it is routed, else the path it will have."""
    try:
        return reverse(f"evaluation:{name}", args=[experiment.pk])
    except NoReverseMatch:
        return reverse("evaluation:monitoring", args=[experiment.pk]) + suffix


def _dashboard_url(experiment: Experiment, window: Window) -> str:
    url = reverse("evaluation:monitoring", args=[experiment.pk])
    return url if window == DEFAULT_WINDOW else f"{url}?{urlencode({'window': window.key})}"


def _chart(series: ScorerSeries, window: Window) -> Any:
    points = [ChartPoint(b.start, series.value(b), b.total, b.errors) for b in series.buckets]
    kind = "mean value" if series.numeric else "pass rate"
    title = f"{series.registration.name}: {kind}, {window.label.lower()}"
    return quality_chart(
        points, title=title, unit=window.unit, rate=not series.numeric, chart_id=f"chart-{series.registration.pk}"
    )


def _dashboard_context(request: HttpRequest, experiment: Experiment, window: Window) -> dict[str, Any]:
    series = quality_over_time(experiment, window)
    can_send = can_start_runs(request.user)
    return {
        "experiment": experiment,
        "window": window,
        "windows": list(WINDOWS.values()),
        "scorers": [(s, _chart(s, window)) for s in series],
        "failures": latest_failures([s.registration for s in series], window),
        "can_send": can_send,
        "sessions": list(sessions_to_add_to(request.user).order_by("name").only("pk", "name")) if can_send else [],
        "can_change": can_change_monitoring(request.user),
        "scorers_url": _page_link("monitoring_scorers", experiment, "scorers/"),
        "backfill_url": _page_link("backfill_start", experiment, "backfill/"),
        "page_url": _dashboard_url(experiment, window),
    }


def _dashboard_page(
    request: HttpRequest, experiment: Experiment, window: Window, *, status: int = 200, **extra: Any
) -> HttpResponse:
    context = {**_dashboard_context(request, experiment, window), **extra}
    return render(request, "evaluation/monitoring/dashboard.html", context, status=status)


def _pk(text: str) -> int:
    """A primary key from user text; -1 (matches nothing) for anything else."""
    return pk_from_text(text) or -1


@login_required
@require_GET
def monitoring_index(request: HttpRequest) -> HttpResponse:
    """Every ordinary experiment, those with registered scorers first, each with its dashboard link."""
    if not can_see_monitoring(request.user):
        raise Http404("No such page.")
    active = Q(status=RegistrationStatus.ACTIVE, sample_rate__gt=0)
    counted = RegisteredScorer.objects.live().values("experiment_id")
    counts = {
        row["experiment_id"]: row
        for row in counted.annotate(scorers=Count("id"), active=Count("id", filter=active)).order_by()
    }
    experiments = Experiment.objects.filter(kind=ExperimentKind.TRACES).order_by("name").only("pk", "name")
    rows = [(e, counts.get(e.pk, {}).get("scorers", 0), counts.get(e.pk, {}).get("active", 0)) for e in experiments]
    rows.sort(key=lambda row: row[1] == 0)  # stable: by name within each group
    return render(request, "evaluation/monitoring/index.html", {"rows": rows})


@login_required
@require_GET
def monitoring_dashboard(request: HttpRequest, experiment_pk: int) -> HttpResponse:
    """Quality over time (``?window=24h|7d|30d``, 7 days by default); HTMX asks for the ``quality`` region."""
    experiment = monitored_experiment(request.user, experiment_pk)
    try:
        window, window_error, status = parse_window(request.GET.get("window")), "", 200
    except WindowError as error:
        window, window_error, status = DEFAULT_WINDOW, f"{error} Showing the last 7 days.", 400
    if request.htmx and not window_error:
        context = _dashboard_context(request, experiment, window)
        return render(request, "evaluation/monitoring/dashboard.html#quality", context)
    return _dashboard_page(request, experiment, window, status=status, window_error=window_error)


@login_required
@require_POST
def monitoring_send_failures(request: HttpRequest, experiment_pk: int) -> HttpResponse:
    """Add the traces a scorer (or any) failed or errored on in the window to a session the user manages."""
    experiment = monitored_experiment(request.user, experiment_pk)
    if not can_start_runs(request.user):
        deny(request)
    try:
        window = parse_window(request.POST.get("window"))
    except WindowError as error:
        return _dashboard_page(request, experiment, DEFAULT_WINDOW, status=400, send_error=str(error))

    def refused(message: str, **extra: Any) -> HttpResponse:
        return _dashboard_page(request, experiment, window, status=400, send_error=message, **extra)

    registration = None
    scorer = (request.POST.get("scorer") or "").strip()
    if scorer:
        registration = RegisteredScorer.objects.filter(experiment=experiment, pk=_pk(scorer))
        registration = registration.first()
        if registration is None:
            return refused(f"This experiment has no registered scorer “{scorer[:40]}”.")
    form = AddToSessionForm(request.POST, sessions=sessions_to_add_to(request.user))
    if not form.is_valid():
        return refused(" ".join(e for errors in form.errors.values() for e in errors), chosen_scorer=scorer)
    traces = failed_traces(experiment, window, registration=registration)
    if not traces.exists():
        on = f"“{registration.name}”" if registration else "any scorer"
        return refused(f"Nothing to add: no trace failed on {on} in the {window.label.lower()}.", chosen_scorer=scorer)
    what = f"failed traces of “{registration.name}”" if registration else "failed traces"
    session = form.cleaned_data["session"]
    return add_and_redirect(
        request, session=session, traces=traces, what=what, back_to=_dashboard_url(experiment, window)
    )
