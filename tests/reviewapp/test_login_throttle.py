"""Failed logins are throttled (django-axes) per user name and per client address on both login pages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client, override_settings
from django.test.client import RequestFactory

from reviewapp.login_throttle import client_ip_address

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
LOGIN_PAGES = {
    "/login/": "didn't match",
    "/django-admin/login/": "Please enter the correct username and password",
}


@pytest.fixture(autouse=True)
def fast_password_hashing(settings) -> None:
    """Each login hashes a password (~0.5 s with PBKDF2 here); throttling does not depend on the hasher."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def attempt(client: Client, page: str, username: str, password: str, **headers: str):
    return client.post(page, {"username": username, "password": password, "next": "/"}, **headers)


def is_signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def fail_until_locked(client: Client, page: str, username: str, **headers: str) -> None:
    """LOGIN_FAILURE_LIMIT - 1 ordinary failures, then the one that locks."""
    limit = settings.AXES_FAILURE_LIMIT
    for _ in range(limit - 1):
        response = attempt(client, page, username, "wrong-password", **headers)
        assert response.status_code == 200 and LOGIN_PAGES[page] in response.content.decode()
    response = attempt(client, page, username, "wrong-password", **headers)
    assert response.status_code == 429
    assert "Too many failed sign-in attempts" in response.content.decode()


@pytest.mark.parametrize("page", list(LOGIN_PAGES))
def test_lockout_after_the_limit_refuses_the_right_password_until_the_cool_off(
    client: Client, admin_user: User, page: str
) -> None:
    cool_off = settings.AXES_COOLOFF_TIME
    with time_machine.travel(START, tick=False):
        fail_until_locked(client, page, "admin")
        response = attempt(client, page, "admin", "admin-pass")
        body = response.content.decode()
        assert response.status_code == 429 and not is_signed_in(client)
        assert "Sign-in paused" in body and f"up to {round(cool_off.total_seconds() / 60)} minutes" in body
        assert response["Retry-After"] == str(int(cool_off.total_seconds()))
    with time_machine.travel(START + cool_off - timedelta(seconds=30), tick=False):
        # Tries during the lock neither get in nor extend it.
        assert attempt(client, page, "admin", "admin-pass").status_code == 429
        assert attempt(client, page, "admin", "wrong-password").status_code == 429
        assert not is_signed_in(client)
    with time_machine.travel(START + cool_off + timedelta(seconds=1), tick=False):
        response = attempt(client, page, "admin", "admin-pass")
        assert response.status_code == 302 and is_signed_in(client)


def test_one_login_page_locks_the_other(client: Client, admin_user: User) -> None:
    fail_until_locked(client, "/django-admin/login/", "admin")
    assert attempt(client, "/login/", "admin", "admin-pass").status_code == 429


def test_a_user_name_is_locked_whatever_the_address(client: Client, admin_user: User, reviewer: User) -> None:
    limit = settings.AXES_FAILURE_LIMIT
    for n in range(limit):
        attempt(client, "/login/", "admin", "wrong-password", REMOTE_ADDR=f"198.51.100.{n + 1}")
    assert attempt(client, "/login/", "admin", "admin-pass", REMOTE_ADDR="203.0.113.9").status_code == 429
    # Another user from a fresh address is not affected.
    response = attempt(client, "/login/", "reviewer", "reviewer-pass", REMOTE_ADDR="203.0.113.9")
    assert response.status_code == 302 and is_signed_in(client)


def test_an_address_is_locked_whatever_the_user_name(client: Client, reviewer: User) -> None:
    limit = settings.AXES_FAILURE_LIMIT
    for n in range(limit):
        attempt(client, "/login/", f"guess{n}", "wrong-password", REMOTE_ADDR="198.51.100.7")
    response = attempt(client, "/login/", "reviewer", "reviewer-pass", REMOTE_ADDR="198.51.100.7")
    assert response.status_code == 429 and not is_signed_in(client)
    response = attempt(client, "/login/", "reviewer", "reviewer-pass", REMOTE_ADDR="198.51.100.8")
    assert response.status_code == 302 and is_signed_in(client)


