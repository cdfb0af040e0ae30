"""The registered scorers API under /api/experiments/{id}/scorers/: register, start, update, stop, delete,
each a new version; admins change, leads read, everyone else sees nothing."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from evaluation.monitoring.models import RegisteredScorer, RegistrationStatus
from evaluation.monitoring.registrations import register_scorer
from tests.api.conftest import ApiClient, World, assert_error
from tests.factories import make_experiment

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def scorer_modules(settings: Any) -> None:
    settings.SCORER_MODULES = ["tests.evaluation.scorer_modules.verdicts"]


@pytest.fixture
def prod() -> Any:
    return make_experiment("prod")


def url(experiment: Any, rest: str = "") -> str:
    return f"/api/experiments/{experiment.pk}/scorers/{rest}"


def test_the_lifecycle_makes_a_version_per_change(as_admin: ApiClient, prod: Any) -> None:
    made = as_admin.post(url(prod), {"name": "short", "scorer_name": "is_short"})
    assert made.status_code == 201, made.content
    assert made.json()["status"] == "registered" and made.json()["version"] == 1
    started = as_admin.post(url(prod, "short/start"), {"sample_rate": 0.5, "filter_string": "trace.status = 'OK'"})
    assert started.status_code == 200, started.content
    assert started.json()["status"] == "active" and started.json()["sample_rate"] == 0.5
    updated = as_admin.patch(url(prod, "short"), {"sample_rate": 0.25})
    assert updated.json()["sample_rate"] == 0.25 and updated.json()["filter_string"] == "trace.status = 'OK'"
    stopped = as_admin.post(url(prod, "short/stop"))
    assert stopped.json()["status"] == "stopped" and stopped.json()["sample_rate"] == 0
    got = as_admin.get(url(prod, "short")).json()
    assert [v["action"] for v in got["versions"]] == ["register", "start", "update", "stop"]
    assert all(v["changed_by"] == "admin" for v in got["versions"])
    assert as_admin.delete(url(prod, "short")).status_code == 204
    assert_error(as_admin.get(url(prod, "short")), 404, "RESOURCE_DOES_NOT_EXIST")
    assert as_admin.get(url(prod)).json() == {"scorers": []}
    assert RegisteredScorer.objects.get().status == RegistrationStatus.DELETED


def test_a_duplicate_name_is_409(as_admin: ApiClient, prod: Any) -> None:
    register_scorer(experiment=prod, name="short", scorer_name="is_short")
    response = as_admin.post(url(prod), {"name": "short", "scorer_name": "is_short"})
    assert_error(response, 409, "RESOURCE_ALREADY_EXISTS", "short")
    assert RegisteredScorer.objects.count() == 1


@pytest.mark.parametrize(
    "body",
    [
        {"name": "bad name!", "scorer_name": "is_short"},
        {"name": "x", "scorer_name": "no_such_scorer"},
        {"name": "x", "scorer_name": "is_short", "sample_rate": 1.5},
        {"name": "x", "scorer_name": "is_short", "sample_rate": -0.1},
        {"name": "x", "scorer_name": "is_short", "filter_string": "trace.status ="},
        {"name": "x"},
    ],
)
def test_bad_registrations_are_400_and_change_nothing(as_admin: ApiClient, prod: Any, body: dict[str, Any]) -> None:
    assert_error(as_admin.post(url(prod), body), 400, "INVALID_PARAMETER_VALUE")
    assert not RegisteredScorer.objects.exists()


def test_bad_changes_are_400_and_change_nothing(as_admin: ApiClient, prod: Any) -> None:
    register_scorer(experiment=prod, name="short", scorer_name="is_short", sample_rate=0.5)
    assert_error(as_admin.patch(url(prod, "short"), {"sample_rate": 2}), 400, "INVALID_PARAMETER_VALUE")
    assert_error(as_admin.patch(url(prod, "short"), {}), 400, "INVALID_PARAMETER_VALUE")
    assert_error(as_admin.post(url(prod, "short/start"), {"sample_rate": 0}), 400, "INVALID_PARAMETER_VALUE")
    registration = RegisteredScorer.objects.get()
    assert registration.version == 1 and registration.sample_rate == 0.5


def test_access(anonymous: ApiClient, as_reviewer: ApiClient, as_lead: ApiClient, world: World, prod: Any) -> None:
    register_scorer(experiment=prod, name="short", scorer_name="is_short")
    assert_error(anonymous.get(url(prod)), 401, "UNAUTHENTICATED")
    for path in (url(prod), url(prod, "short")):
        assert_error(as_reviewer.get(path), 404, "RESOURCE_DOES_NOT_EXIST")
        assert as_lead.get(path).status_code == 200  # leads watch monitoring
    assert_error(as_reviewer.post(url(prod), {"name": "x", "scorer_name": "is_short"}), 404, "RESOURCE_DOES_NOT_EXIST")
    assert_error(as_lead.post(url(prod), {"name": "x", "scorer_name": "is_short"}), 403, "PERMISSION_DENIED")
    assert_error(as_lead.post(url(prod, "short/start"), {"sample_rate": 1}), 403, "PERMISSION_DENIED")
    assert_error(as_lead.patch(url(prod, "short"), {"sample_rate": 1}), 403, "PERMISSION_DENIED")
    assert_error(as_lead.delete(url(prod, "short")), 403, "PERMISSION_DENIED")
    assert RegisteredScorer.objects.get().version == 1
    assert_error(
        as_lead.get(f"/api/experiments/{world.session.experiment_id}/scorers/"), 404, "RESOURCE_DOES_NOT_EXIST"
    )


def _queries(client: ApiClient, experiment: Any) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url(experiment)).status_code == 200
    return len(queries)


def test_the_list_runs_constant_queries(as_admin: ApiClient, prod: Any) -> None:
    register_scorer(experiment=prod, name="s0", scorer_name="is_short")
    one = _queries(as_admin, prod)
    for i in range(1, 6):
        register_scorer(experiment=prod, name=f"s{i}", scorer_name="is_short", sample_rate=0.1)
    assert _queries(as_admin, prod) <= one
    assert [s["name"] for s in as_admin.get(url(prod)).json()["scorers"]] == [f"s{i}" for i in range(6)]


# ---------------------------------------------------------------- backfills


def test_admin_backfills_and_cancels(as_admin: ApiClient, prod: Any) -> None:
    register_scorer(experiment=prod, name="short", scorer_name="is_short", sample_rate=0.5)
    body = {"experiment_id": str(prod.pk), "scorers": [{"name": "short", "sample_rate": 1.0}]}
    made = as_admin.post("/api/backfills/", {**body, "start_time": "2026-01-01T00:00:00Z"})
    assert made.status_code == 202, made.content
    job = made.json()
    assert job["status"] == "queued" and job["experiment_id"] == str(prod.pk) and job["created_by"] == "admin"
    assert job["progress"] == {"done": 0, "total": 0, "percent": 0} and job["start_time"].startswith("2026-01-01")
    got = as_admin.get(f"/api/backfills/{job['job_id']}").json()
    assert got["job_id"] == job["job_id"] and "eta_seconds" in got
    listed = as_admin.get("/api/backfills/", {"experiment_id": str(prod.pk)}).json()["backfills"]
    assert [j["job_id"] for j in listed] == [job["job_id"]]
    cancelled = as_admin.post(f"/api/backfills/{job['job_id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert_error(as_admin.post(f"/api/backfills/{job['job_id']}/cancel"), 400, "INVALID_PARAMETER_VALUE")


@pytest.mark.parametrize(
    "extra",
    [
        {"scorers": [{"name": "unregistered"}]},
        {"scorers": []},
        {"scorers": [{"name": "short", "sample_rate": 3}]},
        {"start_time": "2026-01-01T00:00:00"},  # no time zone
        {"start_time": "2026-02-01T00:00:00Z", "end_time": "2026-01-01T00:00:00Z"},
        {"start_time": "not a time"},
    ],
)
def test_bad_backfills_are_400_and_start_nothing(as_admin: ApiClient, prod: Any, extra: dict[str, Any]) -> None:
    from evaluation.monitoring.models import BackfillJob

    register_scorer(experiment=prod, name="short", scorer_name="is_short", sample_rate=0.5)
    body = {"experiment_id": str(prod.pk), "scorers": [{"name": "short"}], **extra}
    assert_error(as_admin.post("/api/backfills/", body), 400, "INVALID_PARAMETER_VALUE")
    assert not BackfillJob.objects.exists()


def test_backfill_access_and_constant_queries(
    anonymous: ApiClient, as_reviewer: ApiClient, as_lead: ApiClient, as_admin: ApiClient, world: World, prod: Any
) -> None:
    from evaluation.monitoring.backfill import start_backfill
    from evaluation.monitoring.models import BackfillJob

    register_scorer(experiment=prod, name="short", scorer_name="is_short", sample_rate=0.5)
    job = start_backfill(experiment=prod, scorers=[("short", None)], enqueue=False)
    for path in ("/api/backfills/", f"/api/backfills/{job.job_id}"):
        assert_error(anonymous.get(path), 401, "UNAUTHENTICATED")
        assert_error(as_reviewer.get(path), 404, "RESOURCE_DOES_NOT_EXIST")
        assert as_lead.get(path).status_code == 200
    body = {"experiment_id": str(prod.pk), "scorers": [{"name": "short"}]}
    assert_error(as_reviewer.post("/api/backfills/", body), 403, "PERMISSION_DENIED")
    assert_error(as_lead.post("/api/backfills/", body), 403, "PERMISSION_DENIED")
    assert_error(as_lead.post(f"/api/backfills/{job.job_id}/cancel"), 403, "PERMISSION_DENIED")
    assert BackfillJob.objects.get().status == "queued"

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert as_admin.get("/api/backfills/").status_code == 200
        return len(captured)

    one = queries()
    for _ in range(5):
        start_backfill(experiment=prod, scorers=[("short", None)], enqueue=False)
    assert queries() <= one
    assert len(as_admin.get("/api/backfills/", {"max_results": 4}).json()["backfills"]) == 4


def test_an_experiment_is_named_as_the_trace_search_names_it(as_admin: ApiClient, prod: Any) -> None:
    """Our id, ``reviewapp-<id>``, the MLflow experiment id or the name: the same registrations."""
    prod.mlflow_experiment_id = "731"
    prod.save()
    register_scorer(experiment=prod, name="short", scorer_name="is_short")
    for reference in (str(prod.pk), f"reviewapp-{prod.pk}", "731", "prod"):
        body = as_admin.get(f"/api/experiments/{reference}/scorers/").json()
        assert [s["name"] for s in body["scorers"]] == ["short"], reference
    for unknown in ("999999", "reviewapp-x", "nope", "a" * 300):
        assert_error(as_admin.get(f"/api/experiments/{unknown}/scorers/"), 404, "RESOURCE_DOES_NOT_EXIST")
        assert_error(as_admin.get("/api/backfills/", {"experiment_id": unknown}), 404, "RESOURCE_DOES_NOT_EXIST")
    made = as_admin.post("/api/backfills/", {"experiment_id": "prod", "scorers": [{"name": "short", "sample_rate": 1}]})
    assert made.status_code == 202 and made.json()["experiment_id"] == str(prod.pk)
    for reference in ("731", "prod"):
        assert len(as_admin.get("/api/backfills/", {"experiment_id": reference}).json()["backfills"]) == 1


def test_experiments_list_the_live_ones_you_may_read_in_pages(
    as_admin: ApiClient, as_lead: ApiClient, as_reviewer: ApiClient, anonymous: ApiClient, world: World, prod: Any
) -> None:
    for i in range(4):
        make_experiment(f"more-{i}")
    names: list[str] = []
    params: dict[str, Any] = {"max_results": 2}
    while True:
        page = as_admin.get("/api/experiments/", params).json()
        names += [e["name"] for e in page["experiments"]]
        if "next_page_token" not in page:
            break
        params["page_token"] = page["next_page_token"]
    assert names == ["more-0", "more-1", "more-2", "more-3", "prod", "shop-bot"]  # no session's copies
    shop = as_admin.get("/api/experiments/", {"max_results": 10}).json()["experiments"][-1]
    assert shop == {
        "experiment_id": str(world.experiment.pk),
        "name": "shop-bot",
        "mlflow_experiment_id": "",
        "trace_experiment_id": f"reviewapp-{world.experiment.pk}",
    }
    assert [e["name"] for e in as_lead.get("/api/experiments/").json()["experiments"]] == names
    assert as_reviewer.get("/api/experiments/").json()["experiments"] == []
    assert_error(anonymous.get("/api/experiments/"), 401, "UNAUTHENTICATED")
    assert_error(as_admin.get("/api/experiments/", {"page_token": "zz"}), 400, "INVALID_PARAMETER_VALUE")
    with CaptureQueriesContext(connection) as queries:
        as_admin.get("/api/experiments/", {"max_results": 100})
    make_experiment("one-more")
    with CaptureQueriesContext(connection) as more:
        as_admin.get("/api/experiments/", {"max_results": 100})
    assert len(more) == len(queries)
