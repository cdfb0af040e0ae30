"""Real OpenTelemetry SDK spans for the OTLP receiver tests, encoded as exporters encode them."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

RESOURCE = Resource.create({"service.name": "support-bot", "deployment.environment": "test"})


def record_rag_trace(*, question: str = "How do I reset my password?", fail: bool = False) -> list[ReadableSpan]:
    """A real SDK trace: agent → (retriever, llm → tool). Spans come out in end order: children first."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=RESOURCE)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("tests")
    with tracer.start_as_current_span("agent") as root:
        root.set_attribute("mlflow.spanType", json.dumps("AGENT"))
        root.set_attribute("mlflow.spanInputs", json.dumps({"question": question}))
        root.set_attribute("mlflow.traceTag.env", "production")
        root.set_attribute("mlflow.traceTag.version", "1.0")
        root.set_attribute("session.id", "chat-42")
        root.set_attribute("user.id", "alice")
        with tracer.start_as_current_span("retrieve") as retriever:
            retriever.set_attribute("mlflow.spanType", json.dumps("RETRIEVER"))
            retriever.set_attribute("mlflow.spanOutputs", json.dumps([{"page_content": "Use the reset link."}]))
        with tracer.start_as_current_span("llm") as llm:
            llm.set_attribute("mlflow.spanType", json.dumps("LLM"))
            llm.set_attribute("tokens", 42)
            with tracer.start_as_current_span("tool"):
                pass
        root.set_attribute("mlflow.spanOutputs", json.dumps("Click 'Forgot password'."))
        if fail:
            root.set_status(Status(StatusCode.ERROR, "boom"))
    provider.shutdown()
    return list(exporter.get_finished_spans())


def protobuf_body(spans: Sequence[ReadableSpan]) -> bytes:
    return encode_spans(spans).SerializeToString()


def json_document(spans: Sequence[ReadableSpan], *, hex_ids: bool = False) -> dict[str, Any]:
    """OTLP/JSON of real spans: protobuf's JSON printer writes ids in base64; OTLP/JSON proper in hex."""
    document = json.loads(json_format.MessageToJson(encode_spans(spans)))
    if hex_ids:
        import base64

        for resource_spans in document["resourceSpans"]:
            for scope_spans in resource_spans["scopeSpans"]:
                for span in scope_spans["spans"]:
                    for key in ("traceId", "spanId", "parentSpanId"):
                        if key in span:
                            span[key] = base64.b64decode(span[key]).hex()
    return document


def json_body(spans: Sequence[ReadableSpan], *, hex_ids: bool = False) -> bytes:
    return json.dumps(json_document(spans, hex_ids=hex_ids)).encode()


def trace_id_of(spans: Sequence[ReadableSpan]) -> str:
    return f"tr-{spans[0].context.trace_id:032x}"


def span_id_of(span: ReadableSpan) -> str:
    return f"{span.context.span_id:016x}"
