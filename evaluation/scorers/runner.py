"""Running scorers over stored traces and turning what they return into Feedback assessments, as MLflow does.

Arguments are built as ``mlflow.genai.evaluate`` builds them for a trace without ``predict_fn``:
``inputs`` and ``outputs`` from the root span (or, when the root records none, from the span that
holds the conversation, ``traces.conversation``), ``expectations`` from the dataset record or else
the trace's valid expectation assessments, ``trace`` a real ``mlflow.entities.Trace``. Return values
go through MLflow's own ``standardize_scorer_value``: a primitive becomes a Feedback named after the
scorer, a Feedback keeps its name (the default ``feedback`` becomes the scorer's), a list keeps each
name; the source is CODE with the scorer name as source id, except for an LLM judge, whose Feedback
keeps MLflow's source (LLM_JUDGE, the model as source id), rationale, span id and token counts. Every
result names its scorer in ``mlflow.assessment.scorerName``. A scorer that raises, times out or
returns an unsupported type gives an error Feedback for that trace and the run goes on.

Code scorers run in ``SCORER_WORKERS`` threads under ``SCORER_TIMEOUT_SECONDS``; judges run beside
them in their own ``JUDGE_MAX_CONCURRENCY`` threads, each judge's call on one trace under one
``JUDGE_TIMEOUT_S`` deadline (``evaluation.judges.endpoint``); what each judge call cost (requests,
retries, tokens, time) goes on its first Feedback (``evaluation.judges.cost``).

Results are new assessments tagged with the run id: they never override or invalidate a human
assessment. A trace's results are written only when all its scorers finished, in one insert per
batch, and are idempotent: assessment ids derive from (run, trace, scorer version, name, position).
"""

from __future__ import annotations

import hashlib
import traceback
from collections import defaultdict
from collections.abc import Callable, Collection, Hashable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from django.conf import settings

from traces.conversation import conversation_io
from traces.mlflow_shape import trace_dicts
from traces.models import SOURCE_RUN_KEY as TRACE_SOURCE_RUN_KEY
from traces.models import Assessment, AssessmentKind, AssessmentSource, Span

from .catalogue import ScorerInfo
from .pool import CallPool, ScorerTimeout

SOURCE_RUN_KEY = TRACE_SOURCE_RUN_KEY
SCORER_DIGEST_KEY = "mlflow.assessment.scorerDigest"
SCORER_NAME_KEY = "mlflow.assessment.scorerName"
JUDGE_DEADLINE_GRACE_S = 2.0  # the pool's backstop: the judge's own deadline (JUDGE_TIMEOUT_S) fires first


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
    source_type: str = AssessmentSource.CODE
    source_id: str = ""  # "" is the scorer's name


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


ONE_EXPECTED_ANSWER = ("correctness",)  # MLflow's Correctness refuses both expected_response and expected_facts


def _expectations_for(info: ScorerInfo, expectations: dict[str, Any]) -> dict[str, Any]:
    """Experts often give both an expected response and expected facts; Correctness takes one: the facts, the more
    precise of the two (RetrievalSufficiency takes both, as MLflow gives them)."""
    if info.is_judge and info.feedback_name in ONE_EXPECTED_ANSWER and "expected_facts" in (expectations or {}):
        return {key: value for key, value in expectations.items() if key != "expected_response"}
    return expectations


def _call(info: ScorerInfo, item: ScoringItem) -> Any:
    """``Scorer.run`` with the arguments it takes; our pool enforces the deadline, not MLflow's thread per call."""
    from mlflow.genai.scorers.base import _in_scorer_timeout

    _in_scorer_timeout.set(True)
    return info.scorer.run(
        inputs=item.inputs,
        outputs=item.outputs,
        expectations=_expectations_for(info, item.expectations),
        trace=item.mlflow_trace if info.takes_trace else None,
    )


def _call_judge(info: ScorerInfo, item: ScoringItem, logs: dict[Hashable, Any], key: Hashable) -> Any:
    """A judge's call on one trace: all its requests share one ``JUDGE_TIMEOUT_S`` deadline.

    Its ``CallLog`` (requests, retries, tokens, time) goes into ``logs[key]`` before the first request,
    so a call the pool gave up on still counts what it sent.
    """
    from evaluation.judges.endpoint import judge_call

    with judge_call() as log:
        logs[key] = log
        return _call(info, item)


def _error(error: BaseException, info: ScorerInfo) -> dict[str, Any]:
    if info.is_judge:
        from evaluation.judges.endpoint import JudgeCallError, error_of, redact

        code, message = error_of(error)
        expected = isinstance(error, JudgeCallError | ScorerTimeout) or code in ("TIMEOUT", "PARSE_ERROR")
        stack = "" if expected or not error.__traceback__ else "".join(traceback.format_exception(error))
        return {"error_code": code, "error_message": message, "stack_trace": redact(stack[-4000:])}
    message = str(error) or type(error).__name__
    code = "TIMEOUT" if isinstance(error, ScorerTimeout) else type(error).__name__
    stack = "".join(traceback.format_exception(error))[-4000:] if error.__traceback__ else ""
    return {"error_code": code, "error_message": message[:2000], "stack_trace": stack}


