"""Evaluation runs: start one over a dataset, a labeling session or a filter string, run it batch by batch.

``start_evaluation_run`` checks everything a user can get wrong (unknown scorer, session,
dataset or experiment, a bad filter string, nothing to score) before it writes anything, and
raises ``RunInputError`` with a one-line message. ``execute_run`` is what the background task and
``manage.py evaluate`` call: it resumes after the last written batch (a killed worker's batch
runs again without duplicates), stops at a cancel between batches, and computes the metrics from
the run's stored Feedback.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Count, QuerySet, TextField
from django.db.models.fields.json import KT
from django.db.models.functions import Cast, Coalesce
from django.utils import timezone

from labeling.models import LabelingSession, ReviewItem
from traces.models import Assessment, AssessmentKind, AssessmentSource, Experiment, ExperimentKind, Trace
from traces.references import acting_user

from .judges.cost import JudgeUsage
from .judges.cost import summarize as summarize_judges
from .metrics import compute_metrics
from .models import DatasetRecord, EvaluationDataset, EvaluationRun, EvaluationRunTrace, RunSource, RunStatus
from .scorers.catalogue import ScorerError, ScorerInfo, load_catalogue
from .scorers.runner import (
    SCORER_NAME_KEY,
    SOURCE_RUN_KEY,
    ScoringItem,
    build_items,
    new_pool,
    score_items,
    write_results,
)
from .services import record_source_traces
from .trace_records import trace_inputs_key

BATCH_SIZE = 250
PREDICT_BATCH_SIZE = 50  # calls to the app are slow: a cancel waits for at most this many
PREDICT_EXPERIMENT = "Evaluation runs"
logger = logging.getLogger(__name__)
Progress = Callable[[int, int], None]


class RunInputError(ValueError):
    """What the user asked for cannot run; the message is one line for a page or the command line."""


class NeedsConfirmation(RunInputError):
    """A run with judges over more than ``JUDGE_CONFIRM_OVER`` traces, not confirmed: it would cost this many calls."""

    def __init__(self, traces: int, judges: list[str]) -> None:
        self.traces = traces
        self.judges = judges
        self.limit = settings.JUDGE_CONFIRM_OVER
        super().__init__(
            f"{traces:,} traces × {len(judges)} judge{'s' * (len(judges) != 1)} = {self.calls:,} judge calls "
            f"(more than JUDGE_CONFIRM_OVER={self.limit:,} traces): confirm to start it"
        )

    @property
    def calls(self) -> int:
        return self.traces * len(self.judges)


def _pick_scorers(names: list[str]) -> list[ScorerInfo]:
    if not names:
        raise RunInputError("name at least one scorer")
    try:
        return load_catalogue().pick(names)
    except ScorerError as error:
        raise RunInputError(str(error)) from error


def _targets(
    *, dataset: str | None, session: str | None, filter_string: str | None, experiment: str | None
) -> tuple[str, dict[str, Any], list[tuple[int, int | None]]]:
    chosen = [kind for kind, value in (("dataset", dataset), ("session", session)) if value is not None]
    if filter_string is not None:
        chosen.append("filter")
    if len(chosen) != 1:
        raise RunInputError("give exactly one of a dataset, a labeling session, or a filter string with an experiment")
    if dataset is not None:
        found = EvaluationDataset.objects.filter(name=dataset).first()
        if found is None:
            raise RunInputError(f"no dataset named {dataset!r}")
        first_record: dict[int, int | None] = {}
        for trace_pk, record_pk in record_source_traces(found):
            first_record.setdefault(trace_pk, record_pk)
        targets = list(first_record.items())
        if not targets:
            raise RunInputError(f"dataset {dataset!r} has no records whose source trace is stored here")
        return RunSource.DATASET, {"dataset": found, "source_label": found.name}, targets
    if session is not None:
        labeling = LabelingSession.objects.filter(name=session).first()
        if labeling is None:
            raise RunInputError(f"no labeling session named {session!r}")
        pks = list(ReviewItem.objects.filter(session=labeling).order_by("position").values_list("trace_id", flat=True))
        if not pks:
            raise RunInputError(f"labeling session {session!r} has no traces")
        return RunSource.SESSION, {"session": labeling, "source_label": labeling.name}, [(pk, None) for pk in pks]
    from traces.search import FilterError, search_traces

    if not experiment:
        raise RunInputError("a filter string needs an experiment (--experiment NAME)")
    found_experiment = Experiment.objects.filter(name=experiment).first()
    if found_experiment is None:
        raise RunInputError(f"no experiment named {experiment!r}")
    try:
        queryset = search_traces(Trace.objects.in_experiment(found_experiment), filter_string)
        pks = list(queryset.values_list("pk", flat=True))
    except FilterError as error:
        raise RunInputError(f"bad filter string: {error}") from error
    if not pks:
        raise RunInputError(f"no trace of experiment {experiment!r} matches the filter")
    label = f"{experiment}: {filter_string}" if filter_string else experiment
    source = {"experiment": found_experiment, "filter_string": filter_string, "source_label": label[:300]}
    return RunSource.FILTER, source, [(pk, None) for pk in pks]


def _predict_source(
    predict_fn: str, *, dataset: str | None, experiment: str | None, other: tuple[str | None, ...]
) -> tuple[str, dict[str, Any], list[tuple[int, int | None]], int]:
    """A predict run: the dataset whose records it calls the app on, checked before anything is written."""
    from .predict import PredictFunctionError, as_call_inputs, load_predict_fn

    if dataset is None or any(value is not None for value in other):
        raise RunInputError("a predict function runs over a dataset: give --dataset NAME (and no session or filter)")
    found = EvaluationDataset.objects.filter(name=dataset).first()
    if found is None:
        raise RunInputError(f"no dataset named {dataset!r}")
    try:
        load_predict_fn(predict_fn)
        total = 0
        for inputs in found.records.values_list("inputs", flat=True).iterator(chunk_size=2000):
            as_call_inputs(inputs)
            total += 1
    except PredictFunctionError as error:
        raise RunInputError(str(error)) from error
    if not total:
        raise RunInputError(f"dataset {dataset!r} has no records")
    target = experiment or PREDICT_EXPERIMENT
    existing = Experiment.objects.filter(name=target).first()
    if existing is not None and existing.kind != ExperimentKind.TRACES:
        raise RunInputError(f"experiment {target!r} holds a labeling session's copies; name another experiment")
    source = {
        "dataset": found,
        "predict_fn": predict_fn.strip()[:300],
        "experiment": existing or target,
        "source_label": f"{predict_fn.strip()} on {found.name}"[:300],
    }
    return RunSource.PREDICT, source, [], total


def _app_version(trace_pks: list[int]) -> str:
    """The traces' model id when they all share one."""
    versions = list(Trace.objects.filter(pk__in=trace_pks).order_by().values_list("model_id", flat=True).distinct()[:2])
    return versions[0] if len(versions) == 1 else ""


