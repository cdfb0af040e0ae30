"""Evaluation run pages (admins and session leads): the runs list, a run's results, starting and cancelling runs,
adding a run's traces to a labeling session, and downloading them in ``mlflow.search_traces()`` shape.

Who sees which run is ``evaluation.access.visible_runs``; a run one may not see is a 404.
"""

from __future__ import annotations

import tempfile
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Page, Paginator
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import content_disposition_header, urlencode
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from labeling.access import managed_sessions
from labeling.views.access import deny
from traces.models import Trace

from .access import can_cancel, can_see_runs, can_start_runs, is_active, sessions_to_add_to, visible_runs
from .exporters import jsonl_line
from .models import EvaluationRun, RunStatus
from .parquet import write_parquet
from .run_forms import AddToSessionForm, StartRunForm
from .run_results import assessment_names, means, metric_cards, result_rows, run_rows, traces_to_add
from .runs import NeedsConfirmation, RunInputError, cancel_evaluation_run, run_errors, start_evaluation_run
from .session_adds import add_and_redirect
from .trace_export import COLUMNS, TraceSelection, trace_rows

RUNS_PER_PAGE = 25
ROWS_PER_PAGE = 50
DOWNLOAD_TYPES = {"jsonl": "application/x-ndjson", "parquet": "application/vnd.apache.parquet"}


def _runs_reader(request: HttpRequest) -> None:
    if not can_see_runs(request.user):
        raise Http404("No such page.")


def _get_run(request: HttpRequest, pk: int) -> EvaluationRun:
    """The run if the user may see it, else 404 (a lead does not learn of other sessions' runs)."""
    _runs_reader(request)
    runs = visible_runs(request.user).select_related("started_by", "dataset", "session", "experiment")
    return get_object_or_404(runs, pk=pk)


# ---------------------------------------------------------------- the runs list


@login_required
@require_GET
def run_list(request: HttpRequest) -> HttpResponse:
    _runs_reader(request)
    runs = visible_runs(request.user).select_related("started_by", "dataset", "session").defer("error")
    page = Paginator(runs.order_by("-created_at", "-id"), RUNS_PER_PAGE).get_page(request.GET.get("page"))
    context = {
        "page": page,
        "runs": [(run, means(run.metrics)) for run in page.object_list],
        "can_start": can_start_runs(request.user),
        "can_compare": visible_runs(request.user).filter(status=RunStatus.FINISHED)[:2].count() == 2,
    }
    template = "evaluation/run_list.html#runs" if request.htmx else "evaluation/run_list.html"
    return render(request, template, context)


@login_required
@require_GET
def run_row(request: HttpRequest, pk: int) -> HttpResponse:
    """One row of the runs list, polled while the run is queued or running (the poll stops with it)."""
    run = _get_run(request, pk)
    return render(request, "evaluation/run_list.html#run_row", {"run": run, "run_means": means(run.metrics)})


# ---------------------------------------------------------------- a run's page


def _results_context(request: HttpRequest, run: EvaluationRun, failed: str) -> dict[str, Any]:
    rows = run_rows(run, request.user, failed=failed).select_related("trace")
    rows = rows.only(
        "id", "scored", "run_id", "trace_id", "trace__trace_id", "trace__request_preview", "trace__response_preview"
    )
    page: Page = Paginator(rows, ROWS_PER_PAGE).get_page(request.GET.get("page"))
    return {
        "page": page,
        "rows": result_rows(run, list(page.object_list)),
        "names": assessment_names(run),
        "failed": failed,
        "filter_query": urlencode({"failed": failed}) if failed else "",
        "add_form": AddToSessionForm(initial={"failed": failed}, sessions=sessions_to_add_to(request.user)),
        "can_add": can_start_runs(request.user),
    }


def _failed_param(request: HttpRequest, run: EvaluationRun) -> str:
    failed = (request.GET.get("failed") or "").strip()
    return failed if failed in run.scorer_names else ""


