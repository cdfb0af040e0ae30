"""Who may open which trace: a session's frozen copies only for those who manage that session, and admins.

The access matrix: five people × the original trace and its copies in two sessions × every trace URL
(the list, the trace page, the span panel and page, the "show all" variants).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from labeling import services, submissions
from labeling.models import LabelingSession, LabelSchema
from tests.factories import make_trace
from traces.models import Span, Trace

pytestmark = pytest.mark.django_db

SECRET = "Only session Y may read this rationale"


@dataclass
class World:
    people: dict[str, User]
    traces: dict[str, Trace]
    session_x: LabelingSession
    session_y: LabelingSession


@pytest.fixture
def world(admin_user: User) -> World:
    lead_x = User.objects.create_user("lead-x", password="pw-123456")
    lead_y = User.objects.create_user("lead-y", password="pw-123456")
    reviewer_x = User.objects.create_user("reviewer-x", password="pw-123456")
    reviewer_y = User.objects.create_user("reviewer-y", password="pw-123456")
    outsider = User.objects.create_user("outsider", password="pw-123456")
    schema = services.save_label_schema(
        schema=LabelSchema(
            name="correct", type="feedback", title="Correct?", input_type="pass_fail", enable_comment=True
        )
    )
    session_x = services.create_labeling_session(name="X", schemas=[schema], reviewers=[reviewer_x])
    session_y = services.create_labeling_session(name="Y", schemas=[schema], reviewers=[reviewer_y])
    services.set_session_leads(session=session_x, leads=[lead_x])
    services.set_session_leads(session=session_y, leads=[lead_y])
    original = make_trace(question="Which dose is safe?")
    for session in (session_x, session_y):
        services.add_traces_to_session(session=session, trace_ids=[original.trace_id])
    item_y = session_y.items.get()
    submissions.submit_review(
        item=item_y, reviewer=reviewer_y, raw_answers={"correct": "fail"}, raw_comments={"correct": SECRET}
    )
    return World(
        people={
            "admin": admin_user,
            "lead of X": lead_x,
            "lead of Y": lead_y,
            "reviewer of X": reviewer_x,
            "outsider": outsider,
        },
        traces={"original": original, "copy in X": session_x.items.get().trace, "copy in Y": item_y.trace},
        session_x=session_x,
        session_y=session_y,
    )


# Who may open which trace by its id; everyone else gets 404 on every trace URL.
MAY_OPEN = {
    "admin": {"original", "copy in X", "copy in Y"},
    "lead of X": {"original", "copy in X"},
    "lead of Y": {"original", "copy in Y"},
    "reviewer of X": set(),  # reviewers work on the review screen; the explorer does not exist for them
    "outsider": set(),
}


def trace_urls(trace: Trace) -> dict[str, tuple[str, dict[str, str]]]:
    """Every URL that takes a trace id (traces/urls.py ``detail`` and its query variants)."""
    root = Span.objects.get(trace=trace, parent_id="")
    url = trace.get_absolute_url()
    return {
        "detail": (url, {}),
        "span page": (url + f"?span={root.span_id}", {}),
        "span panel": (url + f"?span={root.span_id}", {"HTTP_HX_REQUEST": "true"}),
        "show all": (url + "?docs=all&tools=all&tree=all", {}),
    }


@pytest.mark.parametrize("person", list(MAY_OPEN))
def test_access_matrix(client: Client, world: World, person: str) -> None:
    client.force_login(world.people[person])
    seen = {}
    for which, trace in world.traces.items():
        for kind, (url, headers) in trace_urls(trace).items():
            response = client.get(url, **headers)
            seen[(which, kind)] = response.status_code
            if response.status_code == 200:
                assert trace.trace_id in response.content.decode() or kind == "span panel"
            else:
                assert SECRET not in response.content.decode()
    expected = {
        (which, kind): 200 if which in MAY_OPEN[person] else 404
        for which in world.traces
        for kind in trace_urls(world.traces["original"])
    }
    assert seen == expected


@pytest.mark.parametrize("person", list(MAY_OPEN))
def test_the_list_never_shows_copies(client: Client, world: World, person: str) -> None:
    client.force_login(world.people[person])
    list_url = reverse("traces:list")
    response = client.get(list_url)
    if not MAY_OPEN[person]:
        assert response.status_code == 404
        return
    body = response.content.decode()
    assert response.status_code == 200
    assert world.traces["original"].get_absolute_url() in body
    for copy in ("copy in X", "copy in Y"):
        assert world.traces[copy].trace_id[:12] not in body
    # Nor by naming a session's experiment in the filter: that is not a choice of the form.
    response = client.get(list_url, {"experiment": world.session_y.experiment_id})
    assert response.status_code == 400
    assert world.traces["copy in Y"].trace_id[:12] not in response.content.decode()


def test_session_y_answers_reach_its_lead_and_admins_only(client: Client, world: World) -> None:
    copy_url = world.traces["copy in Y"].get_absolute_url()
    for person, may_read in (("admin", True), ("lead of Y", True), ("lead of X", False)):
        client.force_login(world.people[person])
        response = client.get(copy_url)
        assert (SECRET in response.content.decode()) is may_read, person


def test_a_lead_of_both_sessions_sees_both_copies(client: Client, world: World) -> None:
    lead_x = world.people["lead of X"]
    services.set_session_leads(session=world.session_y, leads=[lead_x])
    client.force_login(lead_x)
    for which in ("copy in X", "copy in Y"):
        assert client.get(world.traces[which].get_absolute_url()).status_code == 200


def test_losing_the_lead_role_closes_the_copies(client: Client, world: World) -> None:
    lead_x = world.people["lead of X"]
    services.set_session_leads(session=world.session_y, leads=[lead_x])
    services.set_session_leads(session=world.session_x, leads=[])
    services.set_session_leads(session=world.session_y, leads=[])
    client.force_login(lead_x)
    assert client.get(world.traces["copy in X"].get_absolute_url()).status_code == 404
    assert client.get(world.traces["original"].get_absolute_url()).status_code == 404  # no explorer any more


def test_copy_page_for_a_lead_runs_constant_queries(
    client: Client, world: World, django_assert_max_num_queries
) -> None:
    client.force_login(world.people["lead of X"])
    big = make_trace(n_spans=500, n_documents=50)
    services.add_traces_to_session(session=world.session_x, trace_ids=[big.trace_id])
    for item in world.session_x.items.select_related("trace"):
        with django_assert_max_num_queries(7):
            assert client.get(item.trace.get_absolute_url()).status_code == 200


def test_the_review_screen_span_panel_follows_the_session_rule(client: Client, world: World) -> None:
    """The other URL that opens a copy's spans: the review screen's panel, under the session's own rules."""
    client.force_login(world.people["lead of X"])
    for session, status in ((world.session_x, 200), (world.session_y, 404)):
        item = session.items.select_related("trace").get()
        root = Span.objects.get(trace=item.trace, parent_id="")
        response = client.get(item.get_absolute_url(), {"span": root.span_id}, HTTP_HX_REQUEST="true")
        assert response.status_code == status


def test_the_list_for_a_lead_runs_constant_queries(client: Client, world: World, django_assert_max_num_queries) -> None:
    for _ in range(30):
        make_trace()
    client.force_login(world.people["lead of X"])
    with django_assert_max_num_queries(8):  # the admin's 7, and whether the user leads a session
        assert client.get(reverse("traces:list")).status_code == 200
