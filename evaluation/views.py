"""Dataset pages (admins): list, records, downloads, saving a session's labels or the explorer's traces as a dataset."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Count
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    StreamingHttpResponse,
)
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_GET, require_http_methods

from labeling.access import is_lead_anywhere
from labeling.models import LabelingSession
from labeling.views.access import admin_required, deny
from traces.access import can_explore_traces, visible_traces
from traces.models import Experiment, ExperimentKind
from traces.search import TraceFilterForm, TraceListForm

from . import services
from .exporters import (
    INCLUSION_RULE,
    ExportError,
    ExportStats,
    jsonl_line,
    labeled_counts,
    lines,
    nothing_to_export,
)
from .forms import DatasetFromTracesForm, SaveDatasetForm
from .models import EvaluationDataset, EvaluationRun
from .parquet import write_parquet
from .rendering import record_views
from .trace_export import TraceSelection, trace_rows

RECORDS_PER_PAGE = 50
DATASET_NAMES_OFFERED = 200
EXPERIMENTS_SHOWN = 50  # on the scorers page: where each can watch production traffic
FILTER_LABELS = [
    ("filter_string", "Search"),
    ("experiment", "Experiment"),
    ("state", "State"),
    ("version", "Version"),
    ("name", "Name contains"),
    ("since", "From"),
    ("until", "To"),
    ("tags", "Tags"),
]
CONTENT_TYPES = {"jsonl": "application/x-ndjson", "csv": "text/csv", "parquet": "application/vnd.apache.parquet"}


@admin_required
@require_GET
def dataset_list(request: HttpRequest) -> HttpResponse:
    datasets = EvaluationDataset.objects.annotate(record_count=Count("records")).select_related("created_by")
    return render(request, "evaluation/dataset_list.html", {"datasets": datasets})


@admin_required
@require_GET
def dataset_detail(request: HttpRequest, pk: int) -> HttpResponse:
    dataset = get_object_or_404(EvaluationDataset, pk=pk)
    page = Paginator(dataset.records.order_by("id"), RECORDS_PER_PAGE).get_page(request.GET.get("page"))
    template = "evaluation/dataset_detail.html#records" if request.htmx else "evaluation/dataset_detail.html"
    context = {"dataset": dataset, "page": page, "records": record_views(page.object_list)}
    return render(request, template, context)


@admin_required
@require_http_methods(["GET", "POST"])
def dataset_delete(request: HttpRequest, pk: int) -> HttpResponse:
    """GET asks to confirm; POST deletes the dataset and its records (runs over it keep their scores)."""
    dataset = get_object_or_404(EvaluationDataset.objects.annotate(record_count=Count("records")), pk=pk)
    if request.method == "GET":
        runs = EvaluationRun.objects.filter(dataset=dataset).count()
        return render(request, "evaluation/dataset_delete.html", {"dataset": dataset, "runs": runs})
    services.delete_dataset(dataset=dataset)
    messages.success(request, f"Deleted the dataset “{dataset.name}” and its {dataset.record_count} records.")
    return redirect("evaluation:dataset_list")


def _records(dataset: EvaluationDataset) -> Iterator[dict]:
    return (r.as_mlflow() for r in dataset.records.order_by("id").iterator(chunk_size=2000))


@admin_required
@require_GET
def dataset_download(request: HttpRequest, pk: int, fmt: str) -> HttpResponse:
    dataset = get_object_or_404(EvaluationDataset, pk=pk)
    if fmt not in CONTENT_TYPES:
        raise Http404("Unknown format.")
    filename = f"{dataset.file_stem}.{fmt}"
    if fmt == "parquet":
        temp = tempfile.TemporaryFile()  # noqa: SIM115 - FileResponse closes it after sending
        write_parquet(lambda: _records(dataset), temp)
        temp.seek(0)
        return FileResponse(temp, as_attachment=True, filename=filename, content_type=CONTENT_TYPES[fmt])
    response = StreamingHttpResponse(lines(fmt, _records(dataset)), content_type=CONTENT_TYPES[fmt])
    response["Content-Disposition"] = content_disposition_header(as_attachment=True, filename=filename)
    return response


def _save_form_page(
    request: HttpRequest, session: LabelingSession, form: SaveDatasetForm, status: int = 200
) -> HttpResponse:
    context = {"session": session, "form": form, "counts": labeled_counts([session]), "rule": INCLUSION_RULE}
    return render(request, "evaluation/save_dataset.html", context, status=status)


@admin_required
@require_http_methods(["GET", "POST"])
def save_session_as_dataset(request: HttpRequest, session_pk: int) -> HttpResponse:
    """The form (also on the session dashboard); a refused save shows it again with the reason, as a 400."""
    session = get_object_or_404(LabelingSession, pk=session_pk)
    if request.method == "GET":
        return _save_form_page(request, session, SaveDatasetForm(default_name=session.name))
    form = SaveDatasetForm(request.POST, default_name=session.name)
    if not form.is_valid():
        return _save_form_page(request, session, form, status=400)
    include_feedback = form.cleaned_data["include_feedback"]
    if problem := nothing_to_export([session], include_feedback=include_feedback):
        hint = " Tick “add feedback as tags” to save those as tags." if "only feedback" in problem else ""
        form.add_error(None, f"Nothing to save: this session has {problem}.{hint}")
        return _save_form_page(request, session, form, status=400)
    try:
        dataset, merged, stats = services.save_session_labels(
            sessions=[session],
            dataset_name=form.cleaned_data["name"],
            policy=form.cleaned_data["policy"],
            include_feedback=include_feedback,
            created_by=request.user,
        )
    except (ValidationError, ExportError) as exc:
        form.add_error(None, " ".join(getattr(exc, "messages", [str(exc)])))
        return _save_form_page(request, session, form, status=400)
    messages.success(request, saved_message(dataset, merged, stats))
    return redirect(dataset.get_absolute_url())


def saved_message(dataset: EvaluationDataset, merged: services.MergeResult, stats: ExportStats) -> str:
    details = []
    if stats.feedback_only:
        details.append(
            f"{stats.records - stats.feedback_only} with expectations, {stats.feedback_only} with feedback only"
        )
    if stats.ties:
        details.append(f"{len(stats.ties)} tied answers left out")
    note = f" ({'; '.join(details)})" if details else ""
    return f"Saved to “{dataset.name}”: {merged.created} new records, {merged.updated} updated{note}."


# ---------------------------------------------------------------- datasets from the explorer's filters


def _filters_shown(form: TraceFilterForm) -> list[tuple[str, str]]:
    """The explorer's filters as the user set them, to say which traces the dataset takes."""
    data = form.data if form.is_bound else {}
    shown = []
    for field, label in FILTER_LABELS:
        value = (data.get(field) or "").strip()
        if not value:
            continue
        if field == "experiment" and form.is_valid() and form.cleaned_data.get("experiment"):
            value = form.cleaned_data["experiment"].name
        elif field == "state":
            value = dict(form.fields["state"].choices).get(value, value)
        shown.append((label, value))
    return shown


