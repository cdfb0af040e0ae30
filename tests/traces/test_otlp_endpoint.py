"""POST /v1/traces: real OpenTelemetry SDK spans over OTLP/HTTP (protobuf and JSON), arriving in pieces."""

from __future__ import annotations

import gzip
import json
import zlib

import pytest
from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult

from traces.models import Experiment, ExperimentKind, Span, Trace
from traces.tokens import create_api_token, revoke_api_token

from .otlp_helpers import (
    RESOURCE,
    json_body,
    json_document,
    protobuf_body,
    record_rag_trace,
    span_id_of,
    trace_id_of,
)

URL = "/v1/traces"
PROTOBUF = "application/x-protobuf"


@pytest.fixture
def token(admin_user) -> str:
    return create_api_token(user=admin_user, name="exporter")[1]


@pytest.fixture
def experiment(db) -> Experiment:
    return Experiment.objects.create(name="Support bot", mlflow_experiment_id="17")


def post(
    client, body: bytes, *, token: str | None, experiment: str | None = "17", content_type: str = PROTOBUF, **headers
):
    extra = {}
    if token is not None:
        extra["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    if experiment is not None:
        extra["HTTP_X_MLFLOW_EXPERIMENT_ID"] = experiment
    for name, value in headers.items():
        extra["HTTP_" + name.upper()] = value
    return client.post(URL, body, content_type=content_type, **extra)


def protobuf_response(response) -> ExportTraceServiceResponse:
    assert response["Content-Type"] == PROTOBUF
    message = ExportTraceServiceResponse()
    message.ParseFromString(response.content)
    return message


def assert_tree(trace: Trace, spans) -> None:
    """The stored trace has exactly the SDK's spans, with the SDK's parent links."""
    by_id = {span_id_of(s): s for s in spans}
    stored = {s.span_id: s for s in trace.spans.all()}
    assert set(stored) == set(by_id)
    for span_id, span in by_id.items():
        parent = f"{span.parent.span_id:016x}" if span.parent else ""
        assert stored[span_id].parent_id == parent
        assert stored[span_id].name == span.name
    assert trace.span_count == len(spans)


# --- real exporters against a live server ---------------------------------------------------------


def _export_with_sdk(live_server, token: str, experiment: str, compression=None) -> list:
    """Trace with the real SDK; the real OTLP exporter sends each span as it ends (children first)."""
    exporter = OTLPSpanExporter(
        endpoint=live_server.url + URL,
        headers={"Authorization": f"Bearer {token}", "x-mlflow-experiment-id": experiment},
        compression=compression,
        timeout=10,
    )
    results = []

    class Recording(SimpleSpanProcessor):
        def on_end(self, span):
            results.append(exporter.export([span]))

    provider = TracerProvider(resource=RESOURCE)
    provider.add_span_processor(Recording(exporter))
    tracer = provider.get_tracer("live")
    with tracer.start_as_current_span("agent") as root:
        root.set_attribute("mlflow.spanInputs", json.dumps({"question": "hi"}))
        with tracer.start_as_current_span("retrieve"):
            pass
        with tracer.start_as_current_span("llm"), tracer.start_as_current_span("tool"):
            pass
        root.set_attribute("mlflow.spanOutputs", json.dumps("hello"))
    provider.shutdown()
    assert results == [SpanExportResult.SUCCESS] * 4
    return results


@pytest.mark.parametrize("compression", [None, Compression.Gzip, Compression.Deflate])
def test_the_otel_sdk_exports_a_nested_trace_span_by_span(live_server, transactional_db, compression):
    from django.contrib.auth.models import User

    admin = User.objects.create_user("live-admin", is_staff=True)
    secret = create_api_token(user=admin, name="live")[1]
    Experiment.objects.create(name="Live", mlflow_experiment_id="5")
    _export_with_sdk(live_server, secret, "5", compression)
    trace = Trace.objects.get()
    assert trace.experiment.name == "Live"
    assert trace.state == "OK" and trace.name == "agent" and trace.span_count == 4
    assert trace.request_preview == '{"question":"hi"}' and trace.response_preview == "hello"
    assert trace.tags["service.name"] == "support-bot"
    spans = {s.name: s for s in trace.spans.all()}
    assert spans["tool"].parent_id == spans["llm"].span_id
    assert spans["llm"].parent_id == spans["retrieve"].parent_id == spans["agent"].span_id
    assert spans["agent"].parent_id == ""


def test_the_otel_sdk_exporter_gets_a_clear_refusal_for_a_bad_token(live_server, transactional_db):
    Experiment.objects.create(name="Live", mlflow_experiment_id="5")
    exporter = OTLPSpanExporter(
        endpoint=live_server.url + URL, headers={"Authorization": "Bearer rvw_wrong", "x-mlflow-experiment-id": "5"}
    )
    assert exporter.export(record_rag_trace()) == SpanExportResult.FAILURE
    assert not Trace.objects.exists()


# --- one request, both encodings -----------------------------------------------------------------


def test_protobuf_request_stores_one_trace_with_the_right_tree(client, token, experiment):
    spans = record_rag_trace()
    response = post(client, protobuf_body(spans), token=token)
    assert response.status_code == 200
    assert not protobuf_response(response).HasField("partial_success")
    trace = Trace.objects.get()
    assert trace.trace_id == trace_id_of(spans) and trace.experiment == experiment
    assert_tree(trace, spans)
    assert trace.state == "OK" and trace.name == "agent"
    assert trace.tags["env"] == "production" and trace.tags["version"] == "1.0"  # plain strings, not JSON
    assert trace.tags["service.name"] == "support-bot"
    assert not any(key.startswith("telemetry.sdk.") for key in trace.tags)
    assert trace.trace_metadata["mlflow.trace.session"] == "chat-42"
    assert trace.trace_metadata["mlflow.trace.user"] == "alice"
    root = next(s for s in spans if s.parent is None)
    assert trace.execution_duration_ms == (root.end_time - root.start_time) // 1_000_000
    assert json.loads(trace.request_preview) == {"question": "How do I reset my password?"}
    retriever = trace.spans.get(name="retrieve")
    assert retriever.span_type == "RETRIEVER"
    assert retriever.outputs == [{"page_content": "Use the reset link."}]
    assert trace.spans.get(name="llm").attributes["tokens"] == 42


@pytest.mark.parametrize("hex_ids", [True, False], ids=["hex-ids", "base64-ids"])
def test_json_request_from_real_sdk_spans(client, token, experiment, hex_ids):
    spans = record_rag_trace(fail=True)
    response = post(client, json_body(spans, hex_ids=hex_ids), token=token, content_type="application/json")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json" and response.json() == {}
    trace = Trace.objects.get()
    assert trace.trace_id == trace_id_of(spans)
    assert_tree(trace, spans)
    assert trace.state == "ERROR"


def test_mlflow_trace_request_id_names_the_trace(client, token, experiment):
    spans = record_rag_trace()
    document = json_document(spans)
    for span in document["resourceSpans"][0]["scopeSpans"][0]["spans"]:
        request_id = {"key": "mlflow.traceRequestId", "value": {"stringValue": '"tr-custom-id"'}}
        span.setdefault("attributes", []).append(request_id)
    response = post(client, json.dumps(document).encode(), token=token, content_type="application/json")
    assert response.status_code == 200
    assert Trace.objects.get().trace_id == "tr-custom-id"


# --- spans in pieces -----------------------------------------------------------------------------


def test_children_first_over_several_requests_then_root(client, token, experiment):
    spans = record_rag_trace()  # end order: retrieve, tool, llm, agent
    for piece in (spans[:1], spans[1:3]):
        assert post(client, protobuf_body(piece), token=token).status_code == 200
        trace = Trace.objects.get()
        assert trace.state == "IN_PROGRESS" and trace.span_count == len(trace.spans.all())
        assert trace.name == ""
    assert post(client, protobuf_body(spans[3:]), token=token).status_code == 200
    trace = Trace.objects.get()
    assert trace.state == "OK" and trace.name == "agent"
    assert_tree(trace, spans)
    root = spans[3]
    assert trace.request_time.timestamp() == pytest.approx(root.start_time / 1e9, abs=1e-3)


def test_retries_store_nothing_twice(client, token, experiment):
    spans = record_rag_trace()
    for _ in range(3):
        assert post(client, protobuf_body(spans[:2]), token=token).status_code == 200
    for _ in range(2):
        assert post(client, protobuf_body(spans), token=token).status_code == 200
    trace = Trace.objects.get()
    assert Span.objects.count() == 4 and trace.span_count == 4
    assert_tree(trace, spans)


def test_a_late_child_after_the_root_joins_the_trace(client, token, experiment):
    spans = record_rag_trace()
    late = spans[1]  # "tool"
    others = [s for s in spans if s is not late]
    assert post(client, protobuf_body(others), token=token).status_code == 200
    assert Trace.objects.get().span_count == 3
    assert post(client, protobuf_body([late]), token=token).status_code == 200
    trace = Trace.objects.get()
    assert trace.state == "OK" and trace.name == "agent"
    assert_tree(trace, spans)


def test_spans_of_several_traces_in_one_request(client, token, experiment):
    first, second = record_rag_trace(question="one"), record_rag_trace(question="two")
    assert post(client, protobuf_body(first[:2] + second), token=token).status_code == 200
    assert post(client, protobuf_body(first[2:]), token=token).status_code == 200
    assert Trace.objects.count() == 2
    assert_tree(Trace.objects.get(trace_id=trace_id_of(first)), first)
    assert_tree(Trace.objects.get(trace_id=trace_id_of(second)), second)


def test_a_bad_span_is_refused_and_the_others_kept(client, token, experiment):
    spans = record_rag_trace()
    document = json_document(spans)
    raw_spans = document["resourceSpans"][0]["scopeSpans"][0]["spans"]
    raw_spans[0]["name"] = "bad\u0000name"
    raw_spans[1]["spanId"] = ""
    response = post(client, json.dumps(document).encode(), token=token, content_type="application/json")
    assert response.status_code == 200
    partial = response.json()["partialSuccess"]
    assert partial["rejectedSpans"] == "2"
    assert "span 0 name contains a NUL character" in partial["errorMessage"]
    assert "missing span 1 span id" in partial["errorMessage"]
    assert Trace.objects.get().span_count == 2 and Span.objects.count() == 2


def test_partial_success_in_protobuf(client, token, experiment):
    spans = record_rag_trace()
    request = json_format.ParseDict(json_document(spans), ExportTraceServiceRequest())
    request.resource_spans[0].scope_spans[0].spans[0].trace_id = b""
    response = post(client, request.SerializeToString(), token=token)
    message = protobuf_response(response)
    assert response.status_code == 200
    assert message.partial_success.rejected_spans == 1 and "trace id" in message.partial_success.error_message
    assert Span.objects.count() == 3


def test_a_trace_of_another_experiment_is_not_moved(client, token, experiment):
    spans = record_rag_trace()
    assert post(client, protobuf_body(spans[:2]), token=token).status_code == 200
    Experiment.objects.create(name="Other", mlflow_experiment_id="99")
    response = post(client, protobuf_body(spans[2:]), token=token, experiment="99")
    assert protobuf_response(response).partial_success.rejected_spans == 2
    assert Trace.objects.get().experiment == experiment and Span.objects.count() == 2


# --- compression ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", lambda data: zlib.compress(data, wbits=-15)),  # raw DEFLATE, as some clients send
        ("identity", lambda data: data),
    ],
)
def test_compressed_bodies(client, token, experiment, encoding, compress):
    spans = record_rag_trace()
    response = post(client, compress(protobuf_body(spans)), token=token, content_encoding=encoding)
    assert response.status_code == 200
    assert_tree(Trace.objects.get(), spans)


