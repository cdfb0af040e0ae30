"""Predict runs: the app is called on each dataset record, MLflow tracing's spans are stored as one trace per call."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command

from evaluation import services
from evaluation.models import DatasetRecord, EvaluationDataset, EvaluationRun, EvaluationRunTrace
from evaluation.runs import RunInputError, execute_run, run_errors, start_evaluation_run
from tests.evaluation.predict_apps import apps
from tests.factories import make_experiment
from traces.models import Assessment, Experiment, Span, Trace

APPS = "tests.evaluation.predict_apps.apps"


@pytest.fixture(autouse=True)
def scorer_modules(settings: Any) -> None:
    settings.SCORER_MODULES = ["evaluation.example_scorers", "tests.evaluation.scorer_modules.shapes"]
    settings.SCORER_TIMEOUT_SECONDS = 5
    settings.PREDICT_TIMEOUT_SECONDS = 1


def _dataset(questions: list[str], name: str = "golden") -> EvaluationDataset:
    dataset = EvaluationDataset.objects.create(name=name)
    records = [
        {
            "inputs": {"question": q},
            "expectations": {"expected_facts": [q.split()[-1]]},
            "source": {"source_type": "HUMAN"},
        }
        for q in questions
    ]
    services.merge_records(dataset=dataset, records=records)
    return dataset


def _run(predict: str, dataset: str = "golden", **kwargs: Any) -> EvaluationRun:
    run = start_evaluation_run(
        scorer_names=kwargs.pop("scorers", ["response_length", "mentions_expected_fact"]),
        dataset=dataset,
        predict_fn=predict,
        enqueue=False,
        **kwargs,
    )
    finished = execute_run(run.pk)
    assert finished is not None
    return finished


def _run_traces(run: EvaluationRun) -> list[Trace]:
    pks = EvaluationRunTrace.objects.filter(run=run).order_by("record_id").values_list("trace_id", flat=True)
    by_pk = Trace.objects.in_bulk(list(pks))
    return [by_pk[pk] for pk in pks]


def test_a_traced_app_gives_one_trace_per_record_with_its_child_spans_linked_to_run_and_record(db: None) -> None:
    dataset = _dataset(["what is aspirin", "what is ibuprofen", "what is paracetamol"])
    run = _run(f"{APPS}:rag_app", app_version="v2", name="rag v2")
    assert run.status == "finished", run.error
    assert run.source_kind == "predict" and run.progress_done == run.progress_total == 3
    traces = _run_traces(run)
    assert len(traces) == 3 and {t.experiment.name for t in traces} == {"Evaluation runs"}
    rows = EvaluationRunTrace.objects.filter(run=run).select_related("record")
    for row in rows:
        trace = row.trace
        assert row.record.dataset == dataset and row.scored
        assert trace.trace_metadata["mlflow.sourceRun"] == run.run_id
        assert trace.model_id == "v2"
        assert trace.tags["mlflow.evaluation.datasetRecordId"] == str(row.record_id)
        assert trace.state == "OK"
        spans = {s.name: s for s in Span.objects.filter(trace=trace)}
        assert set(spans) == {"rag_app", "retrieve"}
        assert spans["retrieve"].parent_id == spans["rag_app"].span_id
        assert spans["retrieve"].span_type == "RETRIEVER"
        assert spans["rag_app"].inputs == row.record.inputs
        assert spans["rag_app"].outputs == "Look it up (1 document)"
    # the answer never mentions the expected fact (the question's last word)
    assert run.metrics["mentions_expected_fact/mean"] == 0.0
    assert run.metrics["response_length/mean"] > 0


def test_an_untraced_app_is_wrapped_so_its_call_is_the_root_span(db: None) -> None:
    _dataset(["dose of aspirin"])
    run = _run(f"{APPS}.plain_app", experiment="Candidates")
    (trace,) = _run_traces(run)
    assert trace.experiment.name == "Candidates"
    root = Span.objects.get(trace=trace, parent_id="")
    assert root.name == "plain_app" and root.inputs == {"question": "dose of aspirin"}
    assert Span.objects.get(trace=trace, name="retrieve").parent_id == root.span_id
    assert run.metrics["mentions_expected_fact/mean"] == 1.0  # "aspirin" is in the answer


def test_an_app_that_raises_gives_an_error_trace_for_that_record_and_the_run_goes_on(db: None) -> None:
    _dataset(["fine question", "boom question", "another question"])
    run = _run(f"{APPS}:flaky_app")
    assert run.status == "finished" and run.progress_done == 3
    states = {t.request_preview: t.state for t in _run_traces(run)}
    assert sorted(states.values()) == ["ERROR", "OK", "OK"]
    failed = next(t for t in _run_traces(run) if t.state == "ERROR")
    root = Span.objects.get(trace=failed, parent_id="")
    assert root.status_code == "ERROR"
    assert any(e["name"] == "exception" and "cannot answer" in str(e["attributes"]) for e in root.events)
    # its scorers still ran (on no outputs): nothing is lost, the metrics count every record
    assert Assessment.objects.filter(trace=failed, source_type="CODE").count() == 2


def test_an_app_call_past_the_deadline_gives_an_error_trace_with_its_inputs(db: None) -> None:
    _dataset(["slow question", "quick question"])
    apps.RELEASE.clear()
    try:
        run = _run(f"{APPS}:hanging_app")
    finally:
        apps.RELEASE.set()
    assert run.status == "finished"
    traces = {t.state: t for t in _run_traces(run)}
    assert set(traces) == {"OK", "ERROR"}
    root = Span.objects.get(trace=traces["ERROR"], parent_id="")
    assert root.name == "hanging_app" and root.inputs == {"question": "slow question"}
    assert any("timed out after 1 seconds" in str(e["attributes"]) for e in root.events)


def test_a_killed_run_resumes_without_calling_the_app_again_for_stored_records(db: None) -> None:
    _dataset([f"question {i}" for i in range(5)])
    run = start_evaluation_run(
        scorer_names=["response_length"], dataset="golden", predict_fn=f"{APPS}:rag_app", enqueue=False
    )
    execute_run(run.pk)
    first = set(EvaluationRunTrace.objects.filter(run=run).values_list("trace_id", flat=True))
    EvaluationRun.objects.filter(pk=run.pk).update(status="running")  # as if the worker died before the end
    EvaluationRunTrace.objects.filter(run=run).update(scored=False)
    run = execute_run(run.pk)
    assert set(EvaluationRunTrace.objects.filter(run=run).values_list("trace_id", flat=True)) == first
    assert Trace.objects.filter(experiment__name="Evaluation runs").count() == 5
    assert Assessment.objects.filter(source_type="CODE").count() == 5  # no duplicates
    assert run.status == "finished"


def test_dict_outputs_reach_the_scorers(db: None) -> None:
    _dataset(["a question"])
    run = _run(f"{APPS}:dict_app", scorers=["response_length"])
    assert run.metrics["response_length/mean"] == len("Answer to a question")
    assert run_errors(run) == {}


def test_the_evaluate_command_runs_a_predict_function(db: None) -> None:
    _dataset(["what is aspirin", "what is ibuprofen"])
    out = StringIO()
    call_command(
        "evaluate",
        "--dataset",
        "golden",
        "--predict",
        f"{APPS}:plain_app",
        "--scorer",
        "mentions_expected_fact",
        "--name",
        "v1",
        stdout=out,
    )
    assert "finished, 2 of 2 traces" in out.getvalue()
    assert "mentions_expected_fact/mean  1" in out.getvalue()


@pytest.mark.parametrize(
    ("predict", "dataset", "message"),
    [
        (f"{APPS}:missing", "golden", "has no 'missing'"),
        (f"{APPS}:NOT_A_FUNCTION", "golden", "is not a function"),
        ("tests.evaluation.predict_apps.broken:app", "golden", "failed to import: ImportError"),
        ("no_such_module_here:app", "golden", "failed to import: ModuleNotFoundError"),
        ("nodots", "golden", "is not of the form module:function"),
        (f"{APPS}:rag_app", "nope", "no dataset named 'nope'"),
        (f"{APPS}:rag_app", None, "runs over a dataset"),
    ],
)
def test_bad_predict_runs_are_refused_before_anything_is_written(
    db: None, predict: str, dataset: str | None, message: str
) -> None:
    _dataset(["q"])
    with pytest.raises(RunInputError, match=message):
        start_evaluation_run(scorer_names=["response_length"], dataset=dataset, predict_fn=predict, enqueue=False)
    assert not EvaluationRun.objects.exists() and not Experiment.objects.filter(name="Evaluation runs").exists()


def test_records_whose_inputs_are_not_an_object_are_refused(db: None) -> None:
    dataset = EvaluationDataset.objects.create(name="golden")
    DatasetRecord.objects.create(dataset=dataset, inputs_key="x", inputs=["written", "by", "hand"])
    with pytest.raises(RunInputError, match="must be an object"):
        start_evaluation_run(scorer_names=["response_length"], dataset="golden", predict_fn=f"{APPS}:rag_app")
    assert not EvaluationRun.objects.exists()


def test_a_labeling_experiment_is_refused_as_the_destination(db: None) -> None:
    _dataset(["q"])
    make_experiment("Copies").__class__.objects.filter(name="Copies").update(kind="labeling")
    with pytest.raises(RunInputError, match="labeling session's copies"):
        start_evaluation_run(
            scorer_names=["response_length"], dataset="golden", predict_fn=f"{APPS}:rag_app", experiment="Copies"
        )


def test_the_command_prints_one_line_for_a_bad_predict_function(db: None) -> None:
    _dataset(["q"])
    err = StringIO()
    with pytest.raises(SystemExit) as exit_info:
        call_command(
            "evaluate", "--dataset", "golden", "--predict", f"{APPS}:missing", "--scorer", "response_length", stderr=err
        )
    assert exit_info.value.code == 1
    assert err.getvalue().strip().count("\n") == 0 and err.getvalue().startswith("error: predict function")
