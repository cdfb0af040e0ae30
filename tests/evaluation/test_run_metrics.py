"""Run metrics as MLflow computes them, checked by hand and against MLflow's own aggregation."""

from __future__ import annotations

import pytest

from evaluation.metrics import aggregate, as_number, compute_metrics


def test_values_count_as_mlflow_counts_them() -> None:
    assert as_number(True) == 1.0 and as_number(False) == 0.0
    assert as_number("yes") == 1.0 and as_number("No") == 0.0 and as_number("YES") == 1.0
    assert as_number(3) == 3.0 and as_number(0.25) == 0.25
    assert as_number("maybe") is None and as_number(["yes"]) is None and as_number(None) is None


def test_mean_is_the_default_and_names_are_name_slash_aggregation() -> None:
    feedback = [("correct", True), ("correct", False), ("correct", "yes"), ("correct", "no"), ("tone", "friendly")]
    assert compute_metrics(feedback) == {"correct/mean": 0.5}


def test_every_aggregation_by_hand() -> None:
    values = [1, 2, 3, 4, 10]
    metrics = compute_metrics(
        [("words", v) for v in values], {"words": ["min", "max", "mean", "median", "variance", "p90"]}
    )
    # mean 4; deviations -3 -2 -1 0 6 -> squares 9 4 1 0 36 = 50 / 5 = 10; p90: position 3.6 -> 4 + 0.6 * 6 = 7.6
    assert metrics == {
        "words/min": 1.0,
        "words/max": 10.0,
        "words/mean": 4.0,
        "words/median": 3.0,
        "words/variance": 10.0,
        "words/p90": pytest.approx(7.6),
    }
    assert aggregate([1.0, 2.0], "median") == 1.5


def test_same_numbers_as_mlflows_aggregation() -> None:
    from mlflow.genai.scorers.aggregation import _compute_aggregations

    values = [0.0, 1.0, 1.0, 0.5, 0.25, 7.0, 3.0]
    names = ["min", "max", "mean", "median", "variance", "p90"]
    expected = _compute_aggregations(values, names)
    got = compute_metrics([("s", v) for v in values], {"s": names})
    assert got == {f"s/{name}": pytest.approx(float(expected[name])) for name in names}


def test_names_with_only_excluded_values_have_no_metric() -> None:
    assert compute_metrics([("tone", "friendly"), ("tone", None)]) == {}


def test_an_unknown_aggregation_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown aggregation 'p99'"):
        compute_metrics([("s", 1)], {"s": ["p99"]})


def test_a_custom_aggregation_function_is_named_after_it_and_a_failing_one_is_left_out() -> None:
    def spread(values: list[float]) -> float:
        return max(values) - min(values)

    def broken(values: list[float]) -> float:
        raise RuntimeError("no")

    metrics = compute_metrics([("s", 1), ("s", 4)], {"s": ["mean", spread, broken]})
    assert metrics == {"s/mean": 2.5, "s/spread": 3.0}
