"""The demo's evaluation: two app versions' traces for the same 20 inputs, scored, with regressions and improvements."""

from __future__ import annotations

from io import StringIO
from typing import Any

from django.core.management import call_command

from evaluation.comparison import compare_runs
from evaluation.demo import DEMO_DATASET, DEMO_SCORERS
from evaluation.models import EvaluationDataset, EvaluationRun, EvaluationRunTrace
from evaluation.outcomes import change
from evaluation.runs import of_run
from traces.models import Trace


def _values(run: EvaluationRun, name: str) -> dict[int, Any]:
    """Per dataset record: the value the run's scorer gave."""
    records = dict(EvaluationRunTrace.objects.filter(run=run).values_list("trace_id", "record_id"))
    return {records[a.trace_id]: a.value for a in of_run(run).filter(name=name)}


def test_seed_demo_runs_two_versions_on_the_same_inputs_with_regressions_and_improvements(db: None) -> None:
    out = StringIO()
    call_command("seed_demo", stdout=out)
    assert f"Dataset “{DEMO_DATASET}”: 20 records" in out.getvalue()
    v1, v2 = EvaluationRun.objects.filter(source_kind="predict").order_by("name")
    assert (v1.app_version, v2.app_version) == ("demo-v1", "demo-v2")
    assert v1.status == v2.status == "finished" and v1.progress_done == v2.progress_done == 20
    assert [s["name"] for s in v1.scorers] == DEMO_SCORERS
    assert set(EvaluationRunTrace.objects.filter(run=v1).values_list("record_id", flat=True)) == set(
        EvaluationRunTrace.objects.filter(run=v2).values_list("record_id", flat=True)
    )
    assert Trace.objects.filter(model_id="demo-v2").count() == 20
    before, after = _values(v1, "mentions_expected_fact"), _values(v2, "mentions_expected_fact")
    changes = [change(before[record], after[record]) for record in before]
    assert changes.count(-1) == 3 and changes.count(1) == 4
    comparison = compare_runs(v1, v2)  # what the comparison page and compare_runs show
    assert comparison.matched == 20 and comparison.only_in_a == comparison.only_in_b == 0
    counts = {c.name: (c.regressions, c.improvements) for c in comparison.scorers}
    assert counts["mentions_expected_fact"] == (3, 4)
    assert v1.metrics["has_retrieved_documents/mean"] == 1.0
    assert v1.metrics["mentions_expected_fact/mean"] == 0.75 and v2.metrics["mentions_expected_fact/mean"] == 0.8

    call_command("seed_demo", stdout=StringIO())  # again: the same dataset and runs
    assert EvaluationRun.objects.count() == 2 and EvaluationDataset.objects.get(name=DEMO_DATASET).records.count() == 20
    assert Trace.objects.filter(model_id__in=["demo-v1", "demo-v2"]).count() == 40


def test_the_demo_is_skipped_with_a_warning_when_the_example_scorers_are_not_configured(
    db: None, settings: Any
) -> None:
    settings.SCORER_MODULES = ["tests.evaluation.scorer_modules.shapes"]
    out, err = StringIO(), StringIO()
    call_command("seed_demo", stdout=out, stderr=err)
    assert "warning: the evaluation demo was skipped: unknown scorer 'response_length'" in err.getvalue()
    assert not EvaluationRun.objects.exists()


def test_the_second_demo_runs_page_links_to_its_comparison_with_the_first(admin_client: Any) -> None:
    from evaluation.demo import seed_evaluation_demo

    v1, v2 = seed_evaluation_demo().runs
    page = admin_client.get(f"/datasets/runs/{v2.pk}/").content.decode()
    assert f"/datasets/runs/compare/?a={v1.pk}&amp;b={v2.pk}" in page
    assert "/datasets/runs/compare/?a=" not in admin_client.get(f"/datasets/runs/{v1.pk}/").content.decode()
    assert "Compare two runs" in admin_client.get("/datasets/runs/").content.decode()
    comparison = admin_client.get(f"/datasets/runs/compare/?a={v1.pk}&b={v2.pk}").content.decode()
    assert "3 regressed" in comparison and "improved" in comparison
