"""Labeling sessions over the API: admins create them, managers change them, reviewers read their own."""

from __future__ import annotations

import json
from typing import Any

import pytest

from evaluation.models import EvaluationDataset
from labeling import services
from labeling.models import LabelingSession, LabelSchema
from tests.api.conftest import ApiClient, World, assert_error
from tests.evaluation.conftest import make_labeled_session
from tests.factories import make_trace

pytestmark = pytest.mark.django_db

URL = "/api/labeling-sessions/"


def test_admin_creates_a_session(as_admin: ApiClient, reviewer: Any, lead: Any) -> None:
    LabelSchema.objects.create(name="tone", title="Tone?", input_type="pass_fail")
    body = {
        "name": "Week 49",
        "assigned_users": ["reviewer"],
        "label_schemas": ["tone", "expected_response"],
        "leads": ["lead"],
        "reviewers_per_item": 2,
        "blind": True,
    }
    response = as_admin.post(URL, body)
    assert response.status_code == 201, response.content
    out = response.json()
    session = LabelingSession.objects.get(name="Week 49")
    assert out["id"] == session.pk and out["status"] == "active"
    assert out["assigned_users"] == ["reviewer"] and out["leads"] == ["lead"]
    assert out["label_schemas"] == ["tone", "expected_response"]
    assert out["reviewers_per_item"] == 2 and out["blind"] is True
    assert out["item_count"] == 0 and out["progress"] == {"done": 0, "total": 0}
    assert out["url"] == f"http://testserver/review/{session.pk}/"
    assert len(out["mlflow_run_id"]) == 32 and int(out["mlflow_run_id"], 16) >= 0


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"assigned_users": ["nobody"]}, ("assigned_users", "nobody")),
        ({"label_schemas": ["nope"]}, ("label_schemas", "nope")),
        ({"reviewers_per_item": 0}, ("reviewers_per_item",)),
        ({"name": "Week 48"}, ("name", "already exists")),
        ({"assignment_mode": "random"}, ("assignment_mode",)),
    ],
)
def test_bad_input_is_a_400_and_creates_nothing(
    as_admin: ApiClient, world: World, change: dict[str, Any], words: tuple[str, ...]
) -> None:
    before = LabelingSession.objects.count()
    assert_error(as_admin.post(URL, {"name": "New", **change}), 400, "INVALID_PARAMETER_VALUE", *words)
    assert LabelingSession.objects.count() == before


def test_access_rules(
    world: World, as_reviewer: ApiClient, as_outsider: ApiClient, as_lead: ApiClient, anonymous: ApiClient
) -> None:
    one = f"{URL}{world.session.pk}"
    assert anonymous.get(URL).status_code == 401
    assert anonymous.get(one).status_code == 401
    assert as_reviewer.post(URL, {"name": "Mine"}).status_code == 403
    assert as_lead.post(URL, {"name": "Mine"}).status_code == 403
    assert as_reviewer.get(one).status_code == 200
    assert as_reviewer.get(URL).json()["labeling_sessions"][0]["name"] == "Week 48"
    assert as_outsider.get(URL).json()["labeling_sessions"] == []
    for call in (
        lambda c: c.get(one),
        lambda c: c.get(one + "/items"),
        lambda c: c.delete(one),
        lambda c: c.post(one + "/traces", {"trace_ids": [world.traces[2].trace_id]}),
    ):
        assert_error(call(as_outsider), 404, "RESOURCE_DOES_NOT_EXIST")
    assert_error(as_reviewer.delete(one), 403, "PERMISSION_DENIED")
    assert_error(as_reviewer.post(one + "/traces", {"trace_ids": [world.traces[2].trace_id]}), 403, "PERMISSION_DENIED")
    assert_error(as_reviewer.request("PUT", one + "/assigned-users", {"assigned_users": []}), 403, "PERMISSION_DENIED")
    assert_error(as_reviewer.post(one + "/sync", {"dataset_name": "d"}), 403, "PERMISSION_DENIED")
    assert world.session.items.count() == 2 and world.session.reviewers.count() == 1
    # A lead manages their session.
    response = as_lead.post(one + "/traces", {"trace_ids": [world.traces[2].trace_id]})
    assert response.status_code == 200 and response.json()["added"] == 1


