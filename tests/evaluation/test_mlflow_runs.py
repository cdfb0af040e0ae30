"""Traces from a real ``mlflow.genai.evaluate`` run show up as an evaluation run, metrics recomputed."""

from __future__ import annotations

from collections.abc import Callable

from evaluation.mlflow_runs import import_mlflow_runs
from evaluation.models import EvaluationRunTrace
from traces.models import Trace


def test_a_real_mlflow_evaluate_trace_becomes_a_finished_run(import_sample: Callable[..., Trace]) -> None:
    trace = import_sample("eval_trace_with_scorer_feedback.json")
    import_sample("demo_rag_pipeline.json")  # no run: not part of any
    [run] = import_mlflow_runs()
    assert run.run_id == "916ca3d391a34bfc8c5375995e30a0c2"
    assert run.source_kind == "mlflow" and run.status == "finished" and run.progress_total == 1
    assert list(EvaluationRunTrace.objects.filter(run=run).values_list("trace_id", flat=True)) == [trace.pk]
    # exact "no" -> 0, not_empty True -> 1, length 12.0, has_retriever False -> 0, latency_ok True -> 1
    assert run.metrics == {
        "exact/mean": 0.0,
        "has_retriever/mean": 0.0,
        "latency_ok/mean": 1.0,
        "length/mean": 12.0,
        "not_empty/mean": 1.0,
    }
    assert {s["name"] for s in run.scorers} >= {"exact", "not_empty", "length"}
    assert next(s for s in run.scorers if s["name"] == "exact")["digest"].startswith("sha256:27d310dd")
    [again] = import_mlflow_runs()
    assert again.pk == run.pk and EvaluationRunTrace.objects.filter(run=run).count() == 1


def test_import_traces_of_an_mlflow_evaluate_run_shows_the_run(db: None) -> None:
    from io import StringIO

    from django.core.management import call_command

    from evaluation.models import EvaluationRun
    from tests.conftest import DATA_DIR

    out = StringIO()
    call_command("import_traces", str(DATA_DIR / "eval_trace_with_scorer_feedback.json"), stdout=out)
    assert "1 mlflow.genai.evaluate run(s) found" in out.getvalue()
    run = EvaluationRun.objects.get(run_id="916ca3d391a34bfc8c5375995e30a0c2")
    assert run.source_kind == "mlflow" and run.metrics["exact/mean"] == 0.0


def test_a_predict_run_of_ours_is_not_taken_for_an_mlflow_run(db: None, settings: object) -> None:
    from evaluation import services
    from evaluation.models import EvaluationDataset, EvaluationRun
    from evaluation.runs import execute_run, start_evaluation_run

    dataset = EvaluationDataset.objects.create(name="golden")
    services.merge_records(dataset=dataset, records=[{"inputs": {"question": "q"}}])
    run = start_evaluation_run(
        scorer_names=["response_length"],
        dataset="golden",
        predict_fn="tests.evaluation.predict_apps.apps:rag_app",
        enqueue=False,
    )
    execute_run(run.pk)
    assert Trace.objects.with_metadata("mlflow.sourceRun").count() == 1
    assert import_mlflow_runs() == []
    run.refresh_from_db()
    assert run.source_kind == "predict" and EvaluationRun.objects.count() == 1
