"""The "Archive traces" page: explorers see the setting, admins change it; bad input changes nothing."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.urls import reverse
from django.utils import timezone

from evaluation.monitoring.models import ArchivePolicy
from labeling import services as labeling_services
from tests.factories import make_experiment, make_trace
from traces.models import Experiment

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def archive_root(settings: Any, tmp_path: Path) -> Path:
    settings.ARCHIVE_ROOT = tmp_path / "archive"
    return settings.ARCHIVE_ROOT


@pytest.fixture
def experiment() -> Experiment:
    experiment = make_experiment("Support bot")
    now = timezone.now()
    for days in (45, 40, 2):
        make_trace(experiment=experiment, request_time=now - timedelta(days=days))
    return experiment


@pytest.fixture
def lead(db: None) -> User:
    user = User.objects.create_user("lead", "lead@example.com", "lead-pass")
    labeling_services.create_labeling_session(name="Led").leads.add(user)
    return user


def url(experiment: Experiment) -> str:
    return reverse("evaluation:archive_settings", args=[experiment.pk])


def test_admin_sees_the_form(client, admin_user, experiment, django_assert_max_num_queries) -> None:
    client.force_login(admin_user)
    with django_assert_max_num_queries(8):
        response = client.get(url(experiment))
    assert response.status_code == 200
    page = response.content.decode()
    assert "Archiving is off for this experiment" in page
    assert 'name="older_than_days"' in page and "<button" in page


def test_admin_saves_the_setting(client, admin_user, experiment, archive_root: Path) -> None:
    client.force_login(admin_user)
    response = client.post(url(experiment), {"older_than_days": "30", "path": "support", "delete_after": "on"})
    assert response.status_code == 302
    policy = ArchivePolicy.objects.get(experiment=experiment)
    assert (policy.older_than_days, policy.path, policy.delete_after) == (30, str(archive_root / "support"), True)
    assert policy.updated_by == admin_user and policy.last_run_at is None
    page = client.get(url(experiment)).content.decode()
    assert "Traces older than 30 days will be archived" in page
    assert "Not run yet." in page and "<strong>2</strong> traces are older than 30 days now" in page
    assert 'value="support"' in page  # shown relative to the archive root
    assert not (archive_root / "support").exists()  # the workers write, not the page


def test_blank_days_turn_archiving_off(client, admin_user, experiment, archive_root: Path) -> None:
    ArchivePolicy.objects.create(experiment=experiment, older_than_days=30, path=str(archive_root / "t"))
    client.force_login(admin_user)
    assert client.post(url(experiment), {"older_than_days": "", "path": ""}).status_code == 302
    assert ArchivePolicy.objects.get().older_than_days is None


def test_the_last_run_is_shown(
    client, admin_user, experiment, archive_root: Path, django_assert_max_num_queries
) -> None:
    ArchivePolicy.objects.create(
        experiment=experiment,
        older_than_days=30,
        path=str(archive_root / "t"),
        last_run_at=timezone.now() - timedelta(minutes=10),
        last_result={"status": "ok", "archived": 2, "skipped": 0, "deleted": 2, "commits": 1, "table_version": 0},
        updated_by=admin_user,
    )
    client.force_login(admin_user)
    with django_assert_max_num_queries(8):
        page = client.get(url(experiment)).content.decode()
    assert "archived <strong>2</strong> traces, skipped 0 already in the table, deleted 2" in page
    assert "Next run after" in page and "Last changed by admin" in page


def test_a_failed_run_shows_its_error(client, admin_user, experiment, archive_root: Path) -> None:
    ArchivePolicy.objects.create(
        experiment=experiment,
        older_than_days=30,
        path=str(archive_root / "t"),
        last_run_at=timezone.now() - timedelta(hours=3),
        last_result={"status": "failed", "error": "No space left on device"},
    )
    client.force_login(admin_user)
    page = client.get(url(experiment)).content.decode()
    assert "Failed" in page and "No space left on device" in page and "at the workers' next check" in page


def test_a_running_archive_refreshes_its_status_alone(client, admin_user, experiment, archive_root: Path) -> None:
    ArchivePolicy.objects.create(
        experiment=experiment,
        older_than_days=30,
        path=str(archive_root / "t"),
        last_run_at=timezone.now(),
        last_result={"status": "running"},
    )
    client.force_login(admin_user)
    page = client.get(url(experiment)).content.decode()
    assert 'hx-trigger="every 3s"' in page
    partial = client.get(url(experiment), headers={"HX-Request": "true"}).content.decode()
    assert partial.lstrip().startswith('<section id="archive-status"') and "Running" in partial
    assert "<form" not in partial


def test_a_lead_sees_it_read_only_and_cannot_change_it(client, lead, experiment) -> None:
    client.force_login(lead)
    page = client.get(url(experiment)).content.decode()
    assert "Only admins change the archive setting." in page and "<fieldset disabled>" in page
    response = client.post(url(experiment), {"older_than_days": "30", "path": "x"})
    assert response.status_code == 403
    assert not ArchivePolicy.objects.exists()


@pytest.mark.parametrize("method", ["get", "post"])
def test_others_get_404(client, reviewer, experiment, method: str) -> None:
    client.force_login(reviewer)
    response = getattr(client, method)(url(experiment), {"older_than_days": "30", "path": "x"})
    assert response.status_code == 404
    assert not ArchivePolicy.objects.exists()


def test_a_labeling_copy_experiment_has_no_archive_page(client, admin_user) -> None:
    copies = Experiment.objects.create(name="Copies", kind="labeling")
    client.force_login(admin_user)
    assert client.get(url(copies)).status_code == 404


def test_anonymous_is_sent_to_log_in(client, experiment) -> None:
    response = client.get(url(experiment))
    assert response.status_code == 302 and "login" in response["Location"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"older_than_days": "-1", "path": "t"}, "greater than or equal to 0"),
        ({"older_than_days": "soon", "path": "t"}, "Enter a whole number"),
        ({"older_than_days": "30", "path": ""}, "Give the Delta table to archive to."),
        ({"older_than_days": "30", "path": "/etc/archive"}, "inside the archive root"),
        ({"older_than_days": "30", "path": "../outside"}, "inside the archive root"),
        ({"older_than_days": "30", "path": "."}, "inside the archive root"),
        ({"older_than_days": "30", "path": "notes.txt"}, "is a file"),
        ({"older_than_days": "30", "path": "photos"}, "neither empty nor a Delta table"),
    ],
)
def test_bad_input_is_refused(client, admin_user, experiment, archive_root: Path, data, message) -> None:
    archive_root.mkdir()
    (archive_root / "notes.txt").write_text("keep")
    (archive_root / "photos").mkdir()
    (archive_root / "photos" / "cat.jpg").write_bytes(b"\xff")
    client.force_login(admin_user)
    response = client.post(url(experiment), data)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not ArchivePolicy.objects.exists()


def test_the_trace_list_of_one_experiment_links_to_it(client, admin_user, experiment) -> None:
    client.force_login(admin_user)
    page = client.get(reverse("traces:list"), {"experiment": experiment.pk}).content.decode()
    assert f'href="{url(experiment)}"' in page
    assert "Archive old traces" not in client.get(reverse("traces:list")).content.decode()


def test_the_list_shows_every_experiment_and_its_setting(
    client, admin_user, experiment, archive_root: Path, django_assert_max_num_queries
) -> None:
    other = make_experiment("Other bot")
    ArchivePolicy.objects.create(
        experiment=experiment,
        older_than_days=30,
        path=str(archive_root / "support"),
        delete_after=True,
        last_run_at=timezone.now(),
        last_result={"status": "ok", "archived": 12},
    )
    Experiment.objects.create(name="Copies", kind="labeling")
    client.force_login(admin_user)
    with django_assert_max_num_queries(6):
        page = client.get(reverse("evaluation:archive_list")).content.decode()
    assert "older than 30 days, then deletes" in page and "12 archived" in page
    assert f'href="{url(other)}"' in page and "Copies" not in page


def test_the_list_is_for_explorers(client, reviewer, lead) -> None:
    client.force_login(reviewer)
    assert client.get(reverse("evaluation:archive_list")).status_code == 404
    client.force_login(lead)
    assert client.get(reverse("evaluation:archive_list")).status_code == 200


def test_the_monitoring_dashboard_links_to_it(client, admin_user, experiment) -> None:
    client.force_login(admin_user)
    page = client.get(reverse("evaluation:monitoring", args=[experiment.pk])).content.decode()
    assert f'href="{url(experiment)}"' in page
