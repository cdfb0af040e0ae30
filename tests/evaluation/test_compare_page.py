"""The run comparison page: who sees it, what it shows, the scorer filter and pages, bad input, constant queries."""

from __future__ import annotations

import html
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from evaluation import comparison_views
from evaluation.models import EvaluationRun, EvaluationRunTrace
from labeling import services as labeling_services
from tests.evaluation.comparison_fixtures import SCORER_MODULES, TwoVersions, make_many, make_two_versions

URL = reverse("evaluation:run_compare")


@pytest.fixture(autouse=True)
def scorer_modules(settings: Any) -> None:
    settings.SCORER_MODULES = SCORER_MODULES
    settings.SCORER_TIMEOUT_SECONDS = 5


@pytest.fixture
def versions(db: None) -> TwoVersions:
    return make_two_versions()


@pytest.fixture
def admin_client(client: Client, admin_user: User) -> Client:
    client.force_login(admin_user)
    return client


@pytest.fixture
def lead(db: None) -> User:
    user = User.objects.create_user("lead")
    labeling_services.create_labeling_session(name="Led").leads.add(user)
    return user


def _compare(client: Client, a: Any, b: Any, **extra: Any) -> Any:
    return client.get(URL, {"a": a, "b": b, **extra})


def test_the_url() -> None:
    assert URL == "/datasets/runs/compare/"


def test_the_page_shows_metrics_counts_and_regressions_first(admin_client: Client, versions: TwoVersions) -> None:
    response = _compare(admin_client, versions.v1.pk, versions.v2.pk)
    assert response.status_code == 200
    text = html.unescape(response.content.decode())
    assert "higher is better for every metric" in text
    assert "5 examples in both runs (matched on their inputs) · 1 only in A · 2 only in B" in text
    assert "↓ 2 regressed" in text and "↑ 1 improved" in text
    assert "Overall average" in text and "grounded/mean" in text
    assert '<span class="cmp improved">↑ better</span>' in text  # colour and an arrow and a word
    examples = response.context["examples"]
    assert [bool(e.regressions) for e in examples] == [True, True, False]
    # Q0's example: both responses, A value → B value, both rationales, trace links
    assert '"please see the source"' in text and '"see the source"' in text
    assert "4 → 3" in text and "yes → no" in text and "says please" in text and "no please" in text
    assert "true → error: RuntimeError" in text and "grounding service down" in text
    assert versions.traces["v1", "Q0"].trace_id in text and versions.traces["v2", "Q0"].trace_id in text
    assert text.index("↓ worse") < text.index('<span class="cmp better">↑ better</span>')


def test_the_pickers_offer_finished_runs_newest_first(admin_client: Client, versions: TwoVersions) -> None:
    EvaluationRun.objects.create(name="still going", source_kind="filter", status="running")
    response = admin_client.get(URL)
    assert response.status_code == 200 and "comparison" not in response.context
    assert [r.name for r in response.context["choices"]] == ["v2", "v1"]
    assert "still going" not in response.content.decode()


def test_filter_by_scorer(admin_client: Client, versions: TwoVersions) -> None:
    response = _compare(admin_client, versions.v1.pk, versions.v2.pk, scorer="polite")
    examples = response.context["examples"]
    assert [[c.name for c in e.changes] for e in examples] == [["polite"], ["polite"]]


def test_the_examples_partial_for_htmx(admin_client: Client, versions: TwoVersions) -> None:
    response = admin_client.get(
        URL, {"a": versions.v1.pk, "b": versions.v2.pk, "scorer": "grounded"}, HTTP_HX_REQUEST="true"
    )
    text = response.content.decode()
    assert response.status_code == 200 and text.lstrip().startswith('<section id="examples"')
    assert "<html" not in text and "Overall average" not in text


def test_bad_input_from_htmx_gets_the_message_alone(admin_client: Client, versions: TwoVersions) -> None:
    query = {"a": versions.v1.pk, "b": versions.v2.pk, "scorer": "nope"}
    response = admin_client.get(URL, query, HTTP_HX_REQUEST="true")
    text = html.unescape(response.content.decode())
    assert response.status_code == 400 and text.strip().startswith('<p id="examples" class="msg msg-error')
    assert "no scorer named “nope”" in text and "<html" not in text


