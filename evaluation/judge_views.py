"""The judges page: MLflow's built-in judges, what each reads, the endpoint (never its key), and a connection test."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_POST

from labeling.views.access import admin_required

from .judges.endpoint import ConnectionCheck, current


def _context(check: ConnectionCheck | None = None) -> dict:
    from .judges.builtin import builtin_judges  # imports mlflow: only on this page

    endpoint = current()
    return {
        "judges": list(builtin_judges().values()),
        "configured": endpoint.configured,
        "base_url": endpoint.shown_base_url,
        "model": endpoint.model,
        "model_uri": endpoint.model_uri,
        "has_key": bool(endpoint.api_key),
        "timeout": endpoint.timeout,
        "max_retries": endpoint.max_retries,
        "max_concurrency": endpoint.max_concurrency,
        "guidelines": settings.JUDGE_GUIDELINES,
        "check": check,
    }


@admin_required
@require_GET
def judge_list(request: HttpRequest) -> HttpResponse:
    """The built-in judges and the endpoint they call; without one, says so and lists them as unavailable."""
    return render(request, "evaluation/judge_list.html", _context())


@admin_required
@require_POST
def judge_check(request: HttpRequest) -> HttpResponse:
    """Send one tiny judge request: the latency and model that answered, or the exact error (a partial for htmx)."""
    from .judges.endpoint import check_connection

    check = check_connection()
    template = "evaluation/judge_list.html#check" if request.htmx else "evaluation/judge_list.html"
    return render(request, template, _context(check))
