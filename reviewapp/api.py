"""The JSON API: one NinjaAPI under ``/api/`` mounting each app's router, OpenAPI at ``/api/openapi.json``,
interactive docs at ``/api/docs``.

Every request authenticates with a personal API token (``traces.tokens``; no session cookie, so no
CSRF) and acts with its owner's role. Every error, whoever raises it (a router's ``ApiError``,
ninja's own validation, a failed authentication, a bug), is one JSON shape with MLflow's error
codes: ``{"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "Trace 'tr-…' does not exist."}``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError

from evaluation.api import backfills_router, datasets_router, runs_router, scorers_router
from labeling.api import schemas_router, sessions_router
from traces.api import experiments_router
from traces.api import router as traces_router
from traces.api_support import CODE_OF_STATUS, ApiError, ErrorCode, TokenAuth

PREFIX = "/api/"
logger = logging.getLogger(__name__)

api = NinjaAPI(
    title="Review app API",
    version="1",
    description="Traces and assessments, label schemas (`/api/label-schemas/`), labeling sessions "
    "(`/api/labeling-sessions/`), evaluation datasets (`/api/datasets/`), evaluation runs "
    "(`/api/evaluation-runs/`), registered scorers (`/api/experiments/{experiment_id}/scorers/`) and backfills "
    "(`/api/backfills/`) over HTTP, in MLflow 3's vocabulary. "
    "Authenticate with `Authorization: Bearer <API token>` (make one under Account → API tokens).",
    urls_namespace="api",
    auth=TokenAuth(),
    openapi_url="/openapi.json",
    docs_url="/docs",
)
api.add_router("/traces/", traces_router)
api.add_router("/label-schemas/", schemas_router)
api.add_router("/labeling-sessions/", sessions_router)
api.add_router("/datasets/", datasets_router)
api.add_router("/evaluation-runs/", runs_router)
api.add_router("/experiments/", experiments_router)
api.add_router("/experiments/", scorers_router)
api.add_router("/backfills/", backfills_router)


def error_response(code: ErrorCode, message: str, status: int | None = None) -> JsonResponse:
    response = JsonResponse({"error_code": str(code), "message": message}, status=status or code.status)
    if response.status_code == 401:
        response["WWW-Authenticate"] = 'Bearer realm="reviewapp"'
    return response


@api.exception_handler(ApiError)
def _api_error(request: HttpRequest, exc: ApiError) -> HttpResponse:
    return error_response(exc.code, exc.message)


@api.exception_handler(ValidationError)
def _validation_error(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    """ninja's 422 for parameters or a body of the wrong shape: a 400 naming each field."""
    return error_response(ErrorCode.INVALID_PARAMETER_VALUE, "; ".join(_describe(e) for e in exc.errors[:5]))


def _describe(error: dict[str, Any]) -> str:
    location = [str(part) for part in error.get("loc", ())]
    if location and location[0] in ("query", "path", "body", "header", "cookie", "form"):
        source, location = location[0], location[1:]
        if source == "body" and location[:1] == ["payload"]:
            location = location[1:]
    field = ".".join(location) or "request body"
    return f"{field}: {error.get('msg', 'is not valid')}"


@api.exception_handler(AuthenticationError)
def _authentication_error(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    message = "This endpoint needs an API token: send 'Authorization: Bearer <token>'."
    return error_response(ErrorCode.UNAUTHENTICATED, message)


@api.exception_handler(HttpError)
def _http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    """ninja's own refusals, e.g. a body that is not JSON (400)."""
    code = CODE_OF_STATUS.get(exc.status_code, ErrorCode.INVALID_PARAMETER_VALUE)
    message = "The request body is not valid JSON." if "parse request body" in exc.message else exc.message
    return error_response(code, message, status=exc.status_code)


@api.exception_handler(Http404)
def _not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    return error_response(ErrorCode.RESOURCE_DOES_NOT_EXIST, str(exc) or "Not found.")


@api.exception_handler(RequestDataTooBig)
def _too_big(request: HttpRequest, exc: RequestDataTooBig) -> HttpResponse:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    message = f"The request body is over {limit:,} bytes (DATA_UPLOAD_MAX_MEMORY_SIZE)."
    return error_response(ErrorCode.INVALID_PARAMETER_VALUE, message, status=413)


@api.exception_handler(SuspiciousOperation)
def _suspicious(request: HttpRequest, exc: SuspiciousOperation) -> HttpResponse:
    """Django's refusals of a request it will not read, e.g. more than 1,000 query parameters."""
    return error_response(ErrorCode.INVALID_PARAMETER_VALUE, f"The request was refused: {exc}")


@api.exception_handler(Exception)
def _unexpected(request: HttpRequest, exc: Exception) -> HttpResponse:
    """A bug: logged with its traceback, answered without one."""
    logger.exception("API %s %s failed", request.method, request.path)
    return error_response(ErrorCode.INTERNAL_ERROR, "An internal error occurred (it was logged).")


class ApiErrorsMiddleware:
    """What Django answers under ``/api/`` before the API sees the request (an unknown path, a method
    an endpoint does not take) gets the API's error shape too, instead of an HTML page."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if not request.path.startswith(PREFIX) or response.status_code < 400:
            return response
        if response.get("Content-Type", "").startswith("application/json"):
            return response
        if response.status_code == 404:
            return error_response(ErrorCode.RESOURCE_DOES_NOT_EXIST, f"No API endpoint at {request.path[:200]}.")
        if response.status_code == 405:
            replaced = error_response(
                ErrorCode.METHOD_NOT_ALLOWED, f"{request.method} is not allowed here.", status=405
            )
            replaced["Allow"] = response.get("Allow", "")
            return replaced
        code = CODE_OF_STATUS.get(response.status_code, ErrorCode.INVALID_PARAMETER_VALUE)
        return error_response(code, "The request was refused.", status=response.status_code)
