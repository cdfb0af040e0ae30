"""Adjudication for session leads: items where reviewers disagree, answers side by side, the final answer."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from traces.loading import load_spans_for_view
from traces.rendering import build_trace_view
from traces.templatetags.trace_tags import SPAN_TREE_LIMIT

from .. import workflow
from ..answers import answer_to_form_value, display_answer
from ..models import ReviewItem
from .access import get_session_for_manager
from .review import Question


@login_required
@require_GET
def adjudication_queue(request: HttpRequest, pk: int) -> HttpResponse:
    session = get_session_for_manager(request, pk)
    queue = workflow.adjudication_queue(session)
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
    schemas = session.ordered_schemas()
    errors: dict[str, list[str]] = {}
    if request.method == "POST":
        raw = {
            s.name: request.POST.getlist(f"q-{s.name}")
            if s.input_type == "categorical_list"
            else request.POST.get(f"q-{s.name}")
            for s in schemas
        }
        try:
            workflow.adjudicate(
                item=item, lead=request.user, raw_answers=raw, rationale=request.POST.get("rationale", "")
            )
        except ValidationError as exc:
            errors = exc.message_dict
        else:
            messages.success(request, f"Final answer saved for item {item.position}.")
            return redirect("labeling:adjudication_queue", session.pk)
    answers = workflow.reviewer_answers([item.pk]).get(item.pk, {})
    finals = {a.schema.name: a.assessment for a in item.adjudications.select_related("assessment", "schema")}
    split = set(workflow.disagreements(session).get(item.pk, []))
    questions = []
    for schema in schemas:
        final = finals.get(schema.name)
        value = answer_to_form_value(schema, final.value) if final is not None and final.valid else None
        questions.append(
            {
                "q": Question(schema=schema, value=value, errors=errors.get(schema.name, [])),
                "answers": [
                    {"reviewer": a.source_id, "value": display_answer(schema, a.value), "rationale": a.rationale}
                    for a in answers.get(schema.name, [])
                ],
                "split": schema.name in split,
                "final": display_answer(schema, final.value) if final is not None and final.valid else None,
                "final_by": final.source_id if final is not None else "",
            }
        )
    view = build_trace_view(item.trace, load_spans_for_view(item.trace_id), [])
    context = {
        "session": session,
        "item": item,
        "view": view,
        "questions": questions,
        "form_errors": errors.get("__all__", []),
        "span_url": item.get_absolute_url(),
        "tree_open_depth": 0,
        "tree_limit": SPAN_TREE_LIMIT,
        "accepts_answers": session.accepts_answers,
    }
    return render(request, "labeling/manage/adjudicate_item.html", context, status=400 if errors else 200)
