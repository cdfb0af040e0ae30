"""``manage.py compare_runs A B``: the table, CSV and JSON, and one ``error:`` line for runs it cannot compare."""

from __future__ import annotations

import csv
import io
from io import StringIO
from typing import Any

import orjson
import pytest
from django.core.management import call_command

from evaluation.models import EvaluationRun
from tests.evaluation.comparison_fixtures import SCORER_MODULES, TwoVersions, make_two_versions


@pytest.fixture(autouse=True)
def scorer_modules(settings: Any) -> None:
    settings.SCORER_MODULES = SCORER_MODULES
    settings.SCORER_TIMEOUT_SECONDS = 5


@pytest.fixture
def versions(db: None) -> TwoVersions:
    return make_two_versions()


def _run(*args: str) -> str:
    out = StringIO()
    call_command("compare_runs", *args, stdout=out)
    return out.getvalue()


def test_the_table(versions: TwoVersions) -> None:
    text = _run("v1", versions.v2.run_id)  # a name and a run id
    assert f"A: v1 ({versions.v1.run_id})" in text and "Metrics (higher is better):" in text
    grounded = next(line for line in text.splitlines() if line.strip().startswith("grounded/mean"))
    assert grounded.split() == ["grounded/mean", "0.6", "0.8", "+0.2", "↑", "better"]
    assert "overall average (3 /mean)" in text
    assert "Examples: 5 in both runs (matched on their inputs), 1 only in A, 2 only in B" in text
    assert "answer_words  2 regressions, 1 improvements (of 5 compared)" in text
    assert "polite        1 regressions, 1 improvements (of 5 compared)" in text
    assert "Regressed examples (2):" in text
    regressed = text.split("Regressed examples (2):\n")[1].splitlines()
    assert sorted(" ".join(line.split()) for line in regressed) == [
        '{"question": "Q0"} answer_words 4 → 3',
        '{"question": "Q0"} polite yes → no',
        '{"question": "Q2"} answer_words 4 → 2',
        '{"question": "Q2"} grounded true → error: RuntimeError',
    ]


def test_csv_has_a_row_per_metric_and_per_changed_scorer(versions: TwoVersions) -> None:
    rows = list(csv.DictReader(io.StringIO(_run("v1", "v2", "--format", "csv"))))
    metrics = [r for r in rows if r["kind"] == "metric"]
    assert [r["name"] for r in metrics] == sorted(set(versions.v1.metrics) | set(versions.v2.metrics))
    [overall] = [r for r in rows if r["kind"] == "overall"]
    assert overall["direction"] in {"improved", "worse", "same"}
    changes = [r for r in rows if r["kind"] in ("regression", "improvement")]
    assert len(changes) == 7  # Q0: 2, Q2: 2, Q1: 3
    error_row = next(r for r in changes if r["name"] == "grounded" and r["kind"] == "regression")
    assert (error_row["a"], error_row["b"], error_row["b_error"]) == (
        "true",
        "error: RuntimeError",
        "grounding service down",
    )
    assert error_row["input_preview"] == '{"question": "Q2"}'
    assert error_row["a_trace_id"] == versions.traces["v1", "Q2"].trace_id
    polite = next(r for r in changes if r["name"] == "polite" and r["kind"] == "improvement")
    assert (polite["a"], polite["b"], polite["a_rationale"], polite["b_rationale"]) == (
        "no",
        "yes",
        "no please",
        "says please",
    )


def test_json_is_the_whole_comparison(versions: TwoVersions) -> None:
    data = orjson.loads(_run("v1", "v2", "--format", "json"))
    assert data["a"]["run_id"] == versions.v1.run_id and data["higher_is_better"] is True
    assert data["examples"] == {"matched": 5, "only_in_a": 1, "only_in_b": 2}
    assert {s["name"]: s["regressions"] for s in data["scorers"]} == {"answer_words": 2, "grounded": 1, "polite": 1}
    assert len(data["changed_examples"]) == 3
    first = data["changed_examples"][0]
    assert first["changes"][0]["change"] == "regression" and first["a"]["url"].startswith("/traces/tr-")
    assert data["overall_average"]["metrics"] == ["answer_words/mean", "grounded/mean", "polite/mean"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope", "v2"], "error: no evaluation run with the name or run id 'nope'"),
        (["v1", "v1"], "error: A and B are the same run; give two different runs"),
        (["v1", "going"], "is running: only finished runs can be compared"),
        (["twice", "v1"], "error: 2 runs are named 'twice'; give a run id: "),
    ],
)
def test_runs_it_cannot_compare(versions: TwoVersions, capsys: Any, args: list[str], message: str) -> None:
    EvaluationRun.objects.create(name="going", source_kind="filter", status="running")
    first = EvaluationRun.objects.create(name="twice", source_kind="filter", status="finished")
    second = EvaluationRun.objects.create(name="twice", source_kind="filter", status="finished")
    err = StringIO()
    with pytest.raises(SystemExit) as exit_info:
        call_command("compare_runs", *args, stdout=StringIO(), stderr=err)
    assert exit_info.value.code == 1
    [line] = err.getvalue().splitlines()
    assert line.startswith("error: ") and message in line
    if args[0] == "twice":
        assert first.run_id in line and second.run_id in line
