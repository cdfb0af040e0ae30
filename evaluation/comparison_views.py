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
from django.views.decorators.http import require_GET

from traces.access import can_explore_traces

from .access import visible_runs
from .comparison import RunComparison, compare_runs, load_details
from .models import EvaluationRun, RunStatus

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


def _page_context(request: HttpRequest, comparison: RunComparison, scorer: str) -> dict[str, Any]:
    examples = comparison.examples_for(scorer)
    page = Paginator(examples, EXAMPLES_PER_PAGE).get_page(request.GET.get("page"))
    load_details(page.object_list)
    base = request.GET.copy()
    base.pop("page", None)
    return {"page": page, "examples": page.object_list, "page_query": base.urlencode()}


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
