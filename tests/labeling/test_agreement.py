"""Agreement statistics against published worked examples, and end to end through a session."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest
from django.contrib.auth.models import User
from django.core.management import call_command

from labeling import agreement, services, workflow
from labeling.models import LabelingSession, LabelSchema
from tests.factories import make_assessment, make_trace


def ratings_from_columns(columns: dict[str, list]) -> agreement.Ratings:
    """{rater: [value per item, None = missing]} → item → rater → value."""
    result: agreement.Ratings = {}
    for rater, values in columns.items():
        for item, value in enumerate(values):
            if value is not None:
                result.setdefault(item, {})[rater] = value
    return result


def test_fleiss_kappa_wikipedia_example() -> None:
    """Wikipedia, "Fleiss' kappa", worked example: 10 subjects, 14 raters, 5 categories, κ = 0.210."""
    table = [
        [0, 0, 0, 0, 14],
        [0, 2, 6, 4, 2],
        [0, 0, 3, 5, 6],
        [0, 3, 9, 2, 0],
        [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0],
        [3, 2, 6, 3, 0],
        [2, 5, 3, 2, 2],
        [6, 5, 2, 1, 0],
        [0, 2, 2, 3, 7],
    ]
    ratings: agreement.Ratings = {}
    for item, counts in enumerate(table):
        values = [category for category, n in enumerate(counts) for _ in range(n)]
        ratings[item] = {f"r{i}": value for i, value in enumerate(values)}
    kappa, _ = agreement.fleiss(ratings)
    assert kappa == pytest.approx(0.210, abs=0.001)


def test_cohen_kappa_wikipedia_example() -> None:
    """Wikipedia, "Cohen's kappa": 50 proposals, 20 yes/yes, 5 yes/no, 10 no/yes, 15 no/no → κ = 0.4."""
    pairs = [("yes", "yes")] * 20 + [("yes", "no")] * 5 + [("no", "yes")] * 10 + [("no", "no")] * 15
    ratings = {i: {"A": a, "B": b} for i, (a, b) in enumerate(pairs)}
    kappa, note = agreement.cohen_for_two_reviewers(ratings)
    assert kappa == pytest.approx(0.4, abs=1e-9) and note == ""
    percent, items = agreement.percent_agreement(ratings)
    assert percent == pytest.approx(0.7) and items == 50


KRIPPENDORFF_2011 = {
    # Krippendorff (2011), "Computing Krippendorff's alpha-reliability", section C: 4 observers, 12 units.
    "A": [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
    "B": [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
    "C": [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
    "D": [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
}


def test_krippendorff_alpha_published_example() -> None:
    ratings = ratings_from_columns(KRIPPENDORFF_2011)
    nominal, _ = agreement.krippendorff_alpha(ratings, "nominal")
    interval, _ = agreement.krippendorff_alpha(ratings, "interval")
    assert nominal == pytest.approx(0.743, abs=0.001)
    assert interval == pytest.approx(0.849, abs=0.001)


def test_consensus_ties_and_reviewer_agreement() -> None:
    ratings = {1: {"a": "x", "b": "x", "c": "y"}, 2: {"a": "x", "b": "y"}, 3: {"a": "y", "b": "y", "c": "y"}}
    assert agreement.consensus(ratings) == {1: "x", 3: "y"}  # item 2 is a tie
    assert agreement.reviewer_vs_consensus(ratings) == {"a": 1.0, "b": 1.0, "c": 0.5}


def test_degenerate_cases_return_none_with_a_note() -> None:
    schema = LabelSchema(name="correct", title="Correct?", input_type="pass_fail")
    same = {i: {"a": True, "b": True} for i in range(5)}
    result = agreement.question_agreement(schema, same)
    assert result.percent_agreement == 1.0
    assert result.cohen_kappa is None and result.fleiss_kappa is None and result.krippendorff_alpha is None
    assert "only one answer" in result.note
    single = agreement.question_agreement(schema, {1: {"a": True}})
    assert single.n_items == 0 and single.percent_agreement is None and "two reviewers" in single.note
    empty = agreement.question_agreement(schema, {})
    assert empty.n_items == 0
    for value in (result, single, empty):
        assert not any(isinstance(v, float) and np.isnan(v) for v in vars(value).values())


def schemas() -> list[LabelSchema]:
    specs = [
        {"name": "correct", "title": "Correct?", "input_type": "pass_fail"},
        {"name": "tone", "title": "Tone?", "input_type": "categorical", "options": ["warm", "neutral", "cold"]},
        {
            "name": "score",
            "title": "Score 1-5?",
            "input_type": "numeric",
            "min_value": 1,
            "max_value": 5,
            "integer": True,
        },
        {"name": "note", "title": "Note?", "input_type": "text"},
    ]
    return [services.save_label_schema(schema=LabelSchema(type="feedback", **spec)) for spec in specs]


ANSWERS = {  # item → reviewer → (correct, tone, score, note)
    0: {"ann": ("pass", "warm", "5", "Good"), "ben": ("pass", "warm", "5", "good "), "cy": ("pass", "warm", "4", "ok")},
    1: {"ann": ("fail", "cold", "1", "x"), "ben": ("fail", "neutral", "2", "x"), "cy": ("pass", "cold", "1", "x")},
    2: {"ann": ("pass", "neutral", "3", "y"), "ben": ("fail", "neutral", "3", "z"), "cy": ("fail", "warm", "3", "y")},
    3: {"ann": ("pass", "warm", "4", "w"), "ben": ("pass", "cold", "4", "w"), "cy": ("pass", "warm", "5", "w")},
}


@pytest.fixture
def answered(db: None) -> LabelingSession:
    reviewers = {name: User.objects.create_user(name) for name in ("ann", "ben", "cy")}
    traces = [make_trace(question=f"q{i}") for i in range(4)]
    make_assessment(traces[0], "correct", True, source_type="LLM_JUDGE")
    make_assessment(traces[1], "correct", "yes", source_type="LLM_JUDGE")  # humans say fail
    make_assessment(traces[2], "correct", False, source_type="LLM_JUDGE")
    session = services.create_labeling_session(name="Agree", schemas=schemas(), reviewers=reviewers.values())
    session.reviewers_per_item = 3
    session.save()
    services.add_traces_to_session(session=session, trace_ids=[t.trace_id for t in traces])
    items = list(session.items.order_by("position"))
    for index, by_reviewer in ANSWERS.items():
        for name, (correct, tone, score, note) in by_reviewer.items():
            workflow.claim_next_item(session=session, reviewer=reviewers[name])
            services.submit_review(
                item=items[index],
                reviewer=reviewers[name],
                raw_answers={"correct": correct, "tone": tone, "score": score, "note": note},
            )
    return session


def test_session_agreement_end_to_end(answered: LabelingSession) -> None:
    results = {r.question: r for r in agreement.session_agreement(answered)}
    correct = results["correct"]
    # Pairs agreeing per item: 3/3, 1/3, 1/3, 3/3 → mean 2/3.
    assert correct.percent_agreement == pytest.approx(0.6667, abs=1e-4)
    assert correct.n_items == 4 and correct.n_reviewers == 3
    # Consensus: pass, fail, fail, pass. ann matches 3 of 4, ben 4 of 4, cy 3 of 4.
    assert correct.reviewer_vs_consensus == {"ann": 0.75, "ben": 1.0, "cy": 0.75}
    assert correct.cohen_kappa is None and "exactly two reviewers" in correct.note
    assert correct.fleiss_kappa is not None and correct.krippendorff_alpha is not None
    # Judge: item 0 pass = pass, item 1 "yes" ≠ fail, item 2 fail = fail → 2 of 3.
    assert correct.judge_items == 3 and correct.judge_agreement == pytest.approx(0.6667, abs=1e-4)
    score = results["score"]
    assert score.krippendorff_alpha is not None and score.fleiss_kappa is None  # interval, not Fleiss
    note = results["note"]
    # Text compares trimmed, case-folded: item 0 has Good/good (1 of 3 pairs); items 1, 3 all agree; item 2 1 of 3.
    assert note.percent_agreement == pytest.approx((1 / 3 + 1 + 1 / 3 + 1) / 4, abs=1e-4)
    assert note.krippendorff_alpha is None and "Free text" in note.note


def test_loader_runs_one_query(answered: LabelingSession, django_assert_num_queries) -> None:
    answered.ordered_schemas()
    with django_assert_num_queries(2):  # the session's questions, then every answer at once
        humans, judges = agreement.load_ratings(answered)
    assert len(humans["correct"]) == 4 and len(judges["correct"]) == 3


def test_dashboard_shows_agreement(answered: LabelingSession, client, admin_user) -> None:
    client.force_login(admin_user)
    body = client.get(answered.get_absolute_url()).content.decode()
    assert "Agreement between reviewers" in body and "0.67" in body


def test_command_writes_csv(answered: LabelingSession, tmp_path: Path) -> None:
    out = io.StringIO()
    call_command("session_agreement", "--session", "Agree", stdout=out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [r["question"] for r in rows] == ["correct", "tone", "score", "note"]
    assert float(rows[0]["percent_agreement"]) == pytest.approx(0.6667, abs=1e-4)
    assert rows[0]["reviewer_vs_consensus"] == "ann=0.75;ben=1.0;cy=0.75"
    target = tmp_path / "agreement.csv"
    call_command("session_agreement", "--session", "Agree", "--output", str(target), stdout=io.StringIO())
    assert target.read_text().startswith("question,kind,items")


def test_command_bad_inputs_exit_1_with_one_line_and_no_file(answered: LabelingSession, tmp_path: Path) -> None:
    for args, message in (
        (["--session", "Nope"], "no labeling session named “Nope”"),
        (["--session", "Agree", "--output", str(tmp_path / "missing" / "x.csv")], "cannot write"),
    ):
        err = io.StringIO()
        with pytest.raises(SystemExit) as exit_info:
            call_command("session_agreement", *args, stdout=io.StringIO(), stderr=err)
        assert exit_info.value.code == 1
        lines = err.getvalue().strip().splitlines()
        assert len(lines) == 1 and message in lines[0]
    assert list(tmp_path.iterdir()) == []
