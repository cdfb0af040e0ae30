"""``GET /api/traces/``: MLflow's search_traces over HTTP, with the trace pages' access rules and cursor pages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api.conftest import ApiClient, World, assert_error
from tests.factories import make_assessment, make_experiment, make_trace
from traces.api_support import MAX_RESULTS_CAP

pytestmark = pytest.mark.django_db
URL = "/api/traces/"


def _ids(response) -> list[str]:
    assert response.status_code == 200, response.content[:500]
    return [t["trace_id"] for t in response.json()["traces"]]


def test_admin_searches_the_traces_outside_sessions_by_default(as_admin: ApiClient, world: World) -> None:
    found = _ids(as_admin.get(URL))
    assert set(found) == {t.trace_id for t in world.traces}  # no session copies
    info = as_admin.get(URL).json()["traces"][0]
    assert info["trace_location"] == {
        "type": "MLFLOW_EXPERIMENT",
        "mlflow_experiment": {"experiment_id": f"reviewapp-{world.experiment.pk}"},
    }
    assert {"request_time", "state", "tags", "trace_metadata", "assessments", "request_preview"} <= set(info)


def test_experiments_are_named_by_id_name_or_mlflow_id(as_admin: ApiClient, world: World) -> None:
    other = make_experiment("other")
    other.mlflow_experiment_id = "8812"
    other.save()
    elsewhere = make_trace(experiment=other)
    for reference in (str(world.experiment.pk), f"reviewapp-{world.experiment.pk}", "shop-bot"):
        assert set(_ids(as_admin.get(URL, {"experiment_ids": reference}))) == {t.trace_id for t in world.traces}
    assert _ids(as_admin.get(URL, {"experiment_ids": "8812"})) == [elsewhere.trace_id]
    both = _ids(as_admin.get(URL, {"experiment_ids": ["shop-bot", "8812"]}))
    assert len(both) == 5
    copies = _ids(as_admin.get(URL, {"experiment_ids": world.session.experiment.name}))
    assert set(copies) == {world.given_copy.trace_id, world.other_copy.trace_id}


def test_unknown_experiment_is_404_naming_it(as_admin: ApiClient, world: World) -> None:
    assert_error(as_admin.get(URL, {"experiment_ids": ["shop-bot", "nope"]}), 404, "RESOURCE_DOES_NOT_EXIST", "'nope'")
    assert_error(as_admin.get(URL, {"experiment_ids": "x\x00y"}), 404, "RESOURCE_DOES_NOT_EXIST")
    assert_error(as_admin.get(URL, {"experiment_ids": "9" * 5000}), 404, "RESOURCE_DOES_NOT_EXIST", "…")
    too_many = [str(i) for i in range(101)]
    assert_error(as_admin.get(URL, {"experiment_ids": too_many}), 400, "INVALID_PARAMETER_VALUE", "at most 100")


def test_filter_string_model_id_run_id_and_order_by(as_admin: ApiClient, world: World) -> None:
    t0, t1, t2, t3 = world.traces
    assert _ids(as_admin.get(URL, {"filter_string": "name = 't2'"})) == [t2.trace_id]
    assert set(_ids(as_admin.get(URL, {"model_id": "v2"}))) == {t1.trace_id, t3.trace_id}
    assert _ids(as_admin.get(URL, {"model_id": "v2", "filter_string": "name = 't3'"})) == [t3.trace_id]
    t0.trace_metadata = {"mlflow.sourceRun": "run-1"}
    t0.save()
    assert _ids(as_admin.get(URL, {"run_id": "run-1"})) == [t0.trace_id]
    assert _ids(as_admin.get(URL, {"run_id": "run-2"})) == []
    assert _ids(as_admin.get(URL, {"order_by": "name DESC"})) == [t.trace_id for t in (t3, t2, t1, t0)]
    assert _ids(as_admin.get(URL, {"order_by": ["name ASC"], "max_results": 2})) == [t0.trace_id, t1.trace_id]


def test_assessments_come_with_the_trace_infos(as_admin: ApiClient, world: World) -> None:
    make_assessment(world.traces[0], "correct", True)
    infos = {t["trace_id"]: t for t in as_admin.get(URL).json()["traces"]}
    [assessment] = infos[world.traces[0].trace_id]["assessments"]
    assert assessment["assessment_name"] == "correct" and assessment["feedback"] == {"value": True}
    assert "expectation" not in assessment  # absent, as in MLflow's dict, not null
    assert _ids(as_admin.get(URL, {"filter_string": "feedback.correct = 'true'"})) == [world.traces[0].trace_id]


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"filter_string": "name = "}, ["position 8", "expected"]),
        ({"filter_string": "tags.env ~ 'x'"}, ["position 10"]),
        ({"filter_string": "nonsense.key = 1"}, ["position 1"]),
        ({"filter_string": "x" * 5000}, ["4000"]),
        ({"filter_string": "name = 'a\x00b'"}, []),
        ({"order_by": "banana"}, ["order_by item 1", "cannot order by 'banana'"]),
        ({"order_by": "name SIDEWAYS"}, ["expected ASC or DESC"]),
        ({"order_by": ["name"] * 11}, ["at most 10"]),
        ({"max_results": "abc"}, ["max_results"]),
        ({"max_results": "1.5"}, ["max_results"]),
        ({"max_results": "0"}, ["between 1 and 500"]),
        ({"max_results": str(MAX_RESULTS_CAP + 1)}, ["between 1 and 500"]),
        ({"max_results": "9" * 30}, ["max_results"]),
        ({"page_token": "garbage"}, ["page_token", "damaged"]),
        ({"page_token": "x" * 5000}, ["page_token"]),
        ({"model_id": "m" * 300}, ["model_id"]),
        ({"model_id": "a\x00b"}, ["model_id", "NUL"]),
        ({"run_id": "a\x00b"}, ["run_id", "NUL"]),
    ],
)
def test_bad_search_parameters_are_400(as_admin: ApiClient, world: World, params, words) -> None:
    assert_error(as_admin.get(URL, params), 400, "INVALID_PARAMETER_VALUE", *words)


def test_a_page_token_of_another_order_is_refused(as_admin: ApiClient, world: World) -> None:
    token = as_admin.get(URL, {"max_results": 1}).json()["next_page_token"]
    response = as_admin.get(URL, {"max_results": 1, "page_token": token, "order_by": "name"})
    assert_error(response, 400, "INVALID_PARAMETER_VALUE", "another list order")


@pytest.mark.parametrize("order_by", [[], ["name ASC"], ["execution_time_ms DESC"], ["timestamp_ms ASC"]])
def test_pages_cover_every_trace_once(as_admin: ApiClient, world: World, order_by: list[str]) -> None:
    start = datetime(2026, 11, 1, tzinfo=UTC)
    for i in range(9):  # same names and times in pairs, some without a duration: ties the cursor must break
        make_trace(
            experiment=world.experiment,
            name=f"p{i // 2}",
            request_time=start + timedelta(minutes=i // 2),
            execution_duration_ms=None if i % 3 == 0 else 10 * (i % 4),
            n_spans=1,
        )
    expected = _ids(as_admin.get(URL, {"order_by": order_by, "max_results": 500}))
    assert len(expected) == 13
    seen: list[str] = []
    token = None
    pages = 0
    while True:
        params = {"order_by": order_by, "max_results": 3, **({"page_token": token} if token else {})}
        body = as_admin.get(URL, params).json()
        seen += [t["trace_id"] for t in body["traces"]]
        pages += 1
        token = body.get("next_page_token")
        if not token:
            break
    assert seen == expected and pages == 5


def test_search_runs_a_constant_number_of_queries(
    as_lead: ApiClient, world: World, django_assert_max_num_queries
) -> None:
    """Token, its last use, the lead's role, the experiments named, the page, its assessments: six
    queries (as a lead, whose access rule has the most parts) whatever the number of traces."""
    filters = {"filter_string": "name LIKE 'n%'", "experiment_ids": "shop-bot", "max_results": 50}
    make_trace(experiment=world.experiment, name="n0")
    with django_assert_max_num_queries(6):
        assert len(_ids(as_lead.get(URL, filters))) == 1
    for i in range(30):
        trace = make_trace(experiment=world.experiment, name=f"n{i + 1}", n_spans=1)
        make_assessment(trace, "correct", True)
        make_assessment(trace, "facts", ["a"], kind="expectation")
    with django_assert_max_num_queries(6):
        body = as_lead.get(URL, {**filters, "filter_string": "text ILIKE '%mlflow%' AND name LIKE 'n%'"}).json()
    assert len(body["traces"]) == 31 and all(len(t["assessments"]) == 2 for t in body["traces"][:30])


def test_reviewer_finds_only_the_copies_given_to_them(as_reviewer: ApiClient, world: World) -> None:
    assert _ids(as_reviewer.get(URL)) == []  # nothing outside sessions
    in_session = {"experiment_ids": f"reviewapp-{world.session.experiment_id}"}
    assert _ids(as_reviewer.get(URL, in_session)) == [world.given_copy.trace_id]
    assert_error(as_reviewer.get(URL, {"experiment_ids": "shop-bot"}), 404, "RESOURCE_DOES_NOT_EXIST")


def test_outsider_finds_nothing_and_cannot_tell_experiments_exist(as_outsider: ApiClient, world: World) -> None:
    assert _ids(as_outsider.get(URL)) == []
    for reference in ("shop-bot", str(world.session.experiment_id)):
        assert_error(as_outsider.get(URL, {"experiment_ids": reference}), 404, "RESOURCE_DOES_NOT_EXIST")


def test_lead_finds_the_explorer_traces_and_their_sessions_copies(as_lead: ApiClient, world: World) -> None:
    assert set(_ids(as_lead.get(URL))) == {t.trace_id for t in world.traces}
    copies = _ids(as_lead.get(URL, {"experiment_ids": str(world.session.experiment_id)}))
    assert set(copies) == {world.given_copy.trace_id, world.other_copy.trace_id}
    world.session.leads.clear()
    assert_error(as_lead.get(URL, {"experiment_ids": str(world.session.experiment_id)}), 404, "RESOURCE_DOES_NOT_EXIST")


TEXT = st.text(st.characters(codec="utf-8"), max_size=60) | st.sampled_from(
    ["name = 't1'", "tags.a = 'b' AND status = 'OK'", "timestamp_ms > 5", "feedback.x = 1", "' OR 1=1 --", "`"]
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    filter_string=TEXT,
    order_by=st.lists(TEXT | st.sampled_from(["name DESC", "execution_time_ms", "status ASC"]), max_size=3),
    max_results=st.one_of(st.integers(-5, 10**20).map(str), TEXT),
    page_token=TEXT,
    experiment_ids=st.lists(TEXT | st.just("shop-bot"), max_size=3),
    model_id=TEXT,
)
def test_no_search_parameters_get_a_500(
    as_admin: ApiClient, world: World, filter_string, order_by, max_results, page_token, experiment_ids, model_id
) -> None:
    params = {
        "filter_string": filter_string,
        "order_by": order_by,
        "max_results": max_results,
        "page_token": page_token,
        "experiment_ids": experiment_ids,
        "model_id": model_id,
    }
    response = as_admin.get(URL, {key: value for key, value in params.items() if value not in ("", [])})
    assert response.status_code in (200, 400, 404), response.content[:300]
    if response.status_code != 200:
        assert set(response.json()) == {"error_code", "message"}
