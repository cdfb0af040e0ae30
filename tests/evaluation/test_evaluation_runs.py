"""Evaluation runs: what they run on, the background task, metrics, resume, cancel, and the evaluate command."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command

from evaluation.models import DatasetRecord, EvaluationDataset, EvaluationRun, EvaluationRunTrace, inputs_key
from evaluation.runs import RunInputError, cancel_evaluation_run, execute_run, start_evaluation_run
from labeling import services as labeling_services
from labeling.models import LabelSchema
from tests.factories import make_assessment, make_experiment, make_trace
from traces.models import Assessment

SHAPES = "tests.evaluation.scorer_modules.shapes"
FAILING = "tests.evaluation.scorer_modules.failing"


@pytest.fixture(autouse=True)
def scorer_modules(settings: Any) -> None:
    settings.SCORER_MODULES = ["evaluation.example_scorers", SHAPES, FAILING]
    settings.SCORER_TIMEOUT_SECONDS = 1


def _traces(n: int = 4, experiment: str = "Support") -> list[Any]:
    exp = make_experiment(experiment)
    return [make_trace(experiment=exp, answer=f"answer {'word ' * i}".strip(), model_id="m-1") for i in range(n)]


def _run_code(run: EvaluationRun) -> dict[str, Any]:
    return {
        a.name: a.value
        for a in Assessment.objects.filter(source_type="CODE", metadata__isnull=False)
        if a.metadata.get("mlflow.assessment.sourceRunId") == run.run_id
    }


def test_a_filter_run_through_the_task_backend_scores_every_trace_and_stores_metrics(
    db: None, admin_user: Any, django_capture_on_commit_callbacks: Any
) -> None:
    traces = _traces(4)
    _traces(2, experiment="Other")
    with django_capture_on_commit_callbacks(execute=True):
        run = start_evaluation_run(
            scorer_names=["answer_words", "default_named"],
            filter_string="",
            experiment="Support",
            name="v1",
            started_by=admin_user,
        )
    run.refresh_from_db()
    assert run.status == "finished" and run.progress_done == run.progress_total == 4
    assert run.started_by == admin_user and run.app_version == "m-1" and run.source_kind == "filter"
    assert [s["name"] for s in run.scorers] == ["answer_words", "default_named"]
    assert all(s["digest"].startswith("sha256:") for s in run.scorers)
    # answers have 1, 2, 3, 4 words
    assert run.metrics["answer_words/mean"] == 2.5
    assert run.metrics["answer_words/min"] == 1.0 and run.metrics["answer_words/p90"] == pytest.approx(3.7)
    assert run.metrics["default_named/mean"] == 1.0
    assert Assessment.objects.filter(trace__in=traces, source_type="CODE").count() == 8
    assert run.started_at <= run.finished_at


def test_custom_aggregations_reach_the_run_metrics(db: None) -> None:
    _traces(3)
    run = start_evaluation_run(scorer_names=["answer_chars"], filter_string="", experiment="Support", enqueue=False)
    run = execute_run(run.pk)
    assert set(run.metrics) == {"answer_chars/mean", "answer_chars/spread"}
    assert run.metrics["answer_chars/spread"] == 10.0  # "answer" (6 characters) .. "answer word word" (16)


def test_a_session_run_scores_the_sessions_copies(db: None) -> None:
    traces = _traces(3)
    schema = LabelSchema.objects.get(name="expected_response")
    session = labeling_services.create_labeling_session(name="Cardio", schemas=[schema], reviewers=[])
    labeling_services.add_traces_to_session(session=session, trace_ids=[t.trace_id for t in traces])
    run = start_evaluation_run(scorer_names=["keyword"], session="Cardio", enqueue=False)
    run = execute_run(run.pk)
    assert run.status == "finished" and run.progress_done == 3 and run.metrics == {"keyword/mean": 0.0}
    copies = set(session.items.values_list("trace_id", flat=True))
    assert set(EvaluationRunTrace.objects.filter(run=run).values_list("trace_id", flat=True)) == copies


def test_a_dataset_run_uses_each_records_expectations(db: None) -> None:
    first, second = _traces(2)
    dataset = EvaluationDataset.objects.create(name="golden")
    for trace, expected in ((first, "answer"), (second, "something else")):
        DatasetRecord.objects.create(
            dataset=dataset,
            inputs_key=inputs_key({"q": trace.trace_id}),
            inputs={"q": trace.trace_id},
            expectations={"expected_response": expected},
            source_data={"trace_id": trace.trace_id},
        )
    DatasetRecord.objects.create(
        dataset=dataset, inputs_key=inputs_key({"q": 3}), inputs={"q": 3}, source_data={"trace_id": "tr-missing"}
    )
    run = execute_run(start_evaluation_run(scorer_names=["exact_answer"], dataset="golden", enqueue=False).pk)
    assert run.progress_total == 2 and run.metrics == {"exact_answer/mean": 0.5}
    assert EvaluationRunTrace.objects.filter(run=run, record__isnull=False).count() == 2
    by_trace = {a.trace_id: a.value for a in Assessment.objects.filter(source_id="exact_answer")}
    assert by_trace == {first.pk: True, second.pk: False}


def test_failing_scorers_give_error_feedback_and_the_run_finishes(db: None) -> None:
    _traces(2)
    out = StringIO()
    call_command("evaluate", "--filter", "", "--experiment", "Support", "--scorer", "raises", "fine", stdout=out)
    text = out.getvalue()
    assert "finished, 2 of 2 traces" in text and "fine/mean" in text
    assert "raises: 2 traces with an error" in text
    errors = Assessment.objects.filter(source_id="raises")
    assert errors.count() == 2 and all(a.error["error_code"] == "ZeroDivisionError" for a in errors)


def test_evaluate_command_prints_the_metrics(db: None) -> None:
    _traces(3)
    out = StringIO()
    call_command(
        "evaluate", "--filter", "execution_time_ms > 10", "--experiment", "Support", "--scorer", "answer_words",
        "--name", "v2", stdout=out,
    )  # fmt: skip
    text = out.getvalue()
    assert "Run 'v2'" in text and "finished, 3 of 3 traces" in text
    assert "answer_words/mean" in text and "answer_words/variance" in text
    assert EvaluationRun.objects.get(name="v2").metrics["answer_words/max"] == 3.0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--session", "Nope", "--scorer", "fine"], "error: no labeling session named 'Nope'"),
        (["--dataset", "Nope", "--scorer", "fine"], "error: no dataset named 'Nope'"),
        (["--filter", "x", "--scorer", "fine"], "error: a filter string needs an experiment (--experiment NAME)"),
        (["--filter", "", "--experiment", "Nope", "--scorer", "fine"], "error: no experiment named 'Nope'"),
        (
            ["--filter", "tags.env =", "--experiment", "Support", "--scorer", "fine"],
            "error: bad filter string: position",
        ),
        (["--filter", "name = 'zzz'", "--experiment", "Support", "--scorer", "fine"], "matches the filter"),
        (["--filter", "", "--experiment", "Support", "--scorer", "nope"], "error: unknown scorer 'nope'; known"),
    ],
)
def test_evaluate_command_bad_input_is_one_line_and_exit_1(db: None, args: list[str], message: str) -> None:
    _traces(1)
    err = StringIO()
    with pytest.raises(SystemExit) as exited:
        call_command("evaluate", *args, stderr=err)
    assert exited.value.code == 1
    assert err.getvalue().startswith(message[: message.index("position") if "position" in message else None]) or (
        message in err.getvalue()
    )
    assert len(err.getvalue().strip().splitlines()) == 1
    assert EvaluationRun.objects.count() == 0


def test_a_broken_scorer_module_is_a_one_line_error(db: None, settings: Any) -> None:
    settings.SCORER_MODULES = ["tests.evaluation.scorer_modules.broken"]
    _traces(1)
    err = StringIO()
    with pytest.raises(SystemExit):
        call_command("evaluate", "--filter", "", "--experiment", "Support", "--scorer", "fine", stderr=err)
    assert err.getvalue().strip() == (
        "error: scorer module 'tests.evaluation.scorer_modules.broken' failed to import: "
        "RuntimeError: missing API key for the scorer service"
    )


def test_a_resumed_run_scores_only_what_is_left_and_counts_each_trace_once(db: None) -> None:
    traces = _traces(3)
    run = start_evaluation_run(scorer_names=["default_named"], filter_string="", experiment="Support", enqueue=False)
    first = EvaluationRunTrace.objects.filter(run=run).order_by("id").first()
    # a worker killed after writing one trace's results but before marking it: it is scored again, no duplicates
    from evaluation.scorers.catalogue import load_catalogue
    from evaluation.scorers.runner import build_items, new_pool, score_items, write_results

    scorers = load_catalogue().pick(["default_named"])
    items = build_items([first.trace_id], with_trace=False)
    with new_pool() as pool:
        write_results(items, score_items(items, scorers, run_id=run.run_id, pool=pool), run_id=run.run_id)
    run = execute_run(run.pk)
    assert run.status == "finished" and run.progress_done == 3
    assert Assessment.objects.filter(trace__in=traces, source_id="default_named").count() == 3


def test_a_cancelled_run_stops_and_stays_cancelled(db: None) -> None:
    _traces(2)
    run = start_evaluation_run(scorer_names=["fine"], filter_string="", experiment="Support", enqueue=False)
    assert cancel_evaluation_run(run=run)
    run = execute_run(run.pk)
    assert run.status == "cancelled" and run.progress_done == 0
    assert not cancel_evaluation_run(run=run)


def test_human_assessments_are_untouched_by_a_run(db: None) -> None:
    [trace] = _traces(1)
    human = make_assessment(trace, "fine", False, source_type="HUMAN", source_id="ana")
    execute_run(start_evaluation_run(scorer_names=["fine"], filter_string="", experiment="Support", enqueue=False).pk)
    human.refresh_from_db()
    assert human.valid and human.value is False
    assert Assessment.objects.filter(trace=trace, name="fine").count() == 2


def test_start_checks_everything_before_writing(db: None) -> None:
    _traces(1)
    with pytest.raises(RunInputError, match="exactly one"):
        start_evaluation_run(scorer_names=["fine"], session="a", dataset="b")
    with pytest.raises(RunInputError, match="at least one scorer"):
        start_evaluation_run(scorer_names=[], filter_string="", experiment="Support")
    assert EvaluationRun.objects.count() == 0
