"""The datasets API: MLflow's create_dataset / get_dataset / merge_records / to_df over HTTP, admins only."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from evaluation.models import DatasetRecord, EvaluationDataset
from evaluation.services import merge_records
from tests.api.conftest import ApiClient, assert_error

pytestmark = pytest.mark.django_db

QA = [
    {"inputs": {"question": "What is MLflow?"}, "expectations": {"expected_response": "A platform."}},
    {"inputs": {"question": "What is a trace?"}, "tags": {"topic": "tracing"}},
]


@pytest.fixture
def dataset(admin_user: Any) -> EvaluationDataset:
    made = EvaluationDataset.objects.create(name="golden", description="the golden set", created_by=admin_user)
    merge_records(dataset=made, records=QA)
    return made


def test_admin_creates_a_dataset_and_finds_it_by_id_or_name(as_admin: ApiClient) -> None:
    response = as_admin.post("/api/datasets/", {"name": "  faq  ", "description": "FAQ", "tags": {"team": "a"}})
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["name"] == "faq" and body["description"] == "FAQ" and body["tags"] == {"team": "a"}
    assert body["record_count"] == 0 and body["created_by"] == "admin"
    by_id = as_admin.get(f"/api/datasets/{body['dataset_id']}")
    by_name = as_admin.get("/api/datasets/faq")
    assert by_id.json() == by_name.json() == body


def test_a_duplicate_name_is_409_and_creates_nothing(as_admin: ApiClient, dataset: EvaluationDataset) -> None:
    assert_error(as_admin.post("/api/datasets/", {"name": "golden"}), 409, "RESOURCE_ALREADY_EXISTS", "golden")
    assert EvaluationDataset.objects.count() == 1


@pytest.mark.parametrize("name", ["", "   ", "a\nb", "x" * 201])
def test_a_bad_name_is_400(as_admin: ApiClient, name: str) -> None:
    assert_error(as_admin.post("/api/datasets/", {"name": name}), 400, "INVALID_PARAMETER_VALUE")
    assert not EvaluationDataset.objects.exists()


def test_access(anonymous: ApiClient, as_reviewer: ApiClient, as_lead: ApiClient, dataset: EvaluationDataset) -> None:
    paths = ["/api/datasets/", f"/api/datasets/{dataset.pk}", f"/api/datasets/{dataset.pk}/records"]
    paths.append(f"/api/datasets/{dataset.pk}/records.jsonl")
    for path in paths:
        assert_error(anonymous.get(path), 401, "UNAUTHENTICATED")
        assert_error(as_reviewer.get(path), 404, "RESOURCE_DOES_NOT_EXIST")
        assert_error(as_lead.get(path), 404, "RESOURCE_DOES_NOT_EXIST")
    assert_error(anonymous.post("/api/datasets/", {"name": "x"}), 401, "UNAUTHENTICATED")
    assert_error(as_reviewer.post("/api/datasets/", {"name": "x"}), 403, "PERMISSION_DENIED")
    records = {"records": [{"inputs": {"q": "new"}}]}
    assert_error(as_reviewer.post(f"/api/datasets/{dataset.pk}/records", records), 403, "PERMISSION_DENIED")
    assert EvaluationDataset.objects.count() == 1 and dataset.records.count() == 2


def test_unknown_dataset_is_404(as_admin: ApiClient) -> None:
    assert_error(as_admin.get("/api/datasets/999"), 404, "RESOURCE_DOES_NOT_EXIST", "999")
    assert_error(as_admin.get("/api/datasets/nope/records"), 404, "RESOURCE_DOES_NOT_EXIST")


def test_merge_updates_records_with_the_same_inputs(as_admin: ApiClient, dataset: EvaluationDataset) -> None:
    payload = {
        "records": [
            {"inputs": {"question": "What is MLflow?"}, "expectations": {"expected_response": "An ML platform."}},
            {
                "inputs": {"question": "New?"},
                "expectations": {"expected_facts": ["yes"]},
                "source": {"source_type": "HUMAN"},
            },
        ]
    }
    response = as_admin.post(f"/api/datasets/{dataset.name}/records", payload)
    assert response.status_code == 200, response.content
    assert response.json() == {"merged": 2, "created": 1, "updated": 1}
    first = dataset.records.get(inputs={"question": "What is MLflow?"})
    assert first.expectations == {"expected_response": "An ML platform."}
    assert first.history[-1]["value"] == "A platform."
    assert dataset.records.get(inputs={"question": "New?"}).source_type == "HUMAN"
    assert as_admin.get(f"/api/datasets/{dataset.pk}").json()["record_count"] == 3


@pytest.mark.parametrize(
    "bad",
    [
        {"expectations": {"a": 1}},  # no inputs
        {"inputs": "not an object"},
        {"inputs": {"q": "x"}, "source": {"source_type": "ROBOT"}},
        {"inputs": {"q": "nul \u0000"}},
        {"inputs": {"q": "x"}, "tags": {"k": 3}},
    ],
)
def test_a_bad_record_is_400_and_nothing_is_written(
    as_admin: ApiClient, dataset: EvaluationDataset, bad: dict[str, Any]
) -> None:
    before = list(DatasetRecord.objects.values_list("id", "expectations", "updated_at"))
    payload = {"records": [{"inputs": {"question": "What is MLflow?"}, "expectations": {"new": 1}}, bad]}
    assert_error(as_admin.post(f"/api/datasets/{dataset.pk}/records", payload), 400, "INVALID_PARAMETER_VALUE")
    assert list(DatasetRecord.objects.values_list("id", "expectations", "updated_at")) == before


def test_records_are_paginated_and_jsonl_matches_the_download(as_admin: ApiClient, dataset: EvaluationDataset) -> None:
    merge_records(dataset=dataset, records=[{"inputs": {"n": i}} for i in range(5)])
    seen: list[dict[str, Any]] = []
    params: dict[str, Any] = {"max_results": 3}
    while True:
        body = as_admin.get(f"/api/datasets/{dataset.pk}/records", params).json()
        seen += body["records"]
        if not body["next_page_token"]:
            break
        params["page_token"] = body["next_page_token"]
    assert [r["inputs"] for r in seen] == [r.inputs for r in dataset.records.order_by("id")]
    assert seen[0]["expectations"] == {"expected_response": "A platform."}
    response = as_admin.get(f"/api/datasets/{dataset.pk}/records.jsonl")
    assert response.status_code == 200 and response["Content-Type"] == "application/x-ndjson"
    lines = [json.loads(line) for line in b"".join(response.streaming_content).splitlines()]
    assert lines == [r.as_mlflow() for r in dataset.records.order_by("id")]
    assert len(lines) == 7
    assert_error(
        as_admin.get(f"/api/datasets/{dataset.pk}/records", {"page_token": "junk"}), 400, "INVALID_PARAMETER_VALUE"
    )


def _list_queries(client: ApiClient) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/api/datasets/").status_code == 200
    return len(queries)


def test_the_dataset_list_is_paginated_in_constant_queries(as_admin: ApiClient, admin_user: Any) -> None:
    EvaluationDataset.objects.create(name="d0", created_by=admin_user)
    one = _list_queries(as_admin)
    for i in range(1, 8):
        made = EvaluationDataset.objects.create(name=f"d{i}", created_by=admin_user)
        merge_records(dataset=made, records=[{"inputs": {"i": i}}])
    assert _list_queries(as_admin) <= one  # the first request also records the token's last use
    names: list[str] = []
    params: dict[str, Any] = {"max_results": 3}
    while True:
        body = as_admin.get("/api/datasets/", params).json()
        names += [d["name"] for d in body["datasets"]]
        if not body["next_page_token"]:
            break
        params["page_token"] = body["next_page_token"]
    assert sorted(names) == [f"d{i}" for i in range(8)] and len(set(names)) == 8


def test_delete_records_and_the_dataset(
    as_admin: ApiClient, as_reviewer: ApiClient, as_lead: ApiClient, dataset: EvaluationDataset, support_run: Any
) -> None:
    """MLflow's ``delete_records`` (ids it lacks are not counted) and ``delete_dataset`` (runs keep their scores)."""
    first, second = (str(pk) for pk in dataset.records.order_by("id").values_list("pk", flat=True))
    path = f"/api/datasets/{dataset.pk}/records"
    for bad in (["x"], ["1" * 30], [first, "-1"]):
        assert_error(as_admin.request("DELETE", path, {"dataset_record_ids": bad}), 400, "INVALID_PARAMETER_VALUE")
    assert_error(as_reviewer.request("DELETE", path, {"dataset_record_ids": [first]}), 403, "PERMISSION_DENIED")
    assert_error(as_lead.delete(f"/api/datasets/{dataset.pk}"), 403, "PERMISSION_DENIED")
    assert dataset.records.count() == 2
    response = as_admin.request("DELETE", path, {"dataset_record_ids": [first, "999999"]})
    assert response.status_code == 200 and response.json() == {"deleted": 1}
    assert [str(r["dataset_record_id"]) for r in as_admin.get(path).json()["records"]] == [second]
    assert as_admin.request("DELETE", path, {"dataset_record_ids": [first]}).json() == {"deleted": 0}

    support_run.dataset = dataset
    support_run.save()
    assert as_admin.delete("/api/datasets/golden").status_code == 204
    assert not EvaluationDataset.objects.exists()
    support_run.refresh_from_db()
    assert support_run.dataset_id is None and support_run.metrics  # the run and its scores stay
    assert_error(as_admin.delete("/api/datasets/golden"), 404, "RESOURCE_DOES_NOT_EXIST")


@pytest.fixture
def support_run() -> Any:
    from evaluation.runs import execute_run, start_evaluation_run
    from tests.factories import make_experiment, make_trace

    experiment = make_experiment("Support")
    make_trace(experiment=experiment, question="Q?", answer="ok")
    run = start_evaluation_run(scorer_names=["is_short"], experiment="Support", filter_string="", enqueue=False)
    return execute_run(run.pk)


@pytest.fixture(autouse=True)
def scorer_modules(settings: Any) -> None:
    settings.SCORER_MODULES = ["tests.evaluation.scorer_modules.verdicts"]
