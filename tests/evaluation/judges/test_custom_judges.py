"""Custom judges: versioning, validation, the exact prompt on the wire, and each output kind's Feedback in a run."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.core.exceptions import ValidationError

from evaluation.judge_services import add_example, save_custom_judge
from evaluation.judges.custom import Category, Definition, Example, build_scorer, check
from evaluation.models import CustomJudge, CustomJudgeVersion, EvaluationRun
from evaluation.runs import execute_run, of_run, start_evaluation_run
from evaluation.scorers.catalogue import load_catalogue
from evaluation.scorers.runner import build_items
from tests.evaluation.judges.conftest import MODEL, FakeJudgeServer, verdict
from tests.evaluation.judges.custom_fixtures import (
    category_definition,
    guidelines_definition,
    make_custom_judge,
    scale_definition,
    yes_no_definition,
)
from tests.factories import make_experiment, make_trace

QUESTION = "How do I reset my password?"
ANSWER = "Open Settings, then Security, then Reset password."


@pytest.fixture
def trace(db: None) -> Any:
    return make_trace(experiment=make_experiment("Judged"), question=QUESTION, answer=ANSWER)


def _run(name: str) -> Any:
    run = start_evaluation_run(scorer_names=[name], filter_string="", experiment="Judged", enqueue=False)
    finished = execute_run(run.pk)
    assert finished is not None and finished.status == "finished", finished and finished.error
    return finished


def _feedback(run: Any) -> list[Any]:
    return list(of_run(run).order_by("name", "id"))


# ---------------------------------------------------------------- versions


def test_an_edit_makes_a_new_version_and_keeps_the_old_one(db: None, admin_user: Any) -> None:
    judge = make_custom_judge()
    assert judge.version == 1 and not judge.versions.exists()
    same = save_custom_judge(definition=scale_definition(), judge=judge, changed_by=admin_user)
    assert same.version == 1 and not CustomJudgeVersion.objects.exists()  # nothing changed: no version
    edited = save_custom_judge(definition=scale_definition(pass_threshold=3), judge=judge, changed_by=admin_user)
    assert edited.version == 2 and edited.pass_threshold == 3
    (old,) = edited.versions.all()
    assert (old.version, old.snapshot["pass_threshold"], old.changed_by) == (1, 4, admin_user)


def test_a_changed_judge_is_a_new_scorer_version_in_the_catalogue(db: None, judge_server: FakeJudgeServer) -> None:
    judge = make_custom_judge()
    first = load_catalogue().get("helpfulness")
    assert first.is_judge and first.module == "custom judge v1" and first.digest.startswith("sha256:")
    save_custom_judge(definition=scale_definition(pass_threshold=3), judge=judge)
    second = load_catalogue().get("helpfulness")
    assert second.module == "custom judge v2" and second.digest != first.digest


def test_add_example_makes_the_next_version_with_the_example(db: None) -> None:
    judge = make_custom_judge()
    example = Example("Where is my order?", "It shipped yesterday.", "4", "Experts: helpful.")
    newer = add_example(judge=judge, example=example)
    assert newer.version == 2 and newer.examples[-1]["verdict"] == "4" and len(newer.examples) == 3
    with pytest.raises(ValidationError, match="already one of"):
        add_example(judge=newer, example=example)


def test_add_example_past_the_limit_is_refused(db: None, settings: Any) -> None:
    settings.JUDGE_MAX_EXAMPLES = 2
    judge = make_custom_judge()
    with pytest.raises(ValidationError, match="At most 2 examples"):
        add_example(judge=judge, example=Example("q", "a", "3", ""))
    assert CustomJudge.objects.get().version == 1


def test_without_an_endpoint_custom_judges_are_listed_unavailable(db: None, judge_env: Any) -> None:
    make_custom_judge()
    info = load_catalogue().judges["helpfulness"]
    assert not info.available and "JUDGE_BASE_URL" in info.unavailable


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"name": "Bad Name"}, "name", "lower-case letters"),
        ({"name": "correctness"}, "name", "built-in judge"),
        ({"name": "helpfulness_pass"}, "name", "cannot end in _pass"),
        ({"kind": "other"}, "kind", "guidelines judge or a prompt judge"),
        ({"instructions": "  "}, "instructions", "Write the judge's instructions"),
        ({"instructions": "Rate {{ answer }}."}, "instructions", "Unknown template variable {{ answer }}"),
        ({"instructions": "Rate it."}, "instructions", "at least one of {{ inputs }}"),
        ({"output_kind": "stars"}, "output_kind", "Choose yes/no"),
        ({"scale_min": None}, "scale_min", "lowest and the highest"),
        ({"scale_min": 5, "scale_max": 1}, "scale_max", "above the lowest"),
        ({"scale_min": 0, "scale_max": 1000}, "scale_max", "at most 100 steps"),
        ({"pass_threshold": 9}, "pass_threshold", "from 1 to 5"),
        ({"examples": (Example("", "", "5", ""),)}, "examples", "give its input or its output"),
        ({"examples": (Example("q", "a", "7", ""),)}, "examples", "must be one of 1, 2, 3, 4, 5"),
        ({"examples": tuple(Example(f"q{i}", "a", "3", "") for i in range(6))}, "examples", "At most 5 examples"),
    ],
)
def test_a_bad_definition_is_refused_with_a_message(
    db: None, overrides: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(ValidationError) as raised:
        save_custom_judge(definition=scale_definition(**overrides))
    assert message in " ".join(raised.value.message_dict[field])
    assert not CustomJudge.objects.exists()


@pytest.mark.parametrize(
    ("definition", "field", "message"),
    [
        (category_definition(categories=(Category("only"),)), "categories", "at least two categories"),
        (category_definition(categories=(Category("a b"), Category("c"))), "categories", "not a category name"),
        (category_definition(categories=(Category("a"), Category("a"))), "categories", "given twice"),
        (category_definition(categories=(Category("a", float("nan")), Category("b"))), "categories", "finite"),
        (guidelines_definition(guidelines=()), "guidelines", "at least one guideline"),
        (yes_no_definition(examples=(Example("q", "a", "maybe", ""),)), "examples", "one of yes, no"),
    ],
)
def test_bad_categories_guidelines_and_verdicts(db: None, definition: Definition, field: str, message: str) -> None:
    with pytest.raises(ValidationError) as raised:
        check(definition)
    assert message in " ".join(raised.value.message_dict[field])


def test_a_name_taken_by_another_custom_judge(db: None) -> None:
    make_custom_judge()
    with pytest.raises(ValidationError, match="already exists"):
        save_custom_judge(definition=scale_definition())
    assert CustomJudge.objects.count() == 1


# ---------------------------------------------------------------- the prompt and each kind's Feedback


def test_the_exact_prompt_with_its_examples_reaches_the_endpoint(judge_server: FakeJudgeServer, trace: Any) -> None:
    make_custom_judge()
    judge_server.default = verdict("4", "Clear steps.")
    _run("helpfulness")
    (request,) = judge_server.judged()
    info = load_catalogue().get("helpfulness")
    (item,) = build_items([trace.pk], with_trace=False)
    expected = info.scorer.messages(inputs=item.inputs, outputs=item.outputs, expectations={}, trace=None)
    sent = [(m["role"], m["content"]) for m in request.body["messages"]]
    assert sent == expected
    system = sent[0][1]
    assert "Rate how helpful the answer {{ outputs }} is for the question {{ inputs }}." in system
    assert "Answer with one integer score from 1 to 5." in system
    assert "Example 1\nInput: What is 2+2?\nOutput: 4\nExpected result: 5\nRationale: Direct and correct." in system
    assert "Example 2\nInput: Capital of France?\nOutput: I like trains.\nExpected result: 1" in system
    assert QUESTION in sent[1][1] and ANSWER in sent[1][1]
    assert request.body["model"] == MODEL and request.headers["authorization"].startswith("Bearer ")
    assert "response_format" in request.body


def test_a_scale_judge_gives_the_score_and_a_pass_feedback(judge_server: FakeJudgeServer, trace: Any) -> None:
    make_custom_judge()
    judge_server.default = verdict("4", "Clear steps.")
    run = _run("helpfulness")
    assert run.metrics == {"helpfulness/mean": 4.0, "helpfulness_pass/mean": 1.0}
    score, passed = _feedback(run)
    assert (score.name, score.value, score.rationale) == ("helpfulness", 4, "Clear steps.")
    assert (passed.name, passed.value) == ("helpfulness_pass", "yes")
    assert passed.rationale.startswith("score 4 ≥ pass threshold 4.")
    assert {score.source_type, passed.source_type} == {"LLM_JUDGE"} and score.source_id == f"openai:/{MODEL}"
    assert score.metadata["mlflow.assessment.scorerName"] == "helpfulness" == passed.metadata[
        "mlflow.assessment.scorerName"]  # fmt: skip


def test_a_scale_score_below_the_threshold_fails_and_out_of_range_is_an_error(
    judge_server: FakeJudgeServer, trace: Any
) -> None:
    make_custom_judge()
    judge_server.default = verdict("2", "Vague.")
    score, passed = _feedback(_run("helpfulness"))
    assert (score.value, passed.value) == (2, "no")
    judge_server.default = verdict("9", "Off the scale.")
    (failed,) = _feedback(_run("helpfulness"))
    assert failed.error["error_code"] == "BAD_VERDICT" and "from 1 to 5" in failed.error["error_message"]


def test_a_yes_no_judge(judge_server: FakeJudgeServer, trace: Any) -> None:
    make_custom_judge(yes_no_definition())
    judge_server.default = verdict("Yes", "Polite.")
    (feedback,) = _feedback(_run("is_polite"))
    assert (feedback.name, feedback.value, feedback.source_type) == ("is_polite", "yes", "LLM_JUDGE")
    (request,) = judge_server.judged()
    schema = json.dumps(request.body["response_format"])
    assert '"yes"' in schema and '"no"' in schema


def test_a_categories_judge_stores_the_number_and_names_the_category(judge_server: FakeJudgeServer, trace: Any) -> None:
    make_custom_judge(category_definition())
    judge_server.default = verdict("semi_formal", "Mixed register.")
    (feedback,) = _feedback(_run("formality"))
    assert (feedback.value, feedback.metadata["category"]) == (0.5, "semi_formal")
    (request,) = judge_server.judged()
    assert "Answer with exactly one of these categories: formal, semi_formal, not_formal." in request.prompt
    judge_server.default = verdict("casual", "?")
    (failed,) = _feedback(_run("formality"))
    assert failed.error["error_code"] == "BAD_VERDICT"


def test_a_guidelines_judge_sends_its_guidelines_and_examples(judge_server: FakeJudgeServer, trace: Any) -> None:
    make_custom_judge(guidelines_definition(examples=(Example("Hi", "Go away.", "no", "Rude."),)))
    judge_server.default = verdict("no", "Not polite.")
    (feedback,) = _feedback(_run("tone"))
    assert (feedback.name, feedback.value, feedback.source_type) == ("tone", "no", "LLM_JUDGE")
    (request,) = judge_server.judged()
    assert "<guideline>The response must be polite.</guideline>" in request.prompt
    assert "Output: Go away.\nExpected result: no" in request.prompt and QUESTION in request.prompt
    (item,) = build_items([trace.pk], with_trace=False)
    scorer = load_catalogue().get("tone").scorer
    assert [m["content"] for m in request.body["messages"]] == [
        c for _, c in scorer.messages(inputs=item.inputs, outputs=item.outputs, expectations={}, trace=None)
    ]


def test_an_endpoint_failure_is_an_error_feedback_and_the_run_finishes(
    judge_server: FakeJudgeServer, trace: Any
) -> None:
    from tests.evaluation.judges.conftest import failure

    make_custom_judge()
    judge_server.default = failure(500, "boom")
    (failed,) = _feedback(_run("helpfulness"))
    assert failed.name == "helpfulness" and failed.error["error_code"] == "HTTP_500"


def test_example_text_cannot_smuggle_template_variables(db: None) -> None:
    definition = scale_definition(examples=(Example("Say {{ trace }}", "ok", "3", ""),))
    check(definition)
    scorer = build_scorer(definition, "openai:/m")
    assert scorer.definition.variables == ("inputs", "outputs") and "{ { trace } }" in scorer.judge.instructions


def test_evaluate_and_the_run_start_form_take_a_custom_judge(
    judge_server: FakeJudgeServer, trace: Any, admin_client: Any
) -> None:
    from io import StringIO

    from django.core.management import call_command
    from django.urls import reverse

    make_custom_judge()
    judge_server.default = verdict("5", "Great.")
    out = StringIO()
    call_command("evaluate", "--filter", "", "--experiment", "Judged", "--scorer", "helpfulness", "--name", "cj",
                 stdout=out)  # fmt: skip
    assert "finished, 1 of 1 traces" in out.getvalue()
    assert {f.name for f in _feedback(EvaluationRun.objects.get(name="cj"))} == {"helpfulness", "helpfulness_pass"}
    assert 'value="helpfulness"' in admin_client.get(reverse("evaluation:run_start")).content.decode()


def test_a_trace_reading_judge_gets_mlflows_span_tools(judge_server: FakeJudgeServer, trace: Any) -> None:
    make_custom_judge(yes_no_definition(name="grounded", instructions="Is the answer in {{ trace }} grounded?"))
    info = load_catalogue().get("grounded")
    assert info.takes_trace and info.arguments == ("trace",)
    judge_server.default = verdict("no", "Not grounded.")
    (feedback,) = _feedback(_run("grounded"))
    assert (feedback.value, feedback.rationale) == ("no", "Not grounded.")
    (request,) = judge_server.judged()
    assert {tool["function"]["name"] for tool in request.body["tools"]} >= {"list_spans", "get_span"}
