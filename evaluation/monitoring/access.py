"""Who may watch and who may change monitoring.

Dashboards, registrations, backfill and archive pages are for the people who may explore traces
(admins, and session leads by default); reads by anyone else are 404. Registering, starting,
updating, stopping and deleting scorers, backfills and archive settings are for admins (403 for
other explorers), as they decide what production traffic is scored and what judge calls cost.
"""

from __future__ import annotations

from typing import Any

from django.http import Http404
from django.shortcuts import get_object_or_404

from labeling.access import is_admin
from traces.access import can_explore_traces
from traces.models import Experiment, ExperimentKind


def can_see_monitoring(user: Any) -> bool:
    return can_explore_traces(user)


def can_change_monitoring(user: Any) -> bool:
    return can_see_monitoring(user) and is_admin(user)


def monitored_experiment(user: Any, pk: int) -> Experiment:
    """The (ordinary, not labeling-copy) experiment ``pk`` when the user may watch it; else 404."""
    if not can_see_monitoring(user):
        raise Http404("no such experiment")
    return get_object_or_404(Experiment, pk=pk, kind=ExperimentKind.TRACES)
