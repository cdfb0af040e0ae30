"""Running scorers over stored traces and turning what they return into Feedback assessments, as MLflow does.

Arguments are built as ``mlflow.genai.evaluate`` builds them for a trace without ``predict_fn``:
``inputs`` and ``outputs`` from the root span (or, when the root records none, from the span that
holds the conversation, ``traces.conversation``), ``expectations`` from the dataset record or else
the trace's valid expectation assessments, ``trace`` a real ``mlflow.entities.Trace``. Return values
go through MLflow's own ``standardize_scorer_value``: a primitive becomes a Feedback named after the
scorer, a Feedback keeps its name (the default ``feedback`` becomes the scorer's), a list keeps each
name; the source is CODE with the scorer name as source id. A scorer that raises, times out or
returns an unsupported type gives an error Feedback for that trace and the run goes on.

Results are new CODE assessments tagged with the run id: they never override or invalidate a human
assessment. A trace's results are written only when all its scorers finished, in one insert per
batch, and are idempotent: assessment ids derive from (run, trace, scorer version, name, position).
"""

from __future__ import annotations

import hashlib
import traceback
from collections import defaultdict
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.conf import settings

from traces.conversation import conversation_io
from traces.mlflow_shape import trace_dicts
from traces.models import Assessment, AssessmentKind, AssessmentSource, Span

from .catalogue import ScorerInfo
from .pool import CallPool, ScorerTimeout

SOURCE_RUN_KEY = "mlflow.assessment.sourceRunId"
SCORER_DIGEST_KEY = "mlflow.assessment.scorerDigest"


@dataclass
class ScoringItem:
    """One trace to score, with the arguments MLflow would pass."""

    trace_pk: int
    trace_id: str
    inputs: Any
    outputs: Any
    expectations: dict[str, Any]
    root_span_id: str
    mlflow_trace: Any = None


@dataclass(frozen=True)
class FeedbackResult:
    """One Feedback a scorer gave one trace (``error`` set when it failed)."""

    scorer: str
    digest: str
    name: str
    value: Any
    rationale: str
    error: dict[str, Any] | None
    metadata: dict[str, Any]
    span_id: str


def _expectations_by_trace(trace_pks: Collection[int]) -> dict[int, dict[str, Any]]:
    """The latest valid expectation of each name, per trace (one query)."""
    found: dict[int, dict[str, Any]] = defaultdict(dict)
    rows = (
        Assessment.objects.filter(trace_id__in=trace_pks, kind=AssessmentKind.EXPECTATION, valid=True)
        .order_by("create_time", "id")
        .values_list("trace_id", "name", "value")
    )
    for trace_pk, name, value in rows:
        found[trace_pk][name] = value
    return found


def _root_span_ids(trace_pks: Collection[int]) -> dict[int, str]:
    rows = Span.objects.filter(trace_id__in=trace_pks, parent_id="").order_by("start_time_ns")
    roots: dict[int, str] = {}
    for trace_pk, span_id in rows.values_list("trace_id", "span_id"):
        roots.setdefault(trace_pk, span_id)
    return roots


def build_items(
    trace_pks: list[int],
    *,
    with_trace: bool,
    record_expectations: dict[int, dict[str, Any]] | None = None,
) -> list[ScoringItem]:
    """Scorer arguments for a batch of traces, in a constant number of queries."""
    from mlflow.entities import Trace as MlflowTrace

    from traces.models import Trace

    ids = dict(Trace.objects.filter(pk__in=trace_pks).values_list("pk", "trace_id"))
    conversations = conversation_io(trace_pks)
    expectations = _expectations_by_trace(trace_pks)
    roots = _root_span_ids(trace_pks)
    shaped = trace_dicts(trace_pks) if with_trace else {}
    items = []
    for pk in trace_pks:
        if pk not in ids:
            continue
        io = conversations.get(pk)
        record = (record_expectations or {}).get(pk)
        items.append(
            ScoringItem(
                trace_pk=pk,
                trace_id=ids[pk],
                inputs=io.inputs if io else None,
                outputs=io.outputs if io else None,
                expectations=dict(record) if record else expectations.get(pk, {}),
                root_span_id=roots.get(pk, ""),
                mlflow_trace=MlflowTrace.from_dict(shaped[pk]) if pk in shaped else None,
            )
        )
    return items


