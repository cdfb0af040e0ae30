"""Which completed traces each active registered scorer scores, and queueing them.

Sampling is deterministic: a trace is sampled when the hash of (trace id, registration name) falls
below the rate, so a retried request and any number of workers decide alike, and raising a rate only
adds traces (lowering it only removes some). The filter string, when there is one, must match too.
``queue_completed_traces`` is the ``ON_TRACES_COMPLETED`` hook: it runs in the transaction that
completed the traces and wakes a worker once that commits.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Sequence

from django.db import transaction
from django.db.models import OuterRef, Subquery
from django.utils import timezone

from traces.models import Trace

from .models import MonitoringWork, RegisteredScorer, RegisteredScorerVersion

SPACE = float(2**64)


def sample_point(trace_id: str, registration_name: str) -> float:
    """Where the trace falls in [0, 1) for this registration: the same on every machine, run and retry."""
    digest = hashlib.sha256(f"{trace_id}\x1f{registration_name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / SPACE


def is_sampled(trace_id: str, registration_name: str, sample_rate: float) -> bool:
    if sample_rate <= 0:
        return False
    return sample_rate >= 1 or sample_point(trace_id, registration_name) < sample_rate


def matching(trace_pks: Iterable[int], filter_string: str) -> set[int]:
    """The traces among ``trace_pks`` that the registration's filter string matches (all of them without one)."""
    pks = set(trace_pks)
    if not filter_string or not pks:
        return pks
    from traces.search import FilterError, search_traces

    try:
        return set(search_traces(Trace.objects.filter(pk__in=pks), filter_string).values_list("pk", flat=True))
    except FilterError:  # checked when it was saved; a grammar change since must not stop ingest
        return set()


def sampled_traces(
    registration_name: str, sample_rate: float, filter_string: str, traces: Sequence[tuple[int, str]]
) -> set[int]:
    """The pks of ``traces`` ((pk, trace id) pairs) this registration scores."""
    chosen = [pk for pk, trace_id in traces if is_sampled(trace_id, registration_name, sample_rate)]
    return matching(chosen, filter_string) if filter_string else set(chosen)


def _latest_version_pk() -> Subquery:
    versions = RegisteredScorerVersion.objects.filter(registration=OuterRef("pk"), version=OuterRef("version"))
    return Subquery(versions.values("pk")[:1])


def queue_completed_traces(trace_pks: Sequence[int]) -> int:
    """Queue the just-completed traces that each active registration of their experiment samples; how many rows."""
    experiments = Trace.objects.filter(pk__in=trace_pks).values("experiment_id")
    registrations = list(
        RegisteredScorer.objects.active()
        .filter(experiment_id__in=experiments)
        .annotate(version_pk=_latest_version_pk())
        .values_list("experiment_id", "name", "sample_rate", "filter_string", "version_pk")
    )
    if not registrations:
        return 0
    by_experiment: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for pk, trace_id, experiment_id in Trace.objects.filter(pk__in=trace_pks).values_list(
        "pk", "trace_id", "experiment_id"
    ):
        by_experiment[experiment_id].append((pk, trace_id))
    now = timezone.now()
    rows = [
        MonitoringWork(trace_id=pk, registration_version_id=version_pk, queued_at=now)
        for experiment_id, name, rate, filter_string, version_pk in registrations
        for pk in sorted(sampled_traces(name, rate, filter_string, by_experiment.get(experiment_id, [])))
    ]
    if rows:
        MonitoringWork.objects.bulk_create(rows, batch_size=2000, ignore_conflicts=True)
        from .scoring import wake_workers

        transaction.on_commit(wake_workers)
    return len(rows)