def test_add_traces_by_id_and_by_filter_all_or_nothing(as_admin: ApiClient, world: World) -> None:
    one = f"{URL}{world.session.pk}/traces"
    bad = {"trace_ids": [world.traces[2].trace_id, "tr-missing"]}
    assert_error(as_admin.post(one, bad), 404, "RESOURCE_DOES_NOT_EXIST", "tr-missing")
    assert world.session.items.count() == 2
    assert_error(as_admin.post(one, {"filter_string": "nonsense ==="}), 400, "INVALID_PARAMETER_VALUE", "filter_string")
    assert_error(as_admin.post(one, {}), 400, "INVALID_PARAMETER_VALUE", "exactly one")
    response = as_admin.post(one, {"filter_string": "", "experiment_ids": [world.experiment.name], "model_id": "v2"})
    assert response.status_code == 200, response.content
    assert response.json() == {"added": 1, "already_there": 1, "imported": 0}  # t1 was there; t3 is new
    response = as_admin.post(one, {"trace_ids": [world.traces[2].trace_id]})
    assert response.json() == {"added": 1, "already_there": 0, "imported": 0}
    assert as_admin.get(f"{URL}{world.session.pk}").json()["item_count"] == 4


def test_set_assigned_users(as_admin: ApiClient, world: World, outsider: Any) -> None:
    one = f"{URL}{world.session.pk}/assigned-users"
    assert_error(as_admin.request("PUT", one, {"assigned_users": ["ghost"]}), 400, "INVALID_PARAMETER_VALUE", "ghost")
    assert list(world.session.reviewers.values_list("username", flat=True)) == ["reviewer"]
    response = as_admin.request("PUT", one, {"assigned_users": ["outsider", "reviewer"]})
    assert response.status_code == 200 and response.json()["assigned_users"] == ["outsider", "reviewer"]


def test_items_for_admin_and_reviewer(
    as_admin: ApiClient, as_reviewer: ApiClient, world: World, django_assert_max_num_queries: Any
) -> None:
    one = f"{URL}{world.session.pk}/items"
    services.add_traces_to_session(session=world.session, trace_ids=[make_trace().trace_id for _ in range(5)])
    with django_assert_max_num_queries(10):
        assert len(as_admin.get(one).json()["items"]) == 7
    services.add_traces_to_session(session=world.session, trace_ids=[make_trace().trace_id for _ in range(20)])
    with django_assert_max_num_queries(10):
        assert len(as_admin.get(one).json()["items"]) == 27
    first = as_admin.get(one, {"max_results": 1}).json()
    second = as_admin.get(one, {"max_results": 1, "page_token": first["next_page_token"]}).json()
    items = first["items"] + second["items"]
    assert [i["source_trace_id"] for i in items] == [world.traces[0].trace_id, world.traces[1].trace_id]
    assert second["next_page_token"]
    assert items[0]["done"] is False and items[0]["needed"] == 1
    mine = as_reviewer.get(one).json()["items"]
    assert [i["trace_id"] for i in mine] == [world.given_copy.trace_id]


def test_delete_session_keeps_the_originals(as_admin: ApiClient, world: World) -> None:
    experiment_pk = world.session.experiment_id
    assert as_admin.delete(f"{URL}{world.session.pk}").status_code == 204
    assert not LabelingSession.objects.filter(pk=world.session.pk).exists()
    assert as_admin.get(f"{URL}{world.session.pk}").status_code == 404
    from traces.models import Experiment, Trace

    assert not Experiment.objects.filter(pk=experiment_pk).exists()
    assert Trace.objects.filter(pk=world.traces[0].pk).exists()