def _source(info: ScorerInfo, feedback: Any = None) -> tuple[str, str]:
    """CODE and the scorer's name; for a judge, MLflow's source of its Feedback (LLM_JUDGE, the model)."""
    if not info.is_judge:
        return AssessmentSource.CODE, info.name
    source = getattr(feedback, "source", None)
    if source is not None and source.source_type == AssessmentSource.LLM_JUDGE and source.source_id:
        return AssessmentSource.LLM_JUDGE, source.source_id
    from evaluation.judges.endpoint import current

    return AssessmentSource.LLM_JUDGE, current().model_uri


def feedbacks_of(
    info: ScorerInfo, item: ScoringItem, ok: bool, value: Any, *, run_id: str, call: Any = None
) -> list[FeedbackResult]:
    """What one call gave, as MLflow's harness turns it into Feedback (errors included).

    ``call``, a judge's ``CallLog``, is recorded on the first Feedback only (``evaluation.judges.cost``).
    """
    results = _feedbacks_of(info, item, ok, value, run_id=run_id)
    if call is not None and results:
        from evaluation.judges.cost import call_metadata

        first = results[0]
        results[0] = replace(first, metadata={**first.metadata, **call_metadata(call)})
    return results


def _feedbacks_of(info: ScorerInfo, item: ScoringItem, ok: bool, value: Any, *, run_id: str) -> list[FeedbackResult]:
    from mlflow.genai.evaluation.utils import standardize_scorer_value

    metadata = {SOURCE_RUN_KEY: run_id, SCORER_DIGEST_KEY: info.digest, SCORER_NAME_KEY: info.name}
    if ok:
        try:
            feedbacks = standardize_scorer_value(info.feedback_name, value)
        except Exception as error:
            ok, value = False, error
    if not ok:
        source_type, source_id = _source(info)
        error = _error(value, info)
        return [
            FeedbackResult(
                info.name, info.digest, info.feedback_name, None, "", error, metadata, item.root_span_id,
                source_type, source_id,
            )
        ]  # fmt: skip
    results = []
    for feedback in feedbacks:
        error = feedback.error
        source_type, source_id = _source(info, feedback)
        results.append(
            FeedbackResult(
                scorer=info.name,
                digest=info.digest,
                name=feedback.name,
                value=feedback.value,
                rationale=feedback.rationale or "",
                error=({"error_code": error.error_code, "error_message": error.error_message or ""} if error else None),
                metadata={**{k: str(v) for k, v in (feedback.metadata or {}).items()}, **metadata},
                span_id=feedback.span_id or item.root_span_id,
                source_type=source_type,
                source_id=source_id,
            )
        )
    return results


Calls = Iterable[tuple[Hashable, Callable[[], Any], float | None]]


class ScoringPool:
    """Code scorers on a ``SCORER_WORKERS`` pool; judges on their own ``JUDGE_MAX_CONCURRENCY`` pool, side by side."""

    def __init__(self) -> None:
        self.code = CallPool(workers=settings.SCORER_WORKERS, timeout=settings.SCORER_TIMEOUT_SECONDS)
        self._judges: CallPool | None = None

    @property
    def judges(self) -> CallPool:
        if self._judges is None:
            timeout = settings.JUDGE_TIMEOUT_S + JUDGE_DEADLINE_GRACE_S
            self._judges = CallPool(workers=settings.JUDGE_MAX_CONCURRENCY, timeout=timeout)
        return self._judges

    def run(self, calls: Calls, judge_calls: Calls = ()) -> dict[Hashable, tuple[bool, Any]]:
        judge_calls = list(judge_calls)
        if not judge_calls:
            return self.code.run(calls)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="judge-calls") as side:
            judged = side.submit(self.judges.run, judge_calls)
            done = self.code.run(calls)
            return {**done, **judged.result()}

    def close(self) -> None:
        self.code.close()
        if self._judges is not None:
            self._judges.close()

    def __enter__(self) -> ScoringPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def score_items(
    items: list[ScoringItem], scorers: list[ScorerInfo], *, run_id: str, pool: CallPool | ScoringPool
) -> dict[int, list[FeedbackResult]]:
    """Every scorer on every item, in parallel; per trace, its results once all its scorers finished."""
    code_calls, judge_calls = [], []
    logs: dict[Hashable, Any] = {}  # a judge call's CallLog by (item, scorer)
    if any(info.is_judge for info in scorers):
        from evaluation.judges.endpoint import activate

        activate()
    for index, item in enumerate(items):
        for position, info in enumerate(scorers):
            key = (index, position)
            if info.is_judge:
                function = lambda info=info, item=item, key=key: _call_judge(info, item, logs, key)  # noqa: E731
                judge_calls.append((key, function, info.timeout))
            else:
                code_calls.append((key, lambda info=info, item=item: _call(info, item), info.timeout))
    if isinstance(pool, ScoringPool):
        outcomes = pool.run(code_calls, judge_calls)
    else:
        outcomes = pool.run([*code_calls, *judge_calls])
    results: dict[int, list[FeedbackResult]] = {}
    for index, item in enumerate(items):
        found: list[FeedbackResult] = []
        for position, info in enumerate(scorers):
            ok, value = outcomes[(index, position)]
            call = logs.get((index, position)) if info.is_judge else None
            found.extend(feedbacks_of(info, item, ok, value, run_id=run_id, call=call))
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
                source_type=result.source_type,
                source_id=result.source_id or result.scorer,
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


def new_pool() -> ScoringPool:
    return ScoringPool()
