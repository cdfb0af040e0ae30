"""Production monitoring end to end: the real OpenTelemetry SDK exports a trace over OTLP to the live server,
a real ``db_worker`` process scores it with the experiment's registered scorers, and the verdict is on the
trace page."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from playwright.sync_api import Page, expect

from evaluation.monitoring.models import MonitoringResult
from evaluation.monitoring.registrations import register_scorer
from tests.e2e.conftest import login
from tests.processes import child_database_url
from tests.traces.otlp_helpers import RESOURCE
from traces.models import Experiment, Trace
from traces.tokens import create_api_token

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def worker(transactional_db: None, settings: Any):
    """One real worker on the test database, polling every 0.2 s, as ``make run`` starts it."""
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
    env = {
        **os.environ,
        "DATABASE_URL": child_database_url(),
        "TASKS_BACKEND": "django_tasks_db.DatabaseBackend",
        "DJANGO_SETTINGS_MODULE": "reviewapp.settings",
    }
    process = subprocess.Popen(
        [sys.executable, "manage.py", "db_worker", "--interval", "0.2", "--no-startup-delay", "--no-reload", "-v0"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    yield process
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _export(url: str, token: str) -> None:
    exporter = OTLPSpanExporter(
        endpoint=f"{url}/v1/traces",
        headers={"Authorization": f"Bearer {token}", "x-mlflow-experiment-id": "41"},
        timeout=10,
    )
    results = []

    class Recording(SimpleSpanProcessor):
        def on_end(self, span: Any) -> None:
            results.append(exporter.export([span]))

    provider = TracerProvider(resource=RESOURCE)
    provider.add_span_processor(Recording(exporter))
    tracer = provider.get_tracer("support-bot")
    with tracer.start_as_current_span("agent") as root:
        root.set_attribute("mlflow.spanType", json.dumps("AGENT"))
        root.set_attribute("mlflow.spanInputs", json.dumps({"question": "How do I reset my password?"}))
        with tracer.start_as_current_span("retrieve") as retriever:
            retriever.set_attribute("mlflow.spanType", json.dumps("RETRIEVER"))
            retriever.set_attribute(
                "mlflow.spanOutputs",
                json.dumps([{"page_content": "Use the reset link.", "metadata": {"doc_uri": "https://kb/reset"}}]),
            )
        root.set_attribute("mlflow.spanOutputs", json.dumps("Click 'Forgot password' on the login page."))
    provider.shutdown()
    assert results == [SpanExportResult.SUCCESS] * 2


def _wait_for_verdicts(trace: Trace, count: int, worker: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 90
    while MonitoringResult.objects.filter(trace=trace).count() < count:
        if worker.poll() is not None:
            raise AssertionError(f"the worker exited: {worker.stderr.read()[-3000:]}")
        assert time.monotonic() < deadline, "no verdict within 90 s"
        time.sleep(0.1)


def test_a_trace_sent_over_otlp_gets_its_verdicts_from_a_worker(
    worker: subprocess.Popen[str], live_server: Any, page: Page, screenshot_dir: Path
) -> None:
    admin = User.objects.create_user("admin", password="admin-pass", is_staff=True, is_superuser=True)
    token = create_api_token(user=admin, name="support-bot")[1]
    experiment = Experiment.objects.create(name="Support bot (production)", mlflow_experiment_id="41")
    register_scorer(experiment=experiment, name="has_documents", scorer_name="has_retrieved_documents", sample_rate=1)
    register_scorer(experiment=experiment, name="answer_length", scorer_name="response_length", sample_rate=1.0)

    _export(live_server.url, token)
    trace = Trace.objects.get(experiment=experiment)
    _wait_for_verdicts(trace, 2, worker)

    page.set_viewport_size({"width": 1366, "height": 800})
    login(page, live_server, "admin", "admin-pass")
    page.goto(f"{live_server.url}{trace.get_absolute_url()}")
    assessments = page.locator("#assessments")
    expect(assessments.locator("li.assessment", has_text="has_documents")).to_contain_text("yes")
    expect(assessments.locator("li.assessment", has_text="has_documents")).to_contain_text(
        "monitoring: has_documents v1"
    )
    expect(assessments.locator("li.assessment", has_text="answer_length")).to_contain_text(
        str(len("Click 'Forgot password' on the login page."))
    )
    assessments.scroll_into_view_if_needed()
    page.screenshot(path=str(screenshot_dir / "monitoring-live-verdict.png"), full_page=False)
