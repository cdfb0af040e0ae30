"""Who may see, start and cancel evaluation runs.

Runs are for the people who may explore traces (admins, and session leads by default). A lead
sees every run except those over labeling sessions (or labeling copies) they do not manage: their
results sit on copies the lead may not open. Reads of a run one may not see are 404.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet

from labeling.access import can_manage, is_admin, is_lead_anywhere, managed_sessions
from labeling.models import LabelingSession, SessionStatus
from traces.access import can_explore_traces
from traces.models import ExperimentKind

from .models import EvaluationRun, RunSource, RunStatus


def can_see_runs(user: Any) -> bool:
    return can_explore_traces(user)


def can_start_runs(user: Any) -> bool:
    """Admins and session leads (who may explore traces)."""
    return can_explore_traces(user) and is_lead_anywhere(user)


def visible_runs(user: Any) -> QuerySet[EvaluationRun]:
    """Every run for admins; for other explorers, the runs not over a session (or its copies) they do not manage."""
    if not can_see_runs(user):
        return EvaluationRun.objects.none()
    if is_admin(user):
        return EvaluationRun.objects.all()
    managed = managed_sessions(user)
    # positive conditions only: a run without a session or an experiment has NULLs there
    not_over_a_session = Q(session__isnull=True) & ~Q(source_kind=RunSource.SESSION)
    session_ok = not_over_a_session | Q(session__in=managed.values("pk"))
    experiment_ok = (
        Q(experiment__isnull=True)
        | Q(experiment__kind=ExperimentKind.TRACES)
        | Q(experiment__in=managed.values("experiment_id"))
    )
    return EvaluationRun.objects.filter(session_ok & experiment_ok)


def can_cancel(user: Any, run: EvaluationRun) -> bool:
    """Admins; a lead who started the run or manages its session (the run must be visible to them)."""
    if is_admin(user):
        return True
    if not can_start_runs(user):
        return False
    if run.started_by_id is not None and run.started_by_id == user.pk:
        return True
    return run.session is not None and can_manage(user, run.session)


def is_active(run: EvaluationRun) -> bool:
    return run.status in (RunStatus.QUEUED, RunStatus.RUNNING)


def sessions_to_add_to(user: Any) -> QuerySet[LabelingSession]:
    """The sessions a run's (or a comparison's) traces may be added to: managed by the user, not archived."""
    return managed_sessions(user).exclude(status=SessionStatus.ARCHIVED)
