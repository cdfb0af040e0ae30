"""Stored traces come back out as MLflow 3's ``Trace.to_dict()``: real ``mlflow.entities.Trace`` objects read them."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.factories import make_assessment, make_trace
from traces.mlflow_shape import trace_dict, trace_dicts
from traces.models import Trace

DATA = Path(__file__).resolve().parents[1] / "data"
SAMPLES = [
    "demo_rag_pipeline.json",
    "demo_agent.json",
    "demo_chat_session_turn.json",
    "eval_trace_with_scorer_feedback.json",
    "multi_turn_wrapper_root.json",
    "nested_tool_spans.json",
    "error_trace.json",
    "v2_trace.json",
]


def _shape(trace: Trace) -> dict[str, Any]:
    return trace_dicts([trace.pk])[trace.pk]


@pytest.mark.parametrize("name", SAMPLES)
def test_real_mlflow_samples_round_trip_through_trace_from_dict(import_sample: Callable[..., Trace], name: str) -> None:
    from mlflow.entities import Trace as MlflowTrace

    stored = import_sample(name)
    shaped = _shape(stored)
    trace = MlflowTrace.from_dict(shaped)
    assert trace.info.trace_id == stored.trace_id
    assert trace.info.state.value == stored.state
    assert len(trace.data.spans) == stored.spans.count()
    by_id = {s.span_id: s for s in stored.spans.all()}
    for span in trace.data.spans:
        original = by_id[span.span_id]
        assert span.name == original.name
        assert span.span_type == original.span_type
        assert span.inputs == original.inputs
        assert span.outputs == original.outputs
        assert (span.parent_id or "") == original.parent_id
    # and what MLflow writes back is what it read
    assert MlflowTrace.from_dict(trace.to_dict()).to_dict() == trace.to_dict()


def test_retriever_spans_are_found_by_search_spans(import_sample: Callable[..., Trace]) -> None:
    from mlflow.entities import Trace as MlflowTrace

    original = json.loads((DATA / "demo_rag_pipeline.json").read_text())
    expected = MlflowTrace.from_dict(original).search_spans(span_type="RETRIEVER")
    trace = MlflowTrace.from_dict(_shape(import_sample("demo_rag_pipeline.json")))
    found = trace.search_spans(span_type="RETRIEVER")
    assert [s.span_id for s in found] == [s.span_id for s in expected] and found
    assert found[0].outputs == expected[0].outputs


def test_assessments_come_out_in_the_trace_info(db: None) -> None:
    from mlflow.entities import Feedback
    from mlflow.entities import Trace as MlflowTrace

    stored = make_trace()
    make_assessment(stored, "correct", False, rationale="wrong fact", source_type="HUMAN", source_id="ana")
    make_assessment(stored, "expected_facts", ["a", "b"], kind="expectation", source_type="HUMAN")
    trace = MlflowTrace.from_dict(_shape(stored))
    by_name = {a.name: a for a in trace.info.assessments}
    assert isinstance(by_name["correct"], Feedback) and by_name["correct"].value is False
    assert by_name["correct"].rationale == "wrong fact" and by_name["correct"].source.source_id == "ana"
    assert by_name["expected_facts"].value == ["a", "b"]


def test_non_hex_ids_get_stable_otel_ids(db: None) -> None:
    from mlflow.entities import Trace as MlflowTrace

    stored = make_trace(trace_id="legacy-request-1")
    shaped = trace_dict(stored, stored.spans.all())
    assert shaped == trace_dict(stored, stored.spans.all())
    trace = MlflowTrace.from_dict(shaped)
    assert trace.info.trace_id == "legacy-request-1" and len(trace.data.spans) == 3


def test_batch_loads_in_three_queries(db: None, django_assert_num_queries: Any) -> None:
    traces = [make_trace() for _ in range(5)]
    with django_assert_num_queries(3):
        shaped = trace_dicts([t.pk for t in traces])
    assert set(shaped) == {t.pk for t in traces}
