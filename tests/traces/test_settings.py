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
    "SECURE_SSL_REDIRECT",
    "PROXY_COUNT",
    "DJANGO_ADMIN",
    "LOGIN_THROTTLE",
    "LOGIN_FAILURE_LIMIT",
    "LOGIN_COOLOFF_MINUTES",
    "TRACE_VALUE_LIMIT",
}
PRODUCTION = {"DEBUG": "0", "SECRET_KEY": "x" * 50, "ALLOWED_HOSTS": "testserver"}
PROBE = (
    "import json, django; django.setup(); from django.conf import settings as s; "
    "db = s.DATABASES['default']; "
    "print(json.dumps({'engine': db['ENGINE'], 'name': str(db['NAME']), 'host': db.get('HOST', ''), "
    "'port': db.get('PORT'), 'user': db.get('USER'), 'password': db.get('PASSWORD'), "
    "'debug': s.DEBUG, 'hosts': s.ALLOWED_HOSTS, 'secure_cookie': s.SESSION_COOKIE_SECURE, "
    "'csrf_secure': s.CSRF_COOKIE_SECURE, 'hsts': s.SECURE_HSTS_SECONDS}))"
)


def probe(code: str = PROBE, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter whose settings come from ``env`` alone."""
    clean = {k: v for k, v in os.environ.items() if k not in CONTROLLED}
    clean.update(env, DJANGO_SETTINGS_MODULE="reviewapp.settings")
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=60)


def probe_json(code: str, **env: str) -> dict:
    result = probe(code, **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


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


# A request for a page that needs a login: the answer is a redirect, with no template or database involved.
FORWARDED_PROTO = (
    "import json, django; django.setup(); from django.test import Client; "
    "r = Client().get('/', HTTP_X_FORWARDED_PROTO='https'); "
    "print(json.dumps({'status': r.status_code, 'location': r['Location']}))"
)


def test_production_ignores_forwarded_proto_without_a_proxy() -> None:
    """Anyone can send X-Forwarded-Proto: without PROXY_COUNT the plain-HTTP request is still sent to HTTPS."""
    values = probe_json(FORWARDED_PROTO, **PRODUCTION)
    assert values == {"status": 301, "location": "https://testserver/"}


def test_production_trusts_forwarded_proto_behind_a_configured_proxy() -> None:
    values = probe_json(FORWARDED_PROTO, **PRODUCTION, PROXY_COUNT="1")
    assert values == {"status": 302, "location": "/login/?next=/"}


ADMIN_MOUNTED = (
    "import json, django; django.setup(); from django.urls import resolve, Resolver404\n"
    "try:\n    resolve('/django-admin/login/'); mounted = True\n"
    "except Resolver404:\n    mounted = False\n"
    "print(json.dumps({'mounted': mounted}))"
)


@pytest.mark.parametrize(
    ("env", "mounted"),
    [
        ({}, True),  # local development: DEBUG on
        ({"DJANGO_ADMIN": "0"}, False),
        (PRODUCTION, False),
        ({**PRODUCTION, "DJANGO_ADMIN": "1"}, True),
    ],
)
def test_django_admin_is_off_in_production_unless_turned_on(env: dict[str, str], mounted: bool) -> None:
    assert probe_json(ADMIN_MOUNTED, **env) == {"mounted": mounted}


THROTTLE = (
    "import json, django; django.setup(); from django.conf import settings as s; "
    "print(json.dumps({'enabled': s.AXES_ENABLED, 'limit': s.AXES_FAILURE_LIMIT, "
    "'cooloff': s.AXES_COOLOFF_TIME.total_seconds(), 'by': s.AXES_LOCKOUT_PARAMETERS}))"
)


def test_login_throttle_defaults_and_environment() -> None:
    assert probe_json(THROTTLE) == {"enabled": True, "limit": 5, "cooloff": 900, "by": ["username", "ip_address"]}
    values = probe_json(THROTTLE, LOGIN_FAILURE_LIMIT="3", LOGIN_COOLOFF_MINUTES="60", LOGIN_THROTTLE="0")
    assert (values["enabled"], values["limit"], values["cooloff"]) == (False, 3, 3600)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("LOGIN_FAILURE_LIMIT", "five", "LOGIN_FAILURE_LIMIT must be a whole number, not 'five'"),
        ("LOGIN_FAILURE_LIMIT", "0", "LOGIN_FAILURE_LIMIT must be at least 1"),
        ("LOGIN_COOLOFF_MINUTES", "-5", "LOGIN_COOLOFF_MINUTES must be at least 1"),
        ("PROXY_COUNT", "yes", "PROXY_COUNT must be a whole number"),
    ],
)
def test_bad_numbers_in_the_environment_fail_clearly(name: str, value: str, message: str) -> None:
    result = probe(THROTTLE, **{name: value})
    assert result.returncode != 0
    assert message in result.stderr


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
