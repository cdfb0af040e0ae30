"""``manage.py monitor``: every verb, the list and its history; refusals exit 1 with one line, nothing changed."""

from __future__ import annotations

import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command

from evaluation.monitoring.models import MAX_ACTIVE_PER_EXPERIMENT, RegisteredScorer, RegisteredScorerVersion
from evaluation.monitoring.registrations import register_scorer
from tests.factories import make_experiment
from traces.models import Experiment

pytestmark = pytest.mark.django_db


@pytest.fixture
def experiment() -> Experiment:
    return make_experiment("Production")


def monitor(*args: str) -> str:
    out = StringIO()
    call_command("monitor", *args, stdout=out)
    return out.getvalue()


def snapshot() -> tuple[list[dict], int]:
    return list(RegisteredScorer.objects.order_by("pk").values()), RegisteredScorerVersion.objects.count()


def refused(*args: str) -> str:
    before = snapshot()
    with pytest.raises(CommandError) as caught:
        monitor(*args)
    assert snapshot() == before
    message = str(caught.value)
    assert "\n" not in message
    return message


def named(*args: str) -> list[str]:
    return ["--experiment", "Production", "--name", "length", *args]


def registration() -> RegisteredScorer:
    return RegisteredScorer.objects.live().get(name="length")


def test_register_start_update_stop_restart_delete(experiment: Experiment, admin_user: User) -> None:
    out = monitor("register", *named("--scorer", "response_length", "--by", "admin"))
    assert out.strip() == "register: length (response_length) is registered, rate 0, version 1"
    out = monitor("start", *named("--sample-rate", "0.3"))
    assert "start: length (response_length) is active, rate 0.3, version 2" in out
    monitor("update", *named("--filter", "tags.env = 'prod'"))
    assert (registration().sample_rate, registration().filter_string) == (0.3, "tags.env = 'prod'")
    monitor("update", *named("--sample-rate", "0.6", "--filter", ""))
    assert (registration().sample_rate, registration().filter_string) == (0.6, "")
    assert "is stopped, rate 0, version 5" in monitor("stop", *named())
    monitor("start", *named("--sample-rate", "1"))
    found = registration()
    assert "delete: length" in monitor("delete", *named())
    actions = list(found.versions.order_by("version").values_list("action", "status", "sample_rate"))
    assert actions == [
        ("register", "registered", 0.0),
        ("start", "active", 0.3),
        ("update", "active", 0.3),
        ("update", "active", 0.6),
        ("stop", "stopped", 0.0),
        ("restart", "active", 1.0),
        ("delete", "deleted", 0.0),
    ]
    assert found.versions.get(version=1).changed_by == admin_user
    assert not RegisteredScorer.objects.live().exists()


def test_register_with_a_rate_and_filter_starts_at_once(experiment: Experiment) -> None:
    monitor("register", *named("--scorer", "response_length", "--sample-rate", "0.2", "--filter", "status = 'OK'"))
    found = registration()
    assert (found.status, found.sample_rate, found.filter_string) == ("active", 0.2, "status = 'OK'")


def test_list_is_a_table_and_history_shows_every_version(experiment: Experiment, admin_user: User) -> None:
    monitor("register", *named("--scorer", "response_length", "--sample-rate", "0.5", "--filter", "status = 'OK'"))
    monitor("update", *named("--sample-rate", "0.25", "--by", "admin"))
    monitor("register", "--experiment", "Production", "--name", "docs", "--scorer", "has_retrieved_documents")
    lines = monitor("list", "--experiment", "Production").splitlines()
    assert lines[0].split() == ["name", "scorer", "status", "rate", "filter", "version"]
    assert lines[1].split() == ["docs", "has_retrieved_documents", "registered", "0", "-", "v1"]
    assert lines[2].split() == ["length", "response_length", "active", "0.25", "status", "=", "'OK'", "v2"]
    assert len(lines) == 3
    history = monitor("list", "--experiment", "Production", "--history")
    section = history.split("length:")[1]
    rows = [line.split() for line in section.strip().splitlines()]
    assert rows[0][:8] == ["version", "action", "status", "rate", "filter", "digest", "by", "when"]
    assert rows[1][:4] == ["v1", "register", "active", "0.5"] and rows[1][7].startswith("sha256:")
    assert rows[2][:4] == ["v2", "update", "active", "0.25"] and "admin" in rows[2]
    when = registration().versions.get(version=2).created_at.strftime("%Y-%m-%d %H:%M:%S")
    assert when in section


