"""MLflow's trace calls through the client, against a live server."""

from __future__ import annotations

import json
from typing import Any

import pytest
from mlflow.entities import AssessmentError, AssessmentSource, AssessmentSourceType
from mlflow.entities import Trace as MlflowTrace
from mlflow.tracing.utils.search import traces_to_df

import reviewapp_client
from reviewapp_client import ApiClient, ReviewAppError, tracing
from traces.models import Assessment

from .conftest import Shop


def _ids(result: Any) -> list[str]:
    return reviewapp_client.trace_ids_of(result)


def _typed(values: Any) -> str:
    """Values compared with their types (1 and 1.0 differ), keys in any order."""
    return json.dumps(list(values) if hasattr(values, "tolist") else values, sort_keys=True, default=repr)


def test_search_traces_gives_mlflows_dataframe(admin_client: ApiClient, shop: Shop) -> None:
    shop.traces[0].assessments.create(
        assessment_id="a-1",
        name="correct",
        kind="feedback",
        value=True,
        source_type="HUMAN",
        source_id="ana",
        create_time="2026-11-23T08:00:00Z",
        last_update_time="2026-11-23T08:00:00Z",
    )
    judged = reviewapp_client.log_feedback(
        shop.traces[1].trace_id, "relevance", value={"score": 3}, source="CODE", rationale="ok", metadata={"k": "v"}
    )
    reviewapp_client.override_feedback(shop.traces[1].trace_id, judged["assessment_id"], value={"score": 5})
    reviewapp_client.log_feedback(shop.traces[1].trace_id, "safety", error=ValueError("judge down"))
    span_id = reviewapp_client.get_trace(shop.traces[2].trace_id).data.spans[1]["span_id"]
    reviewapp_client.log_expectation(shop.traces[2].trace_id, "expected_facts", ["a", "b"], span_id=span_id)
    df = reviewapp_client.search_traces(experiment_ids=["17"], order_by=["name ASC"])
    raw = [admin_client.get(f"traces/{trace_id}") for trace_id in df["trace_id"]]
    expected = traces_to_df([MlflowTrace.from_dict(d) for d in raw])

    assert list(df.columns) == list(expected.columns) == MlflowTrace.pandas_dataframe_columns()
    assert list(df["trace_id"]) == [t.trace_id for t in shop.traces]
    for column in ("trace_id", "client_request_id", "state", "request_time", "execution_duration"):
        assert _typed(df[column]) == _typed(expected[column]), column
        assert df[column].dtype == expected[column].dtype, column
    for column in ("request", "response", "trace_metadata", "tags", "spans", "assessments"):
        assert _typed(df[column]) == _typed(expected[column]), column
    assert [_typed(json.loads(t)) for t in df["trace"]] == [_typed(json.loads(t)) for t in expected["trace"]]
    first = df.iloc[0]
    assert first["request"] == {"question": "What does MLflow Tracing record?"}
    assert first["response"] == "Inputs, outputs and metadata."
    assert first["request_time"] == 1795418520000  # 2026-11-23T07:22:00Z in epoch ms
    assert first["tags"]["topic"] == "returns"
    assert first["assessments"][0]["feedback"] == {"value": True}
    assert len(first["spans"]) == 3


def test_an_empty_search_still_has_the_columns(admin_client: ApiClient, shop: Shop) -> None:
    df = reviewapp_client.search_traces(filter_string="name = 'nothing'")
    assert df.empty
    assert list(df.columns) == MlflowTrace.pandas_dataframe_columns()


def test_search_filters_like_mlflow(admin_client: ApiClient, shop: Shop) -> None:
    t0, t1, t2, t3 = shop.traces
    assert set(_ids(reviewapp_client.search_traces(model_id="v2"))) == {t1.trace_id, t3.trace_id}
    assert _ids(reviewapp_client.search_traces(run_id="run-1")) == [t0.trace_id]
    assert _ids(reviewapp_client.search_traces(filter_string="name = 't2'")) == [t2.trace_id]
    assert _ids(reviewapp_client.search_traces(filter_string="tags.topic = 'returns'")) == [t0.trace_id]
    assert _ids(reviewapp_client.search_traces(order_by=["name DESC"])) == [t.trace_id for t in (t3, t2, t1, t0)]
    by_name = reviewapp_client.search_traces(experiment_ids=["shop-bot"], order_by="name ASC", max_results=2)
    assert _ids(by_name) == [t0.trace_id, t1.trace_id]


def test_search_pages_through_every_trace(admin_client: ApiClient, shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tracing, "PAGE_SIZE", 3)  # the server's pages of 3 instead of 500: two pages
    assert _ids(reviewapp_client.search_traces(order_by=["name ASC"])) == [t.trace_id for t in shop.traces]
    assert len(reviewapp_client.search_traces(max_results=4, return_type="list")) == 4
    assert _ids(reviewapp_client.search_traces(max_results=2, order_by=["name ASC"])) == [
        t.trace_id for t in shop.traces[:2]
    ]