def test_list_paginates_in_constant_queries(
    as_admin: ApiClient, admin_user: Any, reviewer: Any, django_assert_max_num_queries: Any
) -> None:
    schema = LabelSchema.objects.get(name="expected_response")
    for i in range(5):
        session = services.create_labeling_session(name=f"S{i}", schemas=[schema], reviewers=[reviewer])
        services.add_traces_to_session(session=session, trace_ids=[make_trace().trace_id])
    names: list[str] = []
    token = None
    while True:
        with django_assert_max_num_queries(8):
            page = as_admin.get(URL, {"max_results": 2, **({"page_token": token} if token else {})}).json()
        names += [s["name"] for s in page["labeling_sessions"]]
        assert all(
            s["item_count"] == 1 and s["label_schemas"] == ["expected_response"] for s in page["labeling_sessions"]
        )
        token = page.get("next_page_token")
        if not token:
            break
    assert names == [f"S{i}" for i in reversed(range(5))]


def test_run_id_search_returns_the_labelled_copies(as_admin: ApiClient) -> None:
    session = make_labeled_session()
    run_id = as_admin.get(f"{URL}{session.pk}").json()["mlflow_run_id"]
    traces = as_admin.get("/api/traces/", {"run_id": run_id}).json()["traces"]
    copies = set(session.items.values_list("trace__trace_id", flat=True))
    assert {t["trace_id"] for t in traces} == copies and len(copies) == 3
    names = {a["assessment_name"] for t in traces for a in t["assessments"]}
    assert {"expected_response", "correct"} <= names
    assert as_admin.get("/api/traces/", {"run_id": "1abe15e5" + "f" * 24}).json()["traces"] == []


def test_sync_merges_labels_into_a_dataset(as_admin: ApiClient) -> None:
    session = make_labeled_session()
    one = f"{URL}{session.pk}/sync"
    assert_error(as_admin.post(one, {}), 400, "INVALID_PARAMETER_VALUE", "dataset_name")
    assert_error(as_admin.post(one, {"dataset_id": 999999}), 404, "RESOURCE_DOES_NOT_EXIST")
    response = as_admin.post(one, {"dataset_name": "cardio-eval"})
    assert response.status_code == 200, response.content
    out = response.json()
    dataset = EvaluationDataset.objects.get(name="cardio-eval")
    assert out["dataset_id"] == dataset.pk and out["records_merged"] == dataset.records.count() > 0
    again = as_admin.post(one, {"dataset_id": dataset.pk}).json()
    assert again["dataset_name"] == "cardio-eval" and dataset.records.count() == out["records_merged"]


def test_add_traces_from_mlflow_trace_json(as_admin: ApiClient, as_lead: ApiClient, world: World) -> None:
    from traces.models import Trace

    one = f"{URL}{world.session.pk}/traces"
    document = as_admin.get(f"/api/traces/{world.traces[3].trace_id}").json()
    fresh = json.loads(json.dumps(document).replace(world.traces[3].trace_id, "tr-" + "ab" * 16))
    before = Trace.objects.count()
    bad = {"records": [{"trace": fresh}, {"trace": {"nonsense": 1}}]}
    assert_error(as_admin.post(one, bad), 400, "INVALID_PARAMETER_VALUE", "records[1]")
    assert_error(as_lead.post(one, {"records": [{"trace": fresh}]}), 403, "PERMISSION_DENIED")
    assert Trace.objects.count() == before and world.session.items.count() == 2
    response = as_admin.post(one, {"records": [{"trace": fresh}, {"trace": document}]})
    assert response.status_code == 200, response.content
    assert response.json() == {"added": 2, "already_there": 0, "imported": 1}
    sources = set(world.session.items.values_list("source_trace_id_text", flat=True))
    assert {"tr-" + "ab" * 16, world.traces[3].trace_id} <= sources