def test_forged_forwarded_for_does_not_escape_an_address_lock(client: Client, reviewer: User) -> None:
    """Without a configured proxy (PROXY_COUNT=0, the default) X-Forwarded-For is the client's word: ignored."""
    assert settings.PROXY_COUNT == 0
    for n in range(settings.AXES_FAILURE_LIMIT):
        attempt(client, "/login/", f"guess{n}", "x", REMOTE_ADDR="198.51.100.7", HTTP_X_FORWARDED_FOR=f"10.0.0.{n}")
    response = attempt(
        client, "/login/", "reviewer", "reviewer-pass", REMOTE_ADDR="198.51.100.7", HTTP_X_FORWARDED_FOR="10.9.9.9"
    )
    assert response.status_code == 429


@override_settings(PROXY_COUNT=1)
def test_behind_a_proxy_the_forwarded_address_is_locked_not_the_proxy(client: Client, reviewer: User) -> None:
    proxy = {"REMOTE_ADDR": "10.0.0.2"}
    for n in range(settings.AXES_FAILURE_LIMIT):
        attempt(client, "/login/", f"guess{n}", "x", HTTP_X_FORWARDED_FOR="203.0.113.5", **proxy)
    locked = attempt(client, "/login/", "reviewer", "reviewer-pass", HTTP_X_FORWARDED_FOR="203.0.113.5", **proxy)
    assert locked.status_code == 429
    # A different client behind the same proxy still gets in; so does one forging the left of the header.
    other = attempt(
        client, "/login/", "reviewer", "reviewer-pass", HTTP_X_FORWARDED_FOR="203.0.113.5, 203.0.113.6", **proxy
    )
    assert other.status_code == 302 and is_signed_in(client)


def test_a_successful_login_clears_the_failures(client: Client, reviewer: User) -> None:
    limit = settings.AXES_FAILURE_LIMIT
    for _ in range(3):
        for _ in range(limit - 1):
            assert attempt(client, "/login/", "reviewer", "wrong-password").status_code == 200
        assert attempt(client, "/login/", "reviewer", "reviewer-pass").status_code == 302
        client.post("/logout/")


def test_right_passwords_and_force_login_are_never_throttled(client: Client, reviewer: User) -> None:
    """The suite's own logins (browser tests sign in with the right password; others use force_login)."""
    for _ in range(2 * settings.AXES_FAILURE_LIMIT):
        assert attempt(client, "/login/", "reviewer", "reviewer-pass").status_code == 302
        client.post("/logout/")
    fail_until_locked(client, "/login/", "reviewer")
    client.force_login(reviewer)
    assert client.get("/review/").status_code == 200


@pytest.mark.parametrize(
    ("proxies", "forwarded", "expected"),
    [
        (0, "203.0.113.5", "10.0.0.2"),
        (1, "203.0.113.5", "203.0.113.5"),
        (1, "1.1.1.1, 203.0.113.5", "203.0.113.5"),
        (2, "1.1.1.1, 203.0.113.5, 10.0.0.1", "203.0.113.5"),
        (2, "203.0.113.5", "10.0.0.2"),  # shorter than the proxy chain: did not come through it
        (1, "not-an-address", "10.0.0.2"),
        (1, "", "10.0.0.2"),
        (1, "2001:db8::1", "2001:db8::1"),
    ],
)
def test_client_address(proxies: int, forwarded: str, expected: str) -> None:
    request = RequestFactory().get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR=forwarded)
    with override_settings(PROXY_COUNT=proxies):
        assert client_ip_address(request) == expected


@pytest.mark.parametrize("page", list(LOGIN_PAGES))
@pytest.mark.parametrize("username", ["adm\x00in", "x" * 300, ""])
def test_odd_user_names_are_refused_without_an_error(
    client: Client, admin_user: User, page: str, username: str
) -> None:
    for _ in range(settings.AXES_FAILURE_LIMIT + 1):
        response = attempt(client, page, username, "wrong\x00password")
        assert response.status_code in (200, 429)
    assert not is_signed_in(client)
