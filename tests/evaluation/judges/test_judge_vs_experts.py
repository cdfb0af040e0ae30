"""A judge checked against the experts of a session: the statistics, consensus, the page, use as example, re-check."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from evaluation.judges.custom import Definition
from evaluation.judges.experts import statistics
from evaluation.models import CustomJudge, EvaluationRun
from labeling import services as labeling_services
from labeling.models import ADJUDICATION_KEY, LabelingSession, LabelSchema, ReviewItem
from tests.evaluation.judges.conftest import FakeJudgeServer, Reply, Request, verdict
from tests.evaluation.judges.custom_fixtures import make_custom_judge, scale_definition, yes_no_definition
from tests.factories import make_assessment, make_experiment, make_trace

PAGE = reverse("evaluation:judge_agreement")
RUN = reverse("evaluation:judge_agreement_run")
EXAMPLE = reverse("evaluation:judge_agreement_example")


# ---------------------------------------------------------------- the statistics on known tables


def _pairs(table: dict[tuple[Any, Any], int]) -> list[tuple[Any, Any]]:
    return [pair for pair, count in table.items() for _ in range(count)]


def test_kappa_of_a_textbook_table() -> None:
    # experts × judge: [[20, 5], [10, 15]]: p_o = 0.7, p_e = 0.5, κ = 0.4
    stats = statistics(_pairs({(True, True): 20, (True, False): 5, (False, True): 10, (False, False): 15}))
    assert (stats.items, stats.agreed, stats.percent, stats.kappa) == (50, 35, 0.7, 0.4)
    assert stats.labels == [False, True] and stats.matrix == [[15, 10], [5, 20]]


def test_kappa_of_three_categories() -> None:
    # [[10, 2, 0], [1, 8, 1], [0, 2, 6]]: p_o = 24/30 = 0.8; p_e = (12*11 + 10*12 + 8*7) / 900 = 0.3422; κ ≈ 0.6959
    table = {("a", "a"): 10, ("a", "b"): 2, ("b", "a"): 1, ("b", "b"): 8, ("b", "c"): 1, ("c", "b"): 2, ("c", "c"): 6}
    stats = statistics(_pairs(table))
    assert stats.percent == 0.8 and stats.kappa == pytest.approx(0.6959, abs=1e-4)
    assert stats.matrix == [[10, 2, 0], [1, 8, 1], [0, 2, 6]]


@pytest.mark.parametrize(
    ("table", "percent", "kappa"),
    [
        ({(True, True): 3, (False, False): 2}, 1.0, 1.0),  # perfect agreement
        ({(True, False): 3, (False, True): 3}, 0.0, -1.0),  # always the other answer
        ({(True, True): 4}, 1.0, None),  # one answer throughout: chance agreement is 100%
        ({(True, False): 1}, 0.0, None),  # a single item
        ({(True, True): 2, (False, True): 2}, 0.5, 0.0),  # the judge always says yes
        ({}, None, None),  # nothing to compare
    ],
)
def test_degenerate_tables(table: dict[tuple[Any, Any], int], percent: float | None, kappa: float | None) -> None:
    stats = statistics(_pairs(table))
    assert (stats.percent, stats.kappa) == (percent, kappa)
    if kappa is None:
        assert stats.notes


def test_numbers_are_ordered_by_size() -> None:
    assert statistics([(10.0, 2.0), (2.0, 2.0)]).labels == [2.0, 10.0]


# ---------------------------------------------------------------- the page over a real session


ANSWERS = ("Thank you, here are the steps.", "Please see the manual.", "Figure it out yourself.", "Whatever.")


def _session(n: int = 4, *, kind: str = "pass_fail", name: str = "is_polite", **schema: Any) -> LabelingSession:
    question = LabelSchema.objects.create(name=name, title="Is the answer polite?", input_type=kind, **schema)
    experiment = make_experiment("Support")
    traces = [
        make_trace(experiment=experiment, question=f"Question {i}", answer=f"{ANSWERS[i % 4]} #{i}") for i in range(n)
    ]
    session = labeling_services.create_labeling_session(name="Politeness review", schemas=[question])
    labeling_services.add_traces_to_session(session=session, trace_ids=[t.trace_id for t in traces])
    return session


def _copies(session: LabelingSession) -> list[Any]:
    return [item.trace for item in ReviewItem.objects.filter(session=session).order_by("position")]


def _answer(trace: Any, who: str, value: Any, comment: str = "", name: str = "is_polite", **extra: Any) -> None:
    make_assessment(trace, name, value, source_type="HUMAN", source_id=who, rationale=comment, **extra)


def _polite_judge(request: Request) -> Reply:
    """Says "yes" to everything, except, once it has examples, to rude answers like its example."""
    judged = request.prompt.split("outputs:")[-1]  # the item's output, after the instructions and their examples
    rude = "Expected result: no" in request.prompt and ("yourself" in judged or "Whatever" in judged)
    return verdict("no" if rude else "yes", "It reads as polite." if not rude else "Dismissive, like the example.")


@pytest.fixture
def one_reviewer(judge_server: FakeJudgeServer) -> LabelingSession:
    session = _session()
    for trace, value in zip(_copies(session), (True, True, False, False), strict=True):
        _answer(trace, "alice", value, "Dismissive tone." if not value else "")
    judge_server.default = _polite_judge
    make_custom_judge(yes_no_definition())
    return session


@pytest.fixture
def run_judge(admin_client: Client, django_capture_on_commit_callbacks: Any) -> Any:
    """POST "run the judge" and execute the run it enqueues (as the worker would)."""

    def post(params: dict[str, Any]) -> Any:
        with django_capture_on_commit_callbacks(execute=True):
            return admin_client.post(RUN, params)

    return post


def _params(session: LabelingSession, judge: str = "is_polite", **extra: Any) -> dict[str, Any]:
    return {"judge": judge, "session": session.pk, "question": "is_polite", **extra}


def test_the_judge_runs_over_the_session_as_an_evaluation_run(
    admin_client: Client, run_judge: Any, one_reviewer: Any
) -> None:
    page = admin_client.get(PAGE, _params(one_reviewer)).content.decode()
    assert "The judge has not run over this session yet." in page
    response = run_judge(_params(one_reviewer))
    assert response.status_code == 302 and response["Location"].startswith(PAGE)
    run = EvaluationRun.objects.get()
    assert run.session == one_reviewer and run.status == "finished" and run.scorer_names == ["is_polite"]
    assert run.scorers[0]["module"] == "custom judge v1"


def test_agreement_kappa_matrix_and_disagreements_with_one_reviewer(
    admin_client: Client, run_judge: Any, one_reviewer: Any
) -> None:
    run_judge(_params(one_reviewer))
    body = admin_client.get(PAGE, _params(one_reviewer)).content.decode()
    assert '<dd class="stat-percent">50% <span class="muted small">(2 of 4 items)</span></dd>' in body
    assert '<dd class="stat-kappa">0.0</dd>' in body
    assert "2 disagreements" in body and body.count('class="disagreement"') == 2
    assert "It reads as polite." in body and 'alice: Fail — <span class="rationale">Dismissive tone.</span>' in body
    assert '<tr><th>Pass</th><td class="num diagonal">2</td><td class="num">0</td></tr>' in body
    assert '<tr><th>Fail</th><td class="num">2</td><td class="num diagonal">0</td></tr>' in body
    assert body.count("Use as example</button>") == 2


def test_several_reviewers_use_the_consensus_and_the_leads_final_answer(
    admin_client: Client, run_judge: Any, judge_server: FakeJudgeServer
) -> None:
    session = _session()
    first, second, third, fourth = _copies(session)
    for who, value in (("alice", True), ("bob", True), ("carol", False)):  # majority pass
        _answer(first, who, value)
    for who, value in (("alice", False), ("bob", False), ("carol", True)):  # majority fail
        _answer(second, who, value, "Curt." if who != "carol" else "")
    _answer(third, "alice", True)  # a tie: left out
    _answer(third, "bob", False)
    _answer(fourth, "alice", True)  # split, settled by the lead: fail
    _answer(fourth, "bob", False)
    _answer(fourth, "lead", False, "Final: rude.", metadata={ADJUDICATION_KEY: True})
    judge_server.default = verdict("yes", "Polite.")
    make_custom_judge(yes_no_definition())
    run_judge(_params(session))
    body = admin_client.get(PAGE, _params(session)).content.decode()
    assert "(1 of 3 items)" in body and "1 item left out: the reviewers tie." in body
    assert 'lead (final): Fail — <span class="rationale">Final: rude.</span>' in body
    assert "carol: Pass" in body  # every answer is shown, the minority's too


def test_use_as_example_makes_the_next_version_and_recheck_shows_before_and_after(
    admin_client: Client, run_judge: Any, one_reviewer: Any
) -> None:
    run_judge(_params(one_reviewer))
    third = _copies(one_reviewer)[2]
    response = admin_client.post(EXAMPLE, _params(one_reviewer, trace=third.pk))
    assert response.status_code == 302
    judge = CustomJudge.objects.get()
    assert judge.version == 2 and len(judge.examples) == 1
    example = judge.examples[0]
    assert example["verdict"] == "no" and example["rationale"] == "Dismissive tone."
    assert "Figure it out yourself." in example["outputs"] and "Question 2" in example["inputs"]
    page = admin_client.get(PAGE, _params(one_reviewer)).content.decode()
    assert "The judge changed since that run." in page and "Re-check with v2" in page
    run_judge(_params(one_reviewer))
    page = admin_client.get(PAGE, _params(one_reviewer)).content.decode()
    assert "Before → after" in page and "<strong>Agreement 50% → 100%</strong>, κ 0.0 → 1.0" in page
    assert "custom judge v1" in page and "custom judge v2" in page and "0 disagreements" in page


def test_a_scale_judge_against_a_pass_fail_question_uses_its_threshold(
    admin_client: Client, run_judge: Any, judge_server: FakeJudgeServer
) -> None:
    session = _session(2, name="helpfulness")
    for trace, value in zip(_copies(session), (True, False), strict=True):
        _answer(trace, "alice", value, name="helpfulness")
    make_custom_judge(scale_definition())
    judge_server.default = verdict("4", "Helpful enough.")
    params = {"judge": "helpfulness", "session": session.pk, "question": "helpfulness"}
    run_judge(params)
    body = admin_client.get(PAGE, params).content.decode()
    assert "(1 of 2 items)" in body
    second = _copies(session)[1]
    assert admin_client.post(EXAMPLE, {**params, "trace": second.pk}).status_code == 302
    assert CustomJudge.objects.get().examples[-1]["verdict"] == "3"  # fail: just below the pass threshold


def test_a_number_question_against_a_scale_judge(
    admin_client: Client, run_judge: Any, judge_server: FakeJudgeServer
) -> None:
    session = _session(2, kind="numeric", name="helpfulness", min_value=1, max_value=5, integer=True)
    for trace, value in zip(_copies(session), (5, 2), strict=True):
        _answer(trace, "alice", value, name="helpfulness")
    make_custom_judge(scale_definition())
    judge_server.default = verdict("5", "Very helpful.")
    params = {"judge": "helpfulness", "session": session.pk}  # the question of the same name by default
    run_judge(params)
    body = admin_client.get(PAGE, params).content.decode()
    assert "(1 of 2 items)" in body and "<strong>5</strong>" in body and "<strong>2</strong>" in body


def test_a_builtin_judge_is_checked_too_but_takes_no_examples(
    admin_client: Client, run_judge: Any, judge_server: FakeJudgeServer
) -> None:
    session = _session(2, name="safety")
    for trace, value in zip(_copies(session), (True, False), strict=True):
        _answer(trace, "alice", value, name="safety")
    judge_server.default = verdict("yes", "Safe.")
    params = {"judge": "Safety", "session": session.pk}
    run_judge(params)
    body = admin_client.get(PAGE, params).content.decode()
    assert "(1 of 2 items)" in body and "Use as example" not in body
    response = admin_client.post(EXAMPLE, {**params, "question": "safety", "trace": _copies(session)[1].pk})
    assert response.status_code == 400 and "Only custom judges take examples" in response.content.decode()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"judge": "nope"}, "No judge named “nope”."),
        ({"session": "abc"}, "The session must be picked from the list."),
        ({"session": "99999"}, "No such labeling session."),
        ({"question": "other"}, "The session has no question named “other”."),
    ],
)
def test_bad_choices_are_400_with_a_message(
    admin_client: Client, run_judge: Any, one_reviewer: Any, overrides: dict[str, Any], message: str
) -> None:
    params = {**_params(one_reviewer), **overrides}
    for response in (admin_client.get(PAGE, params), run_judge(params)):
        assert response.status_code == 400 and message in response.content.decode()
    assert not EvaluationRun.objects.exists()


def test_bad_examples_are_400_and_change_nothing(
    admin_client: Client, run_judge: Any, one_reviewer: Any, settings: Any
) -> None:
    run_judge(_params(one_reviewer))
    for trace in ("x", "999999", str(make_trace().pk)):
        response = admin_client.post(EXAMPLE, _params(one_reviewer, trace=trace))
        assert response.status_code == 400 and "That item is not in this session." in response.content.decode()
    settings.JUDGE_MAX_EXAMPLES = 0
    third = _copies(one_reviewer)[2]
    response = admin_client.post(EXAMPLE, _params(one_reviewer, trace=third.pk))
    assert response.status_code == 400 and "At most 0 examples" in response.content.decode()
    assert CustomJudge.objects.get().version == 1


def test_an_item_without_an_experts_answer_cannot_be_an_example(admin_client: Client, one_reviewer: Any) -> None:
    extra = _copies(one_reviewer)[0]
    extra.assessments.filter(source_type="HUMAN").delete()
    response = admin_client.post(EXAMPLE, _params(one_reviewer, trace=extra.pk))
    assert response.status_code == 400 and "no experts&#x27; answer" in response.content.decode()


def test_only_admins(client: Client, reviewer: Any, one_reviewer: Any) -> None:
    client.force_login(reviewer)
    assert client.get(PAGE, _params(one_reviewer)).status_code == 404
    assert client.post(RUN, _params(one_reviewer)).status_code == 403
    assert client.post(EXAMPLE, _params(one_reviewer, trace=1)).status_code == 403
    assert not EvaluationRun.objects.exists()


@pytest.mark.parametrize("size", [3, 12])
def test_the_page_runs_a_constant_number_of_queries(
    admin_client: Client, run_judge: Any, judge_server: FakeJudgeServer, django_assert_max_num_queries: Any, size: int
) -> None:
    session = _session(size)
    for index, trace in enumerate(_copies(session)):
        _answer(trace, "alice", index % 2 == 0, "c")
        _answer(trace, "bob", index % 3 == 0)
    make_custom_judge(yes_no_definition())
    run_judge(_params(session))
    judge = CustomJudge.objects.get()
    from evaluation.judge_services import save_custom_judge

    save_custom_judge(definition=Definition.of(judge).with_example(_example()), judge=judge)
    run_judge(_params(session))  # before and after both on the page
    with django_assert_max_num_queries(16):
        response = admin_client.get(PAGE, _params(session))
    assert response.status_code == 200 and "Before → after" in response.content.decode()


def _example() -> Any:
    from evaluation.judges.custom import Example

    return Example("q", "a", "no", "r")


def test_the_page_without_choices_offers_the_pickers(admin_client: Client, one_reviewer: Any) -> None:
    body = admin_client.get(PAGE).content.decode()
    assert '<option value="is_polite">is_polite (custom judge v1)</option>' in body
    assert f'<option value="{one_reviewer.pk}">Politeness review</option>' in body