def _from_traces_page(
    request: HttpRequest, filters: TraceFilterForm, form: DatasetFromTracesForm, status: int | None = None
) -> HttpResponse:
    """The page; refused filters make it a 400, as on the explorer."""
    limit = settings.DATASET_FROM_TRACES_PAGE_LIMIT
    traces = _filtered_traces(request, filters)
    matching = services.count_up_to(traces, limit) if traces is not None else 0
    names = EvaluationDataset.objects.order_by("name").values_list("name", flat=True)[:DATASET_NAMES_OFFERED]
    context = {
        "filters": filters,
        "filters_shown": _filters_shown(filters),
        "filter_errors": [e for errors in filters.errors.values() for e in errors] if filters.is_bound else [],
        "form": form,
        "query": request.GET.urlencode(),
        "matching": min(matching, limit),
        "over_limit": matching > limit,
        "limit": limit,
        "dataset_names": list(names) if request.user.is_staff else [],
    }
    if status is None:
        status = 400 if traces is None else 200
    return render(request, "evaluation/dataset_from_traces.html", context, status=status)


def _filtered_traces(request: HttpRequest, filters: TraceFilterForm) -> Any:
    """The explorer's traces for these filters (the same form and rules), or None when the filters are refused."""
    traces = visible_traces(request.user).explorable()
    if not filters.is_bound:
        return traces
    if not filters.is_valid():
        return None
    traces = filters.filter(traces)
    return None if filters.errors else traces


