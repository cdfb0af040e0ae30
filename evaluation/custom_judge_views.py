"""Admin pages of custom judges: list, create, edit; preview the exact prompt on a trace and run the judge once.

"Preview" and "Run once" post the form as it is (saved or not) and never write: the preview renders the
messages MLflow's judge sends first; "run once" scores the trace through the runner (``score_items``)
and shows each Feedback's value, rationale or error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from labeling.views.access import admin_required
from traces.models import Trace

from .judge_forms import CustomJudgeForm
from .judge_services import save_custom_judge
from .judges import endpoint
from .models import CustomJudge

TEMPLATE = "evaluation/custom_judge_form.html"
RECENT_TRACES = 20
RUN_ONCE_ID = "run-once"  # the run id the runner tags results with; nothing is written


@dataclass
class Trial:
    """What "Preview" or "Run once" showed for one trace (never stored)."""

    action: str
    trace_id: str = ""
    messages: list[tuple[str, str]] = field(default_factory=list)
    results: list[Any] = field(default_factory=list)
    error: str = ""
    note: str = ""


@admin_required
@require_GET
def custom_judge_list(request: HttpRequest) -> HttpResponse:
    judges = list(CustomJudge.objects.order_by("name"))
    return render(
        request,
        "evaluation/custom_judge_list.html",
        {"judges": judges, "configured": endpoint.current().configured},
    )


def _recent_traces() -> list[tuple[str, str]]:
    rows = Trace.objects.order_by("-request_time", "-id").values_list("trace_id", "request_preview")[:RECENT_TRACES]
    return [(trace_id, (preview or "")[:80]) for trace_id, preview in rows]


def _context(form: CustomJudgeForm, judge: CustomJudge | None, trial: Trial | None = None) -> dict[str, Any]:
    return {
        "form": form,
        "judge": judge,
        "trial": trial,
        "versions": list(judge.versions.select_related("changed_by")) if judge is not None else [],
        "recent_traces": _recent_traces(),
        "configured": endpoint.current().configured,
    }


def _trial(form: CustomJudgeForm, action: str) -> Trial:
    """The preview or the single run of the form's definition on its trace; problems in ``error``."""
    from .judges.custom import describe_definition
    from .scorers.runner import build_items, new_pool, score_items

    trace_id = (form.cleaned_data.get("trace_id") or "").strip()
    trial = Trial(action=action, trace_id=trace_id)
    if not trace_id:
        trial.error = "Give a trace id (or pick a recent trace) to preview or run the judge on."
        return trial
    trace = Trace.objects.filter(trace_id=trace_id).only("pk").first()
    if trace is None:
        trial.error = f"No trace with id “{trace_id}”."
        return trial
    assert form.definition is not None
    current = endpoint.current()
    configured = current.configured
    model_uri = current.model_uri if configured else "openai:/(JUDGE_MODEL not set)"
    info = describe_definition(form.definition, model_uri, True)
    if info.scorer is None:
        trial.error = info.unavailable
        return trial
    (item,) = build_items([trace.pk], with_trace=info.takes_trace)
    if action == "preview":
        trial.messages = info.scorer.messages(
            inputs=item.inputs, outputs=item.outputs, expectations=item.expectations, trace=item.mlflow_trace
        )
        if info.takes_trace:
            trial.note = "MLflow also gives the model tools (list_spans, get_span, …) to read the trace's spans."
        return trial
    if not configured:
        trial.error = endpoint.NOT_CONFIGURED
        return trial
    with new_pool() as pool:
        trial.results = score_items([item], [info], run_id=RUN_ONCE_ID, pool=pool)[trace.pk]
    return trial


def _problems(form: CustomJudgeForm) -> str:
    """The form's errors in one line (the trial partial is swapped in alone, without the form's own messages)."""
    found = []
    for name, errors in form.errors.items():
        field = form.fields.get(name)
        label = (field.label or name.replace("_", " ").capitalize()) if field is not None else ""
        found.extend(f"{label}: {error}" if label else error for error in errors)
    return " ".join(found)


def _form_page(request: HttpRequest, judge: CustomJudge | None) -> HttpResponse:
    if request.method == "GET":
        initial = CustomJudgeForm.initial_of(judge) if judge is not None else {}
        if request.GET.get("trace_id"):
            initial["trace_id"] = request.GET["trace_id"][:64]
        return render(request, TEMPLATE, _context(CustomJudgeForm(initial=initial, judge=judge), judge))
    form = CustomJudgeForm(request.POST, judge=judge)
    action = request.POST.get("action", "save")
    if action not in ("save", "preview", "run_once"):
        action = "save"
    partial = f"{TEMPLATE}#trial" if request.htmx and action != "save" else TEMPLATE
    if not form.is_valid():
        trial = Trial(action=action, error=f"Fix the definition first: {_problems(form)}") if action != "save" else None
        return render(request, partial if trial else TEMPLATE, _context(form, judge, trial), status=400)
    if action != "save":
        trial = _trial(form, action)
        return render(request, partial, _context(form, judge, trial), status=400 if trial.error else 200)
    assert form.definition is not None
    try:
        saved = save_custom_judge(definition=form.definition, judge=judge, changed_by=request.user)
    except ValidationError as error:  # a concurrent save took the name
        for name, problems in error.message_dict.items():
            for problem in problems:
                form.add_error(name if name in form.fields else None, problem)
        return render(request, TEMPLATE, _context(form, judge), status=400)
    messages.success(request, f"Saved judge “{saved.name}” (version {saved.version}).")
    return redirect("evaluation:custom_judge_edit", pk=saved.pk)


@admin_required
@require_http_methods(["GET", "POST"])
def custom_judge_new(request: HttpRequest) -> HttpResponse:
    return _form_page(request, None)


@admin_required
@require_http_methods(["GET", "POST"])
def custom_judge_edit(request: HttpRequest, pk: int) -> HttpResponse:
    return _form_page(request, get_object_or_404(CustomJudge, pk=pk))