# --- the experiment header -----------------------------------------------------------------------


def test_experiment_by_our_id_and_by_name(client, token, experiment):
    spans = record_rag_trace()
    assert post(client, protobuf_body(spans[:1]), token=token, experiment=str(experiment.pk)).status_code == 200
    assert post(client, protobuf_body(spans[1:]), token=token, experiment="Support bot").status_code == 200
    assert Trace.objects.get().experiment == experiment and Span.objects.count() == 4


def test_admin_creates_an_unknown_experiment_by_name(client, token, db):
    response = post(client, protobuf_body(record_rag_trace()), token=token, experiment="New app")
    assert response.status_code == 200
    assert Trace.objects.get().experiment.name == "New app"


def _lead():
    """A session lead: may send traces, may not create experiments."""
    from django.contrib.auth.models import User

    from labeling.models import LabelingSession

    lead = User.objects.create_user("lead")
    session_experiment = Experiment.objects.create(name="copies", kind=ExperimentKind.LABELING)
    session = LabelingSession.objects.create(name="s", experiment=session_experiment)
    session.leads.add(lead)
    return lead


def test_a_lead_cannot_create_experiments(client, db):
    lead = _lead()
    secret = create_api_token(user=lead, name="lead")[1]
    response = post(client, protobuf_body(record_rag_trace()), token=secret, experiment="New app")
    assert response.status_code == 404 and "New app" in response.json()["error"]
    assert not Experiment.objects.filter(name="New app").exists()
    # ... and a labeling session's experiment of copies is never a target, even by name
    response = post(client, protobuf_body(record_rag_trace()), token=secret, experiment="copies")
    assert response.status_code == 404
    Experiment.objects.create(name="App", mlflow_experiment_id="3")
    assert post(client, protobuf_body(record_rag_trace()), token=secret, experiment="3").status_code == 200
    assert not Trace.objects.exclude(experiment__name="App").exists()


