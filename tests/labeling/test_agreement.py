"""Agreement statistics against published worked examples, and end to end through a session."""

from __future__ import annotations

import csv
import io
import math
import random
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command

from labeling import adjudication, agreement, services, submissions
from labeling.agreement import QuestionAgreement
from labeling.models import LabelingSession, LabelSchema
from tests.factories import make_assessment, make_trace


def ratings_from_columns(columns: dict[str, list[Any]]) -> agreement.Ratings:
    """{rater: [value per item, None = missing]} → item → rater → value."""
    result: agreement.Ratings = {}
    for rater, values in columns.items():
        for item, value in enumerate(values):
            if value is not None:
                result.setdefault(item, {})[rater] = value
    return result


def assert_no_nan(result: QuestionAgreement) -> None:
    numbers = [v for v in vars(result).values() if isinstance(v, float)]
    numbers += list(result.reviewer_vs_consensus.values())
    assert all(math.isfinite(v) for v in numbers), result


# ---------------------------------------------------------------- published worked examples


FLEISS_WIKIPEDIA = [  # Wikipedia, "Fleiss' kappa", worked example: subjects × counts per category, 14 raters
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


def test_fleiss_kappa_wikipedia_example() -> None:
    """10 subjects, 14 raters, 5 categories: P̄ = 0.378, P̄e = 0.213, κ = 0.210."""
    ratings: agreement.Ratings = {}
    for item, counts in enumerate(FLEISS_WIKIPEDIA):
        values = [f"category {c + 1}" for c, n in enumerate(counts) for _ in range(n)]
        ratings[item] = {f"rater {i}": value for i, value in enumerate(values)}
    kappa, note = agreement.fleiss(ratings)
    assert kappa == pytest.approx(0.210, abs=0.001) and note == ""
    result = agreement.question_agreement(ratings, "categorical")
    assert result.fleiss_kappa == kappa and result.n_items == 10 and result.n_reviewers == 14
    assert result.percent_agreement == pytest.approx(0.378, abs=0.001)  # P̄ of the example is the mean pair share


def test_cohen_kappa_wikipedia_example() -> None:
    """Wikipedia, "Cohen's kappa": 50 proposals, 20 yes/yes, 5 yes/no, 10 no/yes, 15 no/no → p_o = 0.7, κ = 0.4."""
    pairs = [("yes", "yes")] * 20 + [("yes", "no")] * 5 + [("no", "yes")] * 10 + [("no", "no")] * 15
    ratings = {i: {"A": a, "B": b} for i, (a, b) in enumerate(pairs)}
    kappa, note = agreement.cohen_for_two_reviewers(ratings)
    assert kappa == pytest.approx(0.4, abs=1e-9) and note == ""
    assert agreement.percent_agreement(ratings) == (pytest.approx(0.7), 50)
    booleans = {i: {rater: value == "yes" for rater, value in by.items()} for i, by in ratings.items()}
    result = agreement.question_agreement(booleans, "pass_fail")
    assert result.cohen_kappa == pytest.approx(0.4) and result.percent_agreement == pytest.approx(0.7)


KRIPPENDORFF_2011 = {
    # Krippendorff (2011), "Computing Krippendorff's alpha-reliability", section C: 4 observers, 12 units,
    # values 1-5; the paper gives nominal α = 0.743, ordinal 0.815, interval 0.849, ratio 0.797.
    "A": [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
    "B": [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
    "C": [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
    "D": [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
}

KRIPPENDORFF_PACKAGE = {
    # The krippendorff package's own tests (tests/test_krippendorff.py): 3 coders, 15 units,
    # nominal α = 0.691358, interval α = 0.810845.
    "A": [None, None, None, None, None, 3, 4, 1, 2, 1, 1, 3, 3, None, 3],
    "B": [1, None, 2, 1, 3, 3, 4, 3, None, None, None, None, None, None, None],
    "C": [None, None, 2, 1, 3, 4, 4, None, 2, 1, 1, 3, 3, None, 4],
}


def test_krippendorff_alpha_published_example() -> None:
    ratings = ratings_from_columns(KRIPPENDORFF_2011)
    assert agreement.krippendorff_alpha(ratings, "nominal") == (pytest.approx(0.743, abs=0.001), "")
    assert agreement.krippendorff_alpha(ratings, "interval") == (pytest.approx(0.849, abs=0.001), "")
    # Through the question: categories as text for nominal, numbers for interval.
    as_text = {item: {r: str(v) for r, v in by.items()} for item, by in ratings.items()}
    assert agreement.question_agreement(as_text, "categorical").krippendorff_alpha == pytest.approx(0.743, abs=1e-3)
    numeric = agreement.question_agreement(
        {i: {r: float(v) for r, v in by.items()} for i, by in ratings.items()}, "numeric"
    )
    assert numeric.krippendorff_alpha == pytest.approx(0.849, abs=1e-3) and numeric.fleiss_kappa is None


def test_krippendorff_alpha_matches_the_package_tests() -> None:
    ratings = ratings_from_columns(KRIPPENDORFF_PACKAGE)
    assert agreement.krippendorff_alpha(ratings, "nominal")[0] == pytest.approx(0.691358, abs=1e-4)
    assert agreement.krippendorff_alpha(ratings, "interval")[0] == pytest.approx(0.810845, abs=1e-4)


# ---------------------------------------------------------------- pure functions: rules and edge cases


def test_canonical_values() -> None:
    assert agreement.canonical("pass_fail", True) is True
    assert agreement.canonical("pass_fail", "Yes") is True and agreement.canonical("pass_fail", "fail") is False
    assert agreement.canonical("pass_fail", 0) is False and agreement.canonical("pass_fail", "maybe") is None
    assert agreement.canonical("numeric", 4) == 4.0 and agreement.canonical("numeric", "x") is None
    assert agreement.canonical("numeric", float("nan")) is None
    # A pick-several answer is one category per set of choices.
    assert agreement.canonical("categorical_list", ["b", "a"]) == agreement.canonical("categorical_list", ["a", "b"])
    assert agreement.canonical("categorical_list", ["a"]) != agreement.canonical("categorical_list", ["a", "b"])
    assert agreement.canonical("text", "  Good ") == agreement.canonical("text", "good")
    assert agreement.canonical("text_list", ["A ", "b"]) == "a\nb"
    assert agreement.canonical("categorical", None) is None


def test_consensus_ties_and_reviewer_agreement() -> None:
    ratings = {
        1: {"a": "x", "b": "x", "c": "y"},
        2: {"a": "x", "b": "y"},
        3: {"a": "y", "b": "y", "c": "y"},
        4: {"a": "z"},
    }
    assert agreement.consensus(ratings) == {1: "x", 3: "y"}  # item 2 is a tie; item 4 has one answer
    assert agreement.consensus(ratings, min_ratings=1) == {1: "x", 3: "y", 4: "z"}
    # Item 2 has no majority: it counts against both a and b. a: x✓ tie✗ y✓ → 2/3; c: y✗ y✓ → 1/2.
    assert agreement.reviewer_vs_consensus(ratings) == {"a": 0.6667, "b": 0.6667, "c": 0.5}


def test_fleiss_uses_the_items_with_the_modal_number_of_answers() -> None:
    ratings = {i: {"a": "x", "b": "x", "c": "y"} for i in range(3)} | {3: {"a": "x", "b": "y"}, 4: {"a": "y", "b": "y"}}
    ratings[2] = {"a": "y", "b": "y", "c": "y"}
    kappa, note = agreement.fleiss(ratings)
    assert kappa is not None and note == "Fleiss' κ uses the 3 of 5 items with 3 answers."


def test_degenerate_cases_return_none_with_a_note() -> None:
    same = {i: {"a": True, "b": True} for i in range(5)}
    result = agreement.question_agreement(same, "pass_fail")
    assert result.percent_agreement == 1.0 and result.reviewer_vs_consensus == {"a": 1.0, "b": 1.0}
    assert (result.cohen_kappa, result.fleiss_kappa, result.krippendorff_alpha) == (None, None, None)
    assert "same answer" in result.note
    single = agreement.question_agreement({1: {"a": True}, 2: {"a": False}}, "pass_fail")
    assert single.n_items == 0 and single.n_reviewers == 1 and single.percent_agreement is None
    assert "one reviewer" in single.note
    apart = agreement.question_agreement({1: {"a": 1.0}, 2: {"b": 2.0}}, "numeric")
    assert apart.n_items == 0 and "No item has answers from two reviewers" in apart.note
    empty = agreement.question_agreement({}, "categorical", judge={1: "x"})
    assert empty.n_items == 0 and empty.judge_items == 0 and empty.judge_agreement is None
    assert empty.note == "No answers yet."
    one_item = agreement.question_agreement({1: {"a": "x", "b": "y"}}, "categorical")
    assert one_item.percent_agreement == 0.0 and one_item.cohen_kappa is None and one_item.fleiss_kappa is None
    assert "Cohen's κ is undefined" in one_item.note
    for value in (result, single, apart, empty, one_item):
        assert_no_nan(value)


def test_text_gets_exact_match_agreement_only() -> None:
    result = agreement.question_agreement({1: {"a": "ok", "b": "ok"}, 2: {"a": "no", "b": "fine"}}, "text")
    assert result.percent_agreement == 0.5 and result.reviewer_vs_consensus == {"a": 0.5, "b": 0.5}
    assert (result.cohen_kappa, result.fleiss_kappa, result.krippendorff_alpha) == (None, None, None)
    assert "Free text" in result.note


def test_two_reviewers_who_often_disagree_are_not_both_shown_as_perfect() -> None:
    """The case a lead reported: two reviewers agreeing on 1 of 4 items showed 1.00 each vs the majority.

    By hand: item 1 agreed (both match the majority), items 2-4 split 1-1 (no majority, a miss for
    both) → 1/4 each, the same as their percent agreement.
    """
    ratings = {1: {"ann": True, "ben": True}, 2: {"ann": True, "ben": False}}
    ratings |= {3: {"ann": False, "ben": True}, 4: {"ann": True, "ben": False}}
    result = agreement.question_agreement(ratings, "pass_fail")
    assert result.percent_agreement == 0.25
    assert result.reviewer_vs_consensus == {"ann": 0.25, "ben": 0.25}


def test_three_reviewers_vs_the_majority_by_hand() -> None:
    """ann and ben agree with each other; cy is the odd one out, and one 3-way split counts against all.

    item 1: ann x, ben x, cy y → majority x: ann ✓ ben ✓ cy ✗
    item 2: ann x, ben y, cy z → no majority:  ann ✗ ben ✗ cy ✗
    item 3: ann y, ben y, cy y → majority y:  ✓ ✓ ✓
    item 4: ann x, ben x       → majority x:  ✓ ✓
    ann 3/4, ben 3/4, cy 1/3.
    """
    ratings = {
        1: {"ann": "x", "ben": "x", "cy": "y"},
        2: {"ann": "x", "ben": "y", "cy": "z"},
        3: {"ann": "y", "ben": "y", "cy": "y"},
        4: {"ann": "x", "ben": "x"},
    }
    assert agreement.reviewer_vs_consensus(ratings) == {"ann": 0.75, "ben": 0.75, "cy": 0.3333}


def test_judge_against_humans() -> None:
    ratings = {1: {"a": 4.0, "b": 5.0, "c": 5.0}, 2: {"a": 2.0}, 3: {"a": 1.0, "b": 2.0}}
    result = agreement.question_agreement(ratings, "numeric", judge={1: 5.0, 2: 3.0, 3: 1.0, 9: 1.0})
    # Consensus: item 1 → 5 (2 of 3), item 2 → 2 (the lone answer), item 3 tie → none.
    assert result.judge_items == 2 and result.judge_agreement == 0.5 and result.judge_kappa is None
    # |5 − 14/3| = 1/3, |3 − 2| = 1, |1 − 1.5| = 1/2 → mean 11/18.
    assert result.judge_mean_abs_diff == pytest.approx(11 / 18, abs=1e-4)
    one_reviewer = agreement.question_agreement({1: {"a": "x"}, 2: {"a": "y"}}, "categorical", judge={1: "x", 2: "x"})
    assert one_reviewer.judge_agreement == 0.5 and one_reviewer.judge_kappa == 0.0 and one_reviewer.n_items == 0


def test_two_thousand_items_three_reviewers_five_questions_give_every_statistic() -> None:
    """Large random sessions: every statistic defined and in range (time belongs in a benchmark, not here)."""
    rng = random.Random(7)
    draws = {
        "pass_fail": lambda: rng.random() < 0.7,
        "categorical": lambda: rng.choice("abc"),
        "numeric": lambda: float(rng.randint(1, 5)),
        "categorical_list": lambda: tuple(sorted(rng.sample("xyz", rng.randint(0, 2)))),
        "text": lambda: rng.choice(["ok", "bad"]),
    }
    data = {kind: {i: {r: draw() for r in ("ann", "ben", "cy")} for i in range(2000)} for kind, draw in draws.items()}
    judges = {kind: {i: draw() for i in range(2000)} for kind, draw in draws.items()}
    results = {kind: agreement.question_agreement(data[kind], kind, judge=judges[kind]) for kind in draws}
    assert all(r.n_items == 2000 and r.judge_items > 500 for r in results.values())  # items with a majority
    for kind, result in results.items():
        assert_no_nan(result)
        assert 0 <= result.percent_agreement <= 1 and 0 <= result.judge_agreement <= 1
        if kind != "text":
            assert -1 <= result.krippendorff_alpha <= 1


# ---------------------------------------------------------------- end to end through a session


def make_schemas() -> list[LabelSchema]:
    specs: list[dict[str, Any]] = [
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
        {
            "name": "issues",
            "title": "Issues?",
            "input_type": "categorical_list",
            "options": ["facts", "style", "safety"],
        },
        {"name": "note", "title": "Note?", "input_type": "text"},
    ]
    return [services.save_label_schema(schema=LabelSchema(type="feedback", **spec)) for spec in specs]


ANSWERS = {  # item → reviewer → (correct, tone, score, issues, note)
    0: {
        "ann": ("pass", "warm", "5", ["facts", "style"], "Good"),
        "ben": ("pass", "warm", "5", ["style", "facts"], "good "),
        "cy": ("pass", "warm", "4", ["facts"], "ok"),
    },
    1: {
        "ann": ("fail", "cold", "1", ["safety"], "x"),
        "ben": ("fail", "neutral", "2", ["safety"], "x"),
        "cy": ("pass", "cold", "1", ["safety"], "x"),
    },
    2: {
        "ann": ("pass", "neutral", "3", ["style"], "y"),
        "ben": ("fail", "neutral", "3", ["facts"], "z"),
        "cy": ("fail", "warm", "3", ["style"], "y"),
    },
    3: {
        "ann": ("pass", "warm", "4", ["facts"], "w"),
        "ben": ("pass", "cold", "4", ["facts"], "w"),
        "cy": ("pass", "warm", "5", ["facts", "safety"], "w"),
    },
}
QUESTIONS = ("correct", "tone", "score", "issues", "note")


def build_session(name: str, reviewer_names: list[str], n_traces: int, per_item: int = 3) -> LabelingSession:
    reviewers = [User.objects.get_or_create(username=n)[0] for n in reviewer_names]
    schemas = list(LabelSchema.objects.filter(name__in=QUESTIONS)) or make_schemas()
    session = services.create_labeling_session(
        name=name, schemas=sorted(schemas, key=lambda s: QUESTIONS.index(s.name)), reviewers=reviewers
    )
    session.reviewers_per_item = per_item
    session.save()
    if n_traces:
        traces = [make_trace(question=f"{name} q{i}") for i in range(n_traces)]
        services.add_traces_to_session(session=session, trace_ids=[t.trace_id for t in traces])
    return session


def submit(session: LabelingSession, answers: dict[int, dict[str, tuple[Any, ...]]]) -> None:
    items = list(session.items.order_by("position"))
    for index, by_reviewer in answers.items():
        for name, values in by_reviewer.items():
            submissions.submit_review(
                item=items[index],
                reviewer=User.objects.get(username=name),
                raw_answers=dict(zip(QUESTIONS, values, strict=True)),
            )


@pytest.fixture
def answered(db: None) -> LabelingSession:
    traces = [make_trace(question=f"q{i}") for i in range(4)]
    # On the source traces before they join the session: judge verdicts, and an old human label
    # (which must not count as a session reviewer's answer).
    make_assessment(traces[0], "correct", True)
    make_assessment(traces[1], "correct", "yes")  # humans say fail
    make_assessment(traces[2], "correct", False)
    make_assessment(traces[0], "score", 4)
    make_assessment(traces[2], "score", 3)
    make_assessment(traces[0], "correct", False, source_type="HUMAN", source_id="dora")
    session = build_session("Agree", ["ann", "ben", "cy"], 0)
    services.add_traces_to_session(session=session, trace_ids=[t.trace_id for t in traces])
    submit(session, ANSWERS)
    return session


def test_session_agreement_end_to_end(answered: LabelingSession) -> None:
    results = {r.question: r for r in agreement.session_agreement(answered)}
    assert list(results) == list(QUESTIONS)
    correct = results["correct"]
    assert correct.kind == "pass_fail" and correct.title == "Correct?"
    assert correct.n_items == 4 and correct.n_reviewers == 3  # "dora" (copied with the trace) is not a reviewer
    # Agreeing pairs per item: 3/3, 1/3, 1/3, 3/3 → mean 2/3.
    assert correct.percent_agreement == pytest.approx(2 / 3, abs=1e-4)
    # Consensus: pass, fail, fail, pass. ann matches 3 of 4, ben 4 of 4, cy 3 of 4.
    assert correct.reviewer_vs_consensus == {"ann": 0.75, "ben": 1.0, "cy": 0.75}
    assert correct.cohen_kappa is None and "exactly two reviewers (3 answered)" in correct.note
    # Fleiss by hand: P̄ = 2/3, p = (2/3, 1/3), P̄e = 5/9 → κ = (2/3 − 5/9) / (1 − 5/9) = 0.25.
    assert correct.fleiss_kappa == pytest.approx(0.25, abs=1e-4)
    # Krippendorff by hand: coincidences pass-pass 6, pass-fail 2 + 2, fail-fail 2; n = 12, n_pass 8, n_fail 4
    # → α = 1 − (n − 1)·4 / (2·8·4) = 1 − 44/64 = 0.3125.
    assert correct.krippendorff_alpha == pytest.approx(0.3125, abs=1e-4)
    # Judge: item 0 pass = pass, item 1 "yes" ≠ fail, item 2 fail = fail → 2 of 3; κ: p_o = 2/3, p_e = 4/9 → 0.4.
    assert correct.judge_items == 3 and correct.judge_agreement == pytest.approx(2 / 3, abs=1e-4)
    assert correct.judge_kappa == pytest.approx(0.4, abs=1e-4)

    tone = results["tone"]  # 1, 1/3, 1/3, 1/3; consensus warm, cold, neutral, warm
    assert tone.percent_agreement == 0.5 and tone.reviewer_vs_consensus == {"ann": 1.0, "ben": 0.5, "cy": 0.75}
    assert tone.fleiss_kappa is not None and tone.krippendorff_alpha is not None and tone.judge_items == 0

    score = results["score"]  # exact equality: 1/3, 1/3, 1, 1/3
    assert score.percent_agreement == 0.5 and score.fleiss_kappa is None and score.krippendorff_alpha is not None
    # Judge 4 vs consensus 5 and 3 vs 3 → 1 of 2; |4 − 14/3| and |3 − 3| → mean 1/3.
    assert score.judge_agreement == 0.5 and score.judge_mean_abs_diff == pytest.approx(1 / 3, abs=1e-4)

    issues = results["issues"]  # sets: {f,s}×2 vs {f}: 1/3; all {safety}: 1; 1/3; 1/3 → 0.5
    assert issues.percent_agreement == 0.5
    assert issues.reviewer_vs_consensus == {"ann": 1.0, "ben": 0.75, "cy": 0.5}
    assert issues.fleiss_kappa is not None and issues.krippendorff_alpha is not None

    note = results["note"]  # trimmed, case-folded: Good/good/ok 1/3; x×3 1; y/z/y 1/3; w×3 1
    assert note.percent_agreement == pytest.approx((1 / 3 + 1 + 1 / 3 + 1) / 4, abs=1e-4)
    assert note.krippendorff_alpha is None and "Free text" in note.note
    for result in results.values():
        assert_no_nan(result)


def test_adjudication_and_corrections_do_not_count_twice(answered: LabelingSession, admin_user: User) -> None:
    before = agreement.session_agreement(answered)
    item = answered.items.order_by("position")[1]
    adjudication.adjudicate(item=item, lead=admin_user, raw_answers={"correct": "fail"})
    # ann re-submits item 0 with the same answers: the old ones become invalid, the new ones replace them.
    submissions.submit_review(
        item=answered.items.order_by("position")[0],
        reviewer=User.objects.get(username="ann"),
        raw_answers=dict(zip(QUESTIONS, ANSWERS[0]["ann"], strict=True)),
    )
    assert agreement.session_agreement(answered) == before


def test_degenerate_sessions_through_the_database(db: None) -> None:
    empty = build_session("Empty", ["ann", "ben"], 2)
    for result in agreement.session_agreement(empty):
        assert result.n_items == 0 and result.percent_agreement is None and result.note == "No answers yet."

    alone = build_session("Alone", ["ann"], 2, per_item=1)
    judged = alone.items.order_by("position")[0].trace
    make_assessment(judged, "correct", True)
    submit(alone, {0: {"ann": ANSWERS[0]["ann"]}, 1: {"ann": ANSWERS[1]["ann"]}})
    correct = agreement.session_agreement(alone)[0]
    assert correct.n_items == 0 and correct.n_reviewers == 1 and "one reviewer" in correct.note
    assert correct.judge_items == 1 and correct.judge_agreement == 1.0  # the judge against the lone reviewer

    same = build_session("Same", ["ann", "ben"], 2, per_item=2)
    submit(same, {i: {n: ANSWERS[0]["ann"] for n in ("ann", "ben")} for i in (0, 1)})
    for result in agreement.session_agreement(same):
        assert result.percent_agreement == 1.0 and result.reviewer_vs_consensus == {"ann": 1.0, "ben": 1.0}
        assert (result.cohen_kappa, result.fleiss_kappa, result.krippendorff_alpha) == (None, None, None)
        assert result.note
    for session in (empty, alone, same):
        for result in agreement.session_agreement(session):
            assert_no_nan(result)


@pytest.mark.parametrize("n_items", [1, 12])
def test_loader_runs_one_query_whatever_the_size(db: None, django_assert_num_queries, n_items: int) -> None:
    session = build_session(f"Size {n_items}", ["ann", "ben", "cy"], n_items)
    for item in session.items.select_related("trace"):
        make_assessment(item.trace, "correct", True)
    submit(session, {i: ANSWERS[i % 4] for i in range(n_items)})
    schemas = session.ordered_schemas()
    with django_assert_num_queries(1):
        humans, judges = agreement.load_ratings(session, schemas)
    assert len(humans["correct"]) == n_items and len(judges["correct"]) == n_items
    with django_assert_num_queries(2):  # the session's questions, then every answer at once
        agreement.session_agreement(session)


def test_dashboard_shows_agreement(answered: LabelingSession, client, admin_user: User) -> None:
    client.force_login(admin_user)
    body = client.get(answered.get_absolute_url()).content.decode()
    assert "Agreement between reviewers" in body and "0.67" in body


# ---------------------------------------------------------------- the command


def test_command_writes_csv(answered: LabelingSession, tmp_path: Path) -> None:
    out = io.StringIO()
    call_command("session_agreement", "--session", "Agree", stdout=out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert list(rows[0]) == agreement.CSV_COLUMNS
    assert [r["question"] for r in rows] == list(QUESTIONS)
    correct = rows[0]
    assert correct["kind"] == "pass_fail" and correct["items"] == "4" and correct["reviewers"] == "3"
    assert float(correct["percent_agreement"]) == pytest.approx(2 / 3, abs=1e-4)
    assert float(correct["fleiss_kappa"]) == 0.25 and float(correct["krippendorff_alpha"]) == 0.3125
    assert correct["cohen_kappa"] == "" and "exactly two reviewers" in correct["note"]
    assert correct["reviewer_vs_consensus"] == "ann=0.75;ben=1.0;cy=0.75"
    assert correct["judge_items"] == "3" and float(correct["judge_kappa"]) == 0.4
    assert float(rows[2]["judge_mean_abs_diff"]) == pytest.approx(1 / 3, abs=1e-4)
    target = tmp_path / "agreement.csv"
    call_command("session_agreement", "--session", "Agree", "--output", str(target), stdout=io.StringIO())
    assert target.read_bytes().decode() == out.getvalue()
    assert [p.name for p in tmp_path.iterdir()] == ["agreement.csv"]  # no temporary file left behind


def test_command_bad_inputs_exit_1_with_one_line_and_no_file(answered: LabelingSession, tmp_path: Path) -> None:
    (tmp_path / "a-directory").mkdir()
    for args, message in (
        (["--session", "Nope"], "error: no labeling session named “Nope”"),
        (["--session", "Nope", "--output", str(tmp_path / "x.csv")], "error: no labeling session named “Nope”"),
        (["--session", "Agree", "--output", str(tmp_path / "missing" / "x.csv")], "error: cannot write"),
        (["--session", "Agree", "--output", str(tmp_path / "a-directory")], "error: cannot write"),
    ):
        err = io.StringIO()
        with pytest.raises(SystemExit) as exit_info:
            call_command("session_agreement", *args, stdout=io.StringIO(), stderr=err)
        assert exit_info.value.code == 1
        lines = err.getvalue().strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(message)
    assert [p.name for p in tmp_path.iterdir()] == ["a-directory"] and not any((tmp_path / "a-directory").iterdir())
