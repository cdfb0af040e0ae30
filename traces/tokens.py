"""Personal API tokens: creating, revoking, and authenticating HTTP requests with them.

A token is ``rvw_`` + 43 random URL-safe characters. Only its SHA-256 is stored (a token has
256 bits of entropy, so a plain hash is as good as a slow one and keeps each request cheap); the
secret is shown once, when it is made. A token acts with its owner's role.

Requests authenticate with ``Authorization: Bearer <token>`` or ``Authorization: Basic
base64(<anything>:<token>)``, since OpenTelemetry exporters and MLflow's client can send either.
Error messages never repeat what was sent.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.utils import timezone

from .access import can_explore_traces
from .models import ApiToken

TOKEN_PREFIX = "rvw_"
SHOWN_PREFIX_LENGTH = len(TOKEN_PREFIX) + 6
NAME_MAX_LENGTH = ApiToken._meta.get_field("name").max_length
# last_used_at is written at most this often per token, so a busy exporter does not write a row per request.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class TokenError(Exception):
    """A request that cannot act: ``status`` is the HTTP status (401 or 403), ``message`` says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()


def clean_token_name(name: str) -> str:
    """A token's name, stripped; raises ``ValueError`` with a message for an empty or too long one."""
    name = (name or "").strip()
    if not name:
        raise ValueError("Give the token a name, e.g. the exporter or script that will use it.")
    if len(name) > NAME_MAX_LENGTH:
        raise ValueError(f"A token name has at most {NAME_MAX_LENGTH} characters.")
    if "\x00" in name:
        raise ValueError("A token name cannot contain NUL characters.")
    return name


def create_api_token(*, user: Any, name: str) -> tuple[ApiToken, str]:
    """Make a token for ``user``; returns it and the secret, which is never stored or shown again."""
    name = clean_token_name(name)
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with transaction.atomic():
        token = ApiToken.objects.create(
            user=user, name=name, prefix=raw[:SHOWN_PREFIX_LENGTH], token_hash=hash_token(raw)
        )
    return token, raw


def revoke_api_token(*, token: ApiToken) -> ApiToken:
    """Revoke ``token`` (idempotent); it stops working at once. The row stays for the record."""
    with transaction.atomic():
        ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
        token.refresh_from_db(fields=["revoked_at"])
    return token


def _secret_from_header(header: str) -> str:
    scheme, _, credentials = header.strip().partition(" ")
    scheme, credentials = scheme.lower(), credentials.strip()
    if scheme == "bearer" and credentials:
        return credentials
    if scheme == "basic" and credentials:
        try:
            decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise TokenError(401, "The Basic credentials are not valid base64 of user:token.") from None
        _, sep, password = decoded.partition(":")
        if sep and password:
            return password
        raise TokenError(401, "Basic authentication needs the API token as the password.")
    raise TokenError(401, "Use 'Authorization: Bearer <API token>' (or Basic with the token as the password).")


def authenticate_token(raw: str) -> ApiToken:
    """The active token whose secret is ``raw``, with its user; raises ``TokenError`` (401) otherwise."""
    if not raw.startswith(TOKEN_PREFIX) or len(raw) > 200:
        raise TokenError(401, "That is not a valid API token.")
    token = ApiToken.objects.select_related("user").filter(token_hash=hash_token(raw)).first()
    if token is None:
        raise TokenError(401, "That is not a valid API token.")
    if token.revoked_at is not None:
        raise TokenError(401, "This API token has been revoked.")
    if not token.user.is_active:
        raise TokenError(401, "The owner of this API token is deactivated.")
    _touch(token)
    return token


def authenticate_request(request: HttpRequest) -> ApiToken:
    """The token a request authenticates with; raises ``TokenError`` (401) when it has none that works.

    Sets ``request.user`` to the token's owner, so access rules written for the browser apply.
    """
    header = request.headers.get("Authorization", "")
    if not header:
        raise TokenError(401, "This endpoint needs an API token: send 'Authorization: Bearer <token>'.")
    token = authenticate_token(_secret_from_header(header))
    request.user = token.user
    return token


def _touch(token: ApiToken) -> None:
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now


def can_write_traces(user: Any) -> bool:
    """Who may send traces in: admins and those who may explore traces (session leads). Not reviewers."""
    return bool(user.is_authenticated and user.is_active and can_explore_traces(user))


def token_error_response(error: TokenError) -> JsonResponse:
    response = JsonResponse({"error": error.message}, status=error.status)
    if error.status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="reviewapp"'
    return response