def start_evaluation_run(
    *,
    scorer_names: list[str],
    name: str = "",
    dataset: str | None = None,
    session: str | None = None,
    filter_string: str | None = None,
    experiment: str | None = None,
    app_version: str | None = None,
    predict_fn: str | None = None,
    started_by: AbstractBaseUser | None = None,
    enqueue: bool = True,
    confirmed: bool = False,
) -> EvaluationRun:
    """Create a queued run (and, with ``enqueue``, its background task). Raises ``RunInputError``.

    With ``predict_fn`` (``module:function``) the run calls the app on each record of ``dataset`` and
    scores the traces that makes, stored in ``experiment`` (created if needed; "Evaluation runs" by default).
    A run with judges over more than ``JUDGE_CONFIRM_OVER`` traces needs ``confirmed`` (else
    ``NeedsConfirmation``, which says how many calls it would send).
    """
    scorers = _pick_scorers(scorer_names)
    if predict_fn is not None:
        kind, source, targets, total = _predict_source(
            predict_fn, dataset=dataset, experiment=experiment, other=(session, filter_string)
        )
        version = app_version or ""
    else:
        kind, source, targets = _targets(
            dataset=dataset, session=session, filter_string=filter_string, experiment=experiment
        )
        total = len(targets)
        version = app_version if app_version is not None else _app_version([pk for pk, _ in targets])
    judges = [info.name for info in scorers if info.is_judge]
    if judges and total > settings.JUDGE_CONFIRM_OVER and not confirmed:
        raise NeedsConfirmation(total, judges)
    with transaction.atomic():
        if kind == RunSource.PREDICT and isinstance(source["experiment"], str):
            source["experiment"] = Experiment.objects.get_or_create(name=source["experiment"])[0]
        run = EvaluationRun.objects.create(
            name=(name or f"{source['source_label']} · {timezone.now():%Y-%m-%d %H:%M}")[:200],
            source_kind=kind,
            scorers=[{**info.version, "module": info.module} for info in scorers],
            app_version=version,
            progress_total=total,
            judge_usage=JudgeUsage().as_json() if judges else {},
            started_by=acting_user(started_by),
            **source,
        )
        EvaluationRunTrace.objects.bulk_create(
            [EvaluationRunTrace(run=run, trace_id=pk, record_id=record) for pk, record in targets], batch_size=2000
        )
        if enqueue:
            from .tasks import run_evaluation

            transaction.on_commit(lambda: run_evaluation.enqueue(run_pk=run.pk))
    return run


