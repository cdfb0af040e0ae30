"""Adjudication for session leads: items where reviewers disagree, answers side by side, the final answer."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from traces.loading import load_spans_for_view
from traces.rendering import build_trace_view
from traces.templatetags.trace_tags import SPAN_TREE_LIMIT

from .. import adjudication
from ..errors import SessionClosedError
from ..models import InputType, ReviewItem
from ..review_screen import TREE_OPEN_DEPTH, Question
from .access import get_session_for_manager


@login_required
@require_GET
def adjudication_queue(request: HttpRequest, pk: int) -> HttpResponse:
    session = get_session_for_manager(request, pk)
    queue = adjudication.adjudication_queue(session)
    rows = [
        {"item": item, "split": split, "settled": sorted(settled & set(split)), "open": sorted(set(split) - settled)}
        for item, split, settled in queue
    ]
    return render(request, "labeling/manage/adjudication_queue.html", {"session": session, "rows": rows})


@login_required
@require_http_methods(["GET", "POST"])
def adjudicate_item(request: HttpRequest, pk: int, item_pk: int) -> HttpResponse:
    session = get_session_for_manager(request, pk)
    item = get_object_or_404(ReviewItem.objects.select_related("trace"), session=session, pk=item_pk)
    errors: dict[str, list[str]] = {}
    raw: dict[str, Any] | None = None
    if request.method == "POST":
        raw = {
            s.name: request.POST.getlist(f"q-{s.name}")
            if s.input_type == InputType.CATEGORICAL_LIST
            else request.POST.get(f"q-{s.name}")
            for s in session.ordered_schemas()
        }
        try:
            adjudication.adjudicate(
                item=item, lead=request.user, raw_answers=raw, rationale=request.POST.get("rationale", "")
            )
        except SessionClosedError as exc:
            errors = {"__all__": [str(exc)]}
        except ValidationError as exc:
            errors = exc.message_dict
        else:
            messages.success(request, f"Final answer saved for item {item.position}.")
            return redirect("labeling:adjudication_queue", session.pk)
    questions = adjudication.adjudication_questions(session=session, item=item, raw_values=raw, errors=errors)
    context = {
        "session": session,
        "item": item,
        "view": build_trace_view(item.trace, load_spans_for_view(item.trace_id), []),
        "questions": [{"q": q, "form": Question(schema=q.schema, value=q.value, errors=q.errors)} for q in questions],
        "form_errors": errors.get("__all__", []) + errors.get("rationale", []),
        "rationale": request.POST.get("rationale", "") if request.method == "POST" else "",
        "span_url": item.get_absolute_url(),
        "tree_open_depth": TREE_OPEN_DEPTH,
        "tree_limit": SPAN_TREE_LIMIT,
        "accepts_answers": session.accepts_answers,
    }
    status = 403 if request.method == "POST" and not session.accepts_answers else 400 if errors else 200
    return render(request, "labeling/manage/adjudicate_item.html", context, status=status)
