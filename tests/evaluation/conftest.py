"""A labeled session: three items, two reviewers, expectations and feedback, one tie."""

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