def _compare_with(request: HttpRequest, run: EvaluationRun) -> EvaluationRun | None:
    """The run to compare this one with: the latest finished run before it over the same source, else any before it."""
    if run.status != RunStatus.FINISHED:
        return None
    earlier = visible_runs(request.user).filter(status=RunStatus.FINISHED, created_at__lte=run.created_at)
    earlier = earlier.exclude(pk=run.pk).order_by("-created_at", "-id").only("pk", "name", "dataset_id", "session_id")
    candidates = list(earlier[:20])
    same = [
        other
        for other in candidates
        if (run.dataset_id and other.dataset_id == run.dataset_id)
        or (run.session_id and other.session_id == run.session_id)
    ]
    return (same or candidates or [None])[0]


def _detail_context(request: HttpRequest, run: EvaluationRun, failed: str) -> dict[str, Any]:
    errors = run_errors(run)
    return {
        "run": run,
        "compare_with": _compare_with(request, run),
        "active": is_active(run),
        "cards": metric_cards(run.metrics),
        "scorers": [{**scorer, "errors": errors.get(scorer["name"], 0)} for scorer in run.scorers],
        "errors_total": sum(errors.values()),
        "can_cancel": is_active(run) and can_cancel(request.user, run),
        "bad_failed": (request.GET.get("failed") or "").strip() != failed,
        **_results_context(request, run, failed),
    }


def _detail_page(
    request: HttpRequest, run: EvaluationRun, failed: str, *, status: int = 200, **extra: Any
) -> HttpResponse:
    context = {**_detail_context(request, run, failed), **extra}
    return render(request, "evaluation/run_detail.html", context, status=status)


@login_required
@require_GET
def run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """The run's metrics, scorers and results; ``?failed=SCORER`` keeps the traces that scorer failed.

    HTMX asks for ``?part=status`` (polled while the run is active; when it ends the page reloads to
    show the results) or ``?part=results`` (the table: filter and pages).
    """
    run = _get_run(request, pk)
    failed = _failed_param(request, run)
    part = request.GET.get("part", "") if request.htmx else ""
    if part == "status":
        context = {"run": run, "active": is_active(run), "cards": metric_cards(run.metrics)}
        response = render(request, "evaluation/run_detail.html#status", context)
        if not context["active"]:
            response["HX-Refresh"] = "true"  # it ended: the whole page now has results to show
        return response
    if part == "results":
        context = {"run": run, **_results_context(request, run, failed)}
        response = render(request, "evaluation/run_detail.html#results", context)
        response["HX-Replace-Url"] = _run_url(run, failed)  # the address bar says what the table shows
        return response
    status = 400 if (request.GET.get("failed") or "").strip() != failed else 200
    return _detail_page(request, run, failed, status=status)


# ---------------------------------------------------------------- writes


@login_required
@require_POST
def run_add_to_session(request: HttpRequest, pk: int) -> HttpResponse:
    """Copy the traces the run page shows (every page of its filter) into a session the user manages."""
    run = _get_run(request, pk)
    if not can_start_runs(request.user):
        deny(request)
    form = AddToSessionForm(request.POST, sessions=sessions_to_add_to(request.user))
    failed = (request.POST.get("failed") or "").strip()
    if failed and failed not in run.scorer_names:
        return _detail_page(request, run, "", status=400, add_error=f"This run has no scorer named “{failed}”.")
    if not form.is_valid():
        problem = " ".join(e for errors in form.errors.values() for e in errors)
        return _detail_page(request, run, failed, status=400, add_error=problem, add_form=form)
    session = form.cleaned_data["session"]
    traces = traces_to_add(run_rows(run, request.user, failed=failed))
    if not traces.exists():
        shown = f"failed on “{failed}”" if failed else "in this run"
        return _detail_page(request, run, failed, status=400, add_error=f"Nothing to add: no stored trace {shown}.")
    return add_and_redirect(request, session=session, traces=traces, what="traces", back_to=_run_url(run, failed))


def _run_url(run: EvaluationRun, failed: str = "") -> str:
    url = reverse("evaluation:run_detail", args=[run.pk])
    return f"{url}?{urlencode({'failed': failed})}" if failed else url


@login_required
@require_POST
def run_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    run = _get_run(request, pk)
    if not can_cancel(request.user, run):
        deny(request)
    if not cancel_evaluation_run(run=run):
        run.refresh_from_db()
        message = f"This run has already ended ({run.get_status_display().lower()}): nothing to cancel."
        return _detail_page(request, run, "", status=400, page_error=message)
    messages.success(request, "Run cancelled: it stops after the batch it is scoring.")
    return redirect(_run_url(run))


