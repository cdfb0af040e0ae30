"""``GET /api/traces/{id}`` as MLflow's Trace JSON, and trace tags, with the pages' access rules."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import ApiClient, World, assert_error
from tests.factories import make_assessment
from traces.models import Trace

pytestmark = pytest.mark.django_db


def _url(trace: Trace, rest: str = "") -> str:
    return f"/api/traces/{trace.trace_id}{rest}"


def test_a_trace_is_mlflow_trace_json(as_admin: ApiClient, world: World) -> None:
    from mlflow.entities import Trace as MlflowTrace

    trace = world.traces[0]
    make_assessment(trace, "correct", True, rationale="cites the docs")
    response = as_admin.get(_url(trace))
    assert response.status_code == 200
    parsed = MlflowTrace.from_dict(response.json())
    assert parsed.info.trace_id == trace.trace_id
    assert parsed.data.spans[0].name == "rag"
    assert len(parsed.data.spans) == 3
    retriever = next(s for s in parsed.data.spans if s.span_type == "RETRIEVER")
    assert retriever.outputs[0]["metadata"]["doc_uri"] == "https://docs.example.com/tracing.md"
    [assessment] = parsed.info.assessments
    assert (assessment.name, assessment.feedback.value, assessment.rationale) == ("correct", True, "cites the docs")


def test_get_trace_runs_a_constant_number_of_queries(
    as_admin: ApiClient, world: World, django_assert_max_num_queries
) -> None:
    from tests.factories import make_trace

    big = make_trace(experiment=world.experiment, n_spans=60)
    for i in range(20):
        make_assessment(big, f"q{i}", i)
    with django_assert_max_num_queries(6):  # token, its last use, the trace; then trace, spans, assessments
        assert len(as_admin.get(_url(big)).json()["data"]["spans"]) == 60


def test_who_may_read_a_trace(
    as_admin: ApiClient, as_lead: ApiClient, as_reviewer: ApiClient, as_outsider: ApiClient, world: World
) -> None:
    original, given, other = world.traces[0], world.given_copy, world.other_copy
    for trace in (original, given, other):
        assert as_admin.get(_url(trace)).status_code == 200
        assert as_lead.get(_url(trace)).status_code == 200  # the explorer's traces and their session's copies
        assert_error(as_outsider.get(_url(trace)), 404, "RESOURCE_DOES_NOT_EXIST", trace.trace_id)
    assert as_reviewer.get(_url(given)).status_code == 200
    for trace in (original, other):  # the original, and a copy of their session not given to them
        assert_error(as_reviewer.get(_url(trace)), 404, "RESOURCE_DOES_NOT_EXIST")


def test_in_an_assigned_session_a_reviewer_reads_the_items_given_to_them(
    as_reviewer: ApiClient, world: World, reviewer
) -> None:
    from labeling.models import ItemAssignment

    world.session.assignment_mode = "assigned"
    world.session.save()
    other_item = world.other_copy.review_item
    assert_error(as_reviewer.get(_url(world.other_copy)), 404, "RESOURCE_DOES_NOT_EXIST")
    ItemAssignment.objects.create(item=other_item, reviewer=reviewer)
    assert as_reviewer.get(_url(world.other_copy)).status_code == 200
    world.session.reviewers.remove(reviewer)  # taken off the session: nothing of it any more
    for trace in (world.given_copy, world.other_copy):
        assert_error(as_reviewer.get(_url(trace)), 404, "RESOURCE_DOES_NOT_EXIST")


def test_in_a_blind_session_a_reviewer_reads_their_copy_only_after_submitting(
    as_reviewer: ApiClient, world: World, reviewer
) -> None:
    """The copy carries the others' answers and the judges' verdicts, which blind review hides until then."""
    from labeling.models import ItemReview

    world.session.blind = True
    world.session.save()
    make_assessment(world.given_copy, "correct", False, source_type="HUMAN", source_id="someone-else")
    assert_error(as_reviewer.get(_url(world.given_copy)), 404, "RESOURCE_DOES_NOT_EXIST")
    in_session = {"experiment_ids": str(world.session.experiment_id)}
    assert_error(as_reviewer.get("/api/traces/", in_session), 404, "RESOURCE_DOES_NOT_EXIST")  # nothing to read
    ItemReview.objects.filter(item=world.given_copy.review_item, reviewer=reviewer).update(status="submitted")
    assert as_reviewer.get(_url(world.given_copy)).json()["info"]["assessments"][0]["source"]["source_id"] == (
        "someone-else"
    )
    assert [t["trace_id"] for t in as_reviewer.get("/api/traces/", in_session).json()["traces"]] == [
        world.given_copy.trace_id
    ]


@pytest.mark.parametrize("trace_id", ["tr-unknown", "x" * 5000, "a\x00b", "99999999999999999999", "' OR 1=1"])
def test_unknown_or_malformed_trace_ids_are_404(as_admin: ApiClient, world: World, trace_id: str) -> None:
    assert_error(as_admin.get(f"/api/traces/{trace_id}"), 404, "RESOURCE_DOES_NOT_EXIST", "does not exist")


def test_set_and_delete_tags(as_admin: ApiClient, world: World) -> None:
    trace = world.traces[0]
    response = as_admin.patch(_url(trace, "/tags"), {"key": "env", "value": "staging"})
    assert response.status_code == 200 and response.json() == {"tags": {"env": "staging"}}
    as_admin.post(_url(trace, "/tags"), {"key": "mlflow.note", "value": "checked"})
    response = as_admin.patch(_url(trace, "/tags"), {"key": "env", "value": "prod"})
    assert response.json() == {"tags": {"env": "prod", "mlflow.note": "checked"}}
    trace.refresh_from_db()
    assert trace.tags == {"env": "prod", "mlflow.note": "checked"}
    assert [
        t["trace_id"] for t in as_admin.get("/api/traces/", {"filter_string": "tags.env = 'prod'"}).json()["traces"]
    ] == [trace.trace_id]
    response = as_admin.delete(_url(trace, "/tags?key=env"))
    assert response.status_code == 200 and response.json() == {"tags": {"mlflow.note": "checked"}}
    assert_error(as_admin.delete(_url(trace, "/tags?key=env")), 404, "RESOURCE_DOES_NOT_EXIST", "no tag 'env'")
    trace.refresh_from_db()
    assert trace.tags == {"mlflow.note": "checked"}


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"key": "", "value": "v"}, ["key"]),
        ({"key": "k" * 251, "value": "v"}, ["key", "250"]),
        ({"key": "k", "value": "v" * 8001}, ["value", "8000"]),
        ({"key": "k"}, ["value: Field required"]),
        ({"key": "k", "value": 5}, ["value: Input should be a valid string"]),
        ({"key": "k", "value": "a\x00b"}, ["NUL"]),
        ({"key": "a\x00b", "value": "v"}, ["NUL"]),
        ({"key": "k", "value": "\ud800"}, ["value: Input should be a valid string"]),
    ],
)
def test_bad_tags_are_400_and_change_nothing(as_admin: ApiClient, world: World, body, words) -> None:
    trace = world.traces[0]
    assert_error(as_admin.patch(_url(trace, "/tags"), body), 400, "INVALID_PARAMETER_VALUE", *words)
    trace.refresh_from_db()
    assert trace.tags == {}


def test_delete_needs_a_key(as_admin: ApiClient, world: World) -> None:
    assert_error(as_admin.delete(_url(world.traces[0], "/tags")), 400, "INVALID_PARAMETER_VALUE", "key")
    assert_error(as_admin.delete(_url(world.traces[0], "/tags?key=" + "k" * 300)), 404, "RESOURCE_DOES_NOT_EXIST")


def test_who_may_change_tags(as_lead: ApiClient, as_reviewer: ApiClient, as_outsider: ApiClient, world: World) -> None:
    body = {"key": "env", "value": "prod"}
    assert as_lead.patch(_url(world.traces[1], "/tags"), body).status_code == 200
    assert as_lead.patch(_url(world.other_copy, "/tags"), body).status_code == 200  # their session's copy
    given = world.given_copy
    assert_error(as_reviewer.patch(_url(given, "/tags"), body), 403, "PERMISSION_DENIED", "may read")
    assert_error(as_reviewer.delete(_url(given, "/tags?key=env")), 403, "PERMISSION_DENIED")
    assert_error(as_reviewer.patch(_url(world.traces[0], "/tags"), body), 404, "RESOURCE_DOES_NOT_EXIST")
    assert_error(as_outsider.patch(_url(world.traces[0], "/tags"), body), 404, "RESOURCE_DOES_NOT_EXIST")
    assert_error(as_outsider.delete(_url(world.traces[1], "/tags?key=env")), 404, "RESOURCE_DOES_NOT_EXIST")
    given.refresh_from_db()
    world.traces[0].refresh_from_db()
    world.traces[1].refresh_from_db()
    assert given.tags == {} and world.traces[0].tags == {} and world.traces[1].tags == {"env": "prod"}


# ---------------------------------------------------------------- batch get


def test_batch_get_returns_readable_traces_with_spans_in_order_in_constant_queries(
    world: World, as_admin: ApiClient, as_reviewer: ApiClient, django_assert_max_num_queries: Any
) -> None:
    ids = [t.trace_id for t in world.traces]
    asked = [ids[1], "tr-unknown", ids[0], ids[1]]
    with django_assert_max_num_queries(8):
        response = as_admin.post("/api/traces/batch-get", {"trace_ids": asked})
    assert response.status_code == 200, response.content
    traces = response.json()["traces"]
    assert [t["info"]["trace_id"] for t in traces] == [ids[1], ids[0]]  # unknown left out, repeats once
    assert all(t["data"]["spans"] for t in traces)
    with django_assert_max_num_queries(8):
        assert as_admin.post("/api/traces/batch-get", {"trace_ids": ids}).status_code == 200
    # A reviewer's token reads only the copy given to them: the originals are left out, as unknown.
    given = world.given_copy.trace_id
    mine = as_reviewer.post("/api/traces/batch-get", {"trace_ids": [*ids, given, world.other_copy.trace_id]})
    assert [t["info"]["trace_id"] for t in mine.json()["traces"]] == [given]


def test_batch_get_refuses_too_many_ids_and_bad_bodies(as_admin: ApiClient) -> None:
    too_many = as_admin.post("/api/traces/batch-get", {"trace_ids": [f"tr-{i}" for i in range(101)]})
    assert too_many.status_code == 400 and too_many.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert "at most 100" in too_many.json()["message"]
    for body in ({"trace_ids": "tr-1"}, {"trace_ids": [1, None]}, {}, "not json", ["tr-1"]):
        response = as_admin.post("/api/traces/batch-get", body)
        assert response.status_code == 400, (body, response.content)
    weird = as_admin.post("/api/traces/batch-get", {"trace_ids": ["tr-\x00", "x" * 10_000]})
    assert weird.status_code == 200 and weird.json() == {"traces": []}
