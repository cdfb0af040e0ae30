"""Who may see which traces. The rules live in settings so that ``traces`` needs no other app.

* ``TRACE_EXPLORER_ACCESS``: who besides admins may open the explorer (session leads, by default).
* ``TRACE_COPY_ACCESS``: which labeling experiments' frozen copies a non-admin may open (the
  sessions they manage, by default). Without it, copies are for admins only.
* ``TRACE_REVIEWER_ACCESS``: which frozen copies a reviewer's API token may read (the items given
  to them, by default). The pages show those through the review screen instead.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from django.conf import settings
from django.db.models import Q, QuerySet
from django.utils.module_loading import import_string

from .models import Experiment, ExperimentKind, Trace


@cache
def _hook(name: str) -> Any:
    path = getattr(settings, name, "")
    return import_string(path) if path else None


def can_explore_traces(user: Any) -> bool:
    """Admins always; others when the configured rule says so (session leads, by default).

    The answer is kept on the user object: a page asks several times (view, access rule, top bar).
    """
    if not user.is_authenticated:
        return False
    if user.is_staff:
        return True
    cached = getattr(user, "_can_explore_traces", None)
    if cached is None:
        rule = _hook("TRACE_EXPLORER_ACCESS")
        cached = bool(rule(user)) if rule else False
        user._can_explore_traces = cached
    return cached


def _explorer_condition(user: Any) -> Q:
    """The traces a non-admin explorer may open: ordinary ones and their sessions' copies."""
    allowed = Q(experiment__kind=ExperimentKind.TRACES)
    managed_copies = _hook("TRACE_COPY_ACCESS")
    if managed_copies is not None:
        allowed |= Q(experiment__kind=ExperimentKind.LABELING, experiment__in=managed_copies(user))
    return allowed


def visible_traces(user: Any) -> QuerySet[Trace]:
    """Every trace the user may open by its id: nothing for non-explorers, everything for admins;
    for others the ordinary traces plus the frozen copies of the sessions they manage.

    The rule is one subquery, so a page filtering on it keeps its number of queries.
    """
    if not can_explore_traces(user):
        return Trace.objects.none()
    if user.is_staff:
        return Trace.objects.all()
    return Trace.objects.filter(_explorer_condition(user))


def reviewed_copies(user: Any) -> QuerySet[Any] | None:
    """The pks of the frozen copies given to ``user`` as a reviewer (``TRACE_REVIEWER_ACCESS``), or None."""
    rule = _hook("TRACE_REVIEWER_ACCESS")
    return rule(user) if rule is not None and user.is_authenticated else None


def readable_traces(user: Any) -> QuerySet[Trace]:
    """What a user's API token may read: ``visible_traces`` plus, for a reviewer, the copies of the
    items given to them (what their review screens show). One subquery per rule."""
    if user.is_authenticated and user.is_staff:
        return Trace.objects.all()
    allowed = _explorer_condition(user) if can_explore_traces(user) else Q(pk__in=[])
    copies = reviewed_copies(user)
    if copies is not None:
        allowed |= Q(pk__in=copies)
    return Trace.objects.filter(allowed)


def readable_experiments(user: Any) -> QuerySet[Experiment]:
    """The experiments whose traces a user may read (some or all of them), for naming one in a search."""
    if user.is_authenticated and user.is_staff:
        return Experiment.objects.all()
    allowed = Q(pk__in=[])
    if can_explore_traces(user):
        allowed = Q(kind=ExperimentKind.TRACES)
        managed_copies = _hook("TRACE_COPY_ACCESS")
        if managed_copies is not None:
            allowed |= Q(kind=ExperimentKind.LABELING, pk__in=managed_copies(user))
    copies = reviewed_copies(user)
    if copies is not None:
        allowed |= Q(pk__in=Trace.objects.filter(pk__in=copies).values("experiment_id"))
    return Experiment.objects.filter(allowed)
