"""Manage pages: questions for every answer kind, sessions, adding traces, the dashboard."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.urls import reverse

from labeling import claims, services, submissions
from labeling.models import LabelingSession, LabelSchema, LabelSchemaVersion
from tests.factories import make_trace

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin(client: Client, admin_user) -> Client:
    client.force_login(admin_user)
    return client


VALID = {
    "categorical": {"options": "very\nsomewhat\nnot"},
    "categorical_list": {"options": "dose\nallergy\ninteraction"},
    "text": {"max_length": "500"},
    "text_list": {"max_length": "200", "max_count": "5"},
    "numeric": {"min_value": "1", "max_value": "5", "integer": "on"},
    "pass_fail": {"pass_label": "Safe", "fail_label": "Unsafe"},
}


@pytest.mark.parametrize("kind", sorted(VALID))
def test_create_question_of_every_kind(admin: Client, kind: str) -> None:
    data = {"name": f"q_{kind}", "title": f"Question {kind}?", "type": "feedback", "input_type": kind, **VALID[kind]}
    data.update({"options": data.get("options", "stray\noption")})  # settings of other kinds are ignored
    response = admin.post(reverse("labeling:schema_create"), data)
    assert response.status_code == 302, response.content.decode()[:2000]
    schema = LabelSchema.objects.get(name=f"q_{kind}")
    assert schema.input_type == kind
    if kind.startswith("categorical"):
        assert len(schema.options) == 3
    else:
        assert schema.options == []
    if kind == "numeric":
        assert (schema.min_value, schema.max_value, schema.integer) == (1, 5, True)
    if kind == "pass_fail":
        assert schema.choices == [("pass", "Safe"), ("fail", "Unsafe")]


INVALID = [
    ({"input_type": "categorical", "options": ""}, "Add at least one option."),
    ({"input_type": "categorical", "options": "a\na"}, "Duplicate options: a."),
    ({"input_type": "categorical_list", "options": "a\n   \nb"}, "Options cannot be empty."),
    ({"input_type": "categorical", "options": "a\x00b\nc"}, "An option contains a NUL character"),  # was a 500
    ({"input_type": "numeric", "min_value": "5", "max_value": "5"}, "Maximum must be greater than minimum."),
    ({"input_type": "text", "max_length": "0"}, "Maximum length must be at least 1."),
    ({"input_type": "pass_fail", "pass_label": "Yes", "fail_label": "yes"}, "Pass and fail labels must differ."),
    ({"input_type": "text", "name": ""}, "This field is required."),
    ({"input_type": "text", "title": ""}, "This field is required."),
    ({"input_type": "text", "name": "expected_facts"}, "already exists"),
    ({"input_type": "text", "name": "has space"}, "Enter a valid “slug”"),
]


@pytest.mark.parametrize(("changes", "message"), INVALID)
def test_invalid_question_is_400_with_message_and_nothing_saved(admin: Client, changes: dict, message: str) -> None:
    before = LabelSchema.objects.count()
    data = {"name": "new_q", "title": "New?", "type": "feedback", **changes}
    response = admin.post(reverse("labeling:schema_create"), data)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert LabelSchema.objects.count() == before


def test_editing_keeps_history_and_answered_kind_is_frozen(admin: Client, reviewer) -> None:
    schema = services.save_label_schema(
        schema=LabelSchema(name="correct", type="feedback", title="Correct?", input_type="pass_fail")
    )
    url = reverse("labeling:schema_edit", args=[schema.pk])
    base = {"name": "correct", "type": "feedback", "input_type": "pass_fail"}
    assert admin.post(url, {**base, "title": "Is it correct?"}).status_code == 302
    assert LabelSchemaVersion.objects.get(schema=schema).snapshot["title"] == "Correct?"
    assert "Earlier versions" in admin.get(url).content.decode()
    session = services.create_labeling_session(name="s", schemas=[schema], reviewers=[reviewer])
    services.add_traces_to_session(session=session, trace_ids=[make_trace().trace_id])
    submissions.submit_review(item=session.items.get(), reviewer=reviewer, raw_answers={"correct": "pass"})
    response = admin.post(url, {**base, "title": "Is it correct?", "input_type": "text"})
    assert response.status_code == 400 and "cannot change" in response.content.decode()
    schema.refresh_from_db()
    assert schema.input_type == "pass_fail" and schema.version == 2


def test_instructions_are_markdown_without_scripts(admin: Client) -> None:
    schema = services.save_label_schema(
        schema=LabelSchema(
            name="safe",
            type="feedback",
            title="Safe?",
            input_type="pass_fail",
            instruction="**Bold** <script>alert(1)</script> [x](javascript:alert(2)) [ok](https://example.com)",
        )
    )
    body = admin.get(reverse("labeling:schema_edit", args=[schema.pk])).content.decode()
    assert "<strong>Bold</strong>" in body
    assert "<script>alert(1)" not in body and 'href="javascript:' not in body
    assert 'href="https://example.com"' in body


def session_form(**overrides) -> dict:
    schema = LabelSchema.objects.get(name="expected_facts")
    return {
        "name": "Cardiology",
        "instructions": "Read carefully.",
        "status": "active",
        "reviewers_per_item": "2",
        "lease_minutes": "10",
        "assignment_mode": "pool",
        f"schema_{schema.pk}": "1",
        **overrides,
    }


def test_create_and_edit_session(admin: Client, reviewer) -> None:
    response = admin.post(reverse("labeling:session_create"), session_form(reviewers=[reviewer.pk]))
    assert response.status_code == 302
    session = LabelingSession.objects.get(name="Cardiology")
    assert session.reviewers_per_item == 2 and list(session.reviewers.all()) == [reviewer]
    assert [s.name for s in session.ordered_schemas()] == ["expected_facts"]
    response = admin.post(
        reverse("labeling:session_edit", args=[session.pk]), session_form(name="Cardiology v2", blind="on")
    )
    assert response.status_code == 302
    session.refresh_from_db()
    assert session.name == "Cardiology v2" and session.blind and not session.reviewers.exists()


def test_session_form_errors(admin: Client) -> None:
    services.create_labeling_session(name="Taken")
    for data, message in (
        (session_form(name="Taken"), "already exists"),
        (session_form(name=" "), "This field is required."),
        (session_form(reviewers_per_item="11"), "less than or equal to 10"),
    ):
        response = admin.post(reverse("labeling:session_create"), data)
        assert response.status_code == 400 and message in response.content.decode()
    assert LabelingSession.objects.count() == 1


def test_add_traces_preview_and_add_all_matching_not_just_a_page(admin: Client) -> None:
    session = services.create_labeling_session(name="Many")
    for i in range(60):
        make_trace(name="billing" if i < 55 else "other")
    url = reverse("labeling:session_add_traces", args=[session.pk])
    preview = admin.get(url, {"name": "billing"}, HTTP_HX_REQUEST="true")
    body = preview.content.decode()
    assert body.strip().startswith('<section id="preview"')
    assert "<strong>55</strong> traces match" in body and "<strong>55</strong> will be added" in body
    assert body.count("<tr>") == 11  # header + 10 sample rows
    response = admin.post(url, {"name": "billing"})
    assert response.status_code == 302
    assert session.items.count() == 55
    again = admin.get(url, {"name": "billing"}).content.decode()
    assert "55 are already in this session" in again and "<strong>0</strong> will be added" in again
    admin.post(url, {"name": "billing"})
    assert session.items.count() == 55


def test_add_traces_by_id(admin: Client) -> None:
    session = services.create_labeling_session(name="Ids")
    known = make_trace()
    url = reverse("labeling:session_add_traces", args=[session.pk])
    response = admin.post(url, {"trace_ids": known.trace_id}, follow=True)
    assert "Added 1 traces (0 were already there)." in response.content.decode()
    assert session.items.count() == 1
    response = admin.get(url, {"since": "2026-12-01", "until": "2026-01-01"})
    assert response.status_code == 400


def test_pasted_ids_add_the_known_ones_and_list_the_unknown_at_the_top(admin: Client) -> None:
    session = services.create_labeling_session(name="Ids")
    known = [make_trace(), make_trace()]
    services.add_traces_to_session(session=session, trace_ids=[known[1].trace_id])
    url = reverse("labeling:session_add_traces", args=[session.pk])
    pasted = f"{known[0].trace_id}, tr-doesnotexist\n{known[1].trace_id}\ntr-typo\ntr-doesnotexist"
    response = admin.post(url, {"trace_ids": pasted})
    body = response.content.decode()
    assert response.status_code == 200
    assert session.items.count() == 2
    notice = body.index('class="card unknown-ids" role="alert"')
    assert notice < body.index('<form method="get"')  # above the filters, not inside the collapsed box
    assert "Added 1 trace</strong> (1 already in this session)" in body
    assert "these 2 ids are unknown:" in body
    assert "<li>tr-doesnotexist</li><li>tr-typo</li>" in body
    # The box with the ids is open and holds only the unknown ones, to correct and add again.
    assert '<details class="card" open>' in body
    assert ">\ntr-doesnotexist\ntr-typo</textarea>" in body


def test_pasted_ids_all_unknown(admin: Client) -> None:
    session = services.create_labeling_session(name="Ids")
    url = reverse("labeling:session_add_traces", args=[session.pk])
    body = admin.post(url, {"trace_ids": "tr-nope"}).content.decode()
    assert "Added 0 traces</strong>;" in body and "this id is unknown:" in body and "<li>tr-nope</li>" in body
    assert session.items.count() == 0


def test_many_unknown_ids_are_listed_in_part(admin: Client) -> None:
    session = services.create_labeling_session(name="Ids")
    url = reverse("labeling:session_add_traces", args=[session.pk])
    pasted = "\n".join(f"tr-missing-{i}" for i in range(150))
    body = admin.post(url, {"trace_ids": pasted}).content.decode()
    assert "these 150 ids are unknown:" in body
    assert "<li>tr-missing-99</li>" in body and "<li>tr-missing-100</li>" not in body
    assert "… and 50 more" in body
    assert "tr-missing-149</textarea>" in body  # every one of them is offered for correction


def test_add_traces_service_returns_unknown_ids_in_the_order_given() -> None:
    session = services.create_labeling_session(name="Ids")
    known = make_trace()
    result = services.add_traces_to_session(session=session, trace_ids=["tr-b", known.trace_id, "tr-a", "tr-b"])
    assert (result.added, result.already_there, result.unknown) == (1, 0, ["tr-b", "tr-a"])
    again = services.add_traces_to_session(session=session, trace_ids=[known.trace_id])
    assert (again.added, again.already_there, again.unknown) == (0, 1, [])


def answered_session(n_items: int) -> LabelingSession:
    reviewers = [User.objects.get_or_create(username=f"r{i}")[0] for i in range(2)]
    schemas = (
        [
            services.save_label_schema(
                schema=LabelSchema(name="correct", type="feedback", title="Correct?", input_type="pass_fail")
            ),
            services.save_label_schema(
                schema=LabelSchema(
                    name="tone", type="feedback", title="Tone?", input_type="categorical", options=["warm", "cold"]
                )
            ),
        ]
        if not LabelSchema.objects.filter(name="correct").exists()
        else list(LabelSchema.objects.filter(name__in=["correct", "tone"]).order_by("name"))
    )
    session = services.create_labeling_session(name=f"dash-{n_items}", schemas=schemas, reviewers=reviewers)
    session.reviewers_per_item = 2
    session.save()
    services.add_traces_to_session(session=session, trace_ids=[make_trace().trace_id for _ in range(n_items)])
    for index, item in enumerate(session.items.order_by("position")):
        for reviewer in reviewers:
            claims.claim_next_item(session=session, reviewer=reviewer)
            value = "pass" if (index + reviewer.pk) % 3 else "fail"
            submissions.submit_review(item=item, reviewer=reviewer, raw_answers={"correct": value, "tone": "warm"})
    return session


def test_dashboard_progress_answers_distributions_and_constant_queries(
    admin: Client, django_assert_max_num_queries
) -> None:
    small, big = answered_session(2), answered_session(25)
    for session in (small, big):
        with django_assert_max_num_queries(25):
            response = admin.get(session.get_absolute_url())
        assert response.status_code == 200
    body = admin.get(big.get_absolute_url()).content.decode()
    assert "25 of 25 items complete" in body
    assert '<td>r0</td><td class="num">25</td>' in body
    assert "Answers per question" in body and ">warm<" in body
    answers = admin.get(
        big.get_absolute_url(), {"part": "answers", "question": "correct", "value": "fail"}, HTTP_HX_REQUEST="true"
    )
    text = answers.content.decode()
    assert text.strip().startswith('<section id="answers"')
    fails = big.items.count()  # upper bound; each row is a fail answer
    assert 0 < text.count('class="badge v-fail"') <= fails * 2
    assert 'class="badge v-pass"' not in text
    bad = admin.get(
        big.get_absolute_url(), {"part": "answers", "question": "correct", "value": "maybe"}, HTTP_HX_REQUEST="true"
    )
    assert "Choose pass or fail." in bad.content.decode()
    progress = admin.get(big.get_absolute_url(), {"part": "progress"}, HTTP_HX_REQUEST="true").content.decode()
    assert progress.strip().startswith('<section id="progress"')
    assert 'hx-trigger="every 5s, trace-add-done from:body"' in progress


def test_complete_and_assign_evenly(admin: Client, reviewer) -> None:
    other = User.objects.create_user("other")
    session = services.create_labeling_session(name="c", reviewers=[reviewer, other])
    services.add_traces_to_session(session=session, trace_ids=[make_trace().trace_id for _ in range(4)])
    admin.post(reverse("labeling:session_assign", args=[session.pk]))
    session.refresh_from_db()
    assert session.assignment_mode == "assigned"
    assert (
        sorted(session.items.values_list("assignments__reviewer__username", flat=True))
        == ["other"] * 2 + ["reviewer"] * 2
    )
    admin.post(reverse("labeling:session_complete", args=[session.pk]))
    session.refresh_from_db()
    assert session.status == "completed"


def test_assign_items_by_hand(admin: Client, reviewer) -> None:
    session = services.create_labeling_session(name="hand", reviewers=[reviewer])
    services.add_traces_to_session(session=session, trace_ids=[make_trace().trace_id for _ in range(3)])
    first, second, third = session.items.order_by("position")
    url = reverse("labeling:session_assign_by_hand", args=[session.pk])
    response = admin.post(url, {"reviewer": reviewer.pk, "items": [first.pk, third.pk]}, follow=True)
    assert "Gave 2 items to reviewer" in response.content.decode()
    session.refresh_from_db()
    assert session.assignment_mode == "assigned"
    assert set(session.items.filter(assignments__reviewer=reviewer).values_list("pk", flat=True)) == {
        first.pk,
        third.pk,
    }
    outsider = User.objects.create_user("not-a-reviewer")
    response = admin.post(url, {"reviewer": outsider.pk, "items": [second.pk]}, follow=True)
    assert "Pick a reviewer of this session" in response.content.decode()
    assert not second.assignments.exists()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="planner estimates are PostgreSQL's")
def test_add_traces_preview_estimates_a_large_count_and_the_add_is_exact(admin: Client, monkeypatch) -> None:
    from traces import pagination

    session = services.create_labeling_session(name="Estimated")
    for _ in range(30):
        make_trace(name="billing")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE traces_trace")
    monkeypatch.setattr(pagination, "EXACT_COUNT_UP_TO", 5)
    monkeypatch.setattr(pagination.estimate_count, "__defaults__", (5,))
    url = reverse("labeling:session_add_traces", args=[session.pk])
    body = admin.get(url, {"name": "billing"}, HTTP_HX_REQUEST="true").content.decode()
    assert "About <strong>" in body and "an estimate" in body
    assert "Add all matching traces" in body
    response = admin.post(url, {"name": "billing"}, follow=True)
    assert "Added 30 traces" in response.content.decode()  # exact
    assert session.items.count() == 30