@login_required
@require_http_methods(["GET", "POST"])
def dataset_from_traces(request: HttpRequest) -> HttpResponse:
    """From the trace explorer: name a dataset, see how many traces it takes, and merge them (admins and leads).

    The filters travel in the query string, as on the explorer; the name comes in the form.
    """
    if not (can_explore_traces(request.user) and is_lead_anywhere(request.user)):
        deny(request)
    filters = TraceFilterForm(request.GET or None)
    if request.method == "GET":
        return _from_traces_page(request, filters, DatasetFromTracesForm())
    form = DatasetFromTracesForm(request.POST)
    traces = _filtered_traces(request, filters)
    if not form.is_valid() or traces is None:
        return _from_traces_page(request, filters, form, status=400)
    try:
        dataset, merged, read = services.build_dataset_from_traces(
            traces=traces,
            dataset_name=form.cleaned_data["name"],
            created_by=request.user,
            limit=settings.DATASET_FROM_TRACES_PAGE_LIMIT,
        )
    except ValidationError as exc:
        form.add_error(None, " ".join(exc.messages))
        return _from_traces_page(request, filters, form, status=400)
    messages.success(request, traces_saved_message(dataset, merged, read))
    if request.user.is_staff:
        return redirect(dataset.get_absolute_url())
    return redirect(f"{reverse('traces:list')}?{request.GET.urlencode()}")


def traces_saved_message(dataset: EvaluationDataset, merged: services.MergeResult, read: int) -> str:
    shared = " (traces with the same inputs share a record)" if read > merged.created + merged.updated else ""
    return (
        f"Saved {read} trace{'s' if read != 1 else ''} to “{dataset.name}”: "
        f"{merged.created} new records, {merged.updated} updated{shared}."
    )


@login_required
@require_GET
def traces_download(request: HttpRequest) -> HttpResponse:
    """The trace explorer's current filter as MLflow traces (the ``export_traces`` JSONL), streamed.

    Who may open the explorer (admins and session leads) may download what it lists; others get 404.
    """
    if not can_explore_traces(request.user):
        raise Http404("No such page.")
    traces = visible_traces(request.user).explorable()
    form = TraceListForm(request.GET or None, versions_of=traces)
    if form.is_bound:
        if not form.is_valid():
            problems = "; ".join(f"{name}: {' '.join(errors)}" for name, errors in form.errors.items())
            return HttpResponseBadRequest(f"Nothing exported: {problems}", content_type="text/plain; charset=utf-8")
        traces = form.filter(traces)
    selection = TraceSelection(traces.order_by(*form.ordering()), "the trace explorer's filter")
    rows = (jsonl_line(row) for row in trace_rows(selection))
    response = StreamingHttpResponse(rows, content_type=CONTENT_TYPES["jsonl"])
    response["Content-Disposition"] = content_disposition_header(as_attachment=True, filename="mlflow-traces.jsonl")
    return response


@admin_required
@require_GET
def scorer_list(request: HttpRequest) -> HttpResponse:
    """The scorers evaluation runs can use (``SCORER_MODULES``); a module that fails to import is shown, not raised."""
    from .scorers.catalogue import load_catalogue  # imports mlflow: only on this page

    catalogue = load_catalogue()
    context = {
        "scorers": sorted(catalogue.scorers.values(), key=lambda s: (s.module, s.name)),
        "errors": catalogue.errors,
        "modules": settings.SCORER_MODULES,
        "experiments": list(Experiment.objects.filter(kind=ExperimentKind.TRACES).order_by("name")[:EXPERIMENTS_SHOWN]),
    }
    return render(request, "evaluation/scorer_list.html", context)
