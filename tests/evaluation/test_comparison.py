"""Comparing two evaluation runs: matching on inputs, metric directions, regressions and improvements."""

from __future__ import annotations

from typing import Any

import pytest

from evaluation import services
from evaluation.comparison import Direction, compare_metrics, compare_runs, load_details
from evaluation.mlflow_runs import import_mlflow_runs
from evaluation.models import DatasetRecord, EvaluationRunTrace
from evaluation.runs import execute_run, start_evaluation_run
from tests.evaluation.comparison_fixtures import SCORER_MODULES, TwoVersions, make_two_versions
from tests.factories import make_experiment, make_trace
from traces.models import Span, Trace


@pytest.fixture(autouse=True)
def scorer_modules(settings: Any) -> None:
    settings.SCORER_MODULES = SCORER_MODULES
    settings.SCORER_TIMEOUT_SECONDS = 5


@pytest.fixture
def versions(db: None) -> TwoVersions:
    return make_two_versions()


def _changes(comparison: Any) -> dict[str, dict[str, int]]:
    """{question: {scorer: -1/+1}} from the changed examples."""
    found = {}
    for example in comparison.examples:
        question = Trace.objects.get(pk=example.a.pk).spans.get(parent_id="").inputs["question"]
        found[question] = {c.name: c.change for c in example.changes}
    return found


def test_two_versions_exact_regressions_and_improvements(versions: TwoVersions) -> None:
    comparison = compare_runs(versions.v1, versions.v2)
    assert (comparison.matched, comparison.only_in_a, comparison.only_in_b) == (5, 1, 2)
    assert _changes(comparison) == {
        "Q0": {"answer_words": -1, "polite": -1},
        "Q2": {"answer_words": -1, "grounded": -1},
        "Q1": {"answer_words": 1, "grounded": 1, "polite": 1},
    }
    order = [e.a.pk for e in comparison.examples]  # regressions first (in the run's order), then improvements
    assert set(order[:2]) == {versions.traces["v1", q].pk for q in ("Q0", "Q2")}
    assert order[2] == versions.traces["v1", "Q1"].pk
    counts = {s.name: (s.compared, s.regressions, s.improvements) for s in comparison.scorers}
    assert counts == {"answer_words": (5, 2, 1), "grounded": (5, 1, 1), "polite": (5, 1, 1)}
    assert (comparison.regressed_examples, comparison.improved_examples) == (2, 1)


def test_a_changed_example_carries_both_sides(versions: TwoVersions) -> None:
    comparison = compare_runs(versions.v1, versions.v2)
    load_details(comparison.examples)
    q0 = next(e for e in comparison.examples if e.a.pk == versions.traces["v1", "Q0"].pk)
    assert (
        q0.a.trace_id == versions.traces["v1", "Q0"].trace_id and q0.b.trace_id == versions.traces["v2", "Q0"].trace_id
    )
    assert q0.a.url == f"/traces/{q0.a.trace_id}/"
    assert q0.input_preview == '{"question": "Q0"}'
    assert (q0.a.response_preview, q0.b.response_preview) == ('"please see the source"', '"see the source"')
    words, polite = q0.changes
    assert (words.name, words.a.value, words.b.value) == ("answer_words", 4, 3)  # a numeric drop
    assert (polite.a.value, polite.a.rationale, polite.b.value, polite.b.rationale) == (
        "yes", "says please", "no", "no please",
    )  # fmt: skip


def test_an_error_counts_as_a_failure(versions: TwoVersions) -> None:
    comparison = compare_runs(versions.v1, versions.v2)
    [q2, _q1] = comparison.examples_for("grounded")
    [grounded] = q2.changes  # Q2: True -> error
    assert grounded.regressed and grounded.a.value is True and grounded.a.error is None
    assert grounded.b.value is None and grounded.b.error["error_code"] == "RuntimeError"
    assert "grounding service down" in grounded.b.error["error_message"]


def test_filtering_by_scorer_keeps_only_its_changes(versions: TwoVersions) -> None:
    comparison = compare_runs(versions.v1, versions.v2)
    polite = comparison.examples_for("polite")
    assert [[c.name for c in e.changes] for e in polite] == [["polite"], ["polite"]]
    assert [e.regressions != [] for e in polite] == [True, False]
    assert comparison.examples_for("nope") == []


