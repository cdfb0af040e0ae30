"""Bad input on the review and manage pages gets a 4xx (or a refusal) with a message and changes nothing.

NUL characters matter most on PostgreSQL, which refuses them in any text (a 500 before these checks);
the same requests must answer the same way on SQLite.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from labeling import claims, services, submissions
from labeling.forms import MAX_PASTED_TRACE_IDS
from labeling.models import ItemAssignment, ItemReview, LabelingSession, LabelSchema, ReviewStatus
from tests.factories import make_trace
from traces.models import Assessment

pytestmark = pytest.mark.django_db

NUL_MESSAGE = "contains a NUL character; remove it."


@pytest.fixture
def session(reviewer: User, admin_user: User) -> LabelingSession:
    schemas = [
        services.save_label_schema(
            schema=LabelSchema(name="note", type="feedback", title="Anything to add?", input_type="text")
        ),
        services.save_label_schema(
            schema=LabelSchema(
                name="correct", type="feedback", title="Correct?", input_type="pass_fail", enable_comment=True
            )
        ),
        LabelSchema.objects.get(name="expected_facts"),
    ]
    session = services.create_labeling_session(name="Bad input", schemas=schemas, reviewers=[reviewer])
    services.add_traces_to_session(session=session, trace_ids=[make_trace().trace_id for _ in range(2)])
    claims.claim_item(item=first_item(session), reviewer=reviewer)  # the reviewer holds the first item
    return session


@pytest.fixture
def as_reviewer(client: Client, reviewer: User) -> Client:
    client.force_login(reviewer)
    return client


def first_item(session: LabelingSession):
    return session.items.select_related("trace").order_by("position").first()


@pytest.mark.parametrize(
    "answers",
    [
        {"q-note": "fine\x00"},
        {"q-expected_facts": "one fact\nsecond \x00 fact"},
        {"q-correct": "pass", "q-note": "\x00"},
        {"q-correct": "pa\x00ss"},
    ],
)
def test_nul_in_an_answer_is_refused_and_nothing_is_saved(as_reviewer: Client, session, answers) -> None:
    item = first_item(session)
    response = as_reviewer.post(reverse("labeling:submit_item", args=[session.pk, item.pk]), answers)
    assert response.status_code == 400
    assert "The answer " + NUL_MESSAGE in response.content.decode()
    assert not Assessment.objects.filter(trace=item.trace, source_type="HUMAN").exists()
    assert not ItemReview.objects.filter(item=item, status=ReviewStatus.SUBMITTED).exists()


def test_nul_in_a_comment_is_refused(as_reviewer: Client, session) -> None:
    item = first_item(session)
    url = reverse("labeling:submit_item", args=[session.pk, item.pk])
    response = as_reviewer.post(url, {"q-correct": "pass", "c-correct": "be\x00cause"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 400 and "The comment " + NUL_MESSAGE in response.content.decode()
    assert not Assessment.objects.filter(trace=item.trace, source_type="HUMAN").exists()


def test_nul_in_a_flag_note_is_refused(as_reviewer: Client, session) -> None:
    item = first_item(session)
    response = as_reviewer.post(reverse("labeling:flag_item", args=[session.pk, item.pk]), {"note": "cut\x00off"})
    assert response.status_code == 400 and "The note " + NUL_MESSAGE in response.content.decode()
    assert not ItemReview.objects.filter(item=item, flagged=True).exists()


def test_nul_in_a_skip_reason_is_refused(as_reviewer: Client, session) -> None:
    item = first_item(session)
    url = reverse("labeling:skip_item", args=[session.pk, item.pk])
    response = as_reviewer.post(url, {"reason": "\x00"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 400 and "The reason " + NUL_MESSAGE in response.content.decode()
    assert not ItemReview.objects.filter(item=item, status=ReviewStatus.SKIPPED).exists()


def test_nul_in_an_adjudication_answer_or_rationale_is_refused(client: Client, admin_user: User, session) -> None:
    item = first_item(session)
    other = User.objects.create_user("other")
    for person, verdict in ((session.reviewers.get(), "pass"), (other, "fail")):
        submissions.submit_review(item=item, reviewer=person, raw_answers={"correct": verdict})
    client.force_login(admin_user)
    url = reverse("labeling:adjudicate_item", args=[session.pk, item.pk])
    for data, message in (
        ({"q-correct": "pass", "rationale": "both\x00"}, "The rationale " + NUL_MESSAGE),
        ({"q-correct": "pass", "q-note": "final\x00"}, "The answer " + NUL_MESSAGE),
    ):
        response = client.post(url, data)
        assert response.status_code == 400 and message in response.content.decode()
    assert not item.adjudications.exists()


def test_a_span_id_with_nul_is_not_found(as_reviewer: Client, client: Client, admin_user: User, session) -> None:
    item = first_item(session)
    submissions.submit_review(item=item, reviewer=session.reviewers.get(), raw_answers={"correct": "pass"})
    for span in ("\x00", "0000000000000001\x00", "x" * 5000):
        assert as_reviewer.get(item.get_absolute_url(), {"span": span}).status_code == 404
        assert as_reviewer.get(item.get_absolute_url(), {"span": span}, HTTP_HX_REQUEST="true").status_code == 404
    client.force_login(admin_user)
    trace = make_trace()
    for span in ("\x00", "x" * 5000):
        assert client.get(trace.get_absolute_url(), {"span": span}).status_code == 404
    for trace_id in ("%00", "tr-%00", "x" * 5000):
        assert client.get(f"/traces/{trace_id}/").status_code == 404


@pytest.mark.parametrize("reviewer_value", ["abc", "", "-1", "1.5", "99999999999999999999", "9" * 5000, "1\x00"])
def test_assign_by_hand_with_a_bad_reviewer_says_so(client: Client, admin_user: User, session, reviewer_value) -> None:
    client.force_login(admin_user)
    url = reverse("labeling:session_assign_by_hand", args=[session.pk])
    item = first_item(session)
    response = client.post(url, {"reviewer": reviewer_value, "items": [item.pk]}, follow=True)
    assert response.status_code == 200
    assert "Pick a reviewer of this session and at least one item." in response.content.decode()
    assert not ItemAssignment.objects.exists()


@pytest.mark.parametrize("items", [["abc"], ["1.5"], ["99999999999999999999"], ["9" * 5000], []])
def test_assign_by_hand_with_bad_items_says_so(client: Client, admin_user: User, reviewer, session, items) -> None:
    client.force_login(admin_user)
    url = reverse("labeling:session_assign_by_hand", args=[session.pk])
    response = client.post(url, {"reviewer": reviewer.pk, "items": items}, follow=True)
    assert "Pick a reviewer of this session and at least one item." in response.content.decode()
    assert not ItemAssignment.objects.exists()


@pytest.mark.parametrize("field", ["reviewers", "leads"])
@pytest.mark.parametrize("person_id", ["99999999999999999999", "9" * 5000])
def test_session_form_with_an_out_of_range_person_id(
    client: Client, admin_user: User, session, field, person_id
) -> None:
    client.force_login(admin_user)
    data = {
        "name": "Bad input",
        "status": "active",
        "reviewers_per_item": 1,
        "lease_minutes": 30,
        "assignment_mode": "pool",
        field: person_id,
    }
    response = client.post(reverse("labeling:session_edit", args=[session.pk]), data)
    assert response.status_code == 400
    assert f"Select a valid choice. {person_id[:30]} is not one of the available choices." in (
        response.content.decode()
    )
    assert list(session.reviewers.all()) == [User.objects.get(username="reviewer")]


def test_too_many_pasted_trace_ids_are_refused(client: Client, admin_user: User, session) -> None:
    client.force_login(admin_user)
    pasted = "\n".join(f"tr-{i}" for i in range(MAX_PASTED_TRACE_IDS + 1))
    response = client.post(reverse("labeling:session_add_traces", args=[session.pk]), {"trace_ids": pasted})
    assert response.status_code == 400
    assert f"Paste at most 10,000 trace ids at a time (this is {MAX_PASTED_TRACE_IDS + 1:,})." in (
        response.content.decode()
    )
    assert session.items.count() == 2
