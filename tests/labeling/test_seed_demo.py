"""`seed_demo`: easy logins for the local demo (DEBUG on), never demo passwords on a server (DEBUG off)."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.contrib.auth.password_validation import validate_password
from django.core.management import call_command
from django.test import Client, override_settings

from labeling.models import LabelingSession
from traces.models import Trace

ROOT = Path(__file__).resolve().parents[2]
STRONG = {"DEMO_ADMIN_PASSWORD": "violet-Harbor-1187-quay", "DEMO_REVIEWER_PASSWORD": "ochre-Lantern-5531-moss"}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, settings) -> None:
    # Each sign-in hashes a password (~0.5 s with PBKDF2 here); what is tested does not depend on the hasher.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    for name in ("DEMO_ADMIN_PASSWORD", "DEMO_REVIEWER_PASSWORD", "HOST", "PORT"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def production(settings) -> None:
    settings.DEBUG = False  # what seed_demo reads at run time; DEBUG=0 in the environment sets it


def seed() -> str:
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


def signs_in(username: str, password: str) -> bool:
    client = Client()
    client.post("/login/", {"username": username, "password": password})
    return "_auth_user_id" in client.session


def printed_passwords(out: str) -> dict[str, str]:
    return dict(re.findall(r"(admin|reviewer) / (\S+)", out))


@pytest.mark.django_db
def test_local_demo_keeps_the_easy_logins() -> None:
    with override_settings(DEBUG=True):
        out = seed()
    assert "Log in at http://127.0.0.1:8000/ as admin / admin (admin) or reviewer / reviewer" in out
    assert signs_in("admin", "admin") and signs_in("reviewer", "reviewer")
    assert User.objects.get(username="admin").is_superuser


@pytest.mark.django_db
def test_production_generates_strong_passwords_and_prints_them_once(production: None) -> None:
    out = seed()
    passwords = printed_passwords(out)
    assert set(passwords) == {"admin", "reviewer"}
    assert "shown only this once" in out
    for username, password in passwords.items():
        assert password != username and len(password) >= 20
        validate_password(password, User.objects.get(username=username))
        assert signs_in(username, password)
        assert not signs_in(username, username)
    again = seed()
    assert "as admin (admin, existing password) or reviewer (existing password)" in again
    assert not any(password in again for password in passwords.values())


@pytest.mark.django_db
def test_production_takes_validated_passwords_from_the_environment(
    production: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in STRONG.items():
        monkeypatch.setenv(name, value)
    out = seed()
    assert (
        "as admin (admin, password from DEMO_ADMIN_PASSWORD) or reviewer (password from DEMO_REVIEWER_PASSWORD)" in out
    )
    assert not any(value in out for value in STRONG.values())
    assert signs_in("admin", STRONG["DEMO_ADMIN_PASSWORD"])
    assert signs_in("reviewer", STRONG["DEMO_REVIEWER_PASSWORD"])


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("DEMO_ADMIN_PASSWORD", "admin", "too short"),
        ("DEMO_REVIEWER_PASSWORD", "reviewer", "too similar to the username"),
        ("DEMO_ADMIN_PASSWORD", "password1234", "too common"),
        ("DEMO_ADMIN_PASSWORD", "84736251904", "entirely numeric"),
    ],
)
def test_production_refuses_weak_passwords_and_writes_nothing(
    production: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    name: str,
    value: str,
    reason: str,
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exit_info:
        call_command("seed_demo", stdout=io.StringIO())
    assert exit_info.value.code == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {name} is not accepted:") and reason in lines[0]
    assert not User.objects.exists() and not Trace.objects.exists() and not LabelingSession.objects.exists()


@pytest.mark.django_db
def test_local_demo_also_refuses_a_weak_password_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DEMO_ADMIN_PASSWORD", "admin2")
    with override_settings(DEBUG=True), pytest.raises(SystemExit):
        call_command("seed_demo", stdout=io.StringIO())
    assert "error: DEMO_ADMIN_PASSWORD is not accepted" in capsys.readouterr().err
    assert not User.objects.exists()


@pytest.mark.django_db
def test_production_replaces_demo_passwords_left_from_a_local_seed(production: None) -> None:
    with override_settings(DEBUG=True):
        seed()
    reviewer = User.objects.get(username="reviewer")
    reviewer.set_password("kept-Reviewer-pass-77")
    reviewer.save()
    out = seed()
    assert "admin still had the demo password; DEBUG is off, so it was replaced." in out
    assert "or reviewer (existing password)" in out  # someone changed it: left alone
    assert not signs_in("admin", "admin")
    assert signs_in("admin", printed_passwords(out)["admin"])
    assert signs_in("reviewer", "kept-Reviewer-pass-77")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("host", "port", "url"),
    [
        ("0.0.0.0", "9123", "http://0.0.0.0:9123/"),
        ("review.local", "", "http://review.local:8000/"),
        ("::1", "8080", "http://[::1]:8080/"),
    ],
)
def test_printed_url_honours_host_and_port(monkeypatch: pytest.MonkeyPatch, host: str, port: str, url: str) -> None:
    monkeypatch.setenv("HOST", host)
    monkeypatch.setenv("PORT", port)
    with override_settings(DEBUG=True):
        assert f"Log in at {url} as admin" in seed()


def test_make_demo_passes_host_and_port_to_seed_demo() -> None:
    result = subprocess.run(
        ["make", "-n", "demo", "HOST=0.0.0.0", "PORT=9123"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert "HOST=0.0.0.0 PORT=9123 .venv/bin/python manage.py seed_demo" in result.stdout


def test_before_migrate_it_says_to_migrate(tmp_path: Path) -> None:
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'fresh.sqlite3'}", "DEBUG": "1"}
    result = subprocess.run(
        [sys.executable, "manage.py", "seed_demo"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: the database is not set up yet: run .venv/bin/python manage.py migrate first"
    ]
