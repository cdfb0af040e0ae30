"""The evaluation runs API: list (filters, pages, constant queries), get with progress and metrics,
start and cancel, with the run pages' access rules."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from evaluation.models import EvaluationRun, RunStatus
from evaluation.runs import execute_run, start_evaluation_run
from evaluation.services import build_dataset_from_traces
from tests.api.conftest import ApiClient, assert_error
from tests.factories import make_experiment, make_trace
from traces.models import Trace

pytestmark = pytest.mark.django_db
ANSWERS = ["ok", "a bad answer", "fine answer words here", "good"]


@pytest.fixture(autouse=True)
def scorer_modules(settings: Any) -> None:
    settings.SCORER_MODULES = ["tests.evaluation.scorer_modules.verdicts"]
    settings.SCORER_TIMEOUT_SECONDS = 5


@pytest.fixture
def support() -> Any:
    experiment = make_experiment("Support")
    for i, answer in enumerate(ANSWERS):
        make_trace(experiment=experiment, question=f"Question {i}?", answer=answer, model_id="m-1")
    return experiment


def finished(**kwargs: Any) -> EvaluationRun:
    run = start_evaluation_run(
        scorer_names=["is_short"], experiment="Support", filter_string="", enqueue=False, **kwargs
    )
    return execute_run(run.pk)


def test_a_finished_run_has_progress_and_metrics(as_admin: ApiClient, support: Any) -> None:
    run = finished(name="nightly")
    body = as_admin.get(f"/api/evaluation-runs/{run.run_id}").json()
    assert body["name"] == "nightly" and body["status"] == "finished"
    assert body["progress"] == {"done": 4, "total": 4, "percent": 100}
    assert body["scorers"] == ["is_short"] and body["app_version"] == "m-1"
    assert body["metrics"] == run.metrics and any(key.startswith("is_short/") for key in body["metrics"])
    assert body["experiment_id"] == str(support.pk) and body["end_time"]


def test_access(anonymous: ApiClient, as_reviewer: ApiClient, as_admin: ApiClient, support: Any) -> None:
    run = finished()
    for path in ("/api/evaluation-runs/", f"/api/evaluation-runs/{run.run_id}"):
        assert_error(anonymous.get(path), 401, "UNAUTHENTICATED")
        assert_error(as_reviewer.get(path), 404, "RESOURCE_DOES_NOT_EXIST")
    start = {"scorers": ["is_short"], "experiment": "Support"}
    assert_error(anonymous.post("/api/evaluation-runs/", start), 401, "UNAUTHENTICATED")
    assert_error(as_reviewer.post("/api/evaluation-runs/", start), 403, "PERMISSION_DENIED")
    assert_error(as_reviewer.post(f"/api/evaluation-runs/{run.run_id}/cancel"), 403, "PERMISSION_DENIED")
    assert EvaluationRun.objects.count() == 1
    assert_error(as_admin.get("/api/evaluation-runs/0123456789abcdef"), 404, "RESOURCE_DOES_NOT_EXIST")


def test_admin_starts_a_run_over_a_dataset_and_cancels_it(as_admin: ApiClient, support: Any, admin_user: Any) -> None:
    dataset, _, _ = build_dataset_from_traces(traces=Trace.objects.filter(experiment=support), dataset_name="golden")
    body = {"scorers": ["is_short"], "dataset": str(dataset.pk), "name": "api run", "app_version": "v9"}
    response = as_admin.post("/api/evaluation-runs/", body)
    assert response.status_code == 202, response.content
    started = response.json()
    assert started["status"] == "queued" and started["dataset_id"] == str(dataset.pk)
    assert started["app_version"] == "v9" and started["started_by"] == "admin"
    listed = as_admin.get("/api/evaluation-runs/", {"dataset": "golden"}).json()["runs"]
    assert [r["run_id"] for r in listed] == [started["run_id"]]
    cancelled = as_admin.post(f"/api/evaluation-runs/{started['run_id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    again = as_admin.post(f"/api/evaluation-runs/{started['run_id']}/cancel")
    assert_error(again, 400, "INVALID_PARAMETER_VALUE", "already ended")


@pytest.mark.parametrize(
    "body",
    [
        {"scorers": ["no_such_scorer"], "experiment": "Support"},
        {"scorers": [], "experiment": "Support"},
        {"scorers": ["is_short"]},
        {"scorers": ["is_short"], "experiment": "Support", "dataset": "golden"},
        {"scorers": ["is_short"], "experiment": "Nope"},
        {"scorers": ["is_short"], "experiment": "Support", "filter_string": "trace.status = "},
        {"scorers": ["is_short"], "dataset": "missing"},
    ],
)
def test_bad_start_is_400_or_404_and_starts_nothing(as_admin: ApiClient, support: Any, body: dict[str, Any]) -> None:
    response = as_admin.post("/api/evaluation-runs/", body)
    assert response.status_code in (400, 404), response.content
    assert set(response.json()) == {"error_code", "message"}
    assert not EvaluationRun.objects.exists()


def _queries(client: ApiClient) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/api/evaluation-runs/").status_code == 200
    return len(queries)


def test_the_list_filters_pages_and_runs_constant_queries(as_admin: ApiClient, support: Any) -> None:
    finished()
    one = _queries(as_admin)
    for _ in range(5):
        finished()
    assert _queries(as_admin) <= one
    other = make_experiment("Other")
    make_trace(experiment=other, question="Q", answer="A")
    start_evaluation_run(scorer_names=["is_short"], experiment="Other", filter_string="", enqueue=False)
    seen: list[str] = []
    params: dict[str, Any] = {"max_results": 4}
    while True:
        body = as_admin.get("/api/evaluation-runs/", params).json()
        seen += [r["run_id"] for r in body["runs"]]
        if not body["next_page_token"]:
            break
        params["page_token"] = body["next_page_token"]
    assert seen == list(EvaluationRun.objects.order_by("-created_at", "-id").values_list("run_id", flat=True))
    by_experiment = as_admin.get("/api/evaluation-runs/", {"experiment": str(other.pk)}).json()["runs"]
    assert len(by_experiment) == 1 and by_experiment[0]["status"] == RunStatus.QUEUED
    assert len(as_admin.get("/api/evaluation-runs/", {"status": "finished"}).json()["runs"]) == 6
    assert_error(as_admin.get("/api/evaluation-runs/", {"status": "bogus"}), 400, "INVALID_PARAMETER_VALUE")