def test_hostile_input_is_a_4xx_and_changes_nothing(as_admin: ApiClient, world: World) -> None:
    """NUL bytes, huge ids, bad records, out-of-range settings: each a 4xx in the API's shape."""
    before = (LabelingSession.objects.count(), LabelSchema.objects.count(), world.session.items.count())
    s = f"/api/labeling-sessions/{world.session.pk}"
    calls = [
        as_admin.get("/api/labeling-sessions/99999999999999999999999"),
        as_admin.get("/api/labeling-sessions/-1"),
        as_admin.post(s + "/traces", {"trace_ids": ["a\x00b"]}),
        as_admin.post(s + "/traces", {"trace_ids": ["x" * 100]}),
        as_admin.post(s + "/traces", {"records": [{"trace": "x"}]}),
        as_admin.post(s + "/traces", {"records": [{"trace": {"info": {"trace_id": 5}}}]}),
        as_admin.post(s + "/traces", {"filter_string": "x\x00"}),
        as_admin.post(s + "/sync", {"dataset_id": -5}),
        as_admin.post(s + "/sync", {"dataset_name": "a\x00"}),
        as_admin.post(s + "/sync", {"dataset_name": "empty"}),
        as_admin.get(s + "/items", {"page_token": "zz"}),
        as_admin.delete("/api/label-schemas/a%00b"),
        as_admin.post("/api/label-schemas/", {"name": "n", "title": "t", "input": {"type": "text", "max_length": -1}}),
        as_admin.post(
            "/api/label-schemas/", {"name": "n", "title": "t", "input": {"type": "numeric", "min_value": 1e400}}
        ),
        as_admin.post(
            "/api/label-schemas/", {"name": "n", "title": "t", "input": {"type": "pass_fail", "pass_label": "x" * 100}}
        ),
        as_admin.post(
            "/api/label-schemas/", {"name": "n", "title": "t", "input": {"type": "categorical", "options": ["a", "a"]}}
        ),
        as_admin.post("/api/labeling-sessions/", {"name": "  "}),
        as_admin.post("/api/labeling-sessions/", {"name": "x", "lease_minutes": 99999999}),
        as_admin.post("/api/labeling-sessions/", {"name": "x\x00"}),
        as_admin.request("PUT", s + "/assigned-users", {"assigned_users": ["a\x00"]}),
    ]
    for response in calls:
        assert response.status_code in (400, 404), response.content[:300]
        assert set(response.json()) == {"error_code", "message"}
    assert list(world.session.reviewers.values_list("username", flat=True)) == ["reviewer"]
    after = (LabelingSession.objects.count(), LabelSchema.objects.count(), world.session.items.count())
    assert after == before


def test_sync_policies_over_the_api(as_admin: ApiClient) -> None:
    """consensus leaves tied answers out and says which; adjudicated takes a lead's final answer."""
    from django.contrib.auth.models import User

    from labeling import adjudication

    session = make_labeled_session()
    one = f"{URL}{session.pk}/sync"
    out = as_admin.post(one, {"dataset_name": "consensus", "policy": "consensus"}).json()
    records = EvaluationDataset.objects.get(name="consensus").records.order_by("id")
    assert out["records_merged"] == 1 == records.count()
    assert records[0].expectations["expected_response"] == "Take 81 mg"
    assert any(t.endswith("/ expected_response") for t in out["ties_left_out"])
    assert any(t.endswith("/ expected_facts") for t in out["ties_left_out"])
    latest = as_admin.post(one, {"dataset_name": "latest"}).json()
    assert latest["records_merged"] == 2 and latest["ties_left_out"] == []

    lead = User.objects.create_user("cardio-lead")
    services.set_session_leads(session=session, leads=[lead])
    second = session.items.order_by("position")[1]
    adjudication.adjudicate(item=second, lead=lead, raw_answers={"expected_response": "Call 911 now"})
    adjudicated = as_admin.post(one, {"dataset_name": "final", "policy": "adjudicated"}).json()
    assert adjudicated["records_merged"] == 2
    values = [r.expectations for r in EvaluationDataset.objects.get(name="final").records.order_by("id")]
    assert values == [{"expected_response": "Take 81 mg"}, {"expected_response": "Call 911 now"}]
    assert_error(as_admin.post(one, {"dataset_name": "x", "policy": "majority"}), 400, "INVALID_PARAMETER_VALUE")
    assert not EvaluationDataset.objects.filter(name="x").exists()


