"""The expert's review screen: access, one item at a time, submit/skip, HTMX partials, query counts."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from labeling import assignment, services
from labeling.models import ItemReview, LabelingSession, LabelSchema, ReviewStatus, SessionStatus
from tests.factories import make_assessment, make_trace
from traces.models import Assessment

pytestmark = pytest.mark.django_db


def make_schemas() -> list[LabelSchema]:
    specs = [
        {"name": "correct", "title": "Is it correct?", "input_type": "pass_fail", "enable_comment": True},
        {
            "name": "helpfulness",
            "title": "How helpful?",
            "input_type": "categorical",
            "options": ["very", "somewhat", "not"],
        },
        {
            "name": "groundedness",
            "title": "Grounded (1-5)?",
            "input_type": "numeric",
            "min_value": 1,
            "max_value": 5,
            "integer": True,
        },
    ]
    return [services.save_label_schema(schema=LabelSchema(type="feedback", **spec)) for spec in specs] + [
        LabelSchema.objects.get(name="expected_facts")
    ]


@pytest.fixture
def session(reviewer, admin_user) -> LabelingSession:
    session = services.create_labeling_session(
        name="Cardiology answers",
        schemas=make_schemas(),
        reviewers=[reviewer],
        created_by=admin_user,
        instructions="Check the **documents**.",
    )
    traces = [make_trace(question=f"Question {i}?") for i in range(3)]
    services.add_traces_to_session(session=session, trace_ids=[t.trace_id for t in traces])
    # Every item is given to the reviewer, so they can open any of them (pool mode is tested elsewhere).
    assignment.assign_items(session=session, reviewer=reviewer, item_ids=session.items.values_list("pk", flat=True))
    return session


@pytest.fixture
def as_reviewer(client: Client, reviewer) -> Client:
    client.force_login(reviewer)
    return client


def items(session: LabelingSession) -> list:
    return list(session.items.order_by("position"))


def test_my_sessions_lists_only_assigned_sessions(as_reviewer: Client, session, admin_user) -> None:
    services.create_labeling_session(name="Not yours", created_by=admin_user)
    body = as_reviewer.get(reverse("labeling:my_sessions")).content.decode()
    assert "Cardiology answers" in body
    assert "Not yours" not in body
    assert "0 of 3 done" in body


def test_start_redirects_to_first_unfinished_item(as_reviewer: Client, session) -> None:
    first, second, _ = items(session)
    response = as_reviewer.get(reverse("labeling:review_start", args=[session.pk]))
    assert response.status_code == 302 and response["Location"] == first.get_absolute_url()
    as_reviewer.post(reverse("labeling:submit_item", args=[session.pk, first.pk]), {"q-correct": "pass"})
    response = as_reviewer.get(reverse("labeling:review_start", args=[session.pk]))
    assert response["Location"] == second.get_absolute_url()


def test_item_page_shows_trace_questions_progress_and_shortcuts(as_reviewer: Client, session) -> None:
    item = items(session)[0]
    body = as_reviewer.get(item.get_absolute_url()).content.decode()
    assert "Question 0?" in body  # the conversation
    assert body.count('<li class="doc">') == 2  # retrieved documents without a click
    assert "3 of 3 left" in body
    assert 'name="q-correct" value="pass"' in body and "<kbd>1</kbd>" in body
    assert 'name="q-groundedness"' in body and 'min="1' in body
    assert "<strong>documents</strong>" in body  # markdown instructions
    assert "Keyboard shortcuts" in body


def test_span_tree_opens_two_levels_as_on_the_trace_page(as_reviewer: Client, session, admin_user) -> None:
    """Not one collapsed "4 spans" row: the tree opens as on the trace page and lists every span."""
    item = items(session)[0]
    body = as_reviewer.get(item.get_absolute_url()).content.decode()
    tree = body[body.index('id="span-tree"') : body.index('id="span-detail"')]
    assert tree.count('class="span-link"') == item.trace.spans.count() == 3
    assert '<details class="span-node" open>' in tree and '<details class="span-node">' not in tree
    as_admin = Client()
    as_admin.force_login(admin_user)
    trace_page = as_admin.get(item.trace.get_absolute_url()).content.decode()
    assert trace_page.count('<details class="span-node" open>') == tree.count('<details class="span-node" open>')


def test_submit_stores_typed_assessments_and_moves_on(as_reviewer: Client, session, reviewer) -> None:
    first, second, _ = items(session)
    response = as_reviewer.post(
        reverse("labeling:submit_item", args=[session.pk, first.pk]),
        {
            "q-correct": "fail",
            "c-correct": "Cites the wrong dose",
            "q-helpfulness": "somewhat",
            "q-groundedness": "4",
            "q-expected_facts": "Dose is 81 mg\nTake with food",
        },
    )
    assert response.status_code == 302 and response["Location"] == second.get_absolute_url()
    stored = {a.name: a for a in Assessment.objects.filter(trace=first.trace, source_type="HUMAN")}
    assert stored["correct"].value is False and stored["correct"].rationale == "Cites the wrong dose"
    assert stored["helpfulness"].value == "somewhat"
    assert stored["groundedness"].value == 4
    assert stored["expected_facts"].value == ["Dose is 81 mg", "Take with food"]
    assert stored["expected_facts"].kind == "expectation" and stored["correct"].kind == "feedback"
    assert all(a.source_id == "reviewer" for a in stored.values())
    assert stored["correct"].metadata["labeling_session_id"] == session.pk
    assert stored["correct"].metadata["review_item_id"] == first.pk
    assert ItemReview.objects.get(item=first, reviewer=reviewer).status == ReviewStatus.SUBMITTED


def test_htmx_submit_returns_next_item_region_and_pushes_url(as_reviewer: Client, session) -> None:
    first, second, _ = items(session)
    response = as_reviewer.post(
        reverse("labeling:submit_item", args=[session.pk, first.pk]), {"q-correct": "pass"}, HTTP_HX_REQUEST="true"
    )
    body = response.content.decode()
    assert response.status_code == 200
    assert body.strip().startswith(f'<div id="review-main" data-item="{second.pk}"')
    assert "<html" not in body
    assert response["HX-Push-Url"] == second.get_absolute_url()
    assert "2 of 3 left" in body


def test_invalid_answer_shows_inline_errors_and_saves_nothing(as_reviewer: Client, session) -> None:
    first = items(session)[0]
    for partial in (False, True):
        headers = {"HTTP_HX_REQUEST": "true"} if partial else {}
        response = as_reviewer.post(
            reverse("labeling:submit_item", args=[session.pk, first.pk]),
            {"q-correct": "pass", "q-groundedness": "9", "q-helpfulness": "amazing"},
            **headers,
        )
        body = response.content.decode()
        assert response.status_code == 400
        assert "Enter a number of at most 5." in body
        assert "is not one of the options" in body
        assert 'value="pass" checked' in body  # what was typed is kept
        assert ("<html" in body) is not partial
    assert not Assessment.objects.filter(trace=first.trace, source_type="HUMAN").exists()
    assert not ItemReview.objects.filter(item=first).exists()


def test_empty_submit_asks_for_an_answer(as_reviewer: Client, session) -> None:
    first = items(session)[0]
    response = as_reviewer.post(reverse("labeling:submit_item", args=[session.pk, first.pk]), {})
    assert response.status_code == 400
    assert "Answer at least one question, or skip this item." in response.content.decode()


def test_revisit_shows_current_answers_and_edit_overrides(as_reviewer: Client, session) -> None:
    first = items(session)[0]
    url = reverse("labeling:submit_item", args=[session.pk, first.pk])
    as_reviewer.post(url, {"q-correct": "pass", "q-helpfulness": "very"})
    body = as_reviewer.get(first.get_absolute_url()).content.decode()
    assert 'value="pass" checked' in body and 'value="very" checked' in body
    assert "You answered this item" in body
    as_reviewer.post(url, {"q-correct": "fail", "q-helpfulness": "very"})
    history = list(Assessment.objects.filter(trace=first.trace, name="correct").order_by("create_time", "id"))
    assert [a.value for a in history] == [True, False]
    assert history[0].valid is False and history[1].overrides == history[0].assessment_id
    assert Assessment.objects.filter(trace=first.trace, name="helpfulness").count() == 1  # unchanged: no new row


def test_skip_moves_on_and_item_comes_back_last(as_reviewer: Client, session, reviewer) -> None:
    first, second, third = items(session)
    response = as_reviewer.post(reverse("labeling:skip_item", args=[session.pk, first.pk]), {"reason": "unclear"})
    assert response["Location"] == second.get_absolute_url()
    review = ItemReview.objects.get(item=first, reviewer=reviewer)
    assert review.status == ReviewStatus.SKIPPED and review.skip_reason == "unclear"
    for item in (second, third):
        as_reviewer.post(reverse("labeling:submit_item", args=[session.pk, item.pk]), {"q-correct": "pass"})
    response = as_reviewer.get(reverse("labeling:review_start", args=[session.pk]))
    assert response["Location"] == first.get_absolute_url()


def test_finishing_the_last_item_shows_done(as_reviewer: Client, session) -> None:
    for item in items(session):
        response = as_reviewer.post(
            reverse("labeling:submit_item", args=[session.pk, item.pk]), {"q-correct": "pass"}, HTTP_HX_REQUEST="true"
        )
    assert "All done" in response.content.decode()
    assert response["HX-Push-Url"] == reverse("labeling:review_start", args=[session.pk])
    page = as_reviewer.get(reverse("labeling:review_start", args=[session.pk]), follow=True)
    assert "All done" in page.content.decode()


def test_previous_next_links_and_htmx_navigation(as_reviewer: Client, session) -> None:
    first, second, third = items(session)
    body = as_reviewer.get(second.get_absolute_url()).content.decode()
    assert f'href="{first.get_absolute_url()}"' in body and f'href="{third.get_absolute_url()}"' in body
    partial = as_reviewer.get(third.get_absolute_url(), HTTP_HX_REQUEST="true").content.decode()
    assert partial.strip().startswith(f'<div id="review-main" data-item="{third.pk}"')


def test_span_details_in_review_context(as_reviewer: Client, session) -> None:
    item = items(session)[0]
    span = item.trace.spans.get(span_type="RETRIEVER")
    partial = as_reviewer.get(item.get_absolute_url(), {"span": span.span_id}, HTTP_HX_REQUEST="true")
    assert partial.status_code == 200 and "Document 0 text" in partial.content.decode()
    full = as_reviewer.get(item.get_absolute_url(), {"span": span.span_id})
    assert full.status_code == 200 and "Back to the item" in full.content.decode()
    assert as_reviewer.get(item.get_absolute_url(), {"span": "0000000000000bad"}).status_code == 404


def test_judge_assessments_are_visible_as_context(as_reviewer: Client, admin_user, reviewer) -> None:
    trace = make_trace()
    make_assessment(trace, "relevance", "yes", rationale="Judge: the answer uses the docs", source_type="LLM_JUDGE")
    session = services.create_labeling_session(name="ctx", schemas=make_schemas()[:1], reviewers=[reviewer])
    services.add_traces_to_session(session=session, trace_ids=[trace.trace_id])
    body = as_reviewer.get(reverse("labeling:review_start", args=[session.pk]), follow=True).content.decode()
    assert "Judge: the answer uses the docs" in body and "LLM judge" in body


def test_outsiders_get_404_everywhere(client: Client, outsider, session) -> None:
    client.force_login(outsider)
    item = items(session)[0]
    urls = [
        reverse("labeling:review_start", args=[session.pk]),
        item.get_absolute_url(),
    ]
    for url in urls:
        assert client.get(url).status_code == 404
    for name in ("labeling:submit_item", "labeling:skip_item"):
        assert client.post(reverse(name, args=[session.pk, item.pk]), {"q-correct": "pass"}).status_code == 404
    assert not Assessment.objects.filter(source_type="HUMAN").exists()
    assert "Cardiology answers" not in client.get(reverse("labeling:my_sessions")).content.decode()


def test_item_of_another_session_is_404(as_reviewer: Client, session, reviewer) -> None:
    other = services.create_labeling_session(name="Other", schemas=session.ordered_schemas(), reviewers=[reviewer])
    trace = make_trace()
    services.add_traces_to_session(session=other, trace_ids=[trace.trace_id])
    foreign = other.items.get()
    assignment.assign_items(session=other, reviewer=reviewer, item_ids=[foreign.pk])
    assert as_reviewer.get(reverse("labeling:review_item", args=[session.pk, foreign.pk])).status_code == 404


def test_anonymous_is_sent_to_login(client: Client, session) -> None:
    response = client.get(reverse("labeling:review_start", args=[session.pk]))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_archived_session_refuses_answers(as_reviewer: Client, session) -> None:
    session.status = SessionStatus.ARCHIVED
    session.save()
    item = items(session)[0]
    for name in ("labeling:submit_item", "labeling:skip_item"):
        response = as_reviewer.post(reverse(name, args=[session.pk, item.pk]), {"q-correct": "pass"})
        assert response.status_code == 403
        assert "archived" in response.content.decode()
    assert not Assessment.objects.filter(source_type="HUMAN").exists()
    assert not ItemReview.objects.exists()


def test_review_page_query_count_is_constant(as_reviewer: Client, reviewer, django_assert_max_num_queries) -> None:
    session = services.create_labeling_session(name="big", schemas=make_schemas(), reviewers=[reviewer])
    small, big = make_trace(n_spans=3), make_trace(n_spans=2000, n_documents=200)
    services.add_traces_to_session(session=session, trace_ids=[small.trace_id, big.trace_id])
    assignment.assign_items(session=session, reviewer=reviewer, item_ids=session.items.values_list("pk", flat=True))
    for item in session.items.all():
        as_reviewer.get(item.get_absolute_url())  # the first visit takes the lease (a few writes)
        with django_assert_max_num_queries(16):
            assert as_reviewer.get(item.get_absolute_url()).status_code == 200
    first = session.items.order_by("position").first()
    with django_assert_max_num_queries(30):
        response = as_reviewer.post(
            reverse("labeling:submit_item", args=[session.pk, first.pk]), {"q-correct": "pass"}, HTTP_HX_REQUEST="true"
        )
    assert response.status_code == 200


def test_submit_and_items_left_sit_in_the_answer_footer_and_answers_come_before_the_trace(
    as_reviewer: Client, session
) -> None:
    body = as_reviewer.get(items(session)[0].get_absolute_url()).content.decode()
    footer = body[body.index('<footer class="answer-footer">') : body.index("</footer>")]
    assert '<button type="submit" form="answer-form"' in footer and "Submit and go to next" in footer
    assert "3 of 3 left" in footer and 'id="lease-warning"' in footer
    assert body.count("3 of 3 left") == 1
    # Source order is Tab order: the questions, skip and flag before the trace's links.
    assert body.index('id="answer-form"') < body.index('id="skip-form"') < body.index('id="conversation"')


def test_shortcut_help_and_pick_several_hint_name_the_next_question_key(as_reviewer: Client, reviewer) -> None:
    several = services.save_label_schema(
        schema=LabelSchema(
            name="problems", type="feedback", title="Problems?", input_type="categorical_list", options=["a", "b"]
        )
    )
    session = services.create_labeling_session(name="several", schemas=[several], reviewers=[reviewer])
    services.add_traces_to_session(session=session, trace_ids=[make_trace().trace_id])
    body = as_reviewer.get(reverse("labeling:review_start", args=[session.pk]), follow=True).content.decode()
    assert "Pick all that apply, then <kbd>Esc</kbd> for the next question." in body
    help_dialog = body[body.index('<dialog id="shortcut-help"') : body.index("</dialog>")]
    assert "<tr><td><kbd>Esc</kbd></td><td>Done with this question: go to the next one" in help_dialog
    assert "<kbd>Shift</kbd>+<kbd>Esc</kbd></td><td>Back to the previous question" in help_dialog
    assert "the questions come before the trace" in help_dialog


@pytest.mark.parametrize(
    ("low", "high", "lease_minutes", "seconds"),
    [(15, 120, 10, 120), (15, 120, 1, 20), (15, 120, 0, 15), (1, 1, 10, 1)],
)
def test_heartbeat_interval_follows_the_lease_within_the_settings(
    as_reviewer: Client, session, settings, low: int, high: int, lease_minutes: int, seconds: int
) -> None:
    settings.REVIEW_HEARTBEAT_MIN_SECONDS, settings.REVIEW_HEARTBEAT_MAX_SECONDS = low, high
    LabelingSession.objects.filter(pk=session.pk).update(lease_minutes=lease_minutes)
    body = as_reviewer.get(reverse("labeling:review_start", args=[session.pk]), follow=True).content.decode()
    assert f'data-heartbeat-seconds="{seconds}"' in body


def test_submit_confirms_in_green_on_the_next_item_and_skip_says_so(as_reviewer: Client, session) -> None:
    first, second, _ = items(session)
    response = as_reviewer.post(
        reverse("labeling:submit_item", args=[session.pk, first.pk]), {"q-correct": "pass"}, HTTP_HX_REQUEST="true"
    )
    body = response.content.decode()
    assert f'data-item="{second.pk}"' in body
    assert '<p class="notice ok" role="status">Saved your answers to the previous item.</p>' in body
    response = as_reviewer.post(reverse("labeling:skip_item", args=[session.pk, second.pk]), HTTP_HX_REQUEST="true")
    assert '<p class="notice ok" role="status">Skipped the previous item.</p>' in response.content.decode()
    # Without JavaScript the same words come as a message after the redirect.
    page = as_reviewer.post(
        reverse("labeling:submit_item", args=[session.pk, items(session)[2].pk]), {"q-correct": "pass"}, follow=True
    )
    assert "Saved your answers to the previous item." in page.content.decode()