# --- bad input: a clear 4xx, nothing written -----------------------------------------------------


@pytest.fixture
def nothing_written(db):
    yield
    assert not Trace.objects.exists() and not Span.objects.exists()


def _reviewer_token(reviewer) -> str:
    return create_api_token(user=reviewer, name="r")[1]


def _revoked_token(admin_user) -> str:
    token, secret = create_api_token(user=admin_user, name="old")
    revoke_api_token(token=token)
    return secret


@pytest.mark.parametrize(
    ("case", "status", "message"),
    [
        ("no token", 401, "needs an API token"),
        ("wrong token", 401, "not a valid API token"),
        ("revoked token", 401, "revoked"),
        ("reviewer token", 403, "may not send traces"),
        ("missing header", 400, "x-mlflow-experiment-id"),
        ("unknown experiment id", 404, "No trace experiment '12345'"),
        ("unknown experiment name, not an admin", 404, "No trace experiment 'Nope'"),
        ("wrong content type", 415, "text/plain"),
        ("no content type", 415, "application/x-protobuf or application/json"),
        ("unknown encoding", 415, "Content-Encoding 'br'"),
        ("bad protobuf", 400, "not a protobuf ExportTraceServiceRequest"),
        ("bad JSON", 400, "not valid JSON"),
        ("JSON that is not OTLP", 400, "'resourceSpans' must be a list"),
        ("bad gzip", 400, "not valid gzip"),
        ("cut gzip", 400, "cut short"),
        ("bad deflate", 400, "not valid deflate"),
        ("oversized", 413, "OTLP_MAX_BODY_BYTES"),
        ("gzip bomb", 413, "decompressed request body"),
    ],
)
def test_bad_requests_get_a_clear_error_and_write_nothing(
    client, admin_user, reviewer, experiment, nothing_written, settings, case, status, message
):
    settings.OTLP_MAX_BODY_BYTES = 100_000
    good = protobuf_body(record_rag_trace())
    secret = create_api_token(user=admin_user, name="exporter")[1]
    kwargs: dict = {"token": secret}
    body = good
    if case == "no token":
        kwargs["token"] = None
    elif case == "wrong token":
        kwargs["token"] = "rvw_" + "x" * 43
    elif case == "revoked token":
        kwargs["token"] = _revoked_token(admin_user)
    elif case == "reviewer token":
        kwargs["token"] = _reviewer_token(reviewer)
    elif case == "missing header":
        kwargs["experiment"] = None
    elif case == "unknown experiment id":
        kwargs["experiment"] = "12345"
    elif case == "unknown experiment name, not an admin":
        lead = _lead()
        kwargs["token"], kwargs["experiment"] = create_api_token(user=lead, name="lead")[1], "Nope"
    elif case == "wrong content type":
        kwargs["content_type"] = "text/plain"
    elif case == "no content type":
        kwargs["content_type"] = ""
    elif case == "unknown encoding":
        kwargs["content_encoding"] = "br"
    elif case == "bad protobuf":
        body = b"this is not protobuf"
    elif case == "bad JSON":
        body, kwargs["content_type"] = b'{"resourceSpans": [', "application/json"
    elif case == "JSON that is not OTLP":
        body, kwargs["content_type"] = b'{"resourceSpans": 5}', "application/json"
    elif case == "bad gzip":
        body, kwargs["content_encoding"] = b"not gzip at all", "gzip"
    elif case == "cut gzip":
        body, kwargs["content_encoding"] = gzip.compress(good)[:-20], "gzip"
    elif case == "bad deflate":
        body, kwargs["content_encoding"] = b"\xff\xfe not deflate", "deflate"
    elif case == "oversized":
        body = good + b"\x00" * 100_000
    elif case == "gzip bomb":
        body, kwargs["content_encoding"] = gzip.compress(b"\x00" * 50_000_000), "gzip"
        assert len(body) < 100_000
    response = post(client, body, **kwargs)
    assert response.status_code == status, response.content
    assert message in response.json()["error"]
    assert not Experiment.objects.exclude(pk=experiment.pk).exclude(kind=ExperimentKind.LABELING).exists()


