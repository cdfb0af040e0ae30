"""Trace pages: the list with filters (HTMX swaps the table) and the trace detail."""

from __future__ import annotations

import json

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, render
from django.utils.http import content_disposition_header
from django.utils.text import slugify
from django.views.decorators.http import require_GET

from .access import can_explore_traces, visible_traces
from .large_values import ShownText, loads_json, read_limit
from .loading import PANEL_FIELDS, full_value_text, load_span_for_panel, load_spans_for_view
from .models import Span, Trace
from .pagination import CountEstimate, InvalidCursor, KeysetPage, Ordering, estimate_count, keyset_page
from .rendering import build_trace_view, shown_json
from .search import TraceListForm, traces_for_list
from .templatetags.trace_tags import SPAN_TREE_LIMIT

PAGE_SIZE = 50


def _require_explorer(request: HttpRequest) -> None:
    """Reviewers see only the items given to them: the explorer does not exist for them (404)."""
    if not can_explore_traces(request.user):
        raise Http404("No such page.")


@login_required
@require_GET
def trace_list(request: HttpRequest) -> HttpResponse:
    _require_explorer(request)
    traces = visible_traces(request.user).explorable()  # the list shows no session copies
    form = TraceListForm(request.GET or None, versions_of=traces)
    if form.is_bound and form.is_valid():
        traces = form.filter(traces)  # the fields, ANDed with the MLflow filter string
    elif form.is_bound:
        traces = Trace.objects.none()
    query = request.GET.copy()
    for key in ("after", "count", "page"):
        query.pop(key, None)
    context: dict[str, object] = {
        "form": form,
        "query": query.urlencode(),
        "page_error": "",
    }
    if request.GET.get("count") == "exact":  # the exact count, asked for by the "exact count" link
        context["count"] = CountEstimate(traces.count(), exact=True)
        if request.htmx:
            return render(request, "traces/trace_list.html#trace-count", context)
    try:  # keyset pages: "Load more" resumes after the last row shown, at any depth
        ordering = Ordering.from_order_by(form.ordering())
        page = keyset_page(traces_for_list(traces), ordering, request.GET.get("after") or None, PAGE_SIZE)
    except InvalidCursor as exc:
        context.update(page=KeysetPage([], None, is_first=False), page_error=str(exc))
        return render(request, "traces/trace_list.html", context, status=400)
    context["page"] = page
    if request.htmx and request.htmx.target == "load-more":  # "Load more": the next rows only
        return render(request, "traces/trace_list.html#trace-rows", context)
    if "count" not in context:
        # Fewer rows than a page from the start: that is the count; else a cheap estimate.
        short = page.is_first and page.next_cursor is None
        context["count"] = CountEstimate(len(page.rows), exact=True) if short else estimate_count(traces)
    template = "traces/trace_list.html#trace-table" if request.htmx else "traces/trace_list.html"
    status = 400 if form.is_bound and form.errors and not request.htmx else 200
    return render(request, template, context, status=status)


def is_plain_id(value: str, max_length: int) -> bool:
    """An id from a URL that can name a row: not longer than its column and without NUL,
    which PostgreSQL refuses in any query (a 500 instead of "not found")."""
    return len(value) <= max_length and "\x00" not in value


def get_trace_for_user(request: HttpRequest, trace_id: str) -> Trace:
    """A trace the user may see (``visible_traces``: a session's copies only for its managers); else 404."""
    _require_explorer(request)
    if not is_plain_id(trace_id, Trace._meta.get_field("trace_id").max_length):
        raise Http404("No such trace.")
    return get_object_or_404(visible_traces(request.user).select_related("experiment"), trace_id=trace_id)


def find_span(trace_pk: int, span_id: str) -> Span:
    """One span of a trace by its id (from ``?span=``), or 404."""
    span = None
    if is_plain_id(span_id, Span._meta.get_field("span_id").max_length):
        span = load_span_for_panel(trace_pk, span_id)  # values cut like the page's
    if span is None:
        raise Http404("No such span in this trace.")
    return span


@login_required
@require_GET
def trace_detail(request: HttpRequest, trace_id: str) -> HttpResponse:
    trace = get_trace_for_user(request, trace_id)
    if request.GET.get("value"):
        return span_value_response(request, trace)
    if request.GET.get("span"):
        return _span_detail(request, trace)
    view = build_trace_view(
        trace,
        load_spans_for_view(trace.pk, all_tools=request.GET.get("tools") == "all"),
        trace.assessments.all(),
        all_documents=request.GET.get("docs") == "all",
        all_tools=request.GET.get("tools") == "all",
    )
    context = {
        "trace": trace,
        "view": view,
        "selected": None,
        "tree_limit": len(view.nodes) if request.GET.get("tree") == "all" else SPAN_TREE_LIMIT,
    }
    return render(request, "traces/trace_detail.html", context)


def _span_detail(request: HttpRequest, trace: Trace) -> HttpResponse:
    """One span's inputs/outputs: the side panel (HTMX) or the trace page with the panel filled."""
    span = find_span(trace.pk, request.GET["span"])
    context = {"trace": trace, "selected": span, "selected_json": span_json(span)}
    if request.htmx:
        return render(request, "traces/trace_detail.html#span-detail", context)
    view = build_trace_view(trace, load_spans_for_view(trace.pk), trace.assessments.all())
    context.update(view=view, tree_limit=SPAN_TREE_LIMIT)
    return render(request, "traces/trace_detail.html", context)


def span_json(span: Span) -> dict[str, ShownText]:
    """A span's values as readable JSON for the span panel, each cut at the value limit."""
    shown = {field: shown_json(span, field) for field in PANEL_FIELDS}
    if not span.events:
        shown["events"] = ShownText("")
    return shown


def span_value_response(request: HttpRequest, trace: Trace) -> HttpResponse:
    """All of one span value: ``?span=<span id>&value=<inputs|outputs|attributes|events>[&download=1]``.

    The caller has applied the page's access check to ``trace``: the trace page here, the
    review item's view for its own URL. A JSON string is shown as plain text; ``download=1``
    gives the stored JSON as a file.
    """
    field = request.GET.get("value", "")
    if field not in PANEL_FIELDS:
        return HttpResponseBadRequest(
            f"Unknown value {field[:40]!r}: ask for one of {', '.join(PANEL_FIELDS)}.", content_type="text/plain"
        )
    span_id = request.GET.get("span", "")
    found, text = full_value_text(trace.pk, span_id, field)
    if not found:
        raise Http404("No such span in this trace.")
    text = "null" if text is None else text
    download = request.GET.get("download") == "1"
    name = "-".join(slugify(part) or "value" for part in (trace.trace_id, span_id, field))
    if download:
        response = HttpResponse(text, content_type="application/json; charset=utf-8")
        response["Content-Disposition"] = content_disposition_header(True, f"{name}.json")
        return response
    value = loads_json(text) if text.startswith('"') or len(text) <= read_limit() else None
    if isinstance(value, str):
        response = HttpResponse(value, content_type="text/plain; charset=utf-8")
    else:
        if value is not None:  # small enough to indent for reading
            text = json.dumps(value, indent=2, ensure_ascii=False, default=str)
        response = HttpResponse(text, content_type="application/json; charset=utf-8")
    response["Content-Disposition"] = content_disposition_header(False, f"{name}.json")
    return response
