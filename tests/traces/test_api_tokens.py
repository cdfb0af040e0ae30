"""Personal API tokens: the page, the command, and authenticating requests with them."""

from __future__ import annotations

import base64
import json
import logging

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import RequestFactory
from django.urls import reverse

from traces.models import ApiToken
from traces.tokens import (
    TOKEN_PREFIX,
    TokenError,
    authenticate_request,
    can_write_traces,
    create_api_token,
    hash_token,
    revoke_api_token,
    token_error_response,
)


def _request(authorization: str | None = None):
    headers = {"HTTP_AUTHORIZATION": authorization} if authorization is not None else {}
    return RequestFactory().post("/v1/traces", **headers)


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_token_is_stored_hashed_and_authenticates_as_its_owner(admin_user):
    token, secret = create_api_token(user=admin_user, name="exporter")
    assert secret.startswith(TOKEN_PREFIX) and len(secret) > 40
    stored = ApiToken.objects.get()
    assert stored.token_hash == hash_token(secret) and secret not in (stored.token_hash, stored.prefix)
    assert secret.startswith(stored.prefix)
    request = _request(f"Bearer {secret}")
    assert authenticate_request(request) == token
    assert request.user == admin_user
    stored.refresh_from_db()
    assert stored.last_used_at is not None


def test_basic_auth_with_the_token_as_password(admin_user):
    _, secret = create_api_token(user=admin_user, name="mlflow")
    assert authenticate_request(_request(_basic("anyone", secret))).user == admin_user


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (None, "needs an API token"),
        ("", "needs an API token"),
        ("Bearer", "Use 'Authorization: Bearer"),
        ("Token abc", "Use 'Authorization: Bearer"),
        ("Bearer rvw_not-a-real-token", "not a valid API token"),
        ("Bearer something-else", "not a valid API token"),
        ("Basic !!!notbase64", "not valid base64"),
        ("Basic " + base64.b64encode(b"only-a-user").decode(), "token as the password"),
    ],
)
def test_missing_or_invalid_credentials_are_401_with_a_message(db, header, message):
    with pytest.raises(TokenError) as raised:
        authenticate_request(_request(header))
    assert raised.value.status == 401 and message in raised.value.message
    response = token_error_response(raised.value)
    assert response.status_code == 401 and response["WWW-Authenticate"].startswith("Bearer")
    assert message in json.loads(response.content)["error"]


def test_revoked_token_and_deactivated_owner_are_refused(admin_user, reviewer):
    token, secret = create_api_token(user=admin_user, name="old")
    revoke_api_token(token=token)
    revoke_api_token(token=token)  # idempotent
    with pytest.raises(TokenError, match="revoked"):
        authenticate_request(_request(f"Bearer {secret}"))
    _, reviewer_secret = create_api_token(user=reviewer, name="mine")
    reviewer.is_active = False
    reviewer.save()
    with pytest.raises(TokenError, match="deactivated"):
        authenticate_request(_request(f"Bearer {reviewer_secret}"))


def test_error_messages_and_logs_never_repeat_the_token(admin_user, caplog):
    token, secret = create_api_token(user=admin_user, name="x")
    revoke_api_token(token=token)
    caplog.set_level(logging.DEBUG)
    for header in (f"Bearer {secret}", f"Bearer {secret}x", _basic("u", secret)):
        with pytest.raises(TokenError) as raised:
            authenticate_request(_request(header))
        assert secret not in raised.value.message
    assert secret not in caplog.text


def test_reviewers_cannot_write_traces(admin_user, reviewer):
    assert can_write_traces(admin_user)
    assert not can_write_traces(reviewer)


def test_token_page_creates_shows_once_and_revokes(client, reviewer):
    client.force_login(reviewer)
    page = client.get(reverse("api_tokens"))
    assert page.status_code == 200 and b"No tokens yet" in page.content
    created = client.post(reverse("api_tokens"), {"name": "nightly script"})
    assert created.status_code == 200
    token = ApiToken.objects.get(user=reviewer)
    secret = created.context["new_secret"]
    assert hash_token(secret) == token.token_hash
    assert secret.encode() in created.content and b"shown only once" in created.content
    assert "no-cache" in created["Cache-Control"] or "no-store" in created["Cache-Control"]
    again = client.get(reverse("api_tokens"))
    assert secret.encode() not in again.content and b"nightly script" in again.content
    revoked = client.post(reverse("api_token_revoke", args=[token.pk]), follow=True)
    assert b"revoked" in revoked.content
    token.refresh_from_db()
    assert token.revoked_at is not None


@pytest.mark.parametrize("name", ["", "   ", "x" * 101, "a\x00b"])
def test_token_page_refuses_a_bad_name_and_creates_nothing(client, reviewer, name):
    client.force_login(reviewer)
    response = client.post(reverse("api_tokens"), {"name": name})
    assert response.status_code == 400
    assert b'role="alert"' in response.content
    assert not ApiToken.objects.exists()


def test_nobody_sees_or_revokes_someone_elses_tokens(client, admin_user, reviewer):
    token, _ = create_api_token(user=admin_user, name="admin's exporter")
    client.force_login(reviewer)
    assert b"admin&#x27;s exporter" not in client.get(reverse("api_tokens")).content
    assert client.post(reverse("api_token_revoke", args=[token.pk])).status_code == 404
    token.refresh_from_db()
    assert token.revoked_at is None


def test_token_page_needs_sign_in(client, db):
    response = client.get(reverse("api_tokens"))
    assert response.status_code == 302 and reverse("login") in response["Location"]


def test_page_query_count_does_not_grow_with_tokens(client, reviewer, django_assert_max_num_queries):
    client.force_login(reviewer)
    for i in range(30):
        create_api_token(user=reviewer, name=f"t{i}")
    with django_assert_max_num_queries(8):
        assert client.get(reverse("api_tokens")).status_code == 200


def test_create_api_token_command_prints_the_token_once(admin_user, capsys):
    call_command("create_api_token", "admin", "--name", "ci")
    secret = capsys.readouterr().out.strip()
    token = ApiToken.objects.get()
    assert token.name == "ci" and token.token_hash == hash_token(secret)
    assert authenticate_request(_request(f"Bearer {secret}")).user == admin_user


@pytest.mark.parametrize(
    ("args", "message"),
    [(["nobody"], "no user named 'nobody'"), (["admin", "--name", ""], "Give the token a name"), (["a\x00"], "NUL")],
)
def test_create_api_token_command_errors_are_one_line(admin_user, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("create_api_token", *args)
    assert not ApiToken.objects.exists()