def test_get_is_refused_with_a_message(client, db):
    response = client.get(URL)
    assert response.status_code == 405 and "POST" in response.json()["error"]


def test_an_unknown_name_from_an_admin_with_a_bad_body_creates_no_experiment(client, token, nothing_written):
    response = post(client, b"\xff\xff\xff", token=token, experiment="Brand new")
    assert response.status_code == 400
    assert not Experiment.objects.exists()


def test_a_database_error_is_a_503_not_a_traceback(client, token, experiment, monkeypatch):
    from django.db import OperationalError

    def broken(*args, **kwargs):
        raise OperationalError("connection lost")

    monkeypatch.setattr("traces.otlp_views.store_live_spans", broken)
    monkeypatch.setattr("traces.otlp_views.time.sleep", lambda seconds: None)
    response = post(client, protobuf_body(record_rag_trace()), token=token)
    assert response.status_code == 503 and "send them again" in response.json()["error"]
    assert response["Retry-After"] == "5"
    assert not Trace.objects.exists()


@pytest.mark.parametrize("body", [b"{}", b'{"resourceSpans": []}', b'{"resourceSpans": [{"scopeSpans": []}]}'])
def test_a_request_without_spans_is_accepted(client, token, experiment, body):
    response = post(client, body, token=token, content_type="application/json")
    assert response.status_code == 200 and response.json() == {} and not Trace.objects.exists()


