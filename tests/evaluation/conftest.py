"""Labeled sessions for export tests: two reviewers with a tie, real trace shapes, feedback only, demo-like."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from labeling import claims, services, submissions
from labeling.models import LabelingSession, LabelSchema
from tests.factories import make_trace


def make_labeled_session(name: str = "Cardio") -> LabelingSession:
    schemas = [
        LabelSchema.objects.get(name="expected_response"),
        LabelSchema.objects.get(name="expected_facts"),
        LabelSchema.objects.filter(name="correct").first()
        or services.save_label_schema(
            schema=LabelSchema(name="correct", type="feedback", title="Correct?", input_type="pass_fail")
        ),
    ]
    ann, _ = User.objects.get_or_create(username="ann")
    ben, _ = User.objects.get_or_create(username="ben")
    session = services.create_labeling_session(name=name, schemas=schemas, reviewers=[ann, ben])
    session.reviewers_per_item = 2
    session.save()
    traces = [make_trace(question=f"Dose question {i}?", answer=f"Answer {i}") for i in range(3)]
    services.add_traces_to_session(session=session, trace_ids=[t.trace_id for t in traces])
    first, second, third = session.items.order_by("position")
    answers = {
        first: {"ann": ("Take 81 mg", "81 mg\nwith food", "pass"), "ben": ("Take 81 mg", "81 mg", "pass")},
        second: {"ann": ("See a doctor", "", "fail"), "ben": ("Call 911", "", "fail")},  # tie on expected_response
        third: {"ann": ("", "", "pass")},  # feedback only
    }
    users = {"ann": ann, "ben": ben}
    for item, by_user in answers.items():
        for user, (response, facts, correct) in by_user.items():
            claims.claim_next_item(session=session, reviewer=users[user])
            submissions.submit_review(
                item=item,
                reviewer=users[user],
                raw_answers={"expected_response": response, "expected_facts": facts, "correct": correct},
            )
    return session


@pytest.fixture
def labeled(db: None) -> LabelingSession:
    return make_labeled_session()


MIXED_ANSWERS: dict[str, dict[str, str]] = {  # real MLflow traces whose root spans have different shapes
    # chat messages in, a chat-completion dict out
    "chat_messages_input.json": {
        "expected_response": "An assessment is a label on a trace.",
        "expected_facts": "labels\nattached to traces",
    },
    # {"question"} in, a plain string out; no expected_facts, so that key is absent in this record
    "nested_tool_spans.json": {"expected_response": "21C in Paris"},
    # chat messages in, {"choices": [...]} out
    "demo_agent.json": {"expected_facts": "compound interest\n$16,288.95", "correct": "pass"},
    # {"request": {"x": 3}} in, no output (the trace failed); feedback only
    "error_trace.json": {"correct": "fail"},
    # {"question"} in, a string out; nobody answers it
    "eval_trace_with_scorer_feedback.json": {},
}


def make_mixed_shapes_session(name: str = "Mixed shapes") -> LabelingSession:
    """Five real traces of different shapes; three with expectations, one with feedback only, one unanswered."""
    from tests.conftest import DATA_DIR
    from traces.ingest import read_trace_file, store_traces

    by_trace = {}
    for file, answers in MIXED_ANSWERS.items():
        record = read_trace_file(DATA_DIR / file)[0]
        store_traces([record])
        by_trace[record.trace_id] = answers
    schemas = [
        LabelSchema.objects.get(name="expected_response"),
        LabelSchema.objects.get(name="expected_facts"),
        LabelSchema.objects.filter(name="correct").first()
        or services.save_label_schema(
            schema=LabelSchema(name="correct", type="feedback", title="Correct?", input_type="pass_fail")
        ),
    ]
    ann, _ = User.objects.get_or_create(username="ann")
    session = services.create_labeling_session(name=name, schemas=schemas, reviewers=[ann])
    services.add_traces_to_session(session=session, trace_ids=list(by_trace))
    for item in session.items.order_by("position"):
        answers = by_trace[item.source_trace_id_text]
        if answers:
            submissions.submit_review(item=item, reviewer=ann, raw_answers=answers)
    return session


@pytest.fixture
def mixed(db: None) -> LabelingSession:
    return make_mixed_shapes_session()


def _correct_schema() -> LabelSchema:
    return LabelSchema.objects.filter(name="correct").first() or services.save_label_schema(
        schema=LabelSchema(name="correct", type="feedback", title="Correct?", input_type="pass_fail")
    )


def make_feedback_only_session(name: str = "Feedback only") -> LabelingSession:
    """Only a feedback question; two of three items answered."""
    ann, _ = User.objects.get_or_create(username="ann")
    session = services.create_labeling_session(name=name, schemas=[_correct_schema()], reviewers=[ann])
    traces = [make_trace(question=f"Feedback question {i}?") for i in range(3)]
    services.add_traces_to_session(session=session, trace_ids=[t.trace_id for t in traces])
    for item, value in zip(session.items.order_by("position"), ["pass", "fail"], strict=False):
        submissions.submit_review(item=item, reviewer=ann, raw_answers={"correct": value})
    return session


def make_demo_like_session(name: str = "Demo-like") -> LabelingSession:
    """As the demo after a first pass: 7 items answered, all with feedback, 3 of them with an expected response."""
    ann, _ = User.objects.get_or_create(username="ann")
    schemas = [_correct_schema(), LabelSchema.objects.get(name="expected_response")]
    session = services.create_labeling_session(name=name, schemas=schemas, reviewers=[ann])
    traces = [make_trace(question=f"Policy question {i}?", answer=f"Policy answer {i}") for i in range(9)]
    services.add_traces_to_session(session=session, trace_ids=[t.trace_id for t in traces])
    for index, item in enumerate(session.items.order_by("position")[:7]):
        answers = {"correct": "pass" if index % 2 else "fail"}
        if index in (0, 3, 5):
            answers["expected_response"] = f"The expected answer {index}."
        submissions.submit_review(item=item, reviewer=ann, raw_answers=answers)
    return session
