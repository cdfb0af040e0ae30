"""Runs that real MLflow made: traces imported from ``mlflow.genai.evaluate`` appear as evaluation runs.

Such traces carry their run id in the metadata ``mlflow.sourceRun`` and the scorers' Feedback with
``mlflow.assessment.sourceRunId``. Each run id becomes an ``EvaluationRun`` of kind ``mlflow`` (its
``run_id`` is MLflow's) over those traces, with metrics recomputed from the imported Feedback
(``mean`` for every name: MLflow does not store which aggregations a scorer asked for).
Importing again updates the runs in place; each run trace gets its ``inputs_key`` (for comparing runs). A
run id of a run made here (a predict run tags its traces the same way) is left alone. ``import_traces``
calls this after every import (``AFTER_TRACE_IMPORT``).
"""

from __future__ import annotations

from collections import defaultdict

from django.db import transaction
from django.db.models import TextField
from django.db.models.fields.json import KT
from django.db.models.functions import Cast
from django.utils import timezone

from traces.models import Assessment, AssessmentKind, Trace

from .metrics import compute_metrics
from .models import EvaluationRun, EvaluationRunTrace, RunSource, RunStatus
from .scorers.runner import SCORER_DIGEST_KEY, SOURCE_RUN_KEY
from .trace_records import trace_inputs_keys

SOURCE_RUN_METADATA = "mlflow.sourceRun"


def import_mlflow_runs() -> list[EvaluationRun]:
    """Create or refresh one run per MLflow run id found on stored traces."""
    source_run = Cast(KT(f"trace_metadata__{SOURCE_RUN_METADATA}"), TextField())
    ours = EvaluationRun.objects.exclude(source_kind=RunSource.MLFLOW).values("run_id")
    rows = (
        Trace.objects.with_metadata(SOURCE_RUN_METADATA)
        .annotate(source_run=source_run)
        .exclude(source_run__in=ours)  # a predict run's traces carry its run id too: that run is ours, not MLflow's
        .order_by("request_time", "id")
        .values_list("source_run", "pk", "model_id", "request_time")
    )
    by_run: dict[str, list[tuple[int, str, object]]] = defaultdict(list)
    for run_id, pk, model_id, request_time in rows:
        if run_id:
            by_run[run_id].append((pk, model_id, request_time))
    return [_import_run(run_id, traces) for run_id, traces in by_run.items()]


def _import_run(run_id: str, traces: list[tuple[int, str, object]]) -> EvaluationRun:
    trace_pks = [pk for pk, _, _ in traces]
    feedback = list(
        Assessment.objects.filter(trace_id__in=trace_pks, kind=AssessmentKind.FEEDBACK, valid=True)
        .annotate(source_run=Cast(KT(f"metadata__{SOURCE_RUN_KEY}"), TextField()))
        .filter(source_run=run_id)
        .values_list("name", "value", "error", "metadata")
    )
    scorers: dict[str, str] = {}
    for name, _, _, metadata in feedback:
        scorers.setdefault(name, str((metadata or {}).get(SCORER_DIGEST_KEY, "")))
    versions = {model_id for _, model_id, _ in traces}
    with transaction.atomic():
        run, _ = EvaluationRun.objects.update_or_create(
            run_id=run_id,
            defaults={
                "name": f"MLflow run {run_id[:8]}",
                "source_kind": RunSource.MLFLOW,
                "source_label": f"mlflow.genai.evaluate run {run_id}",
                "scorers": [{"name": name, "digest": digest, "module": ""} for name, digest in scorers.items()],
                "app_version": versions.pop() if len(versions) == 1 else "",
                "status": RunStatus.FINISHED,
                "progress_done": len(trace_pks),
                "progress_total": len(trace_pks),
                "started_at": traces[0][2],
                "finished_at": traces[-1][2] or timezone.now(),
                "metrics": compute_metrics((name, value) for name, value, error, _ in feedback if not error),
            },
        )
        keys = trace_inputs_keys(trace_pks)
        EvaluationRunTrace.objects.bulk_create(
            [EvaluationRunTrace(run=run, trace_id=pk, scored=True, inputs_key=keys[pk]) for pk in trace_pks],
            update_conflicts=True,
            unique_fields=["run", "trace"],
            update_fields=["inputs_key"],
            batch_size=2000,
        )
    return run
