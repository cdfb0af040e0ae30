"""Sending a run's traces (a filter's, or a comparison's regressions) to a labeling session, from a page."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse

from labeling import services as labeling_services
from labeling.models import LabelingSession
from traces.models import Trace


def add_and_redirect(
    request: HttpRequest, *, session: LabelingSession, traces: QuerySet[Trace], what: str, back_to: str
) -> HttpResponse:
    """Add ``traces`` (``what`` names them: "traces", "regressed traces of “v2”"), say how it went, go back.

    A large add runs in the background: then the answer is the job's progress page.
    """
    result = labeling_services.add_traces_to_session(
        session=session,
        traces=traces,
        background_from=settings.TRACE_ADD_BACKGROUND_THRESHOLD,
        requested_by=request.user,
    )
    if result.job is not None:
        messages.success(request, f"Adding {result.job.total} {what} to “{session.name}” in the background.")
        return redirect(reverse("labeling:trace_add_job", args=[session.pk, result.job.pk]))
    noun, _, rest = what.partition(" of ")
    counted = f"{noun if result.added != 1 else noun.removesuffix('s')}" + (f" of {rest}" if rest else "")
    were = "were" if result.already_there != 1 else "was"
    messages.success(
        request, f"Added {result.added} {counted} to “{session.name}” ({result.already_there} {were} already there)."
    )
    return redirect(back_to)