def test_list_return_type_gives_traces_mlflow_can_read(admin_client: ApiClient, shop: Shop) -> None:
    traces = reviewapp_client.search_traces(model_id="v1", order_by=["name ASC"], return_type="list")
    assert [t.trace_id for t in traces] == [shop.traces[0].trace_id, shop.traces[2].trace_id]
    first = traces[0]
    assert first.info.state == "OK"
    assert first.info.execution_duration == 62
    assert first.info.trace_metadata["mlflow.trace.user"] == "ana"
    assert first.info.experiment_id == "17"
    assert json.loads(first.data.request) == {"question": "What does MLflow Tracing record?"}
    converted = first.to_mlflow()
    assert isinstance(converted, MlflowTrace)
    assert converted.info.request_time == first.info.request_time
    assert [s.name for s in converted.data.spans] == [s["name"] for s in first.data.spans]


def test_search_without_spans_reads_only_the_infos(admin_client: ApiClient, shop: Shop) -> None:
    df = reviewapp_client.search_traces(include_spans=False, order_by=["name ASC"])
    assert list(df["trace_id"]) == [t.trace_id for t in shop.traces]
    assert df["spans"].tolist() == [[]] * 4
    assert df["request"].isna().all()
    assert df["request_time"].tolist() == [1795418520000] * 4


def test_bad_search_arguments_are_refused(admin_client: ApiClient, shop: Shop) -> None:
    with pytest.raises(ReviewAppError) as caught:
        reviewapp_client.search_traces(filter_string="name ==== 'x'")
    assert (caught.value.error_code, caught.value.status_code) == ("INVALID_PARAMETER_VALUE", 400)
    with pytest.raises(ReviewAppError, match="return type"):
        reviewapp_client.search_traces(return_type="spark")  # type: ignore[arg-type]
    with pytest.raises(ReviewAppError, match="max_results"):
        reviewapp_client.search_traces(max_results=0)
    with pytest.raises(ReviewAppError) as caught:
        reviewapp_client.search_traces(experiment_ids=["nope"])
    assert caught.value.error_code == "RESOURCE_DOES_NOT_EXIST"


def test_get_trace_has_every_span(admin_client: ApiClient, shop: Shop) -> None:
    trace = reviewapp_client.get_trace(shop.traces[0].trace_id)
    assert trace.trace_id == shop.traces[0].trace_id
    assert [s["name"] for s in trace.data.spans] == ["rag", "retrieve", "step_3"]
    assert trace.data.root_span["name"] == "rag"
    assert MlflowTrace.from_dict(trace.to_dict()).info.trace_id == trace.trace_id
    assert MlflowTrace.from_json(trace.to_json()).data.spans[1].name == "retrieve"


def test_iter_trace_infos_reads_page_after_page_without_spans(admin_client: ApiClient, shop: Shop) -> None:
    infos = tracing.iter_trace_infos(model_id="v2", order_by=["name ASC"])
    assert [i.trace_id for i in infos] == [shop.traces[1].trace_id, shop.traces[3].trace_id]
    assert len(list(tracing.iter_trace_infos(max_results=3))) == 3


def test_log_feedback_as_mlflow_does(admin_client: ApiClient, shop: Shop) -> None:
    trace = shop.traces[0]
    span_id = reviewapp_client.get_trace(trace.trace_id).data.spans[1]["span_id"]
    judge = AssessmentSource(source_type=AssessmentSourceType.LLM_JUDGE, source_id="gpt-judge")
    logged = reviewapp_client.log_feedback(
        trace_id=trace.trace_id,
        name="relevance",
        value=0.8,
        source=judge,
        rationale="Mostly on topic.",
        metadata={"round": 2},
        span_id=span_id,
    )
    assert logged["assessment_name"] == "relevance"
    assert logged["feedback"] == {"value": 0.8}
    assert logged["source"] == {"source_type": "LLM_JUDGE", "source_id": "gpt-judge"}
    assert logged["metadata"] == {"round": "2"}
    assert logged["span_id"] == "0000000000000002"  # the span dict's base64 id, as MLflow's hex Span.span_id
    converted = reviewapp_client.get_trace(trace.trace_id).to_mlflow()
    assert logged["span_id"] == converted.data.spans[1].span_id
    stored = Assessment.objects.get(assessment_id=logged["assessment_id"])
    assert (stored.value, stored.rationale, stored.source_type) == (0.8, "Mostly on topic.", "LLM_JUDGE")

    mine = reviewapp_client.log_feedback(trace_id=trace.trace_id, name="correct", value=True)
    assert mine["source"] == {"source_type": "HUMAN", "source_id": "admin"}
    by_name = reviewapp_client.log_feedback(trace.trace_id, "tone", value="polite", source="HUMAN")
    assert by_name["source"]["source_id"] == "admin"
    assert {a["assessment_name"] for a in reviewapp_client.search_assessments(trace.trace_id)} == {
        "relevance",
        "correct",
        "tone",
    }