def test_metrics_higher_is_better_and_the_overall_average(versions: TwoVersions) -> None:
    comparison = compare_runs(versions.v1, versions.v2)
    rows = {m.name: m for m in comparison.metrics}
    assert set(rows) == set(versions.v1.metrics) | set(versions.v2.metrics)
    # grounded (errors left out): v1 True, False, True, True, False -> 0.6; v2 True, True, True, True, False -> 0.8
    grounded = rows["grounded/mean"]
    assert (grounded.a, grounded.b, grounded.direction) == (0.6, 0.8, Direction.IMPROVED)
    assert grounded.difference == pytest.approx(0.2)
    # polite: v1 yes, no, yes, yes, no, no -> 0.5; v2 no, yes, yes, yes, yes, no, no -> 4/7
    assert rows["polite/mean"].direction is Direction.IMPROVED
    assert rows["answer_words/min"].direction is Direction.SAME
    overall = comparison.overall
    assert overall is not None and overall.metrics == ("answer_words/mean", "grounded/mean", "polite/mean")
    assert overall.a == pytest.approx(sum(versions.v1.metrics[m] for m in overall.metrics) / 3)
    assert overall.b == pytest.approx(sum(versions.v2.metrics[m] for m in overall.metrics) / 3)


def test_compare_metrics_marks_missing_and_worse() -> None:
    rows, overall = compare_metrics({"x/mean": 0.9, "y/max": 3.0}, {"x/mean": 0.5, "z/mean": 1.0})
    assert [(r.name, r.direction) for r in rows] == [
        ("x/mean", Direction.WORSE),
        ("y/max", Direction.MISSING),
        ("z/mean", Direction.MISSING),
    ]
    assert rows[1].difference is None
    assert overall is not None and overall.metrics == ("x/mean",) and overall.direction is Direction.WORSE
    assert compare_metrics({"y/max": 1.0}, {"y/max": 1.0})[1] is None


def test_comparing_a_run_with_itself_changes_nothing(versions: TwoVersions) -> None:
    comparison = compare_runs(versions.v1, versions.v1)
    assert comparison.examples == [] and comparison.matched == 6 and comparison.only_in_a == comparison.only_in_b == 0
    assert all(m.direction is Direction.SAME for m in comparison.metrics)


def test_scoring_stores_the_inputs_key_of_the_dataset_record_made_from_the_same_trace(db: None) -> None:
    experiment = make_experiment("keys")
    traces = [make_trace(experiment=experiment, question=f"Q{i}") for i in range(3)]
    Span.objects.filter(trace=traces[1], parent_id="").update(inputs="a bare string")  # wrapped as {"inputs": …}
    Span.objects.filter(trace=traces[2], parent_id="").update(inputs=None, outputs=None)  # none recorded: {}
    services.build_dataset_from_traces(traces=Trace.objects.filter(experiment=experiment), dataset_name="golden")
    run = execute_run(
        start_evaluation_run(scorer_names=["polite"], filter_string="", experiment="keys", enqueue=False).pk
    )
    records = {r.source_data["trace_id"]: r.inputs_key for r in DatasetRecord.objects.all()}
    stored = {
        trace_id: key
        for trace_id, key in EvaluationRunTrace.objects.filter(run=run).values_list("trace__trace_id", "inputs_key")
    }
    assert stored == records and len(set(stored.values())) == 3


def test_rows_without_a_key_get_one_computed_and_stored(versions: TwoVersions) -> None:
    expected = _changes(compare_runs(versions.v1, versions.v2))
    stored = dict(EvaluationRunTrace.objects.values_list("pk", "inputs_key"))
    EvaluationRunTrace.objects.update(inputs_key="")  # as runs scored before the field existed
    assert _changes(compare_runs(versions.v1, versions.v2)) == expected
    assert dict(EvaluationRunTrace.objects.values_list("pk", "inputs_key")) == stored


def test_imported_mlflow_runs_get_their_inputs_key(import_sample: Any) -> None:
    trace = import_sample("eval_trace_with_scorer_feedback.json")
    [run] = import_mlflow_runs()
    services.build_dataset_from_traces(traces=Trace.objects.filter(pk=trace.pk), dataset_name="from-mlflow")
    [row] = EvaluationRunTrace.objects.filter(run=run)
    assert row.inputs_key == DatasetRecord.objects.get().inputs_key
    EvaluationRunTrace.objects.update(inputs_key="")
    import_mlflow_runs()  # importing again fills keys the rows lack
    assert EvaluationRunTrace.objects.get().inputs_key == row.inputs_key


def test_compare_runs_runs_a_fixed_number_of_queries(versions: TwoVersions, django_assert_num_queries: Any) -> None:
    with django_assert_num_queries(2):
        comparison = compare_runs(versions.v1, versions.v2)
    with django_assert_num_queries(2):
        load_details(comparison.examples)
