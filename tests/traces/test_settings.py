"""Settings come from the environment; production refuses to start without a secret key."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Variables the settings read that a developer's shell might carry into the test run.
CONTROLLED = {
    "DATABASE_URL",
    "SECRET_KEY",
    "DEBUG",
    "ALLOWED_HOSTS",
    "SECURE_COOKIES",
    "SECURE_HSTS_SECONDS",
    "TRACE_VALUE_LIMIT",
}
PROBE = (
    "import json, django; django.setup(); from django.conf import settings as s; "
    "db = s.DATABASES['default']; "
    "print(json.dumps({'engine': db['ENGINE'], 'name': str(db['NAME']), 'host': db.get('HOST', ''), "
    "'port': db.get('PORT'), 'user': db.get('USER'), 'password': db.get('PASSWORD'), "
    "'debug': s.DEBUG, 'hosts': s.ALLOWED_HOSTS, 'secure_cookie': s.SESSION_COOKIE_SECURE, "
    "'csrf_secure': s.CSRF_COOKIE_SECURE, 'hsts': s.SECURE_HSTS_SECONDS}))"
)


def probe(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in CONTROLLED}
    clean.update(env, DJANGO_SETTINGS_MODULE="reviewapp.settings")
    return subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=60
    )


def test_default_is_sqlite_in_var() -> None:
    result = probe()
    values = json.loads(result.stdout)
    assert values["engine"] == "django.db.backends.sqlite3"
    assert values["name"] == str(ROOT / "var" / "reviewapp.sqlite3")
    assert values["debug"] is True


def test_database_url_is_parsed() -> None:
    values = json.loads(probe(DATABASE_URL="postgres://app:pw@db.internal:5433/reviews").stdout)
    assert values["engine"] == "django.db.backends.postgresql"
    assert values["name"] == "reviews" and values["host"] == "db.internal"
    assert (values["port"], values["user"], values["password"]) == (5433, "app", "pw")


@pytest.mark.parametrize("secret", [None, ""])
def test_production_without_secret_key_fails_clearly(secret: str | None) -> None:
    result = probe(DEBUG="0") if secret is None else probe(DEBUG="0", SECRET_KEY=secret)
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_production_settings_are_secure() -> None:
    result = probe(DEBUG="0", SECRET_KEY="x" * 50, ALLOWED_HOSTS="review.example.com, other.example.com")
    values = json.loads(result.stdout)
    assert values["debug"] is False
    assert values["hosts"] == ["review.example.com", "other.example.com"]
    assert values["secure_cookie"] is True and values["csrf_secure"] is True
    assert values["hsts"] > 0


def limit_probe(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in CONTROLLED}
    clean.update(env, DJANGO_SETTINGS_MODULE="reviewapp.settings")
    code = "import django; django.setup(); from django.conf import settings; print(settings.TRACE_VALUE_LIMIT)"
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("raw", "limit"), [(None, 20_000), ("", 20_000), ("5000", 5_000), (" 50_000 ", 50_000)])
def test_trace_value_limit_comes_from_the_environment(raw: str | None, limit: int) -> None:
    result = limit_probe() if raw is None else limit_probe(TRACE_VALUE_LIMIT=raw)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(limit)


@pytest.mark.parametrize("raw", ["abc", "-5", "1.5", "10", "99999999999", "²"])
def test_a_bad_trace_value_limit_stops_the_app_with_one_clear_line(raw: str) -> None:
    result = limit_probe(TRACE_VALUE_LIMIT=raw)
    assert result.returncode != 0
    assert "TRACE_VALUE_LIMIT must be a whole number from 200 to 10,000,000" in result.stderr
