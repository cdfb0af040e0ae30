"""The OTLP/HTTP wire format of ``POST /v1/traces``: body limits, decompression, decoding, the response.

Requests are ``ExportTraceServiceRequest`` messages as protobuf (``application/x-protobuf``) or in
OTLP's JSON mapping (``application/json``; ids in hex, or base64 as protobuf's own JSON printer
writes them), optionally ``Content-Encoding: gzip`` or ``deflate``. Protobuf spans are turned into
the same dict shape the JSON mapping decodes to, so one function (:func:`.otlp.span_from_otlp`)
reads MLflow's attributes for both. Nothing here touches the database.
"""

from __future__ import annotations

import base64
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from .otlp import resource_span_groups
from .records import TraceFormatError

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
CONTENT_TYPES = {PROTOBUF: PROTOBUF, "application/protobuf": PROTOBUF, JSON: JSON}
READ_CHUNK = 256 * 1024


class OtlpRequestError(Exception):
    """A request the receiver refuses as a whole: ``status`` is the HTTP status, ``message`` says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


@dataclass(slots=True)
class RawSpan:
    """One span as the OTLP JSON mapping has it (a dict), with the resource attributes it came with."""

    raw: Any  # a dict, unless the JSON body put something else in the list
    resource: dict[str, Any]


def media_type(content_type: str) -> str:
    """``application/x-protobuf`` or ``application/json`` from a Content-Type header; 415 otherwise."""
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind not in CONTENT_TYPES:
        shown = kind[:80] or "none"
        raise OtlpRequestError(
            415, f"Content-Type {shown!r} is not supported: send application/x-protobuf or application/json"
        )
    return CONTENT_TYPES[kind]


def read_limited(stream: Any, content_length: str | None, limit: int) -> bytes:
    """The request body, refusing (413) one longer than ``limit`` before or while reading it."""
    if content_length:
        try:
            declared = int(content_length)
        except ValueError:
            raise OtlpRequestError(400, f"Content-Length {content_length[:40]!r} is not a number") from None
        if declared > limit:
            raise OtlpRequestError(413, too_large(declared, limit, "request body"))
    body = stream.read(limit + 1)
    if len(body) > limit:
        raise OtlpRequestError(413, too_large(len(body), limit, "request body"))
    return body


def too_large(size: int, limit: int, what: str) -> str:
    more = "more than " if size > limit else ""
    return f"the {what} is {more}{size:,} bytes; the limit is {limit:,} (OTLP_MAX_BODY_BYTES)"


def decompress(body: bytes, encoding: str, limit: int) -> bytes:
    """Undo ``Content-Encoding`` (identity, gzip, deflate), inflating at most ``limit`` bytes (413 past it)."""
    encoding = encoding.strip().lower() or "identity"
    if encoding == "identity":
        return body
    if encoding in ("gzip", "x-gzip"):
        return _inflate(body, zlib.MAX_WBITS | 16, "gzip", limit)
    if encoding == "deflate":
        try:
            return _inflate(body, zlib.MAX_WBITS, "deflate", limit)
        except OtlpRequestError as exc:
            if exc.status == 413:
                raise
            return _inflate(body, -zlib.MAX_WBITS, "deflate", limit)  # some clients send raw DEFLATE
    raise OtlpRequestError(415, f"Content-Encoding {encoding[:40]!r} is not supported: use gzip, deflate or none")


def _inflate(body: bytes, wbits: int, name: str, limit: int) -> bytes:
    out = bytearray()
    data = body
    while True:  # a gzip body may hold several members one after the other
        inflater = zlib.decompressobj(wbits)
        try:
            while not inflater.eof:
                chunk = inflater.decompress(data, limit + 1 - len(out))
                out += chunk
                if len(out) > limit:
                    raise OtlpRequestError(413, too_large(len(out), limit, "decompressed request body"))
                data = inflater.unconsumed_tail
                if not data and not chunk:
                    break
        except zlib.error as exc:
            raise OtlpRequestError(400, f"the body is not valid {name} data ({exc})") from None
        if not inflater.eof:
            raise OtlpRequestError(400, f"the {name} data is cut short")
        data = inflater.unused_data
        if not data or name != "gzip":
            return bytes(out)


def decode_request(body: bytes, kind: str) -> list[RawSpan]:
    """Every span of an ``ExportTraceServiceRequest`` in either encoding; 400 naming what is malformed."""
    if kind == PROTOBUF:
        return list(_spans_from_protobuf(body))
    try:
        document = orjson.loads(body) if body.strip() else {}
    except orjson.JSONDecodeError as exc:
        raise OtlpRequestError(400, f"the body is not valid JSON ({exc})") from None
    try:
        return list(_spans_from_json(document))
    except TraceFormatError as exc:
        raise OtlpRequestError(400, f"not an OTLP ExportTraceServiceRequest: {exc}") from None


def _spans_from_protobuf(body: bytes) -> Iterator[RawSpan]:
    message = ExportTraceServiceRequest()
    try:
        message.ParseFromString(body)
    except (DecodeError, RecursionError, ValueError) as exc:
        raise OtlpRequestError(400, f"the body is not a protobuf ExportTraceServiceRequest ({exc})") from None
    for resource_spans in message.resource_spans:
        resource = _pb_attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                yield RawSpan(_pb_span(span), resource)


def _pb_span(span: Any) -> dict[str, Any]:
    """A protobuf ``Span`` in the JSON mapping's shape (ids as hex; attributes already decoded)."""
    return {
        "trace_id": span.trace_id.hex(),
        "span_id": span.span_id.hex(),
        "parent_span_id": span.parent_span_id.hex(),
        "name": span.name,
        "start_time_unix_nano": span.start_time_unix_nano,
        "end_time_unix_nano": span.end_time_unix_nano or None,  # 0: the span has not ended
        "status": {"code": span.status.code, "message": span.status.message},
        "events": [
            {"name": event.name, "time_unix_nano": event.time_unix_nano, "attributes": _pb_attributes(event.attributes)}
            for event in span.events
        ],
        "attributes": _pb_attributes(span.attributes),
    }


def _pb_attributes(items: Any) -> dict[str, Any]:
    return {item.key: _pb_value(item.value) for item in items}


def _pb_value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_pb_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return _pb_attributes(value.kvlist_value.values)
    if kind == "bytes_value":  # as the JSON mapping writes bytes
        return base64.b64encode(value.bytes_value).decode()
    return getattr(value, kind)


def _spans_from_json(document: Any) -> Iterator[RawSpan]:
    if not isinstance(document, dict):
        raise TraceFormatError(f"expected a JSON object, got {type(document).__name__}")
    resource_spans = document["resource_spans"] if "resource_spans" in document else document.get("resourceSpans")
    if not isinstance(resource_spans or [], list):
        raise TraceFormatError("'resourceSpans' must be a list")
    for resource, spans in resource_span_groups(resource_spans or []):
        for raw in spans:
            yield RawSpan(raw, resource)


def encode_response(kind: str, rejected: int = 0, message: str = "") -> tuple[bytes, str]:
    """An ``ExportTraceServiceResponse`` in the request's encoding (``partial_success`` if spans were refused)."""
    response = ExportTraceServiceResponse()
    if rejected:
        response.partial_success.rejected_spans = rejected
        response.partial_success.error_message = message
    if kind == PROTOBUF:
        return response.SerializeToString(), PROTOBUF
    return json_format.MessageToJson(response, indent=None).encode(), JSON