def test_find_a_session_by_name_or_mlflow_run_id(as_admin: ApiClient, as_outsider: ApiClient, world: World) -> None:
    run_id = as_admin.get(f"{URL}{world.session.pk}").json()["mlflow_run_id"]
    assert [s["id"] for s in as_admin.get(URL, {"mlflow_run_id": run_id}).json()["labeling_sessions"]] == [
        world.session.pk
    ]
    assert [s["id"] for s in as_admin.get(URL, {"name": "Week 48"}).json()["labeling_sessions"]] == [world.session.pk]
    for other in ("1abe15e5" + "f" * 24, "0" * 32, "run-1", "1abe15e5" + "z" * 24):
        assert as_admin.get(URL, {"mlflow_run_id": other}).json()["labeling_sessions"] == []
    assert as_outsider.get(URL, {"mlflow_run_id": run_id}).json()["labeling_sessions"] == []
    assert_error(as_admin.get(URL, {"name": "a\x00"}), 400, "INVALID_PARAMETER_VALUE")


def _dataset_of(traces: list[Any], extra: list[dict[str, Any]] | None = None) -> EvaluationDataset:
    from evaluation.services import get_or_create_dataset, merge_records

    dataset = get_or_create_dataset(name="golden")
    records = [
        {"inputs": {"q": f"question {i}"}, "source": {"source_type": "TRACE", "source_data": {"trace_id": t.trace_id}}}
        for i, t in enumerate(traces)
    ]
    merge_records(dataset=dataset, records=records + (extra or []))
    return dataset


def test_add_dataset_adds_the_source_traces_of_its_records(
    as_admin: ApiClient, as_lead: ApiClient, as_reviewer: ApiClient, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``LabelingSession.add_dataset``: each record's stored source trace becomes an item; a record without
    one is counted; ``record_ids`` narrows; an unknown record adds nothing."""
    hand_written = {"inputs": {"q": "typed by hand"}, "source": {"source_type": "HUMAN", "source_data": {}}}
    dataset = _dataset_of(world.traces[1:4], [hand_written])
    one = f"{URL}{world.session.pk}/datasets"
    record_ids = [str(pk) for pk in dataset.records.order_by("id").values_list("pk", flat=True)]

    assert_error(
        as_admin.post(one, {"dataset_name": "golden", "record_ids": [record_ids[1], "999999"]}),
        404,
        "RESOURCE_DOES_NOT_EXIST",
        "999999",
    )
    assert_error(
        as_admin.post(one, {"dataset_name": "golden", "record_ids": ["x\x00"]}), 400, "INVALID_PARAMETER_VALUE"
    )
    assert_error(as_admin.post(one, {}), 400, "INVALID_PARAMETER_VALUE", "dataset_name")
    assert_error(as_admin.post(one, {"dataset_name": "nope"}), 404, "RESOURCE_DOES_NOT_EXIST")
    assert_error(as_admin.post(one, {"dataset_id": -3}), 404, "RESOURCE_DOES_NOT_EXIST")
    assert_error(as_reviewer.post(one, {"dataset_name": "golden"}), 403, "PERMISSION_DENIED")
    assert_error(as_lead.post(one, {"dataset_name": "golden"}), 403, "PERMISSION_DENIED", "admins")  # datasets are
    assert world.session.items.count() == 2

    response = as_admin.post(one, {"dataset_name": "golden", "record_ids": [record_ids[1]]})
    assert response.json() == {"added": 1, "already_there": 0, "records_without_trace": 0}
    response = as_admin.post(one, {"dataset_id": dataset.pk})
    assert response.status_code == 200, response.content
    assert response.json() == {"added": 1, "already_there": 2, "records_without_trace": 1}
    sources = set(world.session.items.values_list("source_trace_id_text", flat=True))
    assert sources == {t.trace_id for t in world.traces}

    import labeling.api

    monkeypatch.setattr(labeling.api, "MAX_TRACE_IDS", 3)
    assert_error(as_admin.post(one, {"dataset_id": dataset.pk}), 400, "INVALID_PARAMETER_VALUE", "in batches")
    monkeypatch.undo()

    only_typed = _only_hand_written()
    assert_error(
        as_admin.post(one, {"dataset_name": only_typed.name}),
        400,
        "INVALID_PARAMETER_VALUE",
        "no records whose source trace",
    )


def _only_hand_written() -> EvaluationDataset:
    from evaluation.services import get_or_create_dataset, merge_records

    dataset = get_or_create_dataset(name="typed")
    merge_records(dataset=dataset, records=[{"inputs": {"q": "hand"}, "source": {"source_type": "HUMAN"}}])
    return dataset