def cancel_evaluation_run(*, run: EvaluationRun) -> bool:
    """Stop a queued or running run after its current batch; False when it had already ended."""
    with transaction.atomic():
        changed = EvaluationRun.objects.filter(pk=run.pk, status__in=[RunStatus.QUEUED, RunStatus.RUNNING]).update(
            status=RunStatus.CANCELLED, finished_at=timezone.now()
        )
    return bool(changed)


def _scorers_of(run: EvaluationRun) -> list[ScorerInfo]:
    """The run's scorers as they are now (a changed definition is recorded as the version that ran)."""
    catalogue = load_catalogue()
    scorers = catalogue.pick(run.scorer_names)
    run.scorers = [{**info.version, "module": info.module} for info in scorers]
    return scorers


def _record_expectations(rows: list[EvaluationRunTrace]) -> dict[int, dict[str, Any]]:
    return {row.trace_id: row.record.expectations for row in rows if row.record is not None and row.record.expectations}


def _with_inputs_keys(rows: list[EvaluationRunTrace], items: list[ScoringItem]) -> list[EvaluationRunTrace]:
    """The rows with their trace's ``inputs_key`` set (as dataset merging hashes the same trace): runs match on it."""
    keys = {item.trace_pk: trace_inputs_key(item.inputs) for item in items}
    for row in rows:
        # a predict run's trace stands for its record: the record's key, whatever the app did with the inputs
        row.inputs_key = row.record.inputs_key if row.record is not None else keys.get(row.trace_id, row.inputs_key)
    return [row for row in rows if row.inputs_key]


@dataclass
class _Batch:
    """A batch being scored in the background (``results``) while the previous one is written."""

    rows: list[EvaluationRunTrace]
    items: list[ScoringItem]
    results: Future[dict[int, list[Any]]]


def _start_batch(
    run: EvaluationRun, rows: list[EvaluationRunTrace], scorers: list[ScorerInfo], pool: Any, scoring: Executor
) -> _Batch:
    """Build the batch's arguments here (queries), and queue its scorer calls (no queries) on ``scoring``."""
    items = build_items(
        [row.trace_id for row in rows],
        with_trace=any(info.takes_trace for info in scorers),
        record_expectations=_record_expectations(rows),
    )
    return _Batch(rows, items, scoring.submit(score_items, items, scorers, run_id=run.run_id, pool=pool))


