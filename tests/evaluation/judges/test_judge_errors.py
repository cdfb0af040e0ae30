"""Every way a judge request fails becomes an error Feedback on its trace, and the run finishes."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from evaluation.models import EvaluationRun
from evaluation.runs import execute_run, of_run, run_errors, start_evaluation_run
from tests.evaluation.judges.conftest import (
    API_KEY,
    MODEL,
    FakeJudgeServer,
    Reply,
    answer,
    failure,
    free_port,
    silence,
    verdict,
)
from tests.factories import make_experiment
from traces.models import Assessment, Trace


@pytest.fixture
def traces(import_sample: Callable[..., Trace]) -> list[Trace]:
    experiment = make_experiment("Judged")
    return [import_sample(name, experiment=experiment) for name in ("rag_retriever_dict_input.json", "demo_agent.json")]


def _run(*scorers: str) -> EvaluationRun:
    run = start_evaluation_run(scorer_names=list(scorers), filter_string="", experiment="Judged", enqueue=False)
    finished = execute_run(run.pk)
    assert finished is not None and finished.status == "finished", finished and finished.error
    assert finished.progress_done == finished.progress_total == 2
    return finished


def _errors(run: EvaluationRun) -> list[dict[str, Any]]:
    return [a.error for a in of_run(run).order_by("id") if a.error]


@pytest.mark.parametrize(
    ("reply", "code", "words"),
    [
        (answer('{"result": "yes", "rationale": "trailing'), "PARSE_ERROR", "not a JSON object"),
        (answer("I think the answer is fine."), "PARSE_ERROR", "not a JSON object"),
        (answer('{"verdict": "yes"}'), "PARSE_ERROR", "cannot be read"),
        (Reply(body="upstream timeout <html>"), "PARSE_ERROR", "reply is not JSON"),
        (failure(500, "model crashed"), "HTTP_500", "HTTP 500 from the judge endpoint: model crashed"),
        (failure(503, "overloaded"), "HTTP_503", "overloaded"),
        (failure(429, "rate limited"), "HTTP_429", "rate limited"),
        (failure(404, "model judge-model does not exist"), "HTTP_404", "does not exist"),
        (failure(400, "messages: too long"), "HTTP_400", "too long"),
    ],
)
def test_each_failure_is_an_error_feedback_with_its_code(
    judge_server: FakeJudgeServer, traces: list[Trace], reply: Reply, code: str, words: str
) -> None:
    judge_server.default = reply
    run = _run("Safety")
    errors = _errors(run)
    assert len(errors) == 2 and {e["error_code"] for e in errors} == {code}
    assert all(words in e["error_message"] for e in errors)
    assert run_errors(run) == {"Safety": 2} and run.metrics == {}
    feedback = of_run(run).first()
    assert (feedback.name, feedback.source_type, feedback.source_id) == ("safety", "LLM_JUDGE", f"openai:/{MODEL}")


def test_retries_that_succeed_leave_no_error(judge_server: FakeJudgeServer, traces: list[Trace]) -> None:
    judge_server.then(failure(429, "slow down"), failure(502, "bad gateway"))
    run = _run("Safety")
    assert _errors(run) == [] and run.metrics == {"safety/mean": 1.0}
    assert len(judge_server.requests) == 4


def test_a_server_that_refuses_response_format_is_asked_again_without_it(
    judge_server: FakeJudgeServer, traces: list[Trace]
) -> None:
    def strict(request: Any) -> Reply:
        if "response_format" in request.body:
            return failure(400, "Invalid parameter: 'response_format' of type 'json_schema' is not supported")
        return verdict("yes", "Fine.")

    judge_server.default = strict
    run = _run("Safety")
    assert _errors(run) == [] and run.metrics == {"safety/mean": 1.0}
    assert sum("response_format" not in r.body for r in judge_server.requests) == 2


def test_silence_is_a_timeout_per_trace_and_the_run_ends_in_about_the_timeout(
    judge_server: FakeJudgeServer, traces: list[Trace]
) -> None:
    judge_server.default = silence(10)
    started = time.monotonic()
    run = _run("Safety", "RetrievalRelevance", "response_length")
    assert time.monotonic() - started < 3  # traces and judges in parallel; each judge call ≤ JUDGE_TIMEOUT_S (1 s)
    codes = {(a.name, a.error["error_code"]) for a in of_run(run) if a.error}
    assert ("safety", "TIMEOUT") in codes and ("retrieval_relevance", "TIMEOUT") in codes
    assert "response_length/mean" in run.metrics  # the code scorer is not held up
    message = next(a.error["error_message"] for a in of_run(run) if a.error)
    assert "within 1 s" in message and a_stack_is_not_kept(run)


def a_stack_is_not_kept(run: EvaluationRun) -> bool:
    return all(not a.error.get("stack_trace") for a in of_run(run) if a.error and a.error["error_code"] == "TIMEOUT")


def test_a_dead_endpoint_costs_little_per_call(judge_env: Any, traces: list[Trace]) -> None:
    judge_env.JUDGE_BASE_URL = f"http://127.0.0.1:{free_port()}/v1"
    judge_env.JUDGE_MODEL = MODEL
    started = time.monotonic()
    run = _run("Safety", "RelevanceToQuery")
    assert time.monotonic() - started < 3
    assert {e["error_code"] for e in _errors(run)} == {"CONNECTION_ERROR"} and len(_errors(run)) == 4


def test_the_api_key_is_never_stored_even_when_the_server_echoes_it(
    judge_server: FakeJudgeServer, traces: list[Trace]
) -> None:
    judge_server.default = failure(401, f"Incorrect API key provided: {API_KEY}. You can find your key at …")
    run = _run("Safety", "Correctness")
    assert {e["error_code"] for e in _errors(run)} >= {"HTTP_401"}
    assert "[redacted]" in _errors(run)[0]["error_message"]
    assert_key_nowhere_in_the_database()


def assert_key_nowhere_in_the_database() -> None:
    from django.apps import apps
    from django.core import serializers

    for model in apps.get_models():
        text = serializers.serialize("json", model.objects.all())
        assert API_KEY not in text, f"the judge API key is stored in {model._meta.label}"
    assert Assessment.objects.exists()


def test_the_api_key_is_never_logged_nor_exported(
    judge_server: FakeJudgeServer, traces: list[Trace], caplog: pytest.LogCaptureFixture, tmp_path: Any
) -> None:
    import logging

    from django.core.management import call_command

    judge_server.then(failure(400, f"response_format is not supported for key {API_KEY}"))
    judge_server.default = failure(403, f"key {API_KEY} may not use {MODEL}")
    with caplog.at_level(logging.DEBUG):
        run = _run("Safety", "RelevanceToQuery")
    assert {e["error_code"] for e in _errors(run)} == {"HTTP_403"}
    assert caplog.records and API_KEY not in caplog.text
    out = tmp_path / "traces.jsonl"
    call_command("export_traces", "--experiment", "Judged", "--output", str(out))
    exported = out.read_text()
    assert "HTTP 403 from the judge endpoint: key [redacted] may not use" in exported and API_KEY not in exported


def test_a_make_judge_in_a_scorer_module_runs_under_the_judge_deadline(
    judge_server: Any, settings: Any, import_sample: Any
) -> None:
    """Without our deadline MLflow retried a silent endpoint for minutes; here it is one JUDGE_TIMEOUT_S."""
    import time

    from evaluation.runs import execute_run, of_run, start_evaluation_run
    from evaluation.scorers.catalogue import load_catalogue
    from tests.evaluation.judges.conftest import silence, verdict
    from tests.factories import make_experiment

    settings.SCORER_MODULES = ["tests.evaluation.scorer_modules.module_judges"]
    assert load_catalogue().get("polite").is_judge
    import_sample("rag_retriever_dict_input.json", experiment=make_experiment("Module judges"))
    judge_server.default = silence(5)
    run = start_evaluation_run(scorer_names=["polite"], filter_string="", experiment="Module judges", enqueue=False)
    started = time.monotonic()
    run = execute_run(run.pk)
    assert time.monotonic() - started < 4
    (feedback,) = of_run(run)
    assert feedback.error["error_code"] == "TIMEOUT" and feedback.source_type == "LLM_JUDGE"
    judge_server.default = verdict("yes", "Polite enough.")
    again = start_evaluation_run(scorer_names=["polite"], filter_string="", experiment="Module judges", enqueue=False)
    (ok,) = of_run(execute_run(again.pk))
    assert (ok.name, ok.value, ok.rationale, ok.source_type) == ("polite", "yes", "Polite enough.", "LLM_JUDGE")
