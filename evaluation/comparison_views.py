"""Comparing two evaluation runs (admins and session leads): metrics side by side, then what regressed and improved.

``/datasets/runs/compare/?a=<pk>&b=<pk>[&scorer=NAME][&page=N]``. Without ``a`` and ``b`` it shows
the two pickers; anything wrong with them (missing, not a number, unknown or not visible, the same
run twice, a run that has not finished) is a 400 that says what, on the page.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_GET, require_POST

from labeling.views.access import deny
from traces.access import can_explore_traces

from .access import can_start_runs, sessions_to_add_to, visible_runs
from .comparison import RunComparison, compare_runs, load_details
from .models import EvaluationRun, RunStatus
from .run_forms import AddToSessionForm
from .run_results import run_rows, traces_to_add
from .session_adds import add_and_redirect

EXAMPLES_PER_PAGE = 20
RUNS_OFFERED = 200


class CompareInputError(ValueError):
    """The runs asked for cannot be compared; the message says why, in one line."""


def _run_number(query: QueryDict, side: str) -> int:
    raw = query.get(side, "").strip()
    if not raw:
        raise CompareInputError(f"Pick run {side.upper()}: both runs are needed to compare.")
    if not (raw.isascii() and raw.isdigit()):  # "²" is a digit to isdigit(), not to int()
        raise CompareInputError(f"Run {side.upper()} must be a run number, not “{raw[:40]}”.")
    if len(raw) > 18:  # no run has such a number (and int() refuses 4,300 digits and more)
        raise CompareInputError(f"There is no run #{raw[:20]}… (run {side.upper()}) that you can see.")
    return int(raw)


def _not_finished(run: EvaluationRun) -> str:
    state = {
        RunStatus.QUEUED: "is still queued",
        RunStatus.RUNNING: "is still running",
        RunStatus.FAILED: "failed",
        RunStatus.CANCELLED: "was cancelled",
    }.get(run.status, f"is {run.status}")
    return f"Run “{run.name}” {state}: only finished runs can be compared."


def pick_runs(runs: QuerySet[EvaluationRun], query: QueryDict) -> tuple[EvaluationRun, EvaluationRun]:
    """Runs A and B from the query string (one query), or ``CompareInputError``."""
    a_pk, b_pk = _run_number(query, "a"), _run_number(query, "b")
    if a_pk == b_pk:
        raise CompareInputError("Pick two different runs: A and B are the same run.")
    found = {run.pk: run for run in runs.filter(pk__in=[a_pk, b_pk])}
    for side, pk in (("A", a_pk), ("B", b_pk)):
        if pk not in found:
            raise CompareInputError(f"There is no run #{pk} (run {side}) that you can see.")
    for pk in (a_pk, b_pk):
        if found[pk].status != RunStatus.FINISHED:
            raise CompareInputError(_not_finished(found[pk]))
    return found[a_pk], found[b_pk]


def _choices(runs: QuerySet[EvaluationRun]) -> list[EvaluationRun]:
    finished = runs.filter(status=RunStatus.FINISHED).order_by("-created_at", "-id")
    return list(finished.only("pk", "name", "app_version", "created_at", "status")[:RUNS_OFFERED])


def _add_form(request: HttpRequest, data: Any = None) -> AddToSessionForm | None:
    """The "add B's regressed traces to a session" form, for those who may add traces (admins and leads)."""
    if not can_start_runs(request.user):
        return None
    return AddToSessionForm(data, sessions=sessions_to_add_to(request.user))


def _page_context(request: HttpRequest, comparison: RunComparison, scorer: str) -> dict[str, Any]:
    examples = comparison.examples_for(scorer)
    page = Paginator(examples, EXAMPLES_PER_PAGE).get_page(request.GET.get("page"))
    load_details(page.object_list)
    base = request.GET.copy()
    base.pop("page", None)
    regressed = [e for e in examples if e.regressions]
    return {
        "page": page,
        "examples": page.object_list,
        "page_query": base.urlencode(),
        "regressed_count": len(regressed),
        "add_form": _add_form(request),
    }


@login_required
@require_GET
def run_compare(request: HttpRequest) -> HttpResponse:
    if not can_explore_traces(request.user):
        raise Http404("No such page.")
    runs = visible_runs(request.user)
    query = request.GET
    scorer = query.get("scorer", "").strip()
    context: dict[str, Any] = {
        "choices": _choices(runs),
        "a_value": query.get("a", ""),
        "b_value": query.get("b", ""),
        "scorer": scorer,
    }
    if "a" not in query and "b" not in query:
        return render(request, "evaluation/run_compare.html", context)
    try:
        a, b = pick_runs(runs, query)
        comparison = compare_runs(a, b)
        if scorer and scorer not in comparison.scorer_names:
            names = ", ".join(comparison.scorer_names) or "none"
            raise CompareInputError(f"Both runs have no scorer named “{scorer[:80]}” (they share: {names}).")
    except CompareInputError as error:
        context["problem"] = str(error)
        template = "evaluation/run_compare.html#problem" if request.htmx else "evaluation/run_compare.html"
        return render(request, template, context, status=400)
    context |= {"comparison": comparison, **_page_context(request, comparison, scorer)}
    template = "evaluation/run_compare.html#examples" if request.htmx else "evaluation/run_compare.html"
    return render(request, template, context)


def _compare_url(a: EvaluationRun, b: EvaluationRun, scorer: str) -> str:
    query = {"a": a.pk, "b": b.pk, **({"scorer": scorer} if scorer else {})}
    return f"{reverse('evaluation:run_compare')}?{urlencode(query)}#examples"


@login_required
@require_POST
def run_compare_add_to_session(request: HttpRequest) -> HttpResponse:
    """Copy run B's traces of the regressed examples (on ``scorer``, or on any) into a session, for experts to judge."""
    if not can_explore_traces(request.user):
        raise Http404("No such page.")
    if not can_start_runs(request.user):
        deny(request)
    runs = visible_runs(request.user)
    scorer = request.POST.get("scorer", "").strip()
    try:
        a, b = pick_runs(runs, request.POST)
        comparison = compare_runs(a, b)
        if scorer and scorer not in comparison.scorer_names:
            raise CompareInputError(f"Both runs have no scorer named “{scorer[:80]}”.")
    except CompareInputError as error:
        return render(request, "evaluation/run_compare.html", {"problem": str(error), "choices": []}, status=400)
    form = _add_form(request, request.POST)
    regressed = [e.b.pk for e in comparison.examples_for(scorer) if e.regressions]
    problem = ""
    if form is None or not form.is_valid():
        problem = " ".join(e for errors in (form.errors.values() if form else []) for e in errors)
    elif not regressed:
        problem = f"Nothing to add: no example regressed{f' on {scorer}' if scorer else ''}."
    if problem:
        context = {"comparison": comparison, "choices": _choices(runs), "scorer": scorer, "add_error": problem}
        context |= {"a_value": str(a.pk), "b_value": str(b.pk), **_page_context(request, comparison, scorer)}
        return render(request, "evaluation/run_compare.html", context, status=400)
    rows = run_rows(b, request.user).filter(trace_id__in=regressed)
    return add_and_redirect(
        request,
        session=form.cleaned_data["session"],
        traces=traces_to_add(rows),
        what=f"regressed traces of “{b.name}”",
        back_to=_compare_url(a, b, scorer),
    )