def _finish_batch(run: EvaluationRun, batch: _Batch, scorers: list[ScorerInfo]) -> None:
    """Wait for the batch's results and write them, with its progress and judge usage, in one transaction."""
    results = batch.results.result()
    rows, items = batch.rows, batch.items
    keyed = _with_inputs_keys(rows, items)
    with transaction.atomic():
        write_results(items, results, run_id=run.run_id)
        EvaluationRunTrace.objects.filter(pk__in=[row.pk for row in rows]).update(scored=True)
        EvaluationRunTrace.objects.bulk_update(keyed, ["inputs_key"], batch_size=500)
        # counted, not incremented: two workers on one run (a task enqueued twice) still count each trace once
        done = EvaluationRunTrace.objects.filter(run=run, scored=True).count()
        usage = {"judge_usage": summarize_judges(run).as_json()} if any(info.is_judge for info in scorers) else {}
        EvaluationRun.objects.filter(pk=run.pk).update(progress_done=done, **usage)


def of_run(run: EvaluationRun) -> QuerySet[Assessment]:
    """The Feedback this run wrote: on its traces, with its run id in the metadata (as MLflow tags them)."""
    source_run = Cast(KT(f"metadata__{SOURCE_RUN_KEY}"), TextField())
    return (
        Assessment.objects.filter(trace_id__in=EvaluationRunTrace.objects.filter(run=run).values("trace_id"))
        .annotate(source_run=source_run)
        .filter(source_run=run.run_id)
    )


def run_metrics(run: EvaluationRun, scorers: list[ScorerInfo]) -> dict[str, float]:
    """Metrics from the run's stored, error-free Feedback (so a resumed run counts every batch once)."""
    feedback = (
        of_run(run)
        .filter(
            kind=AssessmentKind.FEEDBACK,
            source_type__in=(AssessmentSource.CODE, AssessmentSource.LLM_JUDGE),  # a judge's source is LLM_JUDGE
            error__isnull=True,
            valid=True,
        )
        .values_list("name", "value")
    )
    aggregations = {info.name: list(info.scorer.aggregations or ()) for info in scorers}
    return compute_metrics(feedback.iterator(chunk_size=5000), aggregations)


def execute_run(run_pk: int, *, on_progress: Progress | None = None) -> EvaluationRun | None:
    """Score the run's traces that are not scored yet, batch by batch, then store its metrics."""
    run = EvaluationRun.objects.filter(pk=run_pk).first()
    if run is None or run.status in (RunStatus.FINISHED, RunStatus.CANCELLED, RunStatus.FAILED):
        return run
    try:
        scorers = _scorers_of(run)
    except ScorerError as error:
        return _end(run, RunStatus.FAILED, error=str(error))
    EvaluationRun.objects.filter(pk=run.pk).update(
        status=RunStatus.RUNNING, started_at=run.started_at or timezone.now(), scorers=run.scorers
    )
    pending = EvaluationRunTrace.objects.filter(run=run, scored=False).select_related("record").order_by("id")
    try:
        # batch n+1 is built and queued before batch n is written, so its calls start as soon as n's end
        # and the writing overlaps them (judges wait on the network; the writes would otherwise idle them)
        with (
            _predictor(run) as predict,
            new_pool() as pool,
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="run-scoring") as scoring,
        ):
            flight: _Batch | None = None
            while True:
                cancelled = EvaluationRun.objects.filter(pk=run.pk, status=RunStatus.CANCELLED).exists()
                predicted = predict() if predict is not None and not cancelled else 0
                after = flight.rows[-1].pk if flight is not None else 0
                rows = [] if cancelled else list(pending.filter(pk__gt=after)[:BATCH_SIZE])
                queued = _start_batch(run, rows, scorers, pool, scoring) if rows else None
                if flight is not None:
                    _finish_batch(run, flight, scorers)
                    if on_progress is not None:
                        on_progress(len(flight.rows), run.progress_total)
                flight = queued
                if cancelled:
                    run.refresh_from_db()
                    return run
                if flight is None and not predicted:
                    break
        metrics = run_metrics(run, scorers)
    except RunInputError as error:
        return _end(run, RunStatus.FAILED, error=str(error))
    except Exception as error:  # our side failed (not a scorer: those give error Feedback); say so on the run
        logger.exception("evaluation run %s failed", run.pk)
        return _end(run, RunStatus.FAILED, error=f"{type(error).__name__}: {error}")
    return _end(run, RunStatus.FINISHED, metrics=metrics)


