"""Team review rules: claims and leases, overlap, skip/flag, assignment, blind mode, adjudication, concurrency."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import time_machine
from django.contrib.auth.models import User
from django.db import connection, connections
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from labeling import adjudication, assignment, claims, progress, services, submissions
from labeling.models import ItemReview, LabelingSession, LabelSchema, ReviewItem
from tests.factories import make_assessment, make_trace
from traces.models import Assessment


def pass_fail() -> LabelSchema:
    return services.save_label_schema(
        schema=LabelSchema(name="correct", type="feedback", title="Correct?", input_type="pass_fail")
    )


def make_team_session(n_items: int, n_reviewers: int, per_item: int, **fields) -> tuple[LabelingSession, list[User]]:
    reviewers = [User.objects.create_user(f"rev{i:02d}", password="pw-123456") for i in range(n_reviewers)]
    session = services.create_labeling_session(
        name=f"team-{n_items}-{per_item}", schemas=[pass_fail()], reviewers=reviewers
    )
    for key, value in {"reviewers_per_item": per_item, **fields}.items():
        setattr(session, key, value)
    session.save()
    traces = [make_trace(n_spans=2, n_documents=1) for _ in range(n_items)]
    services.add_traces_to_session(session=session, trace_ids=[t.trace_id for t in traces])
    return session, reviewers


def submit(item: ReviewItem, reviewer: User, value: str = "pass") -> None:
    submissions.submit_review(item=item, reviewer=reviewer, raw_answers={"correct": value})


@pytest.mark.django_db
def test_claim_hands_fewest_answers_first_and_never_the_same_slot_twice() -> None:
    session, (a, b, c) = make_team_session(n_items=2, n_reviewers=3, per_item=2)
    first, second = session.items.order_by("position")
    assert claims.claim_next_item(session=session, reviewer=a) == first
    assert claims.claim_next_item(session=session, reviewer=a) == first  # own running lease first
    assert claims.claim_next_item(session=session, reviewer=b) == first  # second slot of item 1
    assert claims.claim_next_item(session=session, reviewer=c) == second  # item 1 is full
    submit(first, a)
    # a's next: item 1 is done by a; item 2 has one running lease and one free slot
    assert claims.claim_next_item(session=session, reviewer=a) == second
    submit(first, b)
    first.refresh_from_db()
    assert first.submitted_count == 2
    assert claims.claim_next_item(session=session, reviewer=b) is None  # item 2 has a + c in it


@pytest.mark.django_db
def test_item_is_complete_after_reviewers_per_item_submissions() -> None:
    session, reviewers = make_team_session(n_items=1, n_reviewers=3, per_item=2)
    item = session.items.get()
    for reviewer in reviewers[:2]:
        assert claims.claim_next_item(session=session, reviewer=reviewer) == item
        submit(item, reviewer)
    assert claims.claim_next_item(session=session, reviewer=reviewers[2]) is None
    item.refresh_from_db()
    assert item.submitted_count == 2
    submit(item, reviewers[0], "fail")  # an edit is not a new review
    item.refresh_from_db()
    assert item.submitted_count == 2


@pytest.mark.django_db
def test_expired_lease_frees_the_slot() -> None:
    session, (a, b) = make_team_session(n_items=1, n_reviewers=2, per_item=1, lease_minutes=10)
    item = session.items.get()
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        assert claims.claim_next_item(session=session, reviewer=a) == item
        assert claims.claim_next_item(session=session, reviewer=b) is None
    with time_machine.travel(start + timedelta(minutes=9), tick=False):
        assert claims.claim_next_item(session=session, reviewer=b) is None
    with time_machine.travel(start + timedelta(minutes=11), tick=False):
        assert claims.claim_next_item(session=session, reviewer=b) == item
    # a's late answer is still kept: no label is ever lost.
    submit(item, a)
    assert Assessment.objects.filter(source_id="rev00", valid=True).count() == 1


@pytest.mark.django_db
def test_skip_returns_item_to_the_pool_for_others() -> None:
    session, (a, b) = make_team_session(n_items=1, n_reviewers=2, per_item=1)
    item = session.items.get()
    assert claims.claim_next_item(session=session, reviewer=a) == item
    assert claims.claim_next_item(session=session, reviewer=b) is None
    claims.skip_item(item=item, reviewer=a, reason="not my field")
    assert claims.claim_next_item(session=session, reviewer=b) == item
    assert ItemReview.objects.get(item=item, reviewer=a).skip_reason == "not my field"


@pytest.mark.django_db
def test_skipped_items_come_back_last_to_the_same_reviewer() -> None:
    session, (a,) = make_team_session(n_items=2, n_reviewers=1, per_item=1)
    first, second = session.items.order_by("position")
    claims.claim_next_item(session=session, reviewer=a)
    claims.skip_item(item=first, reviewer=a)
    assert claims.claim_next_item(session=session, reviewer=a) == second
    submit(second, a)
    assert claims.claim_next_item(session=session, reviewer=a) == first


@pytest.mark.django_db
def test_flag_needs_a_note() -> None:
    session, (a,) = make_team_session(n_items=1, n_reviewers=1, per_item=1)
    item = session.items.get()
    with pytest.raises(Exception, match="Say what is wrong"):
        claims.flag_item(item=item, reviewer=a, note="  ")
    claims.flag_item(item=item, reviewer=a, note="The answer is cut off")
    review = ItemReview.objects.get(item=item, reviewer=a)
    assert review.flagged and review.flag_note == "The answer is cut off"


@pytest.mark.django_db
def test_even_assignment_and_assigned_reviewers_see_only_their_items(client: Client) -> None:
    session, (a, b) = make_team_session(n_items=4, n_reviewers=2, per_item=1)
    assignment.assign_items_evenly(session=session, reviewers=[a, b])
    items = list(session.items.order_by("position"))
    mine = [i for i in items if i.assignments.filter(reviewer=a).exists()]
    theirs = [i for i in items if i not in mine]
    assert len(mine) == 2 and len(theirs) == 2
    claimed = {claims.claim_next_item(session=session, reviewer=a).pk}
    assert claimed <= {i.pk for i in mine}
    client.force_login(a)
    assert client.get(mine[1].get_absolute_url()).status_code == 200
    assert client.get(theirs[0].get_absolute_url()).status_code == 404
    response = client.post(reverse("labeling:submit_item", args=[session.pk, theirs[0].pk]), {"q-correct": "pass"})
    assert response.status_code == 404
    assert not Assessment.objects.filter(trace=theirs[0].trace, source_type="HUMAN").exists()


@pytest.mark.django_db
def test_pool_reviewer_cannot_open_items_not_given_to_them(client: Client) -> None:
    session, (a, b) = make_team_session(n_items=2, n_reviewers=2, per_item=1)
    first, second = session.items.order_by("position")
    claims.claim_next_item(session=session, reviewer=a)
    client.force_login(b)
    assert client.get(first.get_absolute_url()).status_code == 404
    response = client.get(reverse("labeling:review_start", args=[session.pk]))
    assert response["Location"] == second.get_absolute_url()


@pytest.mark.django_db
def test_blind_session_hides_other_answers_and_judges_until_submitted(client: Client) -> None:
    trace = make_trace()
    make_assessment(trace, "correct", False, rationale="JUDGE-SAYS-NO", source_type="LLM_JUDGE")
    reviewers = [User.objects.create_user(name, password="pw-123456") for name in ("ann", "ben")]
    session = services.create_labeling_session(name="blind", schemas=[pass_fail()], reviewers=reviewers)
    session.blind, session.reviewers_per_item = True, 2
    session.save()
    services.add_traces_to_session(session=session, trace_ids=[trace.trace_id])
    item = session.items.get()
    claims.claim_next_item(session=session, reviewer=reviewers[0])
    submit(item, reviewers[0], "fail")
    Assessment.objects.filter(source_id="ann").update(rationale="ANN-ANSWER")
    client.force_login(reviewers[1])
    body = client.get(reverse("labeling:review_start", args=[session.pk]), follow=True).content.decode()
    assert "Blind review" in body
    assert "JUDGE-SAYS-NO" not in body and "ANN-ANSWER" not in body
    submit(item, reviewers[1], "pass")
    body = client.get(item.get_absolute_url()).content.decode()
    assert "JUDGE-SAYS-NO" in body and "ANN-ANSWER" in body


@pytest.mark.django_db
def test_disagreement_queue_and_adjudication_overrides() -> None:
    session, (a, b) = make_team_session(n_items=2, n_reviewers=2, per_item=2)
    lead = User.objects.create_user("lead", password="pw-123456")
    services.set_session_leads(session=session, leads=[lead])
    first, second = session.items.order_by("position")
    for item, (va, vb) in ((first, ("pass", "fail")), (second, ("pass", "pass"))):
        submit(item, a, va)
        submit(item, b, vb)
    assert adjudication.disagreements(session) == {first.pk: ["correct"]}
    with pytest.raises(Exception, match="leads and admins"):
        adjudication.adjudicate(item=first, lead=a, raw_answers={"correct": "pass"})
    final = adjudication.adjudicate(item=first, lead=lead, raw_answers={"correct": "fail"}, rationale="Dose wrong")
    assert final[0].value is False and final[0].metadata["adjudicated"] is True
    assert final[0].source_id == "lead"
    assert set(final[0].metadata["overrides_all"]) == set(
        Assessment.objects.filter(trace=first.trace, source_id__in=["rev00", "rev01"]).values_list(
            "assessment_id", flat=True
        )
    )
    queue = adjudication.adjudication_queue(session)
    assert [(item.pk, names, done) for item, names, done in queue] == [(first.pk, ["correct"], {"correct"})]
    # A second decision supersedes the first, keeping it in history.
    again = adjudication.adjudicate(item=first, lead=lead, raw_answers={"correct": "pass"})
    assert again[0].overrides == final[0].assessment_id
    assert not Assessment.objects.get(pk=final[0].pk).valid
    assert adjudication.disagreements(session) == {first.pk: ["correct"]}  # reviewers' answers are untouched


@pytest.mark.django_db
def test_progress_per_reviewer() -> None:
    session, (a, b) = make_team_session(n_items=3, n_reviewers=2, per_item=1)
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        first = claims.claim_next_item(session=session, reviewer=a)
    with time_machine.travel(start + timedelta(seconds=30), tick=False):
        submit(first, a)
    with time_machine.travel(start + timedelta(seconds=40), tick=False):
        second = claims.claim_next_item(session=session, reviewer=a)
    with time_machine.travel(start + timedelta(seconds=60), tick=False):
        submit(second, a)
    third = claims.claim_next_item(session=session, reviewer=b)
    claims.skip_item(item=third, reviewer=b)
    claims.flag_item(item=third, reviewer=b, note="broken")
    rows = {r["reviewer__username"]: r for r in progress.reviewer_progress(session)}
    assert rows["rev00"]["done"] == 2 and rows["rev00"]["average_seconds"] == 25
    assert rows["rev00"]["items_per_hour"] == 120.0  # 2 items in one minute
    assert rows["rev01"]["skipped"] == 1 and rows["rev01"]["flagged"] == 1


@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_reviewers_never_double_book() -> None:
    """20 reviewers in threads, each with its own DB connection, claim and submit until nothing is left."""
    session, reviewers = make_team_session(n_items=30, n_reviewers=20, per_item=2)
    handed: list[tuple[int, int]] = []
    submitted: list[tuple[int, int]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    barrier = threading.Barrier(len(reviewers))

    def work(reviewer: User) -> None:
        try:
            barrier.wait()
            while True:
                item = claims.claim_next_item(session=session, reviewer=reviewer)
                if item is None:
                    return
                with lock:
                    handed.append((item.pk, reviewer.pk))
                submit(item, reviewer, "pass" if reviewer.pk % 2 else "fail")
                with lock:
                    submitted.append((item.pk, reviewer.pk))
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work, args=(r,)) for r in reviewers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert len(handed) == len(set(handed)), "a slot was handed to the same reviewer twice"
    per_item: dict[int, int] = {}
    for item_pk, _ in submitted:
        per_item[item_pk] = per_item.get(item_pk, 0) + 1
    assert all(count == 2 for count in per_item.values()), per_item
    assert len(per_item) == 30
    stored = Assessment.objects.filter(trace__review_item__session=session, source_type="HUMAN", valid=True)
    assert stored.count() == len(submitted) == 60  # no submitted answer lost
    assert set(ReviewItem.objects.filter(session=session).values_list("submitted_count", flat=True)) == {2}
    if connection.vendor == "postgresql":
        assert connection.features.has_select_for_update_skip_locked


@pytest.mark.django_db
def test_adjudication_page_prefills_what_everyone_agreed_and_shows_each_title_once(client: Client) -> None:
    tone = services.save_label_schema(
        schema=LabelSchema(
            name="tone", type="feedback", title="Is the tone right?", input_type="categorical", options=["warm", "cold"]
        )
    )
    session, (a, b) = make_team_session(n_items=1, n_reviewers=2, per_item=2)
    services.set_session_schemas(session=session, schemas=[*session.ordered_schemas(), tone])
    lead = User.objects.create_user("lead", password="pw-123456")
    services.set_session_leads(session=session, leads=[lead])
    item = session.items.get()
    for reviewer, correct in ((a, "pass"), (b, "fail")):
        submissions.submit_review(item=item, reviewer=reviewer, raw_answers={"correct": correct, "tone": "warm"})
    client.force_login(lead)
    body = client.get(reverse("labeling:adjudicate_item", args=[session.pk, item.pk])).content.decode()
    assert body.count("Is the tone right?") == 1 and body.count("Correct?") == 1
    assert 'name="q-tone" value="warm" checked' in body  # both said warm: filled in
    assert 'name="q-correct" value="pass" checked' not in body and 'value="fail" checked' not in body
    assert "reviewers disagree" in body and "all agreed" in body
    # Saving with only the split question decided keeps the agreed one too, since it is filled in.
    response = client.post(
        reverse("labeling:adjudicate_item", args=[session.pk, item.pk]), {"q-correct": "fail", "q-tone": "warm"}
    )
    assert response.status_code == 302
    assert set(item.adjudications.values_list("schema__name", flat=True)) == {"correct", "tone"}