def test_examples_are_paginated(admin_client: Client, db: None, monkeypatch: Any) -> None:
    monkeypatch.setattr(comparison_views, "EXAMPLES_PER_PAGE", 2)
    a, b = make_many("good", 5, broken=False), make_many("bad", 5, broken=True)
    first = _compare(admin_client, a.pk, b.pk)
    assert len(first.context["examples"]) == 2 and first.context["page"].paginator.num_pages == 3
    last = _compare(admin_client, a.pk, b.pk, page=3)
    assert len(last.context["examples"]) == 1 and "Page 3 of 3" in last.content.decode()


@pytest.mark.parametrize("count", [5, 30])
def test_constant_queries(admin_client: Client, db: None, count: int, django_assert_max_num_queries: Any) -> None:
    a, b = make_many(f"good{count}", count, broken=False), make_many(f"bad{count}", count, broken=True)
    _compare(admin_client, a.pk, b.pk)  # the session and user are loaded once
    with django_assert_max_num_queries(9):
        response = _compare(admin_client, a.pk, b.pk)
    assert response.status_code == 200 and len(response.context["examples"]) == min(count, 20)


def test_rows_without_a_key_are_keyed_once(admin_client: Client, versions: TwoVersions) -> None:
    EvaluationRunTrace.objects.update(inputs_key="")
    assert _compare(admin_client, versions.v1.pk, versions.v2.pk).status_code == 200
    assert not EvaluationRunTrace.objects.filter(inputs_key="").exists()


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"a": "1"}, "Pick run B: both runs are needed to compare."),
        ({"b": "1"}, "Pick run A: both runs are needed to compare."),
        ({"a": "x", "b": "1"}, "Run A must be a run number, not “x”."),
        ({"a": "1", "b": "-2"}, "Run B must be a run number, not “-2”."),
        ({"a": "999999", "b": "V2"}, "There is no run #999999 (run A) that you can see."),
        ({"a": "9" * 5000, "b": "V2"}, f"There is no run #{'9' * 20}… (run A) that you can see."),
        ({"a": "V1", "b": "²"}, "Run B must be a run number, not “²”."),
        ({"a": "V1", "b": "V1"}, "Pick two different runs: A and B are the same run."),
        ({"a": "V1", "b": "RUNNING"}, "Run “still going” is still running: only finished runs can be compared."),
        ({"a": "V1", "b": "V2", "scorer": "nope"}, "Both runs have no scorer named “nope”"),
    ],
)
def test_bad_input_is_a_400_that_says_why(
    admin_client: Client, versions: TwoVersions, query: dict[str, str], message: str
) -> None:
    running = EvaluationRun.objects.create(name="still going", source_kind="filter", status="running")
    pks = {"V1": str(versions.v1.pk), "V2": str(versions.v2.pk), "RUNNING": str(running.pk)}
    response = admin_client.get(URL, {k: pks.get(v, v) for k, v in query.items()})
    assert response.status_code == 400
    assert message in html.unescape(response.content.decode())
    assert "Compare" in response.content.decode()  # the pickers stay, to fix it


def test_reviewers_and_anonymous_users_do_not_see_it(client: Client, reviewer: User, versions: TwoVersions) -> None:
    assert client.get(URL).status_code == 302  # to the login page
    client.force_login(reviewer)
    assert client.get(URL).status_code == 404
    assert _compare(client, versions.v1.pk, versions.v2.pk).status_code == 404


def test_a_lead_compares_runs_not_over_sessions_they_do_not_manage(
    client: Client, lead: User, versions: TwoVersions
) -> None:
    client.force_login(lead)
    assert _compare(client, versions.v1.pk, versions.v2.pk).status_code == 200  # filter runs: no session
    other = labeling_services.create_labeling_session(name="Not mine")
    EvaluationRun.objects.filter(pk=versions.v2.pk).update(session=other)
    response = _compare(client, versions.v1.pk, versions.v2.pk)
    assert response.status_code == 400 and f"no run #{versions.v2.pk} (run B)" in html.unescape(
        response.content.decode()
    )
    assert [r.name for r in response.context["choices"]] == ["v1"]
    mine = labeling_services.create_labeling_session(name="Mine")
    mine.leads.add(lead)
    EvaluationRun.objects.filter(pk=versions.v2.pk).update(session=mine)
    assert _compare(client, versions.v1.pk, versions.v2.pk).status_code == 200