@contextmanager
def _predictor(run: EvaluationRun) -> Iterator[Callable[[], int] | None]:
    """For a predict run, a step that calls the app on the next records and stores their traces."""
    if run.source_kind != RunSource.PREDICT:
        yield None
        return
    from .predict import PredictFunctionError, load_predict_fn, new_predict_pool

    if run.dataset_id is None:
        raise RunInputError("the run's dataset was deleted")
    if run.experiment_id is None:
        raise RunInputError("the experiment for the run's traces was deleted")
    try:
        function = load_predict_fn(run.predict_fn)
    except PredictFunctionError as error:
        raise RunInputError(str(error)) from error

    with new_predict_pool() as pool:

        def step() -> int:
            records = _unpredicted_records(run)
            if records:
                _predict_batch(run, function, records, pool)
            return len(records)

        yield step


def _unpredicted_records(run: EvaluationRun) -> list[DatasetRecord]:
    called = EvaluationRunTrace.objects.filter(run=run, record__isnull=False).values("record_id")
    records = DatasetRecord.objects.filter(dataset_id=run.dataset_id).exclude(pk__in=called)
    return list(records.order_by("id")[:PREDICT_BATCH_SIZE])


def _predict_batch(run: EvaluationRun, function: Callable[..., Any], records: list[DatasetRecord], pool: Any) -> None:
    """Call the app on each record and store each call's trace with its run row, in one transaction."""
    from traces.ingest import store_traces
    from traces.ingest.mlflow_json import parse_trace

    from .predict import MODEL_ID_METADATA, RECORD_TAG, SOURCE_RUN_METADATA, as_call_inputs, predict_all

    predictions = predict_all(function, {r.pk: as_call_inputs(r.inputs) for r in records}, pool=pool)
    parsed = []
    for record in records:
        trace = parse_trace(predictions[record.pk].trace)
        trace.trace_metadata[SOURCE_RUN_METADATA] = run.run_id
        if run.app_version:
            trace.trace_metadata[MODEL_ID_METADATA] = run.app_version
        trace.tags[RECORD_TAG] = str(record.pk)
        parsed.append((record, trace))
    with transaction.atomic():
        store_traces([trace for _, trace in parsed], experiment=run.experiment)
        pks = dict(Trace.objects.filter(trace_id__in=[t.trace_id for _, t in parsed]).values_list("trace_id", "pk"))
        EvaluationRunTrace.objects.bulk_create(
            [EvaluationRunTrace(run=run, trace_id=pks[trace.trace_id], record=record) for record, trace in parsed],
            ignore_conflicts=True,
        )


def _end(run: EvaluationRun, status: str, *, error: str = "", metrics: dict[str, float] | None = None) -> EvaluationRun:
    EvaluationRun.objects.filter(pk=run.pk).exclude(status=RunStatus.CANCELLED).update(
        status=status, finished_at=timezone.now(), error=error[:2000], metrics=metrics or {}
    )
    run.refresh_from_db()
    return run


def scorer_of_feedback() -> Coalesce:
    """The scorer that wrote a Feedback: its ``mlflow.assessment.scorerName`` (a judge's source id is its model),
    else its source id (Feedback written before that key, or imported from MLflow)."""
    return Coalesce(Cast(KT(f"metadata__{SCORER_NAME_KEY}"), TextField()), "source_id", output_field=TextField())


def run_errors(run: EvaluationRun) -> dict[str, int]:
    """Error Feedback per scorer in this run."""
    rows = (
        of_run(run)
        .filter(error__isnull=False)
        .values(scorer=scorer_of_feedback())
        .annotate(count=Count("id"))
        .order_by("scorer")
    )
    return {row["scorer"]: row["count"] for row in rows}