def _call(info: ScorerInfo, item: ScoringItem) -> Any:
    """``Scorer.run`` with the arguments it takes; our pool enforces the deadline, not MLflow's thread per call."""
    from mlflow.genai.scorers.base import _in_scorer_timeout

    _in_scorer_timeout.set(True)
    return info.scorer.run(
        inputs=item.inputs, outputs=item.outputs, expectations=item.expectations, trace=item.mlflow_trace
    )


def _error(error: BaseException) -> dict[str, Any]:
    message = str(error) or type(error).__name__
    code = "TIMEOUT" if isinstance(error, ScorerTimeout) else type(error).__name__
    stack = "".join(traceback.format_exception(error))[-4000:] if error.__traceback__ else ""
    return {"error_code": code, "error_message": message[:2000], "stack_trace": stack}


def feedbacks_of(info: ScorerInfo, item: ScoringItem, ok: bool, value: Any, *, run_id: str) -> list[FeedbackResult]:
    """What one call gave, as MLflow's harness turns it into Feedback (errors included)."""
    from mlflow.genai.evaluation.utils import standardize_scorer_value

    metadata = {SOURCE_RUN_KEY: run_id, SCORER_DIGEST_KEY: info.digest}
    if ok:
        try:
            feedbacks = standardize_scorer_value(info.name, value)
        except Exception as error:
            ok, value = False, error
    if not ok:
        return [FeedbackResult(info.name, info.digest, info.name, None, "", _error(value), metadata, item.root_span_id)]
    results = []
    for feedback in feedbacks:
        error = feedback.error
        results.append(
            FeedbackResult(
                scorer=info.name,
                digest=info.digest,
                name=feedback.name,
                value=feedback.value,
                rationale=feedback.rationale or "",
                error=({"error_code": error.error_code, "error_message": error.error_message or ""} if error else None),
                metadata={**{k: str(v) for k, v in (feedback.metadata or {}).items()}, **metadata},
                span_id=item.root_span_id,
            )
        )
    return results


def score_items(
    items: list[ScoringItem], scorers: list[ScorerInfo], *, run_id: str, pool: CallPool
) -> dict[int, list[FeedbackResult]]:
    """Every scorer on every item, in parallel; per trace, its results once all its scorers finished."""
    calls = (
        ((index, position), lambda info=info, item=item: _call(info, item), info.timeout)
        for index, item in enumerate(items)
        for position, info in enumerate(scorers)
    )
    outcomes = pool.run(calls)
    results: dict[int, list[FeedbackResult]] = {}
    for index, item in enumerate(items):
        found: list[FeedbackResult] = []
        for position, info in enumerate(scorers):
            ok, value = outcomes[(index, position)]
            found.extend(feedbacks_of(info, item, ok, value, run_id=run_id))
        results[item.trace_pk] = found
    return results


def assessment_id(run_id: str, trace_id: str, result: FeedbackResult, position: int) -> str:
    key = "\x1f".join((run_id, trace_id, result.scorer, result.digest, result.name, str(position)))
    return "a-" + hashlib.sha256(key.encode()).hexdigest()[:32]


def assessment_rows(
    items: list[ScoringItem], results: dict[int, list[FeedbackResult]], *, run_id: str
) -> Iterator[Assessment]:
    now = datetime.now(UTC)
    for item in items:
        for position, result in enumerate(results.get(item.trace_pk, [])):
            yield Assessment(
                assessment_id=assessment_id(run_id, item.trace_id, result, position),
                trace_id=item.trace_pk,
                name=result.name,
                kind=AssessmentKind.FEEDBACK,
                value=result.value,
                rationale=result.rationale,
                error=result.error,
                source_type=AssessmentSource.CODE,
                source_id=result.scorer,
                span_id=result.span_id,
                metadata=result.metadata,
                create_time=now,
                last_update_time=now,
            )


def write_results(items: list[ScoringItem], results: dict[int, list[FeedbackResult]], *, run_id: str) -> int:
    """One insert for the batch; a batch written before (a retried worker) adds nothing."""
    rows = list(assessment_rows(items, results, run_id=run_id))
    Assessment.objects.bulk_create(rows, batch_size=2000, ignore_conflicts=True)
    return len(rows)


def new_pool() -> CallPool:
    return CallPool(workers=settings.SCORER_WORKERS, timeout=settings.SCORER_TIMEOUT_SECONDS)
