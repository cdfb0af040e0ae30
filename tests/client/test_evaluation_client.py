"""The client's evaluation runs (``reviewapp_client.evaluation``) against a live server: start a run over a
dataset, wait while a worker scores it, read MLflow-style metrics; search, cancel and bad input."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.db import connection

from evaluation.models import EvaluationRun
from evaluation.runs import execute_run
from reviewapp_client import ReviewAppError, datasets, evaluation
from tests.factories import make_experiment, make_trace
from traces.models import Trace

ANSWERS = ["ok", "a bad answer", "fine answer words here", "good"]


@pytest.fixture(autouse=True)
def scorer_modules(settings: Any) -> None:
    settings.SCORER_MODULES = ["tests.evaluation.scorer_modules.verdicts"]
    settings.SCORER_TIMEOUT_SECONDS = 5
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}  # queued until a worker runs it


@pytest.fixture
def support(transactional_db: None) -> Any:
    experiment = make_experiment("Support")
    for i, answer in enumerate(ANSWERS):
        make_trace(experiment=experiment, question=f"Question {i}?", answer=answer, model_id="m-1")
    return experiment


def run_as_worker(run_id: str) -> None:
    try:
        execute_run(EvaluationRun.objects.get(run_id=run_id).pk)
    finally:
        connection.close()


def test_a_run_over_a_dataset_from_start_to_metrics(admin_client: Any, support: Any) -> None:
    golden = datasets.create_dataset("golden")
    trace_ids = list(
        Trace.objects.filter(experiment=support).order_by("request_time").values_list("trace_id", flat=True)
    )
    golden.merge_records(
        [
            {"inputs": {"q": f"Question {i}?"}, "source": {"source_type": "TRACE", "source_data": {"trace_id": t}}}
            for i, t in enumerate(trace_ids)
        ]
    )
    run = evaluation.start_evaluation_run(["is_short", "picky"], dataset="golden", name="nightly", app_version="v9")
    assert run.status == "queued" and not run.done and run.scorers == ["is_short", "picky"]
    worker = threading.Timer(0.3, run_as_worker, args=[run.run_id])
    worker.start()
    run.wait(timeout=60, poll_seconds=0.05)
    worker.join()
    assert run.status == "finished" and run.progress == {"done": 4, "total": 4, "percent": 100}
    assert run.metrics["is_short/mean"] == 0.5 and run.app_version == "v9"
    assert evaluation.get_evaluation_run(run.run_id).metrics == run.metrics
    assert [r.run_id for r in evaluation.search_evaluation_runs(dataset="golden")] == [run.run_id]
    assert evaluation.search_evaluation_runs(status="queued") == []
    with pytest.raises(ReviewAppError) as caught:
        run.cancel()
    assert caught.value.error_code == "INVALID_PARAMETER_VALUE" and "already ended" in caught.value.message


def test_cancel_a_queued_run_and_bad_starts(admin_client: Any, support: Any) -> None:
    run = evaluation.start_evaluation_run(["is_short"], experiment="Support", filter_string="trace.status = 'OK'")
    with pytest.raises(ReviewAppError) as caught:  # no worker runs it
        run.wait(timeout=0.2, poll_seconds=0.05)
    assert caught.value.error_code == "DEADLINE_EXCEEDED" and "queued" in caught.value.message
    assert run.info["source_kind"] == "filter" and run.cancel().status == "cancelled"
    for bad in (
        {"scorers": ["no_such_scorer"], "experiment": "Support"},
        {"scorers": ["is_short"]},
        {"scorers": ["is_short"], "experiment": "Support", "filter_string": "trace.status = "},
        {"scorers": ["is_short"], "dataset": "missing"},
    ):
        with pytest.raises(ReviewAppError) as caught:
            evaluation.start_evaluation_run(**bad)
        assert caught.value.status_code in (400, 404), bad
    assert EvaluationRun.objects.count() == 1
    with pytest.raises(ReviewAppError) as caught:
        evaluation.get_evaluation_run("0123456789abcdef")
    assert caught.value.error_code == "RESOURCE_DOES_NOT_EXIST"
