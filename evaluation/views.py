"""Dataset pages (admins): list, records, downloads, and saving a session's labels as a dataset."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import Count
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from labeling.access import is_admin
from labeling.views.access import admin_required, get_session_for_manager

from . import services
from .exporters import POLICIES, ExportError, has_expectations, lines, write_parquet
from .models import EvaluationDataset

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
    return render(request, template, {"dataset": dataset, "page": page})


def _records(dataset: EvaluationDataset) -> Iterator[dict]:
    return (r.as_mlflow() for r in dataset.records.order_by("id").iterator(chunk_size=2000))


@admin_required
@require_GET
def dataset_download(request: HttpRequest, pk: int, fmt: str) -> HttpResponse:
    dataset = get_object_or_404(EvaluationDataset, pk=pk)
    if fmt not in CONTENT_TYPES:
        raise Http404("Unknown format.")
    filename = f"{dataset.name}.{fmt}".replace('"', "")
    if fmt == "parquet":
        temp = tempfile.TemporaryFile()  # noqa: SIM115 - FileResponse closes it after sending
        write_parquet(lambda: _records(dataset), temp)
        temp.seek(0)
        return FileResponse(temp, as_attachment=True, filename=filename, content_type=CONTENT_TYPES[fmt])
    response = StreamingHttpResponse(lines(fmt, _records(dataset)), content_type=CONTENT_TYPES[fmt])
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@require_POST
def save_session_as_dataset(request: HttpRequest, session_pk: int) -> HttpResponse:
    if not request.user.is_authenticated:
        return redirect("login")
    session = get_session_for_manager(request, session_pk)
    if not is_admin(request.user):
        raise PermissionDenied("Only admins save datasets.")
    name = request.POST.get("name", "").strip() or session.name
    policy = request.POST.get("policy", "latest")
    if policy not in POLICIES:
        messages.error(request, "Unknown policy.")
        return redirect(session.get_absolute_url())
    if not has_expectations([session]):
        messages.error(request, "This session has no expectation labels yet, so there is nothing to save.")
        return redirect(session.get_absolute_url())
    try:
        dataset, merged, stats = services.save_session_labels(
            sessions=[session],
            dataset_name=name,
            policy=policy,
            include_feedback=bool(request.POST.get("include_feedback")),
            created_by=request.user,
        )
    except (ValidationError, ExportError) as exc:
        messages.error(request, " ".join(getattr(exc, "messages", [str(exc)])))
        return redirect(session.get_absolute_url())
    note = f" ({len(stats.ties)} tied answers left out)" if stats.ties else ""
    messages.success(
        request, f"Saved to “{dataset.name}”: {merged.created} new records, {merged.updated} updated{note}."
    )
    return redirect(dataset.get_absolute_url())
