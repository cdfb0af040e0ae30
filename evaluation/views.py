"""Dataset pages (admins): list, records, downloads, and saving a session's labels as a dataset."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator

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
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_GET, require_http_methods

from labeling.models import LabelingSession
from labeling.views.access import admin_required
from traces.access import can_explore_traces, visible_traces
from traces.search import TraceListForm

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
from .forms import SaveDatasetForm
from .models import EvaluationDataset
from .parquet import write_parquet
from .rendering import record_views
from .trace_export import TraceSelection, trace_rows

RECORDS_PER_PAGE = 50
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