def test_log_feedback_with_an_error(admin_client: ApiClient, shop: Shop) -> None:
    trace_id = shop.traces[0].trace_id
    try:
        raise TimeoutError("the judge timed out")
    except TimeoutError as exc:
        logged = reviewapp_client.log_feedback(trace_id=trace_id, name="safety", error=exc)
    assert logged["feedback"]["error"]["error_code"] == "TimeoutError"
    assert logged["feedback"]["error"]["error_message"] == "the judge timed out"
    as_mlflow = reviewapp_client.log_feedback(
        trace_id=trace_id, name="safety", error=AssessmentError(error_code="RATE_LIMIT", error_message="429")
    )
    assert as_mlflow["feedback"]["error"]["error_code"] == "RATE_LIMIT"
    with pytest.raises(ReviewAppError) as caught:
        reviewapp_client.log_feedback(trace_id=trace_id, name="empty")  # neither value nor error
    assert caught.value.error_code == "INVALID_PARAMETER_VALUE"
    assert shop.traces[0].assessments.count() == 2


def test_log_expectation_and_override_feedback(admin_client: ApiClient, shop: Shop) -> None:
    trace_id = shop.traces[1].trace_id
    expected = reviewapp_client.log_expectation(
        trace_id=trace_id, name="expected_facts", value=["Inputs", "Outputs"], metadata={"by": "ana"}
    )
    assert expected["expectation"] == {"value": ["Inputs", "Outputs"]}
    assert expected["metadata"] == {"by": "ana"}

    judged = reviewapp_client.log_feedback(trace_id=trace_id, name="correct", value=False, source="CODE")
    fixed = reviewapp_client.override_feedback(
        trace_id=trace_id, assessment_id=judged["assessment_id"], value=True, rationale="The judge was wrong."
    )
    assert fixed["overrides"] == judged["assessment_id"]
    assert fixed["feedback"] == {"value": True}
    assert fixed["valid"] is True
    listed = {a["assessment_id"]: a for a in reviewapp_client.search_assessments(trace_id)}
    assert listed[judged["assessment_id"]]["valid"] is False
    with pytest.raises(ReviewAppError) as caught:
        reviewapp_client.override_feedback(trace_id=trace_id, assessment_id="a-nope", value=True)
    assert caught.value.error_code == "RESOURCE_DOES_NOT_EXIST"


def test_set_and_delete_trace_tags(admin_client: ApiClient, shop: Shop) -> None:
    trace = shop.traces[2]
    assert reviewapp_client.set_trace_tag(trace.trace_id, "reviewed", "yes") == {"reviewed": "yes"}
    assert reviewapp_client.set_trace_tag(trace_id=trace.trace_id, key="priority", value=1) == {
        "reviewed": "yes",
        "priority": "1",
    }
    trace.refresh_from_db()
    assert trace.tags == {"reviewed": "yes", "priority": "1"}
    assert reviewapp_client.delete_trace_tag(trace.trace_id, "reviewed") == {"priority": "1"}
    with pytest.raises(ReviewAppError) as caught:
        reviewapp_client.delete_trace_tag(trace.trace_id, "reviewed")
    assert caught.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert _ids(reviewapp_client.search_traces(filter_string="tags.priority = '1'")) == [trace.trace_id]


def test_a_reviewer_cannot_see_or_change_explorer_traces(live_server: Any, reviewer_token: str, shop: Shop) -> None:
    reviewapp_client.configure(url=live_server.url, token=reviewer_token)
    assert reviewapp_client.search_traces().empty
    with pytest.raises(ReviewAppError) as caught:
        reviewapp_client.log_feedback(trace_id=shop.traces[0].trace_id, name="correct", value=True)
    assert caught.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert shop.traces[0].assessments.count() == 0


def test_trace_ids_of_takes_what_search_traces_gives(admin_client: ApiClient, shop: Shop) -> None:
    ids = [t.trace_id for t in shop.traces]
    df = reviewapp_client.search_traces(order_by=["name ASC"], include_spans=False)
    traces = reviewapp_client.search_traces(order_by=["name ASC"], return_type="list", include_spans=False)
    assert _ids(df) == _ids(traces) == _ids([t.to_mlflow() for t in traces]) == _ids(ids) == ids
    assert _ids([t.to_dict() for t in traces]) == ids
    with pytest.raises(ReviewAppError):
        _ids([42])
