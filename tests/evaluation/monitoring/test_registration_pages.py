"""The registered-scorer pages: the list and register form, one registration's actions and version history;
errors as form errors with nothing changed; who may see and change; a constant number of queries."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from evaluation.monitoring.models import MAX_ACTIVE_PER_EXPERIMENT, RegisteredScorer, RegisteredScorerVersion
from evaluation.monitoring.registrations import register_scorer, start_scorer, stop_scorer, update_scorer
from labeling import services as labeling_services
from labeling.models import LabelSchema
from tests.factories import make_experiment
from traces.models import Experiment, ExperimentKind

pytestmark = pytest.mark.django_db


@pytest.fixture
def experiment() -> Experiment:
    return make_experiment("Production")


@pytest.fixture
def lead(db: None) -> User:
    """A session lead: an explorer (by the default rule) who is not an admin."""
    user = User.objects.create_user("lead", password="pw-123456")
    schema = LabelSchema.objects.get(name="expected_response")
    session = labeling_services.create_labeling_session(name="Led by lead", schemas=[schema], reviewers=[])
    labeling_services.set_session_leads(session=session, leads=[user])
    return user


@pytest.fixture
def admin(client: Client, admin_user: User) -> Client:
    client.force_login(admin_user)
    return client


def list_url(experiment: Experiment) -> str:
    return reverse("evaluation:monitoring_scorers", args=[experiment.pk])


def url(name: str, registration: RegisteredScorer) -> str:
    suffix = "" if name == "detail" else f"_{name}"
    return reverse(f"evaluation:monitoring_scorer{suffix}", args=[registration.experiment_id, registration.pk])


def register(experiment: Experiment, name: str = "length", **kwargs: Any) -> RegisteredScorer:
    return register_scorer(
        experiment=experiment, name=name, scorer_name=kwargs.pop("scorer_name", "response_length"), **kwargs
    )


def snapshot() -> tuple[list[dict[str, Any]], int]:
    return list(RegisteredScorer.objects.order_by("pk").values()), RegisteredScorerVersion.objects.count()


def refused(client: Client, path: str, data: dict[str, Any], *, status: int = 400) -> str:
    """Post, expect the page re-rendered with an error and nothing written; return the html."""
    before = snapshot()
    response = client.post(path, data)
    assert response.status_code == status
    assert snapshot() == before
    return response.content.decode()


# ---------------------------------------------------------------- the list


def test_the_list_shows_each_registration_with_its_configuration(
    admin: Client, experiment: Experiment, admin_user: User
) -> None:
    active = register(experiment, sample_rate=0.25, filter_string="tags.env = 'prod'", by=admin_user)
    register(experiment, name="docs", scorer_name="has_retrieved_documents")
    gone = register(experiment, name="gone")
    from evaluation.monitoring.registrations import delete_scorer

    delete_scorer(registration=gone)
    response = admin.get(list_url(experiment))
    assert response.status_code == 200
    html = response.content.decode()
    assert "length" in html and "response_length" in html and "has_retrieved_documents" in html
    assert "25 %" in html and "tags.env = &#x27;prod&#x27;" in html and "every trace" in html
    assert ">Active<" in html and ">Registered<" in html
    assert "code scorer" in html  # the kind
    assert "v1" in html and "by admin" in html and "by the command line" in html
    assert url("detail", active) in html
    assert ">gone<" not in html  # deleted registrations leave the list
    assert "<strong>1</strong> of at most 20 active" in html
    assert f'href="/datasets/monitoring/{experiment.pk}/"' in html  # back to the dashboard


def test_the_register_form_offers_the_catalogue_with_unavailable_judges_disabled(
    admin: Client, experiment: Experiment, settings: Any
) -> None:
    settings.JUDGE_BASE_URL = ""
    settings.JUDGE_MODEL = ""
    html = admin.get(list_url(experiment)).content.decode()
    assert '<optgroup label="Code scorers">' in html and '<option value="response_length">' in html
    assert '<optgroup label="Built-in judges">' in html
    assert 'value="Correctness" disabled title="no judge endpoint is configured' in html
    assert "Correctness — unavailable: no judge endpoint is configured" in html
    assert "Examples" in html and "tags.environment = &#x27;production&#x27;" in html  # the explorer's search help


def test_a_judge_is_offered_and_registered_when_an_endpoint_is_configured(
    admin: Client, experiment: Experiment, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("OPENAI_API_BASE", "OPENAI_BASE_URL", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    settings.JUDGE_BASE_URL = "http://127.0.0.1:8739/v1"  # nothing is called when registering
    settings.JUDGE_MODEL = "judge-model"
    html = admin.get(list_url(experiment)).content.decode()
    assert '<option value="Correctness">' in html
    response = admin.post(list_url(experiment), {"name": "correct", "scorer": "Correctness", "sample_rate": "5"})
    assert response.status_code == 302
    registration = RegisteredScorer.objects.get(name="correct")
    assert registration.sample_rate == 0.05 and registration.is_active
    assert ">judge<" in admin.get(list_url(experiment)).content.decode()


def test_registering_through_the_page(admin: Client, experiment: Experiment, admin_user: User) -> None:
    response = admin.post(
        list_url(experiment),
        {"name": "length", "scorer": "response_length", "sample_rate": "30", "filter_string": "status = 'OK'"},
    )
    assert response.status_code == 302 and response["Location"] == list_url(experiment)
    registration = RegisteredScorer.objects.get(experiment=experiment, name="length")
    configuration = (registration.sample_rate, registration.filter_string, registration.status)
    assert configuration == (0.3, "status = 'OK'", "active")
    version = registration.versions.get()
    assert version.action == "register" and version.changed_by == admin_user
    page = admin.get(response["Location"]).content.decode()
    assert "Registered “length” (sampling)." in page and "30 %" in page


def test_registering_without_a_rate_is_not_sampling(admin: Client, experiment: Experiment) -> None:
    assert admin.post(list_url(experiment), {"name": "later", "scorer": "response_length"}).status_code == 302
    assert RegisteredScorer.objects.get(name="later").status == "registered"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "x", "scorer": "no_such_scorer"}, "Unknown scorer no_such_scorer"),
        ({"name": "x", "scorer": ""}, "This field is required"),
        ({"name": "has space", "scorer": "response_length"}, "A registration name is 1 to 100 letters"),
        ({"name": "x", "scorer": "response_length", "sample_rate": "101"}, "at most 100 %"),
        ({"name": "x", "scorer": "response_length", "sample_rate": "-1"}, "at least 0 %"),
        ({"name": "x", "scorer": "response_length", "sample_rate": "NaN"}, "as a number of percent"),
        ({"name": "x", "scorer": "response_length", "sample_rate": "lots"}, "as a number of percent"),
        ({"name": "x", "scorer": "response_length", "filter_string": "status = "}, "Bad filter string: position 9"),
    ],
)
def test_bad_registrations_are_form_errors_and_change_nothing(
    admin: Client, experiment: Experiment, data: dict[str, str], message: str
) -> None:
    html = refused(admin, list_url(experiment), data)
    assert message in html
    assert 'role="alert"' in html and "Register a scorer" in html


def test_a_bad_filter_points_at_the_position_under_the_box(admin: Client, experiment: Experiment) -> None:
    data = {"name": "x", "scorer": "response_length", "filter_string": "tags.x =="}
    html = refused(admin, list_url(experiment), data)
    assert 'class="filter-marker mono"' in html and "<mark>" in html


def test_an_unavailable_judge_posted_anyway_is_refused(admin: Client, experiment: Experiment, settings: Any) -> None:
    settings.JUDGE_BASE_URL = ""
    settings.JUDGE_MODEL = ""
    html = refused(admin, list_url(experiment), {"name": "c", "scorer": "Correctness", "sample_rate": "10"})
    assert "Judge &#x27;Correctness&#x27; is not available: no judge endpoint is configured" in html


def test_a_duplicate_name_is_a_form_error(admin: Client, experiment: Experiment) -> None:
    register(experiment)
    html = refused(admin, list_url(experiment), {"name": "length", "scorer": "has_retrieved_documents"})
    assert "already has a scorer registered as &#x27;length&#x27;" in html


def test_the_twenty_active_limit_is_a_form_error(admin: Client, experiment: Experiment) -> None:
    for i in range(MAX_ACTIVE_PER_EXPERIMENT):
        register(experiment, name=f"s{i:02d}", sample_rate=0.1)
    html = refused(admin, list_url(experiment), {"name": "more", "scorer": "response_length", "sample_rate": "10"})
    assert "already has 20 active scorers (the most it may have): stop one first" in html
    waiting = register(experiment, name="waiting")
    html = refused(admin, url("start", waiting), {"sample_rate": "10"})
    assert "20 active scorers" in html and waiting.name in html


# ---------------------------------------------------------------- one registration's actions


def test_start_from_the_list_then_stop_back_to_the_list(admin: Client, experiment: Experiment) -> None:
    registration = register(experiment)
    list_html = admin.get(list_url(experiment)).content.decode()
    assert f'action="{url("start", registration)}"' in list_html and ">Start</button>" in list_html
    response = admin.post(url("start", registration), {"sample_rate": "12.5", "back": "list"})
    assert response.status_code == 302 and response["Location"] == list_url(experiment)
    registration.refresh_from_db()
    assert (registration.status, registration.sample_rate, registration.version) == ("active", 0.125, 2)
    list_html = admin.get(list_url(experiment)).content.decode()
    assert "Started “length”: version 2, sampling 12.5 %." in list_html
    assert f'action="{url("stop", registration)}"' in list_html
    assert admin.post(url("stop", registration), {"back": "list"})["Location"] == list_url(experiment)
    registration.refresh_from_db()
    assert registration.status == "stopped" and registration.sample_rate == 0
    assert ">Restart</button>" in admin.get(list_url(experiment)).content.decode()


def test_restart_update_and_stop_on_the_registration_page(
    admin: Client, experiment: Experiment, admin_user: User
) -> None:
    registration = stop_scorer(registration=register(experiment, sample_rate=0.5, filter_string="status = 'OK'"))
    page = admin.get(url("detail", registration)).content.decode()
    assert "Restart sampling" in page and 'value="status = &#x27;OK&#x27;"' in page  # the filter, kept
    response = admin.post(url("start", registration), {"sample_rate": "40", "filter_string": "status = 'OK'"})
    assert response.status_code == 302 and response["Location"] == url("detail", registration)
    page = admin.get(response["Location"]).content.decode()
    assert "Restarted “length”: version 3, sampling 40 %." in page
    assert "Change the rate or filter" in page and 'value="40"' in page
    response = admin.post(url("update", registration), {"sample_rate": "40", "filter_string": "tags.env = 'prod'"})
    assert response.status_code == 302
    registration.refresh_from_db()
    assert (registration.sample_rate, registration.filter_string, registration.version) == (0.4, "tags.env = 'prod'", 4)
    admin.post(url("update", registration), {"sample_rate": "0", "filter_string": "tags.env = 'prod'"})  # 0 stops it
    registration.refresh_from_db()
    assert registration.status == "stopped" and registration.version == 5
    actions = list(registration.versions.order_by("version").values_list("action", "changed_by"))
    assert actions == [
        ("register", None),
        ("stop", None),
        ("restart", admin_user.pk),
        ("update", admin_user.pk),
        ("update", admin_user.pk),
    ]


def test_stop_on_the_registration_page(admin: Client, experiment: Experiment) -> None:
    registration = register(experiment, sample_rate=0.5)
    assert admin.post(url("stop", registration))["Location"] == url("detail", registration)
    registration.refresh_from_db()
    assert registration.status == "stopped"


def test_an_update_with_the_same_values_is_a_new_version_of_the_current_definition(
    admin: Client, experiment: Experiment
) -> None:
    registration = register(experiment, sample_rate=0.5)
    response = admin.post(url("update", registration), {"sample_rate": "50", "filter_string": ""})
    assert response.status_code == 302
    registration.refresh_from_db()
    assert registration.version == 2 and registration.versions.get(version=2).scorer_digest.startswith("sha256:")


def test_a_bad_filter_on_update_and_start_changes_nothing(admin: Client, experiment: Experiment) -> None:
    registration = register(experiment, sample_rate=0.5)
    html = refused(admin, url("update", registration), {"sample_rate": "50", "filter_string": "nope = 1"})
    assert "Bad filter string" in html and "<mark>" in html
    stopped = stop_scorer(registration=registration)
    html = refused(admin, url("start", stopped), {"sample_rate": "50", "filter_string": "status = "})
    assert "Bad filter string: position 9" in html


def test_starting_at_zero_or_stopping_a_stopped_scorer_is_refused(admin: Client, experiment: Experiment) -> None:
    registration = register(experiment)
    assert "Start with a sample rate above 0" in refused(admin, url("start", registration), {"sample_rate": "0"})
    assert "This field is required" in refused(admin, url("start", registration), {})
    assert "is not active" in refused(admin, url("stop", registration), {})


def test_delete_asks_to_confirm_then_deletes(admin: Client, experiment: Experiment) -> None:
    registration = register(experiment, sample_rate=0.5)
    page = admin.get(url("detail", registration)).content.decode()
    assert f'href="{url("delete", registration)}"' in page
    confirm = admin.get(url("delete", registration))
    assert confirm.status_code == 200
    assert "Delete “length”?" in confirm.content.decode() and 'method="post"' in confirm.content.decode()
    assert RegisteredScorer.objects.get(pk=registration.pk).status == "active"  # asking changed nothing
    response = admin.post(url("delete", registration))
    assert response.status_code == 302 and response["Location"] == list_url(experiment)
    registration.refresh_from_db()
    assert registration.status == "deleted" and registration.versions.count() == 2
    assert "Deleted “length”" in admin.get(list_url(experiment)).content.decode()
    # its name is free again, and the deleted one changes no more
    assert admin.post(list_url(experiment), {"name": "length", "scorer": "response_length"}).status_code == 302
    assert "was deleted" in refused(admin, url("start", registration), {"sample_rate": "5"})
    history = admin.get(url("detail", registration)).content.decode()
    assert "Deleted" in history and "Restart sampling" not in history  # the history stays readable


def test_the_version_history_shows_each_change_with_who_and_when(
    admin: Client, experiment: Experiment, admin_user: User
) -> None:
    registration = register(experiment, by=admin_user)
    registration = start_scorer(registration=registration, sample_rate=0.2, by=admin_user)
    registration = update_scorer(registration=registration, filter_string="status = 'ERROR'")
    html = admin.get(url("detail", registration)).content.decode()
    assert 'id="history"' in html
    rows = html.split('id="history"')[1].split("<tbody>")[1].split("</tbody>")[0].split("<tr>")[1:]
    assert len(rows) == 3
    newest, middle, oldest = rows
    assert "v3" in newest and "Updated" in newest and "status = &#x27;ERROR&#x27;" in newest
    assert "command line" in newest
    assert "v2" in middle and "Started" in middle and "20 %" in middle and "admin" in middle
    assert "v1" in oldest and "Registered" in oldest and "0 %" in oldest and "sha256:" in oldest
    version = registration.versions.get(version=2)
    assert version.created_at.strftime("%b %-d, %Y %H:%M:%S") in middle


def test_an_unknown_registration_or_one_of_another_experiment_is_404(admin: Client, experiment: Experiment) -> None:
    other = register(make_experiment("Staging"))
    path = reverse("evaluation:monitoring_scorer", args=[experiment.pk, other.pk])
    assert admin.get(path).status_code == 404
    stop = reverse("evaluation:monitoring_scorer_stop", args=[experiment.pk, other.pk])
    assert admin.post(stop).status_code == 404
    assert admin.get(reverse("evaluation:monitoring_scorers", args=[999999])).status_code == 404
    copies = Experiment.objects.create(name="Copies", kind=ExperimentKind.LABELING)
    assert admin.get(list_url(copies)).status_code == 404


def test_the_scorer_catalogue_page_links_each_experiment_s_registered_scorers(
    admin: Client, experiment: Experiment
) -> None:
    Experiment.objects.create(name="Copies", kind=ExperimentKind.LABELING)
    html = admin.get(reverse("evaluation:scorer_list")).content.decode()
    assert f'href="{list_url(experiment)}">Production</a>' in html and ">Copies</a>" not in html


# ---------------------------------------------------------------- who may see and change


def every_post(experiment: Experiment, registration: RegisteredScorer) -> list[tuple[str, dict[str, str]]]:
    return [
        (list_url(experiment), {"name": "new", "scorer": "response_length", "sample_rate": "10"}),
        (url("start", registration), {"sample_rate": "10"}),
        (url("update", registration), {"sample_rate": "10"}),
        (url("stop", registration), {}),
        (url("delete", registration), {}),
    ]


@pytest.mark.parametrize("persona", ["outsider", "reviewer"])
def test_non_explorers_get_404_for_every_page_and_post(
    client: Client, experiment: Experiment, persona: str, request: pytest.FixtureRequest
) -> None:
    client.force_login(request.getfixturevalue(persona))
    registration = register(experiment, sample_rate=0.5)
    for path in (list_url(experiment), url("detail", registration), url("delete", registration)):
        assert client.get(path).status_code == 404
    before = snapshot()
    for path, data in every_post(experiment, registration):
        assert client.post(path, data).status_code == 404
    assert snapshot() == before


def test_a_lead_sees_read_only_and_every_post_is_403(client: Client, experiment: Experiment, lead: User) -> None:
    client.force_login(lead)
    registration = register(experiment, sample_rate=0.5, filter_string="status = 'OK'")
    html = client.get(list_url(experiment)).content.decode()
    assert "length" in html and "50 %" in html and "status = &#x27;OK&#x27;" in html
    assert "<form" not in html.split("</header>")[-1].replace('action="/logout/"', "")
    assert "Register a scorer" not in html and "Stop</button>" not in html
    detail = client.get(url("detail", registration)).content.decode()
    assert "Version history" in detail and "Change the rate or filter" not in detail and "Delete…" not in detail
    assert client.get(url("delete", registration)).status_code == 403
    before = snapshot()
    for path, data in every_post(experiment, registration):
        assert client.post(path, data).status_code == 403
    assert snapshot() == before


def test_anonymous_users_are_sent_to_log_in(client: Client, experiment: Experiment) -> None:
    response = client.get(list_url(experiment))
    assert response.status_code == 302 and "/login/" in response["Location"]


# ---------------------------------------------------------------- queries


def count_queries(client: Client, path: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(path).status_code == 200
    return len(queries)


def test_the_pages_run_a_constant_number_of_queries(
    admin: Client, experiment: Experiment, admin_user: User, django_assert_max_num_queries: Any
) -> None:
    first = register(experiment, name="r00", sample_rate=0.1, by=admin_user)
    small_list = count_queries(admin, list_url(experiment))
    small_detail = count_queries(admin, url("detail", first))
    for i in range(1, 15):
        registration = register(experiment, name=f"r{i:02d}", sample_rate=0.1, by=admin_user)
        for rate in (0.2, 0.3, 0.4):
            update_scorer(registration=registration, sample_rate=rate, by=admin_user)
    for rate in (0.2, 0.3, 0.4, 0.5, 0.6):
        first = update_scorer(registration=first, sample_rate=rate, by=admin_user)
    assert count_queries(admin, list_url(experiment)) == small_list
    assert count_queries(admin, url("detail", first)) == small_detail
    with django_assert_max_num_queries(12):
        admin.get(list_url(experiment))
    with django_assert_max_num_queries(12):
        admin.get(url("detail", first))
