"""Scorers over stored traces: MLflow's arguments, MLflow's Feedback rules, errors per trace, idempotent writes."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from evaluation.scorers.catalogue import load_catalogue
from evaluation.scorers.pool import CallPool
from evaluation.scorers.runner import build_items, score_items, write_results
from tests.factories import make_assessment, make_trace
from traces.models import Assessment, Trace

SHAPES = "tests.evaluation.scorer_modules.shapes"
FAILING = "tests.evaluation.scorer_modules.failing"
RUN = "0123456789abcdef0123456789abcdef"


def _score(traces: list[Trace], module: str, names: list[str], *, timeout: float = 5, **kwargs: Any) -> dict:
    scorers = load_catalogue([module]).pick(names)
    items = build_items([t.pk for t in traces], with_trace=any(s.takes_trace for s in scorers), **kwargs)
    with CallPool(workers=4, timeout=timeout) as pool:
        return items, score_items(items, scorers, run_id=RUN, pool=pool)


def _by_name(results: list) -> dict[str, Any]:
    return {r.name: r for r in results}


def test_primitives_become_feedback_named_after_the_scorer_with_a_code_source(db: None) -> None:
    trace = make_trace(answer="MLflow records inputs")
    make_assessment(trace, "expected_response", "MLflow records inputs", kind="expectation", source_type="HUMAN")
    items, results = _score([trace], SHAPES, ["exact_answer", "answer_words", "keyword"])
    found = _by_name(results[trace.pk])
    assert found["exact_answer"].value is True and found["answer_words"].value == 3 and found["keyword"].value is True
    write_results(items, results, run_id=RUN)
    stored = Assessment.objects.get(trace=trace, name="exact_answer")
    assert (stored.source_type, stored.source_id, stored.kind) == ("CODE", "exact_answer", "feedback")
    assert stored.value is True
    assert stored.metadata["mlflow.assessment.sourceRunId"] == RUN
    assert stored.metadata["mlflow.assessment.scorerDigest"].startswith("sha256:")
    assert stored.span_id == "0000000000000001"  # the root span, as MLflow attaches them


def test_feedback_names_default_custom_and_lists(db: None) -> None:
    trace = make_trace()
    _, results = _score([trace], SHAPES, ["default_named", "custom_named", "several", "nothing"])
    found = _by_name(results[trace.pk])
    assert set(found) == {"default_named", "politeness", "has_question", "has_answer"}  # None gives no Feedback
    assert found["default_named"].value == "yes" and found["default_named"].rationale == "asked something"
    assert found["politeness"].scorer == "custom_named" and found["politeness"].rationale == "curt"
    assert found["has_question"].value is True and found["has_answer"].value is True


def test_arguments_are_mlflows_inputs_outputs_expectations_and_a_real_trace(
    import_sample: Callable[..., Trace],
) -> None:
    from mlflow.entities import Trace as MlflowTrace

    trace = import_sample("multi_turn_wrapper_root.json")
    [item] = build_items([trace.pk], with_trace=True)
    root = trace.spans.get(parent_id="")
    assert root.inputs in (None, {}, "") or root.outputs in (None, {}, "")  # a wrapper root: the rule picks a child
    assert item.inputs is not None and item.outputs is not None
    assert isinstance(item.mlflow_trace, MlflowTrace) and item.mlflow_trace.info.trace_id == trace.trace_id
    _, results = _score([trace], SHAPES, ["span_count"])
    assert results[trace.pk][0].value == trace.spans.count()


def test_example_scorers_on_a_real_rag_trace(import_sample: Callable[..., Trace]) -> None:
    trace = import_sample("demo_rag_pipeline.json")
    make_assessment(trace, "expected_facts", ["mlflow.evaluate()", "scorers"], kind="expectation", source_type="HUMAN")
    _, results = _score(
        [trace],
        "evaluation.example_scorers",
        ["has_retrieved_documents", "mentions_expected_fact", "latency_under_threshold", "response_length"],
    )
    found = _by_name(results[trace.pk])
    assert found["has_retrieved_documents"].value is True
    assert found["mentions_expected_fact"].value == "yes"
    assert found["latency_under_threshold"].value is True  # 1.5 s
    assert found["response_length"].value > 50


def test_dataset_record_expectations_win_over_the_traces(db: None) -> None:
    trace = make_trace(answer="Paris")
    make_assessment(trace, "expected_response", "Lyon", kind="expectation", source_type="HUMAN")
    make_assessment(trace, "expected_response", "Nice", kind="expectation", source_type="HUMAN", valid=False)
    _, results = _score([trace], SHAPES, ["exact_answer"])
    assert results[trace.pk][0].value is False
    record = {trace.pk: {"expected_response": "Paris"}}
    _, results = _score([trace], SHAPES, ["exact_answer"], record_expectations=record)
    assert results[trace.pk][0].value is True


def test_a_scorer_that_raises_times_out_or_returns_a_dict_gives_error_feedback_and_the_others_run(
    db: None,
) -> None:
    traces = [make_trace(), make_trace()]
    started = time.monotonic()
    _, results = _score(traces, FAILING, ["raises", "sleeps", "returns_dict", "fine"], timeout=0.5)
    assert time.monotonic() - started < 5
    for trace in traces:
        found = _by_name(results[trace.pk])
        assert found["fine"].value is True and found["fine"].error is None
        assert found["raises"].error["error_code"] == "ZeroDivisionError"
        assert found["raises"].error["error_message"] == "division by zero in my scorer"
        assert found["raises"].value is None
        assert found["sleeps"].error["error_code"] == "TIMEOUT"
        assert "timed out after 0.5 seconds" in found["sleeps"].error["error_message"]
        assert found["returns_dict"].error["error_code"] == "MlflowException"
        assert "must return one of int, float, bool, str, Feedback" in found["returns_dict"].error["error_message"]


def test_writes_are_idempotent_and_never_touch_human_assessments(db: None) -> None:
    trace = make_trace()
    human = make_assessment(trace, "exact_answer", False, source_type="HUMAN", source_id="ana")
    items, results = _score([trace], SHAPES, ["exact_answer", "several"])
    write_results(items, results, run_id=RUN)
    write_results(items, results, run_id=RUN)  # a retried batch
    assert Assessment.objects.filter(trace=trace, source_type="CODE").count() == 3
    human.refresh_from_db()
    assert human.valid and human.value is False and human.source_type == "HUMAN"
    write_results(items, results, run_id="another-run")
    assert Assessment.objects.filter(trace=trace, source_type="CODE").count() == 6


def test_build_items_uses_a_constant_number_of_queries(db: None, django_assert_max_num_queries: Any) -> None:
    traces = [make_trace() for _ in range(6)]
    with django_assert_max_num_queries(10):
        items = build_items([t.pk for t in traces], with_trace=True)
    assert len(items) == 6


def test_pool_replaces_a_thread_stuck_in_a_call() -> None:
    with CallPool(workers=1, timeout=0.2) as pool:
        outcome = pool.run([("slow", lambda: time.sleep(5)), ("quick", lambda: 42)])
        assert isinstance(outcome["slow"][1], TimeoutError) and outcome["quick"] == (True, 42)
        assert pool.run([(1, lambda: 1)]) == {1: (True, 1)}


@pytest.mark.parametrize("workers", [1, 3])
def test_pool_returns_every_result_and_exception(workers: int) -> None:
    def boom() -> None:
        raise ValueError("x")

    with CallPool(workers=workers, timeout=5) as pool:
        outcome = pool.run([(i, (lambda i=i: i * 2) if i % 5 else boom) for i in range(50)])
    assert len(outcome) == 50
    assert outcome[3] == (True, 6) and isinstance(outcome[5][1], ValueError)


def test_a_scorers_own_timeout_is_kept_under_the_setting(db: None) -> None:
    trace = make_trace()
    started = time.monotonic()
    _, results = _score([trace], FAILING, ["own_deadline", "fine"], timeout=20)
    assert time.monotonic() - started < 5
    found = _by_name(results[trace.pk])
    assert found["own_deadline"].error["error_code"] == "TIMEOUT"
    assert found["own_deadline"].error["error_message"] == "timed out after 0.3 seconds"


def test_a_trace_without_spans_is_scored_with_empty_arguments(db: None) -> None:
    trace = make_trace(n_spans=0)
    trace.spans.all().delete()
    _, results = _score([trace], SHAPES, ["span_count", "answer_words", "several"])
    found = _by_name(results[trace.pk])
    assert found["span_count"].value == 0
    assert found["has_question"].value is False and found["has_answer"].value is False
    assert found["span_count"].span_id == ""
