"""Custom judge admin pages: list, create, edit (a new version), preview the exact prompt, run once; bad input: 400."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from evaluation.models import CustomJudge
from tests.evaluation.judges.conftest import API_KEY, FakeJudgeServer, verdict
from tests.evaluation.judges.custom_fixtures import SCALE_INSTRUCTIONS, make_custom_judge, yes_no_definition
from tests.factories import make_experiment, make_trace
from traces.models import Assessment

LIST = reverse("evaluation:custom_judge_list")
NEW = reverse("evaluation:custom_judge_new")
QUESTION = "How do I reset my password?"


def _form(**overrides: Any) -> dict[str, Any]:
    data = {
        "name": "helpfulness",
        "description": "How helpful the answer is.",
        "kind": "prompt",
        "instructions": SCALE_INSTRUCTIONS,
        "output_kind": "scale",
        "scale_min": "1",
        "scale_max": "5",
        "pass_threshold": "4",
        "example_0_inputs": "What is 2+2?",
        "example_0_outputs": "4",
        "example_0_verdict": "5",
        "example_0_rationale": "Direct and correct.",
        "example_1_inputs": "Capital of France?",
        "example_1_outputs": "I like trains.",
        "example_1_verdict": "1",
        "example_1_rationale": "Off topic.",
        "action": "save",
    }
    return {**data, **overrides}


@pytest.fixture
def trace(db: None) -> Any:
    return make_trace(experiment=make_experiment("Judged"), question=QUESTION, answer="Open <b>Settings</b>.")


def test_create_a_scale_judge_with_two_examples(admin_client: Client, judge_env: Any) -> None:
    response = admin_client.post(NEW, _form())
    judge = CustomJudge.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse(
        "evaluation:custom_judge_edit", args=[judge.pk]
    )
    assert (judge.output_kind, judge.scale_min, judge.scale_max, judge.pass_threshold) == ("scale", 1, 5, 4)
    assert [e["verdict"] for e in judge.examples] == ["5", "1"] and judge.guidelines == [] and judge.categories == []


def test_editing_makes_a_new_version_shown_on_the_page(admin_client: Client, judge_env: Any) -> None:
    judge = make_custom_judge()
    url = reverse("evaluation:custom_judge_edit", args=[judge.pk])
    page = admin_client.get(url).content.decode()
    assert 'value="helpfulness"' in page and "Direct and correct." in page and "v1" in page
    assert admin_client.post(url, _form(pass_threshold="3")).status_code == 302
    judge.refresh_from_db()
    assert judge.version == 2 and judge.pass_threshold == 3
    page = admin_client.get(url).content.decode()
    assert "Earlier versions" in page and "<strong>v1</strong>" in page


def test_categories_are_parsed_with_their_numbers(admin_client: Client, judge_env: Any) -> None:
    data = _form(
        name="formality",
        output_kind="categories",
        categories="formal = 1\nsemi_formal: 0.5\nnot_formal\n",
        instructions="How formal is {{ outputs }}?",
        example_0_verdict="formal",
        example_1_verdict="not_formal",
    )
    assert admin_client.post(NEW, data).status_code == 302
    judge = CustomJudge.objects.get()
    assert judge.categories == [
        {"name": "formal", "value": 1.0}, {"name": "semi_formal", "value": 0.5}, {"name": "not_formal", "value": None}
    ]  # fmt: skip
    assert judge.scale_min is None


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"name": ""}, "This field is required."),
        ({"name": "Has Spaces"}, "lower-case letters"),
        ({"kind": "robot"}, "Select a valid choice."),
        ({"instructions": "Rate {{ answer }}."}, "Unknown template variable {{ answer }}"),
        ({"instructions": "Rate it."}, "at least one of {{ inputs }}"),
        ({"scale_min": "x"}, "Enter a whole number."),
        ({"scale_min": "5", "scale_max": "1"}, "The highest score must be above the lowest."),
        ({"pass_threshold": "7"}, "The pass threshold must be a score from 1 to 5."),
        ({"example_0_verdict": "great"}, "Example 1: the expected verdict must be one of 1, 2, 3, 4, 5."),
        ({"output_kind": "categories", "categories": "a = x\nb"}, "Line 1: “x” is not a number."),
        ({"output_kind": "categories", "categories": "solo"}, "at least two categories"),
        ({"kind": "guidelines", "guidelines": "  "}, "Give at least one guideline"),
        ({"name": "safety"}, "already the name of a scorer or a built-in judge"),
    ],
)
def test_every_bad_input_is_a_400_with_a_message_and_writes_nothing(
    admin_client: Client, judge_env: Any, overrides: dict[str, Any], message: str
) -> None:
    response = admin_client.post(NEW, _form(**overrides))
    assert response.status_code == 400
    assert message in response.content.decode().replace("&quot;", '"').replace("&#x27;", "'")
    assert not CustomJudge.objects.exists()


def test_preview_shows_the_exact_prompt_for_the_trace_and_saves_nothing(
    admin_client: Client, judge_server: FakeJudgeServer, trace: Any
) -> None:
    response = admin_client.post(NEW, _form(action="preview", trace_id=trace.trace_id))
    body = response.content.decode()
    assert response.status_code == 200 and "The exact prompt</strong> for trace" in body
    assert "Rate how helpful the answer {{ outputs }} is for the question {{ inputs }}." in body
    assert "Example 2\nInput: Capital of France?" in body and QUESTION in body
    assert "Open &lt;b&gt;Settings&lt;/b&gt;." in body  # trace text is escaped
    assert not CustomJudge.objects.exists() and judge_server.requests == []


def test_preview_as_htmx_is_the_trial_partial(admin_client: Client, judge_env: Any, trace: Any) -> None:
    response = admin_client.post(NEW, _form(action="preview", trace_id=trace.trace_id), headers={"HX-Request": "true"})
    body = response.content.decode()
    assert response.status_code == 200 and body.lstrip().startswith('<div id="judge-trial"') and "<html" not in body


def test_run_once_calls_the_judge_and_shows_both_feedback_without_saving(
    admin_client: Client, judge_server: FakeJudgeServer, trace: Any
) -> None:
    judge_server.default = verdict("2", "Too <i>vague</i>.")
    response = admin_client.post(NEW, _form(action="run_once", trace_id=trace.trace_id))
    body = response.content.decode()
    assert response.status_code == 200 and "Ran once</strong> on trace" in body
    assert "<strong>helpfulness</strong>" in body and "<strong>helpfulness_pass</strong>" in body
    assert "Too &lt;i&gt;vague&lt;/i&gt;." in body and "score 2 &lt; pass threshold 4." in body
    assert API_KEY not in body
    (request,) = judge_server.judged()
    assert "Example 1\nInput: What is 2+2?" in request.prompt
    assert not CustomJudge.objects.exists() and not Assessment.objects.filter(kind="feedback").exists()


def test_run_once_shows_the_endpoints_error(admin_client: Client, judge_server: FakeJudgeServer, trace: Any) -> None:
    from tests.evaluation.judges.conftest import failure

    judge_server.default = failure(503, "overloaded")
    body = admin_client.post(NEW, _form(action="run_once", trace_id=trace.trace_id)).content.decode()
    assert "<strong>HTTP_503</strong>" in body and "overloaded" in body


@pytest.mark.parametrize(
    ("trace_id", "message"),
    [("", "Give a trace id"), ("tr-missing", "No trace with id “tr-missing”.")],
)
def test_preview_needs_a_known_trace(admin_client: Client, judge_env: Any, trace_id: str, message: str) -> None:
    response = admin_client.post(NEW, _form(action="preview", trace_id=trace_id))
    assert response.status_code == 400 and message in response.content.decode()


def test_run_once_without_an_endpoint_says_so(admin_client: Client, judge_env: Any, trace: Any) -> None:
    response = admin_client.post(NEW, _form(action="run_once", trace_id=trace.trace_id))
    assert response.status_code == 400 and "no judge endpoint is configured" in response.content.decode()


def test_a_bad_definition_cannot_be_previewed(admin_client: Client, judge_env: Any, trace: Any) -> None:
    response = admin_client.post(NEW, _form(action="preview", trace_id=trace.trace_id, instructions="no vars"))
    assert (
        response.status_code == 400
        and "Fix the definition first: Instructions: The instructions must use" in response.content.decode()
    )


def test_list_page_and_the_judges_page_link(
    admin_client: Client, judge_env: Any, django_assert_max_num_queries: Any
) -> None:
    for index in range(6):
        make_custom_judge(yes_no_definition(name=f"polite_{index}"))
    with django_assert_max_num_queries(4):
        body = admin_client.get(LIST).content.decode()
    assert body.count("Check against experts</a>") == 6 and "polite_5" in body and "yes / no" in body
    judges = admin_client.get(reverse("evaluation:judge_list")).content.decode()
    assert f'href="{LIST}"' in judges and reverse("evaluation:judge_agreement") in judges


@pytest.mark.parametrize("client_name", ["reviewer_client", "outsider_client"])
def test_only_admins_reach_judge_definitions(
    request: pytest.FixtureRequest, judge_env: Any, client_name: str, reviewer: Any, outsider: Any
) -> None:
    judge = make_custom_judge()
    user = reviewer if client_name == "reviewer_client" else outsider
    client = Client()
    client.force_login(user)
    edit = reverse("evaluation:custom_judge_edit", args=[judge.pk])
    for url in (LIST, NEW, edit):
        assert client.get(url).status_code == 404
    assert client.post(edit, _form(pass_threshold="2")).status_code == 403
    assert CustomJudge.objects.get().version == 1


def test_an_unknown_judge_is_404(admin_client: Client, judge_env: Any) -> None:
    assert admin_client.get(reverse("evaluation:custom_judge_edit", args=[999])).status_code == 404


def test_a_bad_definition_in_an_htmx_preview_names_the_problems(
    admin_client: Client, judge_env: Any, trace: Any
) -> None:
    data = _form(action="preview", trace_id=trace.trace_id, instructions="Rate {{ answer }}.")
    response = admin_client.post(NEW, data, headers={"HX-Request": "true"})
    body = response.content.decode()
    assert response.status_code == 400 and body.lstrip().startswith('<div id="judge-trial"')
    assert "Fix the definition first: Instructions: Unknown template variable {{ answer }}" in body
