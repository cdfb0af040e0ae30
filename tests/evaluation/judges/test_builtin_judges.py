"""MLflow's built-in judges over real stored traces, through start_evaluation_run and execute_run."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from evaluation.models import EvaluationRun
from evaluation.runs import RunInputError, execute_run, of_run, run_errors, start_evaluation_run
from evaluation.scorers.catalogue import load_catalogue
from tests.evaluation.judges.conftest import MODEL, FakeJudgeServer, Reply, Request, verdict
from tests.factories import make_assessment, make_experiment
from traces.models import Assessment, Span, Trace

RAG = "rag_retriever_dict_input.json"  # question, a RETRIEVER span with two documents, a string answer
CHAT = "chat_messages_input.json"  # chat messages in, a chat completion out
QUESTION = "What does MLflow Tracing record?"
DOCUMENTS = ("MLflow Tracing records the inputs, outputs and metadata of each step.", "Assessments attach feedback")
ANSWER = "MLflow Tracing records inputs, outputs and metadata of each step; assessments attach feedback."
JUDGES = (
    "Guidelines",
    "ExpectationsGuidelines",
    "Correctness",
    "RelevanceToQuery",
    "Safety",
    "RetrievalGroundedness",
    "RetrievalRelevance",
    "RetrievalSufficiency",
)


def _expect(trace: Trace, name: str, value: Any) -> None:
    make_assessment(trace, name, value, kind="expectation", source_type="HUMAN", source_id="ann")


@pytest.fixture
def rag(import_sample: Callable[..., Trace]) -> Trace:
    trace = import_sample(RAG, experiment=make_experiment("Judged"))
    trace.assessments.filter(kind="expectation").delete()  # the sample has both; Correctness takes one of them
    _expect(trace, "expected_facts", ["inputs, outputs and metadata"])
    _expect(trace, "guidelines", ["Mention assessments by name"])
    return trace


def _run(*scorers: str, experiment: str = "Judged") -> EvaluationRun:
    run = start_evaluation_run(scorer_names=list(scorers), filter_string="", experiment=experiment, enqueue=False)
    finished = execute_run(run.pk)
    assert finished is not None and finished.status == "finished", finished and finished.error
    return finished


def _feedback(run: EvaluationRun) -> list[Assessment]:
    return list(of_run(run).order_by("name", "id"))


def test_every_builtin_judge_is_in_the_catalogue_under_mlflows_name(db: None, judge_server: FakeJudgeServer) -> None:
    judges = load_catalogue().judges
    assert tuple(judges) == JUDGES
    correctness = judges["Correctness"]
    assert correctness.is_judge and correctness.available and correctness.feedback_name == "correctness"
    assert correctness.scorer.model == f"openai:/{MODEL}" and correctness.digest.startswith("sha256:")
    assert judges["Guidelines"].unavailable.startswith("no guidelines are configured")
    assert judges["RetrievalRelevance"].takes_trace and not judges["Safety"].takes_trace
    assert load_catalogue().get("relevance_to_query").name == "RelevanceToQuery"  # MLflow's scorer name too


def test_correctness_reads_expected_facts_and_stores_llm_judge_feedback(
    judge_server: FakeJudgeServer, rag: Trace
) -> None:
    judge_server.default = verdict("yes", "The response is correct.", tokens=(321, 45))
    run = _run("Correctness")
    (request,) = judge_server.judged()
    assert QUESTION in request.prompt and "inputs, outputs and metadata" in request.prompt and ANSWER in request.prompt
    (feedback,) = _feedback(run)
    assert (feedback.name, feedback.value, feedback.rationale) == ("correctness", "yes", "The response is correct.")
    assert (feedback.source_type, feedback.source_id) == ("LLM_JUDGE", f"openai:/{MODEL}")
    assert feedback.metadata["mlflow.assessment.judgeInputTokens"] == "321"
    assert feedback.metadata["mlflow.assessment.judgeOutputTokens"] == "45"
    assert feedback.metadata["mlflow.assessment.scorerName"] == "Correctness"
    assert feedback.error is None and run.metrics == {"correctness/mean": 1.0}


def test_correctness_with_both_expected_response_and_facts_judges_on_the_facts(
    judge_server: FakeJudgeServer, rag: Trace
) -> None:
    # MLflow refuses both ("Only one of expected_response or expected_facts should be provided"); experts give both
    _expect(rag, "expected_response", "It records everything about the weather.")
    judge_server.default = verdict("yes", "The facts are there.")
    run = _run("Correctness")
    assert run_errors(run) == {}
    (prompt,) = [request.prompt for request in judge_server.judged()]
    assert "inputs, outputs and metadata" in prompt and "about the weather" not in prompt
    (feedback,) = _feedback(run)
    assert (feedback.value, feedback.error) == ("yes", None)


def test_expectations_guidelines_reads_the_traces_guidelines(judge_server: FakeJudgeServer, rag: Trace) -> None:
    judge_server.default = verdict("no", "Assessments are not named.")
    run = _run("ExpectationsGuidelines")
    (request,) = judge_server.judged()
    assert "Mention assessments by name" in request.prompt and QUESTION in request.prompt
    (feedback,) = _feedback(run)
    assert (feedback.name, feedback.value) == ("expectations_guidelines", "no")
    assert run.metrics == {"expectations_guidelines/mean": 0.0}


def test_guidelines_gives_one_feedback_per_named_guideline(
    judge_server: FakeJudgeServer, rag: Trace, settings: Any
) -> None:
    settings.JUDGE_GUIDELINES = {
        "follows_instructions": ["The response must answer the question asked."],
        "concise_communication": ["The response must be concise.", "No more than three sentences."],
    }

    def by_guideline(request: Request) -> Reply:
        return verdict("no" if "concise" in request.prompt else "yes", "Checked.")

    judge_server.default = by_guideline
    run = _run("Guidelines")
    prompts = [r.prompt for r in judge_server.judged()]
    assert len(prompts) == 2
    assert any("No more than three sentences." in p and "The response must be concise." in p for p in prompts)
    assert all(QUESTION in p and ANSWER in p for p in prompts)
    values = {f.name: f.value for f in _feedback(run)}
    assert values == {"follows_instructions": "yes", "concise_communication": "no"}
    assert run.metrics == {"concise_communication/mean": 0.0, "follows_instructions/mean": 1.0}


def test_relevance_and_safety_read_the_chat_traces_question_and_answer(
    judge_server: FakeJudgeServer, import_sample: Callable[..., Trace]
) -> None:
    import_sample(CHAT, experiment=make_experiment("Chats"))
    run = _run("RelevanceToQuery", "Safety", experiment="Chats")
    prompts = [r.prompt for r in judge_server.judged()]
    assert len(prompts) == 2
    assert any("Yes, in MLflow." in p and ANSWER in p for p in prompts)  # relevance: the conversation and answer
    assert all(ANSWER in p for p in prompts)
    assert {f.name: f.value for f in _feedback(run)} == {"relevance_to_query": "yes", "safety": "yes"}


def test_retrieval_judges_read_the_retriever_span_and_keep_its_span_id(
    judge_server: FakeJudgeServer, rag: Trace
) -> None:
    run = _run("RetrievalGroundedness", "RetrievalRelevance", "RetrievalSufficiency")
    retriever = Span.objects.get(trace=rag, span_type="RETRIEVER").span_id
    prompts = [r.prompt for r in judge_server.judged()]
    assert len(prompts) == 1 + 2 + 1  # relevance: one request per document
    assert all(DOCUMENTS[0] in p or DOCUMENTS[1] in p for p in prompts)
    assert sum("inputs, outputs and metadata" in p for p in prompts) >= 1  # sufficiency reads the expected facts
    feedback = _feedback(run)
    names = sorted(f.name for f in feedback)
    assert names == [
        "retrieval_groundedness",
        "retrieval_relevance",
        "retrieval_relevance",
        "retrieval_relevance/precision",
        "retrieval_sufficiency",
    ]
    assert {f.span_id for f in feedback} == {retriever}
    chunks = sorted(f.metadata["chunk_index"] for f in feedback if f.name == "retrieval_relevance")
    assert chunks == ["0", "1"]
    assert all(f.source_type == "LLM_JUDGE" for f in feedback)
    assert run.metrics["retrieval_relevance/precision/mean"] == 1.0


def test_a_retrieval_judge_on_a_trace_without_retriever_gives_an_error_feedback(
    judge_server: FakeJudgeServer, import_sample: Callable[..., Trace]
) -> None:
    import_sample("nested_tool_spans.json", experiment=make_experiment("Tools"))  # no RETRIEVER span
    run = _run("RetrievalGroundedness", experiment="Tools")
    (feedback,) = _feedback(run)
    assert feedback.name == "retrieval_groundedness" and feedback.source_type == "LLM_JUDGE"
    assert "No retrieval context found" in feedback.error["error_message"]
    assert run_errors(run) == {"RetrievalGroundedness": 1}


def test_a_run_mixes_code_scorers_and_judges(judge_server: FakeJudgeServer, rag: Trace) -> None:
    run = _run("response_length", "Safety", "has_retrieved_documents")
    sources = {f.name: (f.source_type, f.source_id) for f in _feedback(run)}
    assert sources == {
        "response_length": ("CODE", "response_length"),
        "has_retrieved_documents": ("CODE", "has_retrieved_documents"),
        "safety": ("LLM_JUDGE", f"openai:/{MODEL}"),
    }
    assert run.metrics["safety/mean"] == 1.0 and "response_length/mean" in run.metrics
    assert [s["name"] for s in run.scorers] == ["response_length", "Safety", "has_retrieved_documents"]


def test_judges_run_concurrently_up_to_judge_max_concurrency(
    judge_server: FakeJudgeServer, settings: Any, import_sample: Callable[..., Trace]
) -> None:
    import threading

    from tests.factories import make_trace

    experiment = make_experiment("Many")
    for i in range(8):
        make_trace(experiment=experiment, question=f"Question {i}?")
    settings.JUDGE_MAX_CONCURRENCY = 4
    in_flight, most = [0], [0]
    lock = threading.Lock()

    def slow(request: Request) -> Reply:
        import time

        with lock:
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
        time.sleep(0.1)
        with lock:
            in_flight[0] -= 1
        return verdict()

    judge_server.default = slow
    _run("Safety", experiment="Many")
    assert most[0] == 4


def test_without_an_endpoint_judges_cannot_be_started_and_code_scorers_still_run(judge_env: Any, rag: Trace) -> None:
    with pytest.raises(RunInputError, match=r"judge 'Correctness' is not available: no judge endpoint is configured"):
        start_evaluation_run(scorer_names=["Correctness"], filter_string="", experiment="Judged", enqueue=False)
    assert not EvaluationRun.objects.exists()
    run = _run("response_length")
    assert run.metrics["response_length/mean"] > 0


def test_guidelines_without_guidelines_cannot_be_started(judge_server: FakeJudgeServer, rag: Trace) -> None:
    with pytest.raises(RunInputError, match=r"no guidelines are configured: set JUDGE_GUIDELINES"):
        start_evaluation_run(scorer_names=["Guidelines"], filter_string="", experiment="Judged", enqueue=False)


def test_a_run_whose_endpoint_went_away_before_it_ran_fails_with_the_reason(
    judge_server: FakeJudgeServer, rag: Trace, settings: Any
) -> None:
    run = start_evaluation_run(scorer_names=["Safety"], filter_string="", experiment="Judged", enqueue=False)
    settings.JUDGE_BASE_URL = ""
    finished = execute_run(run.pk)
    assert finished.status == "failed" and "no judge endpoint is configured" in finished.error


def test_the_judges_version_is_recorded_on_the_run(judge_server: FakeJudgeServer, rag: Trace) -> None:
    run = _run("Correctness")
    (version,) = run.scorers
    assert version["name"] == "Correctness" and version["module"] == "mlflow.genai.scorers"
    assert version["digest"].startswith("sha256:") and json.dumps(version).find("sk-") == -1


def test_the_evaluate_command_runs_judges_and_counts_their_errors(
    judge_server: FakeJudgeServer, rag: Trace, import_sample: Callable[..., Trace]
) -> None:
    from io import StringIO

    from django.core.management import call_command

    import_sample("nested_tool_spans.json", experiment=make_experiment("Judged"))  # no RETRIEVER span
    out = StringIO()
    call_command(
        "evaluate", "--filter", "", "--experiment", "Judged", "--scorer", "Safety", "RetrievalGroundedness", stdout=out
    )
    text = out.getvalue()
    assert "finished, 2 of 2 traces" in text and "safety/mean" in text and "retrieval_groundedness/mean" in text
    assert "RetrievalGroundedness: 1 traces with an error" in text


def test_a_judges_failures_are_filtered_on_the_run_page_and_judges_are_offered_to_start(
    judge_server: FakeJudgeServer, rag: Trace, admin_client: Any
) -> None:
    judge_server.default = verdict("no", "It misses the expected fact.")
    run = _run("Correctness", "response_length")
    assert run_errors(run) == {}
    page = admin_client.get(f"/datasets/runs/{run.pk}/?failed=Correctness")
    assert page.status_code == 200
    assert rag.trace_id in page.content.decode() and "It misses the expected fact." in page.content.decode()
    assert "correctness" in page.content.decode()  # the judge's Feedback name is a results column
    start = admin_client.get("/datasets/runs/start/")
    assert 'value="Correctness"' in start.content.decode()
