"""``POST /v1/traces``: the OTLP/HTTP trace receiver (protobuf or JSON), for OpenTelemetry and MLflow exporters.

Thin: authenticate the API token, read and decode the body (:mod:`traces.ingest.otlp_http`), pick the
experiment from ``x-mlflow-experiment-id`` and hand the spans to :func:`traces.ingest.live.store_live_spans`.
Every refusal is a JSON ``{"error": …}`` with a 4xx status, and writes nothing; a database that cannot
take the spans is a 503, which exporters retry.
"""

from __future__ import annotations

import dataclasses
import logging
import time

from django.conf import settings
from django.db import DatabaseError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from .ingest.live import LiveResult, TraceSpans, experiment_for_header, group_spans, store_live_spans
from .ingest.otlp_http import OtlpRequestError, decode_request, decompress, encode_response, media_type, read_limited
from .models import Experiment
from .tokens import TokenError, authenticate_request, can_write_traces, token_error_response

EXPERIMENT_HEADER = "x-mlflow-experiment-id"
RETRY_AFTER_SECONDS = 5
STORE_ATTEMPTS = 3  # a deadlock between two requests for the same new traces is retried, then a 503
logger = logging.getLogger(__name__)


def _error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


@csrf_exempt
def export_traces(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        response = _error(405, "POST an OTLP ExportTraceServiceRequest to this URL.")
        response["Allow"] = "POST"
        return response
    try:
        return _export(request)
    except TokenError as error:
        return token_error_response(error)
    except OtlpRequestError as error:
        return _error(error.status, error.message)
    except DatabaseError:
        logger.warning("OTLP spans not stored: database error", exc_info=True)
        return _unavailable("The database could not store the spans right now; send them again later.")
    except Exception:  # a bug must not answer with a traceback; the exporter may retry
        logger.exception("OTLP spans not stored: unexpected error")
        return _unavailable("The spans could not be stored (an internal error, logged); send them again later.")


def _unavailable(message: str) -> JsonResponse:
    response = _error(503, message)  # exporters retry a 503, after Retry-After if given
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def _export(request: HttpRequest) -> HttpResponse:
    token = authenticate_request(request)
    if not can_write_traces(token.user):
        raise TokenError(403, "This API token's owner may not send traces (only admins and session leads may).")
    header = request.headers.get(EXPERIMENT_HEADER, "").strip()
    if not header:
        raise OtlpRequestError(400, f"Send the target experiment in the {EXPERIMENT_HEADER} header (id or name).")
    if "\x00" in header or len(header) > 255:
        raise OtlpRequestError(400, f"The {EXPERIMENT_HEADER} header is not an experiment id or name.")
    kind = media_type(request.headers.get("Content-Type", ""))
    limit = settings.OTLP_MAX_BODY_BYTES
    body = read_limited(request, request.headers.get("Content-Length"), limit)
    body = decompress(body, request.headers.get("Content-Encoding", ""), limit)
    raw_spans = decode_request(body, kind)
    result = LiveResult()
    groups = group_spans(raw_spans, result)
    experiment = experiment_for_header(header, may_create=token.user.is_staff)
    if experiment is None:
        raise OtlpRequestError(404, f"No trace experiment {header[:100]!r} (an MLflow experiment id, id or name).")
    result = _store(groups, experiment, result)
    content, content_type = encode_response(kind, len(result.rejected), result.rejection_message)
    return HttpResponse(content, content_type=content_type)


def _store(groups: list[TraceSpans], experiment: Experiment, parsed: LiveResult) -> LiveResult:
    for attempt in range(1, STORE_ATTEMPTS + 1):
        result = dataclasses.replace(parsed, rejected=list(parsed.rejected))
        try:
            return store_live_spans(groups, experiment=experiment, result=result)
        except OperationalError as error:  # e.g. a deadlock with a concurrent request: it was rolled back
            if attempt == STORE_ATTEMPTS:
                raise
            logger.info("OTLP spans: attempt %d failed (%s); trying again", attempt, type(error).__name__)
            time.sleep(0.05 * attempt)
    raise AssertionError("unreachable")
