"""Assessments over the API: log feedback and expectations, override (nothing is overwritten), list per trace."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api.conftest import ApiClient, World, assert_error
from tests.factories import make_assessment
from traces.models import Assessment, Trace

pytestmark = pytest.mark.django_db


def _url(trace: Trace, rest: str) -> str:
    return f"/api/traces/{trace.trace_id}{rest}"


def test_log_feedback_from_each_source(as_admin: ApiClient, world: World) -> None:
    trace = world.traces[0]
    human = as_admin.post(_url(trace, "/feedback"), {"name": "helpful", "value": "yes", "rationale": "clear"})
    assert human.status_code == 201
    body = human.json()["assessment"]
    assert body["source"] == {"source_type": "HUMAN", "source_id": "admin"}  # the token's owner by default
    assert (body["feedback"], body["rationale"], body["valid"]) == ({"value": "yes"}, "clear", True)
    judge = {
        "name": "groundedness",
        "value": 0.75,
        "source": {"source_type": "LLM_JUDGE", "source_id": "gpt-judge"},
        "metadata": {"prompt_version": "3"},
        "span_id": f"{2:016x}",
    }
    body = as_admin.post(_url(trace, "/feedback"), judge).json()["assessment"]
    assert body["span_id"] == f"{2:016x}" and body["metadata"] == {"prompt_version": "3"}
    error = {
        "name": "toxicity",
        "error": {"error_code": "TIMEOUT", "error_message": "judge timed out"},
        "source": {"source_type": "CODE", "source_id": "scorers.toxicity"},
    }
    body = as_admin.post(_url(trace, "/feedback"), error).json()["assessment"]
    assert body["feedback"] == {"value": None, "error": {"error_code": "TIMEOUT", "error_message": "judge timed out"}}
    stored = {a.name: a for a in Assessment.objects.filter(trace=trace)}
    assert stored["groundedness"].source_type == "LLM_JUDGE" and stored["groundedness"].value == 0.75
    assert stored["toxicity"].error["error_code"] == "TIMEOUT" and stored["toxicity"].source_id == "scorers.toxicity"
    listed = as_admin.get("/api/traces/", {"filter_string": "feedback.helpful = 'yes'"}).json()["traces"]
    assert [t["trace_id"] for t in listed] == [trace.trace_id]


def test_log_expectation_with_any_json(as_admin: ApiClient, world: World) -> None:
    value = {"expected_facts": ["inputs", "outputs"], "nested": {"n": [1, 2.5, None, True]}}
    response = as_admin.post(_url(world.traces[0], "/expectations"), {"name": "expected_facts", "value": value})
    assert response.status_code == 201
    body = response.json()["assessment"]
    assert body["expectation"] == {"value": value} and "feedback" not in body
    assert Assessment.objects.get().kind == "expectation"


def test_mlflow_reads_the_assessments_back(as_admin: ApiClient, world: World) -> None:
    from mlflow.entities import Trace as MlflowTrace

    trace = world.traces[0]
    as_admin.post(_url(trace, "/feedback"), {"name": "ok", "value": True, "rationale": "good"})
    as_admin.post(_url(trace, "/expectations"), {"name": "expected_response", "value": "Inputs."})
    parsed = MlflowTrace.from_dict(as_admin.get(_url(trace, "")).json())
    by_name = {a.name: a for a in parsed.info.assessments}
    assert by_name["ok"].feedback.value is True and by_name["ok"].source.source_type == "HUMAN"
    assert by_name["expected_response"].expectation.value == "Inputs."


def test_override_keeps_the_old_one_invalid(as_admin: ApiClient, world: World) -> None:
    trace = world.traces[0]
    old = make_assessment(trace, "correct", False, span_id=f"{1:016x}")
    response = as_admin.post(
        _url(trace, f"/assessments/{old.assessment_id}/override"), {"value": True, "rationale": "fixed"}
    )
    assert response.status_code == 201
    new = response.json()["assessment"]
    assert new["overrides"] == old.assessment_id and new["valid"] is True
    assert (new["assessment_name"], new["span_id"], new["feedback"]) == ("correct", f"{1:016x}", {"value": True})
    old.refresh_from_db()
    assert old.valid is False and old.value is False  # kept as it was, only marked invalid
    again = as_admin.post(_url(trace, f"/assessments/{old.assessment_id}/override"), {"value": False})
    assert_error(again, 409, "RESOURCE_ALREADY_EXISTS", new["assessment_id"], "override that one")
    assert Assessment.objects.filter(valid=True).count() == 1 and Assessment.objects.count() == 2
    listed = as_admin.get(_url(trace, "/assessments")).json()["assessments"]
    assert [(a["assessment_id"], a["valid"]) for a in listed] == [
        (old.assessment_id, False),
        (new["assessment_id"], True),
    ]


def test_override_an_expectation(as_admin: ApiClient, world: World) -> None:
    trace = world.traces[0]
    old = make_assessment(trace, "expected_response", "old", kind="expectation", source_type="HUMAN")
    url = _url(trace, f"/assessments/{old.assessment_id}/override")
    assert_error(as_admin.post(url, {}), 400, "INVALID_PARAMETER_VALUE", "new value")
    response = as_admin.post(url, {"value": "new"})
    assert response.json()["assessment"]["expectation"] == {"value": "new"}


def test_override_of_an_unknown_assessment_is_404(as_admin: ApiClient, world: World) -> None:
    other = make_assessment(world.traces[1], "correct", True)
    for assessment_id in ("a-nope", "x" * 300, other.assessment_id):  # another trace's is not this trace's
        response = as_admin.post(_url(world.traces[0], f"/assessments/{assessment_id}/override"), {"value": True})
        assert_error(response, 404, "RESOURCE_DOES_NOT_EXIST", "has no assessment")
    assert Assessment.objects.count() == 1


def test_assessment_pages_cover_every_assessment_once(as_admin: ApiClient, world: World) -> None:
    trace = world.traces[0]
    made = [make_assessment(trace, f"q{i}", i).assessment_id for i in range(7)]  # same create_time: id breaks ties
    seen, token = [], None
    while True:
        body = as_admin.get(_url(trace, "/assessments"), {"max_results": 3, **({"page_token": token} if token else {})})
        body = body.json()
        seen += [a["assessment_id"] for a in body["assessments"]]
        token = body.get("next_page_token")
        if not token:
            break
    assert seen == made
    assert_error(as_admin.get(_url(trace, "/assessments"), {"page_token": "junk"}), 400, "INVALID_PARAMETER_VALUE")
    assert_error(as_admin.get(_url(trace, "/assessments"), {"max_results": 0}), 400, "INVALID_PARAMETER_VALUE")


def test_human_assessments_are_logged_as_yourself(as_lead: ApiClient, as_admin: ApiClient, world: World) -> None:
    trace = world.traces[0]
    posing = {"name": "ok", "value": True, "source": {"source_type": "HUMAN", "source_id": "reviewer"}}
    assert_error(as_lead.post(_url(trace, "/feedback"), posing), 403, "PERMISSION_DENIED", "'lead'")
    own = {"name": "ok", "value": True, "source": {"source_type": "HUMAN"}}
    assert as_lead.post(_url(trace, "/feedback"), own).json()["assessment"]["source"]["source_id"] == "lead"
    assert as_admin.post(_url(trace, "/feedback"), posing).status_code == 201  # admins may record for others
    assert sorted(Assessment.objects.values_list("source_id", flat=True)) == ["lead", "reviewer"]


def test_who_may_log_and_read_assessments(
    as_lead: ApiClient, as_reviewer: ApiClient, as_outsider: ApiClient, world: World
) -> None:
    feedback = {"name": "ok", "value": True}
    given, original = world.given_copy, world.traces[0]
    existing = make_assessment(given, "ok", True)
    assert as_reviewer.get(_url(given, "/assessments")).status_code == 200
    for path in ("/feedback", "/expectations", f"/assessments/{existing.assessment_id}/override"):
        assert_error(as_reviewer.post(_url(given, path), feedback), 403, "PERMISSION_DENIED")
        assert_error(as_reviewer.post(_url(original, path), feedback), 404, "RESOURCE_DOES_NOT_EXIST")
        assert_error(as_outsider.post(_url(original, path), feedback), 404, "RESOURCE_DOES_NOT_EXIST")
    assert_error(as_reviewer.get(_url(original, "/assessments")), 404, "RESOURCE_DOES_NOT_EXIST")
    assert_error(as_outsider.get(_url(given, "/assessments")), 404, "RESOURCE_DOES_NOT_EXIST")
    assert Assessment.objects.count() == 1
    assert as_lead.post(_url(world.other_copy, "/feedback"), feedback).status_code == 201


LONG = "x" * 70_000


@pytest.mark.parametrize(
    ("path", "body", "words"),
    [
        ("/feedback", {"name": "ok"}, ["needs a value or an error"]),
        ("/feedback", {"name": "", "value": 1}, ["name"]),
        ("/feedback", {"name": "ok", "value": [{"a": 1}]}, ["bool, number or string"]),
        ("/feedback", {"name": "ok", "value": {"a": [1]}}, ["bool, number or string"]),
        ("/feedback", '{"name": "ok", "value": NaN}', ["NaN"]),
        ("/feedback", '{"name": "ok", "value": 1e999}', ["infinity"]),
        ("/feedback", {"name": "ok", "value": "a\x00b"}, ["NUL"]),
        ("/feedback", '{"name": "ok", "value": "\\ud800"}', ["surrogate"]),
        ("/feedback", {"name": "ok", "value": True, "rationale": LONG}, ["rationale"]),
        ("/feedback", {"name": "ok", "value": True, "rationale": "a\x00"}, ["rationale", "NUL"]),
        ("/feedback", {"name": "ok", "value": True, "span_id": "ffffffffffffffff"}, ["no span"]),
        ("/feedback", {"name": "ok", "value": True, "span_id": "f" * 40}, ["span_id"]),
        ("/feedback", {"name": "ok", "value": True, "metadata": {f"k{i}": "v" for i in range(101)}}, ["100"]),
        ("/feedback", {"name": "ok", "error": {"error_message": "no code"}}, ["error.error_code"]),
        ("/feedback", {"name": "ok", "value": True, "source": {"source_type": "SOURCE_TYPE_UNSPECIFIED"}}, ["source"]),
        ("/feedback", {"name": "ok", "value": True, "source": "HUMAN"}, ["source"]),
        ("/expectations", {"name": "facts"}, ["value: Field required"]),
        ("/expectations", {"name": "facts", "value": {"a\x00": 1}}, ["key", "NUL"]),
        ("/expectations", {"name": "facts", "value": ["y" * 1_000_001]}, ["at most 1,000,000"]),
        (
            "/expectations",
            json.dumps({"name": "facts", "value": [[[[]]]]}).replace("[[[[]]]]", "[" * 200 + "]" * 200),
            ["nested"],
        ),
    ],
)
def test_bad_assessments_are_400_and_store_nothing(as_admin: ApiClient, world: World, path, body, words) -> None:
    assert_error(as_admin.post(_url(world.traces[0], path), body), 400, "INVALID_PARAMETER_VALUE", *words)
    assert not Assessment.objects.exists()


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
BODY = st.dictionaries(
    st.sampled_from(["name", "value", "error", "rationale", "source", "metadata", "span_id"]) | st.text(max_size=5),
    JSON | st.fixed_dictionaries({"source_type": st.sampled_from(["HUMAN", "CODE", "x"]), "source_id": JSON}),
    max_size=6,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(["/feedback", "/expectations"]), body=BODY | JSON)
def test_no_assessment_body_gets_a_500(as_admin: ApiClient, world: World, path: str, body) -> None:
    raw = json.dumps(body, allow_nan=True)
    response = as_admin.post(_url(world.traces[0], path), raw)
    assert response.status_code in (201, 400, 403), response.content[:300]
    if response.status_code == 201:
        stored = Assessment.objects.get(assessment_id=response.json()["assessment"]["assessment_id"])
        assert stored.name == body["name"]
