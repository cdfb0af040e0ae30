"""``import_traces --from-mlflow`` against a real ``mlflow server`` (SQLite), fed by the real MLflow client.

The server runs from this virtualenv; our command runs with the app's own virtualenv on a fresh
SQLite database per test, and the tests read what it stored straight from that database.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import mlflow
import pytest
from mlflow.entities import AssessmentSource, Document, TraceInfo, TraceLocation, TraceState
from mlflow.tracing.client import TracingClient

ROOT = Path(__file__).resolve().parents[2]
APP_PYTHON = ROOT / ".venv" / "bin" / "python"
os.environ["MLFLOW_ENABLE_ASYNC_TRACE_LOGGING"] = "false"  # a trace is on the server when its function returns
HUMAN = AssessmentSource(source_type="HUMAN", source_id="alice@example.com")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    log = (root / "server.log").open("wb")
    command = [str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}", "--artifacts-destination", str(root / "art")]
    process = subprocess.Popen([*command, "--workers", "1"], stdout=log, stderr=subprocess.STDOUT, cwd=root)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"mlflow server did not start:\n{(root / 'server.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@pytest.fixture(autouse=True)
def tracking(server: str) -> None:
    mlflow.set_tracking_uri(server)


@pytest.fixture(scope="module")
def migrated_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("app") / "template.sqlite3"
    run_app(path, "migrate", "--verbosity", "0")
    return path


@pytest.fixture
def app_db(migrated_db: Path, tmp_path: Path) -> Path:
    path = tmp_path / "app.sqlite3"
    shutil.copy(migrated_db, path)
    return path


def run_app(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DJANGO_"))}
    env["DATABASE_URL"] = f"sqlite:///{db}"
    return subprocess.run(
        [str(APP_PYTHON), "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


def import_traces(db: Path, server: str, experiment_id: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return run_app(db, "import_traces", "--from-mlflow", server, "--experiment-id", experiment_id, *extra)


def query(db: Path, sql: str, *params: object) -> list[tuple]:
    with sqlite3.connect(db) as connection:
        return connection.execute(sql, params).fetchall()


def summary(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


# ---- traces logged with the MLflow client


@mlflow.trace(span_type="RETRIEVER")
def retrieve(question: str) -> list[Document]:
    return [
        Document(
            page_content="MLflow Tracing records spans.", metadata={"doc_uri": "https://mlflow.org/docs"}, id="d1"
        ),
        Document(page_content="Assessments attach feedback.", metadata={"doc_uri": "https://mlflow.org/a"}, id="d2"),
    ]


@mlflow.trace(span_type="TOOL")
def rerank(documents: list[Document]) -> list[Document]:
    return documents[:1]


@mlflow.trace(span_type="LLM")
def generate(question: str, documents: list[Document]) -> str:
    return f"{documents[0].page_content} (asked: {question})"


@mlflow.trace(span_type="CHAIN")
def answer(question: str, version: str) -> str:
    mlflow.update_current_trace(tags={"app_version": version, "team": "support"})
    documents = rerank(retrieve(question))
    return generate(question, documents)


def log_rag_trace(experiment_id: str, question: str, version: str = "v1") -> str:
    mlflow.set_experiment(experiment_id=experiment_id)
    answer(question, version)
    return mlflow.get_last_active_trace_id()


@pytest.fixture(scope="module")
def support(server: str) -> dict[str, object]:
    """Experiment "support-bot": two v1 traces (one with feedback and an expectation), then one v2 trace."""
    mlflow.set_tracking_uri(server)
    experiment_id = mlflow.create_experiment("support-bot")
    first = log_rag_trace(experiment_id, "What does tracing record?")
    mlflow.log_feedback(trace_id=first, name="correctness", value=True, rationale="Matches the docs.", source=HUMAN)
    mlflow.log_expectation(trace_id=first, name="expected_facts", value=["spans"], source=HUMAN)
    second = log_rag_trace(experiment_id, "How do I add feedback?")
    time.sleep(0.05)
    cut = datetime.now(UTC)
    time.sleep(0.05)
    third = log_rag_trace(experiment_id, "Which version is this?", version="v2")
    other = mlflow.create_experiment("other-bot")
    log_rag_trace(other, "Not part of support-bot")
    return {"id": experiment_id, "traces": [first, second, third], "cut": cut, "other": other}


def test_import_brings_spans_tree_types_tags_and_assessments(server: str, support: dict, app_db: Path) -> None:
    result = import_traces(app_db, server, support["id"])
    assert summary(result) == (
        f"3 imported, 0 updated, 0 failed (12 spans; 0 unchanged of 3 traces in MLflow experiment {support['id']})"
    )
    assert query(app_db, "SELECT name, mlflow_experiment_id FROM traces_experiment") == [("support-bot", support["id"])]
    stored = query(app_db, "SELECT trace_id, name, state, span_count, tags FROM traces_trace ORDER BY request_time")
    assert [row[0] for row in stored] == support["traces"]
    for _, name, state, span_count, tags in stored:
        assert (name, state, span_count) == ("answer", "OK", 4)
        assert json.loads(tags)["team"] == "support"
    assert [json.loads(row[4])["app_version"] for row in stored] == ["v1", "v1", "v2"]

    spans = query(
        app_db,
        "SELECT s.span_id, s.parent_id, s.name, s.span_type, s.outputs FROM traces_span s "
        "JOIN traces_trace t ON t.id = s.trace_id WHERE t.trace_id = ? ORDER BY s.start_time_ns",
        support["traces"][0],
    )
    names = {span_id: name for span_id, _, name, _, _ in spans}
    tree = [(name, names.get(parent), span_type) for _, parent, name, span_type, _ in spans]
    assert tree == [
        ("answer", None, "CHAIN"),
        ("retrieve", "answer", "RETRIEVER"),
        ("rerank", "answer", "TOOL"),
        ("generate", "answer", "LLM"),
    ]
    documents = json.loads(next(outputs for _, _, name, _, outputs in spans if name == "retrieve"))
    assert [d["page_content"] for d in documents] == ["MLflow Tracing records spans.", "Assessments attach feedback."]
    assert documents[0]["metadata"]["doc_uri"] == "https://mlflow.org/docs"

    assessments = query(
        app_db,
        "SELECT a.name, a.kind, a.value, a.rationale, a.source_type, a.source_id FROM traces_assessment a "
        "JOIN traces_trace t ON t.id = a.trace_id WHERE t.trace_id = ? ORDER BY a.name",
        support["traces"][0],
    )
    assert assessments == [
        ("correctness", "feedback", "true", "Matches the docs.", "HUMAN", "alice@example.com"),
        ("expected_facts", "expectation", '["spans"]', "", "HUMAN", "alice@example.com"),
    ]


def test_rerun_imports_only_what_is_new_or_changed(server: str, app_db: Path) -> None:
    experiment_id = mlflow.create_experiment("resume-bot")
    traces = [log_rag_trace(experiment_id, f"question {n}") for n in range(3)]
    assert summary(import_traces(app_db, server, experiment_id)).startswith("3 imported, 0 updated, 0 failed")
    rerun = summary(import_traces(app_db, server, experiment_id))
    assert (
        rerun
        == f"0 imported, 0 updated, 0 failed (0 spans; 3 unchanged of 3 traces in MLflow experiment {experiment_id})"
    )

    newest = log_rag_trace(experiment_id, "one more")
    mlflow.log_feedback(trace_id=traces[1], name="helpful", value="yes", source=HUMAN)
    third = summary(import_traces(app_db, server, experiment_id))
    assert (
        third
        == f"1 imported, 1 updated, 0 failed (8 spans; 2 unchanged of 4 traces in MLflow experiment {experiment_id})"
    )
    assert query(app_db, "SELECT count(*) FROM traces_trace WHERE trace_id = ?", newest) == [(1,)]
    feedback = query(
        app_db,
        "SELECT a.value FROM traces_assessment a JOIN traces_trace t ON t.id = a.trace_id "
        "WHERE t.trace_id = ? AND a.name = 'helpful'",
        traces[1],
    )
    assert feedback == [('"yes"',)]
    assert summary(import_traces(app_db, server, experiment_id)).startswith("0 imported, 0 updated, 0 failed")
    assert query(app_db, "SELECT count(*) FROM traces_trace") == [(4,)]
    assert query(app_db, "SELECT count(*) FROM traces_span") == [(16,)]


def test_filter_and_since_restrict_what_is_imported(server: str, support: dict, app_db: Path) -> None:
    result = import_traces(app_db, server, support["id"], "--filter", "tags.app_version = 'v2'")
    assert summary(result).startswith("1 imported, 0 updated, 0 failed (4 spans; 0 unchanged of 1 traces")
    assert query(app_db, "SELECT trace_id FROM traces_trace") == [(support["traces"][2],)]

    since = import_traces(app_db, server, support["id"], "--since", support["cut"].isoformat())
    assert summary(since).startswith("0 imported, 0 updated, 0 failed (0 spans; 1 unchanged of 1 traces")
    tomorrow = datetime.now(UTC).date().replace(year=datetime.now(UTC).year + 1).isoformat()
    assert " of 0 traces" in summary(import_traces(app_db, server, support["id"], "--since", tomorrow))
    both = import_traces(
        app_db, server, support["id"], "--filter", "tags.app_version = 'v1'", "--since", support["cut"].isoformat()
    )
    assert " of 0 traces" in summary(both)
    assert query(app_db, "SELECT count(*) FROM traces_trace") == [(1,)]


def test_spans_kept_as_a_traces_json_artifact_are_read_from_the_artifact_store(server: str, app_db: Path) -> None:
    """A trace whose spans the server keeps as an artifact (as older MLflow versions logged them)."""
    experiment_id = mlflow.create_experiment("artifact-bot")
    source = mlflow.get_trace(log_rag_trace(experiment_id, "from the store"))
    client = TracingClient()
    info = client.start_trace(
        TraceInfo(
            trace_id=f"tr-{uuid.uuid4().hex}",
            trace_location=TraceLocation.from_experiment_id(experiment_id),
            request_time=int(time.time() * 1000),
            state=TraceState.OK,
            execution_duration=12,
            tags={"mlflow.traceName": "from_artifact"},
        )
    )
    assert "mlflow.trace.spansLocation" not in info.tags
    client._upload_trace_data(info, source.data)  # MLflow's own upload of traces.json

    result = import_traces(app_db, server, experiment_id, "--experiment", "Imported artifacts")
    assert summary(result).startswith("2 imported, 0 updated, 0 failed (8 spans;")
    assert query(app_db, "SELECT name, mlflow_experiment_id FROM traces_experiment") == [("Imported artifacts", "")]
    rows = query(
        app_db,
        "SELECT s.name, s.span_type FROM traces_span s JOIN traces_trace t ON t.id = s.trace_id "
        "WHERE t.trace_id = ? ORDER BY s.start_time_ns",
        info.trace_id,
    )
    assert [r[0] for r in rows][:4] == ["answer", "retrieve", "rerank", "generate"]
    assert ("retrieve", "RETRIEVER") in rows


def count_traces(db: Path) -> int:
    return query(db, "SELECT count(*) FROM traces_trace")[0][0]


def test_an_interrupted_import_keeps_its_pages_and_a_rerun_imports_the_rest(server: str, app_db: Path) -> None:
    experiment_id = mlflow.create_experiment("interrupted-bot")
    for n in range(6):
        log_rag_trace(experiment_id, f"question {n}")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DJANGO_"))}
    env["DATABASE_URL"] = f"sqlite:///{app_db}"
    command = [str(APP_PYTHON), "manage.py", "import_traces", "--from-mlflow", server, "--experiment-id"]
    process = subprocess.Popen(
        [*command, experiment_id, "--page-size", "1"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 120
    while process.poll() is None and count_traces(app_db) == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGINT)  # Ctrl+C after the first page is stored
    out, err = (part.decode() for part in process.communicate(timeout=60))
    stored = count_traces(app_db)
    if process.returncode == 130:
        assert err.strip().splitlines()[-1] == "error: interrupted; run the same command again to import the rest"
        assert "Traceback" not in err
        assert 1 <= stored < 6
        assert out.strip().startswith(f"{stored} imported, 0 updated, 0 failed ({4 * stored} spans;")
    else:  # it finished before the signal arrived
        assert process.returncode == 0 and stored == 6, err
    rerun = summary(import_traces(app_db, server, experiment_id, "--page-size", "2"))
    assert rerun == (
        f"{6 - stored} imported, 0 updated, 0 failed ({4 * (6 - stored)} spans; {stored} unchanged of 6 traces "
        f"in MLflow experiment {experiment_id})"
    )
    assert query(app_db, "SELECT count(*) FROM traces_span") == [(24,)]


@pytest.mark.parametrize("case", ["unreachable", "unknown experiment", "bad filter"])
def test_errors_are_one_line_and_write_nothing(server: str, support: dict, app_db: Path, case: str) -> None:
    args = {
        "unreachable": (f"http://127.0.0.1:{free_port()}", "1"),
        "unknown experiment": (server, "987654"),
        "bad filter": (server, support["id"], "--filter", "tags.app_version === 'v1'"),
    }[case]
    result = import_traces(app_db, args[0], args[1], *args[2:])
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    expected = {
        "unreachable": f"error: cannot reach {args[0]}: connection refused",
        "unknown experiment": f"error: MLflow experiment '987654' does not exist at {server}",
        "bad filter": "error: the MLflow server refused the filter: ",
    }[case]
    assert lines[0].startswith(expected)
    assert query(app_db, "SELECT count(*) FROM traces_trace") == [(0,)]
    assert query(app_db, "SELECT count(*) FROM traces_experiment") == [(0,)]
