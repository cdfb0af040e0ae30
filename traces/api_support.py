"""What every app's API router shares: ``ApiError`` and its MLflow error codes, the token auth,
cursor pages, and the checks a JSON value passes before it is stored.

It lives in ``traces`` (the app every other one builds on) so that each app's ``api.py`` can use it
without importing the project package that mounts them (``reviewapp.api``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson
from django.db.models import QuerySet
from django.http import HttpRequest
from ninja import Schema
from ninja.security.http import HttpAuthBase

from .ingest.validation import MAX_JSON_DEPTH
from .models import ApiToken
from .pagination import InvalidCursor, Ordering, keyset_page
from .tokens import TokenError, authenticate_request

DEFAULT_MAX_RESULTS = 100
MAX_RESULTS_CAP = 500
MAX_JSON_VALUE_BYTES = 1_000_000
MAX_TEXT = 65_536  # a rationale or other free text


class ErrorCode(StrEnum):
    """MLflow's error codes (``mlflow.protos.databricks_pb2``) with the HTTP status each has."""

    INVALID_PARAMETER_VALUE = "INVALID_PARAMETER_VALUE"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    RESOURCE_DOES_NOT_EXIST = "RESOURCE_DOES_NOT_EXIST"
    RESOURCE_ALREADY_EXISTS = "RESOURCE_ALREADY_EXISTS"
    METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
    REQUEST_LIMIT_EXCEEDED = "REQUEST_LIMIT_EXCEEDED"
    INTERNAL_ERROR = "INTERNAL_ERROR"

    @property
    def status(self) -> int:
        return STATUS_OF[self]


STATUS_OF = {
    ErrorCode.INVALID_PARAMETER_VALUE: 400,
    ErrorCode.UNAUTHENTICATED: 401,
    ErrorCode.PERMISSION_DENIED: 403,
    ErrorCode.RESOURCE_DOES_NOT_EXIST: 404,
    ErrorCode.METHOD_NOT_ALLOWED: 405,
    ErrorCode.RESOURCE_ALREADY_EXISTS: 409,
    ErrorCode.REQUEST_LIMIT_EXCEEDED: 429,
    ErrorCode.INTERNAL_ERROR: 500,
}
CODE_OF_STATUS = {status: code for code, status in STATUS_OF.items()}


class ApiError(Exception):
    """A refusal a router raises: answered as ``{"error_code": …, "message": …}`` with the code's status."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message

    @property
    def status(self) -> int:
        return self.code.status


def invalid(message: str) -> ApiError:
    return ApiError(ErrorCode.INVALID_PARAMETER_VALUE, message)


def not_found(message: str) -> ApiError:
    return ApiError(ErrorCode.RESOURCE_DOES_NOT_EXIST, message)


def denied(message: str) -> ApiError:
    return ApiError(ErrorCode.PERMISSION_DENIED, message)


class ErrorOut(Schema):
    """Every error the API answers, whatever its status."""

    error_code: str
    message: str


ERROR_RESPONSES: dict[int, type[Schema]] = {status: ErrorOut for status in (400, 401, 403, 404)}


class TokenAuth(HttpAuthBase):
    """``Authorization: Bearer <API token>`` (or Basic with the token as the password), as for OTLP.

    Sets ``request.user`` to the token's owner, so the page's access rules apply as they are.
    """

    openapi_scheme = "bearer"

    def __call__(self, request: HttpRequest) -> ApiToken:
        try:
            return authenticate_request(request)
        except TokenError as error:
            code = ErrorCode.PERMISSION_DENIED if error.status == 403 else ErrorCode.UNAUTHENTICATED
            raise ApiError(code, error.message) from None


# ---------------------------------------------------------------- cursor pages


@dataclass(frozen=True)
class ApiPage:
    rows: list[Any]
    next_page_token: str | None


def clamp_max_results(max_results: int | None) -> int:
    """``max_results`` as a page size: the default when absent; 1..``MAX_RESULTS_CAP`` or 400."""
    if max_results is None:
        return DEFAULT_MAX_RESULTS
    if not 1 <= max_results <= MAX_RESULTS_CAP:
        raise invalid(f"max_results must be between 1 and {MAX_RESULTS_CAP}, got {max_results}.")
    return max_results


def paginate(
    queryset: QuerySet[Any], ordering: Ordering, *, page_token: str | None, max_results: int | None
) -> ApiPage:
    """One page of ``queryset`` in ``ordering`` after the opaque ``page_token`` (keyset: any depth, one query).

    ``next_page_token`` is None on the last page. A token from another list order, damaged or
    forged, is a 400."""
    size = clamp_max_results(max_results)
    if page_token is not None and (len(page_token) > 4000 or "\x00" in page_token):
        raise invalid("page_token is not a page token this API gave out.")
    try:
        page = keyset_page(queryset, ordering, page_token or None, size)
    except InvalidCursor as exc:
        raise invalid(f"page_token: {exc}") from None
    return ApiPage(page.rows, page.next_cursor)


# ---------------------------------------------------------------- JSON values from clients


def check_json_value(value: Any, *, what: str, max_bytes: int = MAX_JSON_VALUE_BYTES) -> Any:
    """``value`` if both databases can store it as JSON: no NUL or lone surrogate in any string or key
    (PostgreSQL's jsonb refuses them), no NaN or infinity, at most ``MAX_JSON_DEPTH`` levels and
    ``max_bytes`` of JSON text. Raises a 400 ``ApiError`` naming ``what`` otherwise."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise invalid(f"{what} is nested more than {MAX_JSON_DEPTH} levels deep.")
        if isinstance(node, str):
            _check_string(node, what=what)
        elif isinstance(node, float) and not math.isfinite(node):
            raise invalid(f"{what} contains NaN or an infinity, which JSON cannot hold.")
        elif isinstance(node, dict):
            for key, child in node.items():
                _check_string(str(key), what=f"{what} key")
                stack.append((child, depth + 1))
        elif isinstance(node, list):
            stack.extend((child, depth + 1) for child in node)
    size = len(orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS))
    if size > max_bytes:
        raise invalid(f"{what} is {size:,} bytes of JSON; at most {max_bytes:,} are accepted.")
    return value


def _check_string(text: str, *, what: str) -> None:
    if "\x00" in text:
        raise invalid(f"{what} contains a NUL character (\\u0000), which cannot be stored.")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise invalid(f"{what} contains a lone surrogate (an invalid \\ud800-\\udfff escape).") from None


def check_text(text: str, *, what: str, max_length: int = MAX_TEXT) -> str:
    """Plain text for a text column: at most ``max_length`` characters, no NUL or lone surrogate."""
    if len(text) > max_length:
        raise invalid(f"{what} has {len(text):,} characters; at most {max_length:,} are accepted.")
    _check_string(text, what=what)
    return text


def check_str_map(values: dict[str, str], *, what: str, max_items: int = 100, max_length: int = 8000) -> dict[str, str]:
    """A small string → string map (metadata, tags)."""
    if len(values) > max_items:
        raise invalid(f"{what} has {len(values)} entries; at most {max_items} are accepted.")
    for key, value in values.items():
        check_text(key, what=f"{what} key", max_length=250)
        check_text(value, what=f"{what} {key[:40]!r}", max_length=max_length)
    return values
