"""Sending a scorer's failures (or every scorer's) from the dashboard to a labeling session."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from evaluation.monitoring.dashboard import WINDOWS
from labeling.models import LabelingSession, ReviewItem, TraceAddJob
from tests.evaluation.monitoring.dashboard_data import bare_traces, in_bucket, make_session, register, verdicts
from tests.factories import make_experiment

pytestmark = pytest.mark.django_db
WEEK, DAY = WINDOWS["7d"], WINDOWS["24h"]


@pytest.fixture
def lead(db: None) -> User:
    user = User.objects.create_user("lead", password="pw-123456")
    make_session("Led by lead", leads=[user])
    return user


@pytest.fixture
def production():
    """Two scorers: ``fast`` failed 2 traces and errored on 1 today, failed 1 three days ago; ``docs`` failed 1."""
    experiment = make_experiment("Production")
    fast, docs = register(experiment, "fast"), register(experiment, "docs", scorer="has_retrieved_documents")
    today, earlier = in_bucket(DAY, -2), in_bucket(WEEK, -4)
    traces = bare_traces(experiment, [today] * 5 + [earlier])
    verdicts(fast, today, "failed", "failed", "error", "passed", "passed", traces=traces[:5])
    verdicts(fast, earlier, "failed", traces=traces[5:])
    verdicts(docs, today, "passed", "failed", traces=[traces[0], traces[3]])
    failed_fast = {t.trace_id for t in traces[:3]} | {traces[5].trace_id}
    return experiment, fast, docs, traces, failed_fast


def send_url(experiment) -> str:
    return reverse("evaluation:monitoring_send_failures", args=[experiment.pk])


def added(session: LabelingSession) -> set[str]:
    return set(session.items.values_list("source_trace_id_text", flat=True))


def test_a_scorers_failures_in_the_window_are_added_as_copies_of_the_originals(
    client: Client, admin_user: User, production
) -> None:
    experiment, fast, _, _, failed_fast = production
    session = make_session("Triage")
    client.force_login(admin_user)
    response = client.post(send_url(experiment), {"session": session.pk, "scorer": fast.pk, "window": "7d"})
    assert response.status_code == 302
    assert response["Location"] == reverse("evaluation:monitoring", args=[experiment.pk])
    assert added(session) == failed_fast
    assert all(item.trace.source_trace.experiment_id == experiment.pk for item in session.items.select_related("trace"))
    message = [str(m) for m in client.get(response["Location"]).context["messages"]]
    assert message == ["Added 4 failed traces of “fast” to “Triage” (0 were already there)."]


def test_any_scorer_and_a_shorter_window(client: Client, lead: User, production) -> None:
    experiment, _, _, traces, _ = production
    theirs = LabelingSession.objects.get(name="Led by lead")
    client.force_login(lead)
    response = client.post(send_url(experiment), {"session": theirs.pk, "scorer": "", "window": "24h"})
    assert response.status_code == 302 and response["Location"].endswith("?window=24h")
    # today's: fast failed 0 and 1, errored on 2; docs failed 3; the failure three days ago is outside 24 h
    assert added(theirs) == {t.trace_id for t in traces[:4]}


def test_bad_sends_are_400s_with_a_message_and_add_nothing(
    client: Client, admin_user: User, lead: User, production
) -> None:
    experiment, fast, _, _, _ = production
    theirs = LabelingSession.objects.get(name="Led by lead")
    other = make_session("Not theirs")
    archived = make_session("Archived")
    LabelingSession.objects.filter(pk=archived.pk).update(status="archived")
    quiet = register(experiment, "quiet")
    cases = [
        (admin_user, {"session": "999"}, "Choose a labeling session you manage"),
        (admin_user, {"session": "abc", "scorer": fast.pk}, "Choose a labeling session you manage"),
        (admin_user, {"scorer": fast.pk}, "required"),
        (admin_user, {"session": archived.pk}, "Choose a labeling session you manage"),
        (lead, {"session": other.pk}, "Choose a labeling session you manage"),
        (admin_user, {"session": theirs.pk, "scorer": "nope"}, "This experiment has no registered scorer “nope”."),
        (admin_user, {"session": theirs.pk, "scorer": "99999"}, "no registered scorer “99999”"),
        (admin_user, {"session": theirs.pk, "window": "1y"}, "Unknown window “1y”: choose 24h, 7d, 30d."),
        (admin_user, {"session": theirs.pk, "scorer": quiet.pk}, "Nothing to add: no trace failed on “quiet”"),
    ]
    for person, data, message in cases:
        client.force_login(person)
        response = client.post(send_url(experiment), data)
        assert response.status_code == 400, data
        assert message in response.content.decode(), data
    assert ReviewItem.objects.count() == 0 and TraceAddJob.objects.count() == 0
    # a scorer of another experiment is not this experiment's
    elsewhere = register(make_experiment("Elsewhere"), "fast")
    client.force_login(admin_user)
    response = client.post(send_url(experiment), {"session": theirs.pk, "scorer": elsewhere.pk})
    assert response.status_code == 400 and ReviewItem.objects.count() == 0


def test_reviewers_and_outsiders_cannot_send(client: Client, reviewer: User, outsider: User, production) -> None:
    experiment, fast, _, _, _ = production
    session = make_session("Triage")
    for person in (reviewer, outsider):
        client.force_login(person)
        response = client.post(send_url(experiment), {"session": session.pk, "scorer": fast.pk})
        assert response.status_code == 404
    assert ReviewItem.objects.count() == 0
    client.force_login(outsider)
    assert client.get(send_url(experiment)).status_code == 405


def test_a_scorer_id_too_large_for_the_database_is_an_unknown_scorer(
    client: Client, admin_user: User, production
) -> None:
    experiment = production[0]
    session = make_session("Triage")
    client.force_login(admin_user)
    response = client.post(send_url(experiment), {"session": session.pk, "scorer": "9" * 40, "window": "7d"})
    assert response.status_code == 400
    assert not session.items.exists()