def test_the_readme_environment_variables_configure_the_sdk_exporter(live_server, transactional_db, monkeypatch):
    """The README's recipe, verbatim: endpoint, protocol and URL-encoded headers from the environment."""
    from django.contrib.auth.models import User

    admin = User.objects.create_user("env-admin", is_staff=True)
    secret = create_api_token(user=admin, name="env")[1]
    Experiment.objects.create(name="Support bot")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"{live_server.url}/v1/traces")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf")
    monkeypatch.setenv(
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS", f"Authorization=Bearer%20{secret},x-mlflow-experiment-id=Support%20bot"
    )
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "gzip")
    spans = record_rag_trace()
    assert OTLPSpanExporter().export(spans) == SpanExportResult.SUCCESS
    trace = Trace.objects.get()
    assert trace.experiment.name == "Support bot"
    assert_tree(trace, spans)


def test_a_large_batch_within_the_limit_is_taken(client, token, experiment):
    """Bigger than Django's 2.5 MB form-data limit (the body is streamed, not read as a form)."""
    spans = record_rag_trace(question="x" * 3_000_000)
    body = protobuf_body(spans)
    assert len(body) > 3_000_000
    response = post(client, body, token=token)
    assert response.status_code == 200
    assert len(Trace.objects.get().spans.get(name="agent").inputs["question"]) == 3_000_000


