"""A judge checked against experts: pick a judge, a labeling session and its question; run the judge over the session
(an evaluation run, listed in Runs), see agreement, κ, the confusion matrix and the disagreements; turn one into a
few-shot example of a custom judge's next version and re-check (before → after)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from labeling.models import LabelingSession, LabelSchema
from labeling.views.access import admin_required

from .judge_services import add_example
from .judges.custom import Definition
from .models import CustomJudge, EvaluationRun, RunStatus
from .scorers.catalogue import ScorerInfo

TEMPLATE = "evaluation/judge_agreement.html"


@dataclass
class Choice:
    """What the page was asked for, resolved, with the first problem found (``error``)."""

    judges: list[ScorerInfo] = field(default_factory=list)
    sessions: list[tuple[int, str]] = field(default_factory=list)
    judge: ScorerInfo | None = None
    custom: CustomJudge | None = None
    session: LabelingSession | None = None
    schemas: list[LabelSchema] = field(default_factory=list)
    question: LabelSchema | None = None
    error: str = ""

    @property
    def builtin_feedback(self) -> str | None:
        return None if self.custom is not None or self.judge is None else self.judge.feedback_name

    @property
    def definition(self) -> Definition | None:
        return Definition.of(self.custom) if self.custom is not None else None


def _choose(params: Any) -> Choice:
    from .scorers.catalogue import load_catalogue

    choice = Choice()
    judges = load_catalogue().judges
    choice.judges = [info for info in judges.values() if info.available]
    choice.sessions = list(LabelingSession.objects.order_by("name").values_list("pk", "name"))
    judge_name, session_pk, question_name = (str(params.get(k, "")).strip() for k in ("judge", "session", "question"))
    if judge_name:
        choice.judge = judges.get(judge_name)
        if choice.judge is None:
            choice.error = f"No judge named “{judge_name[:100]}”."
            return choice
        if not choice.judge.available:
            choice.error = f"The judge {judge_name} is not available: {choice.judge.unavailable}"
            return choice
        if choice.judge.module.startswith("custom judge"):
            choice.custom = CustomJudge.objects.filter(name=judge_name).first()
    if session_pk:
        if not session_pk.isdecimal() or len(session_pk) > 18:
            choice.error = "The session must be picked from the list."
            return choice
        choice.session = LabelingSession.objects.filter(pk=int(session_pk)).first()
        if choice.session is None:
            choice.error = "No such labeling session."
            return choice
        choice.schemas = choice.session.ordered_schemas()
        if question_name:
            choice.question = next((s for s in choice.schemas if s.name == question_name), None)
            if choice.question is None:
                choice.error = f"The session has no question named “{question_name[:100]}”."
                return choice
        elif choice.schemas:
            same = choice.judge.feedback_name if choice.judge is not None else ""
            names = {same, choice.judge.name if choice.judge else ""}
            choice.question = next((s for s in choice.schemas if s.name in names), choice.schemas[0])
    return choice


def _page_url(choice: Choice) -> str:
    params = {
        "judge": choice.judge.name if choice.judge else "",
        "session": choice.session.pk if choice.session else "",
    }
    if choice.question is not None:
        params["question"] = choice.question.name
    return f"{reverse('evaluation:judge_agreement')}?{urlencode(params)}"


def _results(choice: Choice) -> dict[str, Any]:
    """The latest run of the judge on the session and, when the judge changed between runs, the one before."""
    from .judges.experts import agreement, judge_runs, load_experts, version_of

    if choice.judge is None or choice.session is None or choice.question is None:
        return {}
    runs = judge_runs(choice.session, choice.judge.name)
    latest = runs[0] if runs else None
    finished = [run for run in runs if run.status == RunStatus.FINISHED]
    pending = latest is not None and latest.status in (RunStatus.QUEUED, RunStatus.RUNNING)
    context: dict[str, Any] = {"latest": latest, "pending": pending}
    if not finished:
        return context
    after_run = finished[0]
    after_digest = version_of(after_run, choice.judge.name).get("digest")
    before_run = next((r for r in finished[1:] if version_of(r, choice.judge.name).get("digest") != after_digest), None)
    experts = load_experts(choice.session, choice.question)
    common = {"builtin_feedback": choice.builtin_feedback, "definition": choice.definition, "experts": experts}
    name = choice.judge.name
    context["after"] = agreement(after_run, choice.session, choice.question, name, **common)
    context["after_version"] = version_of(after_run, name)
    if before_run is not None:
        context["before"] = agreement(before_run, choice.session, choice.question, name, **common)
        context["before_version"] = version_of(before_run, name)
    context["changed"] = choice.custom is not None and choice.judge.digest != after_digest
    return context


def _render(request: HttpRequest, choice: Choice, status: int = 200, error: str = "") -> HttpResponse:
    context = {"choice": choice, "error": error or choice.error, **({} if choice.error else _results(choice))}
    return render(request, TEMPLATE, context, status=400 if (error or choice.error) else status)


@admin_required
@require_GET
def judge_agreement(request: HttpRequest) -> HttpResponse:
    return _render(request, _choose(request.GET))


def _chosen_for_post(request: HttpRequest) -> tuple[Choice, str]:
    choice = _choose(request.POST)
    if choice.error:
        return choice, choice.error
    if choice.judge is None or choice.session is None or choice.question is None:
        return choice, "Pick a judge, a labeling session and one of its questions."
    return choice, ""


@admin_required
@require_POST
def judge_agreement_run(request: HttpRequest) -> HttpResponse:
    """Run (or re-check) the judge over the session's items: an evaluation run, visible in Runs."""
    from .runs import RunInputError, start_evaluation_run

    choice, error = _chosen_for_post(request)
    if error:
        return _render(request, choice, error=error)
    assert choice.judge is not None and choice.session is not None
    try:
        run: EvaluationRun = start_evaluation_run(
            scorer_names=[choice.judge.name],
            session=choice.session.name,
            name=f"{choice.judge.name} vs experts · {choice.session.name}"[:200],
            started_by=request.user,
        )
    except RunInputError as failure:
        return _render(request, choice, error=str(failure))
    messages.success(request, f"Started run #{run.pk} of {choice.judge.name} over “{choice.session.name}”.")
    return redirect(_page_url(choice))


def _in_session(choice: Choice, trace: str) -> bool:
    if not (trace.isdecimal() and len(trace) < 18) or choice.session is None:
        return False
    return choice.session.items.filter(trace_id=int(trace)).exists()


@admin_required
@require_POST
def judge_agreement_example(request: HttpRequest) -> HttpResponse:
    """A disagreement as a few-shot example of the custom judge's next version (the experts' answer is the verdict)."""
    from .judges.experts import ExampleError, example_of

    choice, error = _chosen_for_post(request)
    if not error and choice.custom is None:
        error = "Only custom judges take examples; built-in judges are MLflow's as they are."
    trace = str(request.POST.get("trace", ""))
    if not error and not _in_session(choice, trace):
        error = "That item is not in this session."
    if error:
        return _render(request, choice, error=error)
    assert choice.custom is not None and choice.session is not None and choice.question is not None
    try:
        example = example_of(choice.custom, choice.session, choice.question, int(trace))
        judge = add_example(judge=choice.custom, example=example, changed_by=request.user)
    except ExampleError as failure:
        return _render(request, choice, error=f"Cannot use this item as an example: {failure}.")
    except ValidationError as failure:
        return _render(request, choice, error=" ".join(m for ms in failure.message_dict.values() for m in ms))
    messages.success(request, f"Added the example to {judge.name}: now version {judge.version}. Re-check to compare.")
    return redirect(_page_url(choice))
