"""Late submits and the review page's lease heartbeat (issue 9, item 13); flags on archived sessions."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from labeling import claims, errors, services, submissions
from labeling.claims import LeaseState
from labeling.models import ItemReview, LabelingSession, LabelSchema, ReviewItem, SessionStatus
from tests.factories import make_trace
from traces.models import Assessment

pytestmark = pytest.mark.django_db


def make_session(per_item: int = 1, n_reviewers: int = 2) -> tuple[LabelingSession, ReviewItem, list[User]]:
    schema = services.save_label_schema(
        schema=LabelSchema(name="correct", type="feedback", title="Correct?", input_type="pass_fail")
    )
    people = [User.objects.create_user(f"rev{i}", password="pw-123456") for i in range(n_reviewers)]
    session = services.create_labeling_session(name="leases", schemas=[schema], reviewers=people)
    session.reviewers_per_item, session.lease_minutes = per_item, 10
    session.save()
    services.add_traces_to_session(session=session, trace_ids=[make_trace().trace_id])
    return session, session.items.get(), people


def submit(item: ReviewItem, reviewer: User, value: str = "pass") -> submissions.Submission:
    return submissions.submit_review(item=item, reviewer=reviewer, raw_answers={"correct": value})


def test_a_submit_after_others_filled_the_item_is_kept_as_late_and_not_counted() -> None:
    session, item, (a, b) = make_session()
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        assert claims.claim_next_item(session=session, reviewer=a) == item
    with time_machine.travel(start + timedelta(minutes=11), tick=False):  # a's lease ran out; b takes the slot
        assert claims.claim_next_item(session=session, reviewer=b) == item
        assert not submit(item, b).late
    with time_machine.travel(start + timedelta(minutes=12), tick=False):
        result = submit(item, a, "fail")
    assert result.late
    item.refresh_from_db()
    assert item.submitted_count == 1  # "1 of 1", not "2 of 1"
    late_review = ItemReview.objects.get(item=item, reviewer=a)
    assert late_review.late and late_review.status == "submitted"
    answer = Assessment.objects.get(trace=item.trace, source_id="rev0", valid=True)
    assert answer.value is False and answer.metadata["late"] is True  # the expert's work is kept
    # An edit of the late answer stays late and still does not count.
    submit(item, a, "pass")
    item.refresh_from_db()
    assert item.submitted_count == 1
    assert Assessment.objects.get(trace=item.trace, source_id="rev0", valid=True).metadata["late"] is True


def test_a_submit_after_the_lease_ran_out_counts_when_nobody_took_the_slot() -> None:
    session, item, (a, _b) = make_session()
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        claims.claim_next_item(session=session, reviewer=a)
    with time_machine.travel(start + timedelta(minutes=30), tick=False):
        assert not submit(item, a).late
    item.refresh_from_db()
    assert item.submitted_count == 1


def test_a_running_lease_of_someone_else_makes_a_slotless_submit_late() -> None:
    session, item, (a, b) = make_session()
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        claims.claim_next_item(session=session, reviewer=a)
    with time_machine.travel(start + timedelta(minutes=11), tick=False):
        claims.claim_next_item(session=session, reviewer=b)  # b is reading now
        assert submit(item, a).late  # a's lease ran out and b holds the only slot
        assert not submit(item, b).late  # b, who held the slot, is not overtaken
    item.refresh_from_db()
    assert item.submitted_count == 1


def test_heartbeat_keeps_the_item_for_a_reviewer_who_is_reading() -> None:
    session, item, (a, b) = make_session()
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        claims.claim_next_item(session=session, reviewer=a)
    for minutes in (8, 16, 24):  # the page beats; the lease is 10 minutes
        with time_machine.travel(start + timedelta(minutes=minutes), tick=False):
            assert claims.renew_lease(item=item, reviewer=a) == LeaseState.HELD
            assert claims.claim_next_item(session=session, reviewer=b) is None
    with time_machine.travel(start + timedelta(minutes=25), tick=False):
        assert not submit(item, a).late


def test_heartbeat_reports_a_lost_lease_and_a_lapsed_free_one_is_taken_again() -> None:
    session, item, (a, b) = make_session()
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        claims.claim_next_item(session=session, reviewer=a)
    with time_machine.travel(start + timedelta(minutes=15), tick=False):  # laptop slept; nobody took it
        assert claims.renew_lease(item=item, reviewer=a) == LeaseState.HELD
        assert claims.claim_next_item(session=session, reviewer=b) is None
    with time_machine.travel(start + timedelta(minutes=40), tick=False):
        assert claims.claim_next_item(session=session, reviewer=b) == item
        assert claims.renew_lease(item=item, reviewer=a) == LeaseState.LOST
        assert claims.renew_lease(item=item, reviewer=b) == LeaseState.HELD
        submit(item, b)
        assert claims.renew_lease(item=item, reviewer=b) == LeaseState.SUBMITTED


def test_heartbeat_endpoint(client: Client) -> None:
    session, item, (a, b) = make_session()
    outsider = User.objects.create_user("outsider", password="pw-123456")
    url = reverse("labeling:heartbeat", args=[session.pk, item.pk])
    client.force_login(a)
    page = client.get(reverse("labeling:review_start", args=[session.pk]), follow=True).content.decode()
    assert f'data-heartbeat-url="{url}"' in page
    assert client.post(url).json() == {"lease": "held"}
    assert client.get(url).status_code == 405
    client.force_login(outsider)
    assert client.post(url).status_code == 404
    client.force_login(b)  # a reviewer of the session who was never handed the item
    assert client.post(url).status_code == 404
    session.status = SessionStatus.COMPLETED
    session.save()
    client.force_login(a)
    assert client.post(url).json() == {"lease": "closed"}


def test_late_submit_tells_the_reviewer_and_a_normal_one_says_saved(client: Client) -> None:
    session, item, (a, b) = make_session()
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        client.force_login(a)
        client.get(reverse("labeling:review_start", args=[session.pk]))
    with time_machine.travel(start + timedelta(minutes=11), tick=False):
        claims.claim_next_item(session=session, reviewer=b)
        submit(item, b)
        response = client.post(
            reverse("labeling:submit_item", args=[session.pk, item.pk]), {"q-correct": "fail"}, HTTP_HX_REQUEST="true"
        )
    assert response.status_code == 200
    body = response.content.decode()
    assert "kept as an extra one" in body
    assert '<p class="notice" role="status">Saved your answers to the previous item. Others answered it' in body
    item.refresh_from_db()
    assert item.submitted_count == 1


def test_flagging_an_archived_session_is_refused(client: Client) -> None:
    session, item, (a, _b) = make_session()
    claims.claim_next_item(session=session, reviewer=a)
    session.status = SessionStatus.ARCHIVED
    session.save()
    with pytest.raises(errors.SessionClosedError):
        claims.flag_item(item=item, reviewer=a, note="broken")
    client.force_login(a)
    response = client.post(reverse("labeling:flag_item", args=[session.pk, item.pk]), {"note": "broken"})
    assert response.status_code == 403
    assert "archived" in response.content.decode()
    assert not ItemReview.objects.filter(flagged=True).exists()


def test_submit_confirms_saved_on_the_next_item(client: Client) -> None:
    session, _item, (a, _b) = make_session()
    services.add_traces_to_session(session=session, trace_ids=[make_trace().trace_id])
    client.force_login(a)
    first = client.get(reverse("labeling:review_start", args=[session.pk]))
    item_pk = int(first["Location"].rstrip("/").split("/")[-1])
    response = client.post(
        reverse("labeling:submit_item", args=[session.pk, item_pk]), {"q-correct": "pass"}, HTTP_HX_REQUEST="true"
    )
    body = response.content.decode()
    assert 'id="review-main"' in body and 'role="status">Saved your answers to the previous item.</p>' in body
    assert response["HX-Push-Url"] != first["Location"]  # moved on to the other item