def _start_page(
    request: HttpRequest, form: StartRunForm, catalogue: Any, status: int = 200, **extra: Any
) -> HttpResponse:
    context = {
        "form": form,
        "catalogue_errors": catalogue.errors,
        "scorers": {**catalogue.judges, **catalogue.scorers},
        **extra,
    }
    return render(request, "evaluation/run_start.html", context, status=status)


def _confirm_page(request: HttpRequest, form: StartRunForm, catalogue: Any, asked: NeedsConfirmation) -> HttpResponse:
    """The second step of a large judge run: traces × judges = calls, then "Start anyway" (the same fields again)."""
    from .judges.endpoint import current

    endpoint = current()
    kept = [(name, value) for name in form.fields for value in request.POST.getlist(name)]
    return _start_page(
        request,
        form,
        catalogue,
        confirmation=asked,
        kept=kept,
        endpoint_url=endpoint.shown_base_url,
        endpoint_model=endpoint.model,
    )


@login_required
@require_http_methods(["GET", "POST"])
def run_start(request: HttpRequest) -> HttpResponse:
    """Choose what to run on and which scorers; the run is queued for the background worker."""
    if not can_start_runs(request.user):
        deny(request)
    from .scorers.catalogue import load_catalogue  # imports mlflow: only on this page

    catalogue = load_catalogue()
    judges = [name for name, judge in catalogue.judges.items() if judge.available]  # LLM judges, when configured
    arguments = {"scorer_names": sorted(catalogue.scorers) + judges, "sessions": managed_sessions(request.user)}
    if request.method == "GET":
        initial = {
            key: request.GET[key] for key in ("source", "dataset", "session", "experiment") if key in request.GET
        }
        return _start_page(request, StartRunForm(initial=initial, **arguments), catalogue)
    form = StartRunForm(request.POST, **arguments)
    if not form.is_valid():
        return _start_page(request, form, catalogue, status=400)
    if request.POST.get("back"):  # from the confirmation step: the form again, as filled in
        return _start_page(request, form, catalogue)
    confirmed = request.POST.get("confirm") == "yes"
    try:
        run = start_evaluation_run(**form.run_arguments(), started_by=request.user, enqueue=True, confirmed=confirmed)
    except NeedsConfirmation as asked:
        return _confirm_page(request, form, catalogue, asked)
    except RunInputError as error:
        form.add_error(None, str(error))
        return _start_page(request, form, catalogue, status=400)
    messages.success(request, f"Run “{run.name}” queued over {run.progress_total} traces.")
    return redirect(_run_url(run))


# ---------------------------------------------------------------- download


@login_required
@require_GET
def run_download(request: HttpRequest, pk: int, fmt: str) -> HttpResponse:
    """The run's traces (``?failed=SCORER``: those it failed) as ``export_traces`` writes them."""
    run = _get_run(request, pk)
    if fmt not in DOWNLOAD_TYPES:
        raise Http404("Unknown format.")
    failed = _failed_param(request, run)
    traces = Trace.objects.filter(pk__in=run_rows(run, request.user, failed=failed).values("trace_id"))
    selection = TraceSelection(traces.order_by("-request_time", "-id"), f"evaluation run “{run.name}”")
    filename = f"run-{run.run_id}{'-failed-' + failed if failed else ''}.{fmt}"
    if fmt == "parquet":
        temp = tempfile.TemporaryFile()  # noqa: SIM115 - FileResponse closes it after sending
        write_parquet(lambda: trace_rows(selection), temp, columns=COLUMNS, keyed_columns=())
        temp.seek(0)
        return FileResponse(temp, as_attachment=True, filename=filename, content_type=DOWNLOAD_TYPES[fmt])
    response = StreamingHttpResponse(
        (jsonl_line(row) for row in trace_rows(selection)), content_type=DOWNLOAD_TYPES[fmt]
    )
    response["Content-Disposition"] = content_disposition_header(as_attachment=True, filename=filename)
    return response
