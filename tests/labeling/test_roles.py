"""Roles: admins do everything, leads manage their sessions, reviewers see only their work (404 elsewhere)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from labeling import services
from labeling.models import LabelingSession, LabelSchema, SessionStatus
from tests.factories import make_trace

pytestmark = pytest.mark.django_db


@pytest.fixture
def setup(admin_user, reviewer) -> dict:
    lead = User.objects.create_user("lead", password="pw-123456")
    schema = services.save_label_schema(
        schema=LabelSchema(name="correct", type="feedback", title="Correct?", input_type="pass_fail")
    )
    led = services.create_labeling_session(name="Led", schemas=[schema], reviewers=[reviewer])
    other = services.create_labeling_session(name="Other", schemas=[schema], reviewers=[reviewer])
    services.set_session_leads(session=led, leads=[lead])
    trace = make_trace()
    services.add_traces_to_session(session=led, trace_ids=[trace.trace_id])
    services.add_traces_to_session(session=other, trace_ids=[trace.trace_id])
    return {"lead": lead, "led": led, "other": other, "schema": schema, "trace": trace}


def session_urls(session: LabelingSession) -> list[str]:
    item = session.items.first()
    return [
        reverse("labeling:session_dashboard", args=[session.pk]),
        reverse("labeling:session_edit", args=[session.pk]),
        reverse("labeling:session_add_traces", args=[session.pk]),
        reverse("labeling:adjudication_queue", args=[session.pk]),
        reverse("labeling:adjudicate_item", args=[session.pk, item.pk]),
    ]


ADMIN_ONLY = ["labeling:schema_list", "labeling:schema_create", "labeling:session_create", "labeling:user_list"]


def test_reviewer_gets_404_on_every_manage_page_and_403_on_writes(client: Client, reviewer, setup) -> None:
    client.force_login(reviewer)
    for url in (
        [reverse(name) for name in ADMIN_ONLY]
        + session_urls(setup["led"])
        + [
            reverse("labeling:schema_edit", args=[setup["schema"].pk]),
            reverse("labeling:session_list"),
            reverse("traces:list"),
            setup["trace"].get_absolute_url(),
        ]
    ):
        assert client.get(url).status_code == 404, url
    led = setup["led"]
    writes = [
        (reverse("labeling:schema_create"), {"name": "x", "title": "X", "type": "feedback", "input_type": "text"}),
        (reverse("labeling:session_edit", args=[led.pk]), {"name": "Hijacked", "status": "active"}),
        (reverse("labeling:session_complete", args=[led.pk]), {}),
        (reverse("labeling:session_assign", args=[led.pk]), {}),
        (reverse("labeling:session_add_traces", args=[led.pk]), {"trace_ids": setup["trace"].trace_id}),
        (reverse("labeling:user_role", args=[reviewer.pk]), {"role": "admin"}),
    ]
    for url, data in writes:
        assert client.post(url, data).status_code == 403, url
    led.refresh_from_db()
    reviewer.refresh_from_db()
    assert led.name == "Led" and led.status == SessionStatus.ACTIVE and led.assignment_mode == "pool"
    assert not LabelSchema.objects.filter(name="x").exists()
    assert not reviewer.is_staff


def test_lead_manages_their_session_only(client: Client, setup) -> None:
    client.force_login(setup["lead"])
    for url in session_urls(setup["led"]):
        assert client.get(url).status_code == 200, url
    for url in session_urls(setup["other"]):
        assert client.get(url).status_code == 404, url
    for name in ADMIN_ONLY:
        assert client.get(reverse(name)).status_code == 404
    assert client.get(reverse("traces:list")).status_code == 200  # leads pick traces for their sessions
    response = client.get(reverse("labeling:session_list"))
    assert "Led" in response.content.decode() and "Other" not in response.content.decode()
    response = client.post(reverse("labeling:session_complete", args=[setup["other"].pk]))
    assert response.status_code == 403
    setup["other"].refresh_from_db()
    assert setup["other"].status == SessionStatus.ACTIVE


def test_admin_sees_everything(client: Client, admin_user, setup) -> None:
    client.force_login(admin_user)
    for name in ADMIN_ONLY:
        assert client.get(reverse(name)).status_code == 200
    for session in (setup["led"], setup["other"]):
        for url in session_urls(session):
            assert client.get(url).status_code == 200, url


def test_admin_changes_roles_and_adds_people(client: Client, admin_user, reviewer) -> None:
    client.force_login(admin_user)
    response = client.post(reverse("labeling:user_role", args=[reviewer.pk]), {"role": "admin"})
    assert response.status_code == 302
    reviewer.refresh_from_db()
    assert reviewer.is_staff
    client.post(reverse("labeling:user_role", args=[admin_user.pk]), {"role": "reviewer"})
    admin_user.refresh_from_db()
    assert admin_user.is_staff  # nobody demotes themselves
    response = client.post(
        reverse("labeling:user_list"),
        {"username": "dr_new", "email": "", "password": "a-long-Passphrase-42", "role": "reviewer"},
    )
    assert response.status_code == 302
    assert User.objects.get(username="dr_new").check_password("a-long-Passphrase-42")


def test_adding_people_validates(client: Client, admin_user, reviewer) -> None:
    client.force_login(admin_user)
    before = User.objects.count()
    for data, message in (
        ({"username": "reviewer", "password": "a-long-Passphrase-42", "role": "reviewer"}, "already has this username"),
        ({"username": "dr_x", "password": "123", "role": "reviewer"}, "too short"),
        ({"username": "dr_y", "password": "a-long-Passphrase-42", "role": "king"}, "Select a valid choice"),
    ):
        response = client.post(reverse("labeling:user_list"), data)
        assert response.status_code == 400 and message in response.content.decode()
    assert User.objects.count() == before


def test_anonymous_is_sent_to_login_everywhere(client: Client, setup) -> None:
    for url in [reverse(name) for name in ADMIN_ONLY] + session_urls(setup["led"]):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith(reverse("login")), url
