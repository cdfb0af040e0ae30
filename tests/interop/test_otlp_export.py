"""The real MLflow tracing SDK exports over OTLP to our running app, and the trace page shows what it sent.

``traced_app.py`` (a traced RAG function: an AGENT root, a RETRIEVER returning ``Document``s, a
CHAT_MODEL span) runs as its own process with nothing but the environment variables MLflow 3
documents for OTLP export: ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``,
``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=http/protobuf`` (MLflow's default is gRPC) and
``OTEL_EXPORTER_OTLP_TRACES_HEADERS`` with the experiment header and an API token. Our app runs
under gunicorn on a fresh SQLite database (``app_server.py``); the page is fetched over HTTP by a
user logged in through the login form.
"""

from __future__ import annotations

import html
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import traced_app
from app_server import AppServer, app_server

HERE = Path(__file__).resolve().parent
EXPERIMENT = "mlflow-otlp-interop"


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    with app_server(tmp_path_factory.mktemp("app")) as server:
        yield server


def export_with_mlflow(app: AppServer, work_dir: Path, **extra_env: str) -> str:
    """Run the traced app with OTLP export pointed at ``app``; returns the MLflow trace id it printed."""
    # mlflow.set_experiment in an earlier test of this process exports MLFLOW_EXPERIMENT_ID, which names
    # nothing in the app's own fresh tracking store (set_active_model then fails): the app starts clean.
    inherited = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME")}
    env = {
        **inherited,
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{app.url}/v1/traces",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS": f"x-mlflow-experiment-id={EXPERIMENT},authorization=Bearer%20{app.token}",
        "MLFLOW_TRACKING_URI": f"sqlite:///{work_dir / 'unused-tracking.db'}",  # OTLP replaces it; nothing lands
        "MLFLOW_DISABLE_TELEMETRY": "true",
        **extra_env,
    }
    done = subprocess.run(
        [sys.executable, str(HERE / "traced_app.py")],
        cwd=work_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Failed to export" not in done.stderr, done.stderr[-3000:]
    trace_id = done.stdout.strip().splitlines()[-1]
    assert trace_id.startswith("tr-"), done.stdout
    return trace_id


def trace_page(session: requests.Session, app: AppServer, trace_id: str) -> str:
    """The trace page once the whole trace (its root span) has arrived."""
    deadline = time.monotonic() + 30
    while True:
        response = session.get(f"{app.url}/traces/{trace_id}/", timeout=10)
        if response.status_code == 200 and "IN_PROGRESS" not in response.text:
            return html.unescape(response.text)
        assert time.monotonic() < deadline, f"trace {trace_id} not complete: HTTP {response.status_code}"
        time.sleep(0.3)


def test_mlflow_sdk_trace_shows_its_retrieved_documents_and_chat(app: AppServer, tmp_path: Path) -> None:
    trace_id = export_with_mlflow(app, tmp_path)
    session = app.login()
    page = trace_page(session, app, trace_id)

    assert "support_agent" in page
    # The RETRIEVER span's Documents, as cards with their links, ids and text.
    assert 'id="documents"' in page and page.count('<li class="doc">') == 2
    for document in traced_app.DOCUMENTS:
        assert document.page_content in page
        assert f'href="{document.metadata["doc_uri"]}"' in page
        assert document.id in page
    assert "searched for <q>Can I return my kettle after three weeks?</q>" in page
    # The root recorded the question and the answer: MLflow's own reading, as text bubbles.
    assert '<div class="bubble user">' in page and traced_app.QUESTION in page
    assert '<div class="bubble assistant">' in page and traced_app.ANSWER in page
    # The trace sits in the experiment named by the header.
    listing = session.get(f"{app.url}/traces/", timeout=10).text
    assert trace_id in listing and EXPERIMENT in listing


def test_mlflow_sdk_genai_semconv_export_still_renders_as_chat(app: AppServer, tmp_path: Path) -> None:
    """With MLFLOW_ENABLE_OTEL_GENAI_SEMCONV MLflow drops its own mlflow.* attributes and writes the GenAI
    conventions instead (gen_ai.operation.name, gen_ai.input.messages / output.messages,
    gen_ai.system_instructions): the mapping in traces/ingest/semconv.py reads them back into chat."""
    trace_id = export_with_mlflow(app, tmp_path, MLFLOW_ENABLE_OTEL_GENAI_SEMCONV="true")
    page = trace_page(app.login(), app, trace_id)

    # Span names follow the GenAI convention now ("{operation} {name}"); types come from gen_ai.operation.name.
    assert "invoke_agent support_agent" in page and "AGENT" in page and "CHAT_MODEL" in page
    # The conversation comes from the chat span (the root's inputs were not exported as messages).
    assert '<div class="bubble system">' in page and "Answer from the policies:" in page
    assert '<div class="bubble user">' in page and traced_app.QUESTION in page
    assert '<div class="bubble assistant">' in page and traced_app.ANSWER in page
    assert "t-retriever" in page  # the retriever is still a RETRIEVER span (its outputs are not exported)