def test_list_of_an_experiment_without_registrations(experiment: Experiment) -> None:
    assert "has no registered scorers" in monitor("list", "--experiment", "Production")


def test_an_unknown_experiment_or_registration_is_one_line(experiment: Experiment) -> None:
    assert refused("list", "--experiment", "Nope") == "no experiment named 'Nope'"
    assert "has no scorer registered as 'length'" in refused("stop", *named())
    assert "no user named 'ghost'" in refused("register", *named("--scorer", "response_length", "--by", "ghost"))


def test_unknown_scorer_duplicate_name_and_bad_filter_change_nothing(experiment: Experiment) -> None:
    assert "unknown scorer 'nope'" in refused("register", *named("--scorer", "nope"))
    monitor("register", *named("--scorer", "response_length", "--sample-rate", "0.5"))
    assert "already has a scorer registered as 'length'" in refused(
        "register", *named("--scorer", "has_retrieved_documents")
    )
    message = refused("update", *named("--filter", "status = "))
    assert message.startswith("bad filter string: position 9")
    assert "bad filter string" in refused("start", *named("--sample-rate", "0.5", "--filter", "tags.x =="))


@pytest.mark.parametrize("rate", ["1.5", "-0.1", "nan", "inf", "lots", "30%"])
def test_bad_rates_are_refused(experiment: Experiment, rate: str) -> None:
    monitor("register", *named("--scorer", "response_length"))
    assert "sample rate" in refused("start", *named("--sample-rate", rate))
    assert "sample rate" in refused("update", *named("--sample-rate", rate))
    assert "sample rate" in refused("register", "--experiment", "Production", "--name", "x", "--scorer",
                                    "response_length", "--sample-rate", rate)  # fmt: skip


def test_refused_state_changes(experiment: Experiment) -> None:
    monitor("register", *named("--scorer", "response_length"))
    assert "is not active" in refused("stop", *named())
    assert "above 0" in refused("start", *named("--sample-rate", "0"))
    assert "give a new sample rate or filter string" in refused("update", *named())


def test_the_twenty_active_limit(experiment: Experiment) -> None:
    for i in range(MAX_ACTIVE_PER_EXPERIMENT):
        register_scorer(experiment=experiment, name=f"s{i:02d}", scorer_name="response_length", sample_rate=0.1)
    message = refused("register", *named("--scorer", "response_length", "--sample-rate", "0.1"))
    assert message == "experiment 'Production' already has 20 active scorers (the most it may have): stop one first"
    monitor("register", *named("--scorer", "response_length"))
    assert "20 active scorers" in refused("start", *named("--sample-rate", "0.1"))
    monitor("stop", "--experiment", "Production", "--name", "s00")
    assert "is active" in monitor("start", *named("--sample-rate", "0.1"))
    assert "20 active scorers" in refused("start", "--experiment", "Production", "--name", "s00", "--sample-rate", "1")


def test_deleting_frees_the_name(experiment: Experiment) -> None:
    monitor("register", *named("--scorer", "response_length"))
    monitor("delete", *named())
    assert "register: length (has_retrieved_documents)" in monitor(
        "register", *named("--scorer", "has_retrieved_documents")
    )
    assert "deleted" not in monitor("list", "--experiment", "Production")


def test_on_the_command_line_an_error_exits_1_with_one_line(tmp_path: Path) -> None:
    """A real process (its own SQLite database): exit status 1 and one line on stderr."""
    db = tmp_path / "cli.sqlite3"
    env = {"DATABASE_URL": f"sqlite:///{db}", "PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "reviewapp.settings"}
    manage = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py")]
    subprocess.run([*manage, "migrate", "-v0"], env=env, check=True, capture_output=True)
    done = subprocess.run([*manage, "monitor", "list", "--experiment", "Nope"], env=env, capture_output=True, text=True)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == ["CommandError: no experiment named 'Nope'"]