def test_one_request_id_for_all_spans_of_an_otel_trace_in_a_request(client, token, experiment):
    """Only the root names mlflow.traceRequestId here; its children in the same request still join it."""
    spans = record_rag_trace()
    document = json_document(spans)
    raw_spans = document["resourceSpans"][0]["scopeSpans"][0]["spans"]
    root = next(span for span in raw_spans if not span.get("parentSpanId"))
    root["attributes"].append({"key": "mlflow.traceRequestId", "value": {"stringValue": '"tr-from-root"'}})
    response = post(client, json.dumps(document).encode(), token=token, content_type="application/json")
    assert response.status_code == 200
    trace = Trace.objects.get()
    assert trace.trace_id == "tr-from-root" and trace.span_count == 4


def _max_body_setting(**env: str):
    import os
    import subprocess
    import sys
    from pathlib import Path

    clean = {k: v for k, v in os.environ.items() if k != "OTLP_MAX_BODY_BYTES"}
    clean.update(env, DJANGO_SETTINGS_MODULE="reviewapp.settings")
    code = "import django; django.setup(); from django.conf import settings; print(settings.OTLP_MAX_BODY_BYTES)"
    root = Path(__file__).resolve().parents[2]
    return subprocess.run([sys.executable, "-c", code], cwd=root, env=clean, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("raw", "limit"), [(None, 20 * 1024 * 1024), ("5_000_000", 5_000_000)])
def test_the_body_limit_comes_from_the_environment(raw, limit):
    result = _max_body_setting() if raw is None else _max_body_setting(OTLP_MAX_BODY_BYTES=raw)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(limit)


def test_a_bad_body_limit_stops_the_app_clearly():
    result = _max_body_setting(OTLP_MAX_BODY_BYTES="20MB")
    assert result.returncode != 0
    assert "OTLP_MAX_BODY_BYTES must be a whole number, not '20MB'" in result.stderr


def test_an_in_progress_trace_shows_in_the_explorer_and_on_its_page(client, admin_user, token, experiment):
    """Children without their root yet: the list and the trace page work, and show the trace as in progress."""
    spans = record_rag_trace()
    assert post(client, protobuf_body(spans[:2]), token=token).status_code == 200
    client.force_login(admin_user)
    listing = client.get("/traces/")
    assert listing.status_code == 200 and trace_id_of(spans) in listing.content.decode()
    page = client.get(Trace.objects.get().get_absolute_url())
    assert page.status_code == 200
    assert "In progress" in page.content.decode() and "tool" in page.content.decode()
