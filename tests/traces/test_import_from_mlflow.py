"""``import_traces --from-mlflow``: what needs no MLflow server (bad input, wrong servers, auth, retries).

The import itself, against a real ``mlflow server``, is tested in tests/interop/. The servers here are
real local HTTP servers that answer the way a wrong URL or a refusing proxy does.
"""

from __future__ import annotations

import base64
import io
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.management import call_command

from traces.ingest import mlflow_server
from traces.ingest.mlflow_server import MlflowServerClient, MlflowServerError
from traces.ingest.server_import import combined_filter, since_filter
from traces.models import Assessment, Experiment, Trace

pytestmark = pytest.mark.django_db


@dataclass
class Run:
    code: int
    out: str
    err: str


def run_import(*args: str) -> Run:
    stdout, stderr = io.StringIO(), io.StringIO()
    code = 0
    try:
        call_command("import_traces", *args, stdout=stdout, stderr=stderr)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    return Run(code=code, out=stdout.getvalue(), err=stderr.getvalue())


def assert_one_error_line(run: Run, starts_with: str) -> None:
    assert run.code == 1
    assert run.out == ""
    lines = run.err.strip().splitlines()
    assert len(lines) == 1, run.err
    assert lines[0].startswith(starts_with), lines[0]
    assert "Traceback" not in run.err
    assert (Trace.objects.count(), Experiment.objects.count(), Assessment.objects.count()) == (0, 0, 0)


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mlflow_server, "BACKOFF_SECONDS", 0.0)
    for name in ("MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.delenv(name, raising=False)


@dataclass
class Answer:
    status: int
    body: bytes
    content_type: str = "text/html; charset=utf-8"
    delay: float = 0.0  # before the answer
    trickle: float = 0.0  # between the bytes of the body


@dataclass
class Server:
    url: str
    requests: list[dict[str, str]] = field(default_factory=list)


@pytest.fixture
def http_server() -> Iterator[Callable[[Callable[[int], Answer]], Server]]:
    """A real HTTP server on a free port answering with ``answer(n)`` for its n-th request."""
    servers: list[ThreadingHTTPServer] = []

    def start(answer: Callable[[int], Answer]) -> Server:
        seen: list[dict[str, str]] = []

        class Handler(BaseHTTPRequestHandler):
            def _reply(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                seen.append({"method": self.command, "path": self.path, **dict(self.headers)})
                reply = answer(len(seen))
                time.sleep(reply.delay)
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", reply.content_type)
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    for index in range(0, len(reply.body), 1 if reply.trickle else len(reply.body) or 1):
                        self.wfile.write(reply.body[index : index + (1 if reply.trickle else len(reply.body))])
                        self.wfile.flush()
                        time.sleep(reply.trickle)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (the deadline test)
                    pass

            do_GET = do_POST = _reply

            def log_message(self, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        return Server(url=f"http://127.0.0.1:{server.server_address[1]}", requests=seen)

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


HTML = b"<!doctype html><html><body><h1>Welcome to nginx!</h1></body></html>"


def test_unreachable_server_is_one_line() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    assert_one_error_line(
        run_import("--from-mlflow", url, "--experiment-id", "1"), f"error: cannot reach {url}: connection refused"
    )


def test_a_named_experiment_is_not_created_when_the_server_is_unreachable() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    run = run_import("--from-mlflow", url, "--experiment-id", "1", "--experiment", "From MLflow")
    assert_one_error_line(run, f"error: cannot reach {url}: connection refused")


def test_unknown_host_is_one_line() -> None:
    run = run_import("--from-mlflow", "http://no-such-host.invalid:5000", "--experiment-id", "1")
    assert_one_error_line(run, "error: cannot reach http://no-such-host.invalid:5000: ")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("localhost:5000", "error: --from-mlflow must be an http:// or https:// URL"),
        ("ftp://mlflow.example.com", "error: --from-mlflow must be an http:// or https:// URL"),
        ("http://", "error: --from-mlflow must be an http:// or https:// URL"),
        ("http://host:port", "error: --from-mlflow has a bad port"),
        ("http://host:5000/?x=1", "error: --from-mlflow must be the server's base URL"),
        ("http://alice:secret@host:5000", "error: --from-mlflow: put credentials in MLFLOW_TRACKING_USERNAME"),
    ],
)
def test_bad_url_is_one_line(url: str, message: str) -> None:
    run = run_import("--from-mlflow", url, "--experiment-id", "1")
    assert_one_error_line(run, message)
    assert "secret" not in run.err


@pytest.mark.parametrize("since", ["yesterday", "2026-13-01", "01/11/2026", ""])
def test_bad_since_is_one_line(since: str) -> None:
    run = run_import("--from-mlflow", "http://127.0.0.1:1", "--experiment-id", "1", "--since", since)
    assert_one_error_line(run, "error: --since must be a date (2026-11-01) or an ISO time")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from-mlflow", "http://127.0.0.1:1"], "error: --from-mlflow needs --experiment-id ID"),
        (["--experiment-id", "1"], "error: --experiment-id, --filter and --since go with --from-mlflow URL"),
        (["--since", "2026-11-01"], "error: --experiment-id, --filter and --since go with --from-mlflow URL"),
        (["some.json", "--from-mlflow", "http://127.0.0.1:1", "--experiment-id", "1"], "error: give either"),
        (["--from-mlflow", "http://127.0.0.1:1", "--experiment-id", "1", "--timeout", "0"], "error: --timeout"),
        (["--from-mlflow", "http://127.0.0.1:1", "--experiment-id", "1", "--page-size", "501"], "error: --page-size"),
        (["--from-mlflow", "http://127.0.0.1:1", "--experiment-id", "1", "--page-size", "0"], "error: --page-size"),
        ([], "error: give trace files or directories, or --from-mlflow URL --experiment-id ID"),
    ],
)
def test_incomplete_options_are_one_line(args: list[str], message: str) -> None:
    assert_one_error_line(run_import(*args), message)


@pytest.mark.parametrize(
    "answer",
    [
        Answer(200, HTML),
        Answer(404, HTML),
        Answer(200, b"not json at all", "text/plain"),
        Answer(200, b"[1, 2, 3]", "application/json"),
        Answer(200, b'{"hello": "world"}', "application/json"),
        Answer(500, b'{"detail": "boom"}', "application/json"),
    ],
    ids=["html-200", "html-404", "text", "json-list", "json-other", "json-500"],
)
def test_a_server_that_is_not_mlflow_is_one_line(http_server, answer: Answer) -> None:
    server = http_server(lambda n: answer)
    run = run_import("--from-mlflow", server.url, "--experiment-id", "1")
    if answer.status == 500:  # retried, then given up
        assert_one_error_line(run, f"error: the MLflow server at {server.url} kept answering HTTP 500")
        assert len(server.requests) == 4
    else:
        assert_one_error_line(run, f"error: {server.url} is not an MLflow tracking server: GET /api/2.0/mlflow/")
    assert server.requests[0]["path"] == "/api/2.0/mlflow/experiments/get?experiment_id=1"


@pytest.mark.parametrize("status", [401, 403])
def test_refused_token_is_one_line_without_the_token(http_server, monkeypatch, status: int) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "tok-s3cr3t-value")
    server = http_server(lambda n: Answer(status, b"You are not authenticated.", "text/plain"))
    run = run_import("--from-mlflow", server.url, "--experiment-id", "1")
    assert_one_error_line(run, f"error: the MLflow server at {server.url} refused the credentials (HTTP {status})")
    assert "MLFLOW_TRACKING_TOKEN" in run.err and "tok-s3cr3t-value" not in run.err
    assert server.requests[0]["Authorization"] == "Bearer tok-s3cr3t-value"
    assert len(server.requests) == 1  # not retried


def test_username_and_password_are_sent_as_basic_auth(http_server, monkeypatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "alice")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "pa55word")
    server = http_server(lambda n: Answer(401, b"", "text/plain"))
    run = run_import("--from-mlflow", server.url, "--experiment-id", "1")
    assert_one_error_line(run, f"error: the MLflow server at {server.url} refused the credentials (HTTP 401)")
    assert server.requests[0]["Authorization"] == "Basic " + base64.b64encode(b"alice:pa55word").decode()
    assert "pa55word" not in run.err


def test_no_credentials_sends_no_authorization_header(http_server) -> None:
    server = http_server(lambda n: Answer(200, HTML))
    run_import("--from-mlflow", server.url, "--experiment-id", "1")
    assert "Authorization" not in server.requests[0]


def test_429_and_5xx_are_retried_then_the_answer_is_used(http_server) -> None:
    server = http_server(lambda n: Answer(503 if n == 1 else 429 if n == 2 else 200, HTML))
    client = MlflowServerClient(server.url, backoff=0)
    with pytest.raises(
        MlflowServerError, match=r"is not an MLflow tracking server: GET .* answered HTTP 200 with text/html"
    ):
        client.get_experiment("1")
    assert len(server.requests) == 3


def test_every_call_has_a_deadline(http_server) -> None:
    server = http_server(lambda n: Answer(200, HTML, delay=1.0))
    client = MlflowServerClient(server.url, timeout=0.2, attempts=2, backoff=0)
    started = time.monotonic()
    with pytest.raises(MlflowServerError, match=r"cannot reach http://127\.0\.0\.1:\d+: no answer within 0\.2 s"):
        client.get_experiment("1")
    assert time.monotonic() - started < 1.5
    assert len(server.requests) == 2


def test_an_answer_trickling_in_has_a_deadline_too(http_server) -> None:
    server = http_server(lambda n: Answer(200, b'{"experiment": {"name": "slow"}}' + b" " * 200, trickle=0.02))
    client = MlflowServerClient(server.url, timeout=0.05, attempts=1)
    started = time.monotonic()
    with pytest.raises(MlflowServerError, match=r"took more than 0\.5 s to send its answer to GET /api/2\.0/mlflow/"):
        client.get_experiment("1")
    assert time.monotonic() - started < 2


def test_an_answer_over_the_size_limit_is_refused(http_server, settings) -> None:
    settings.MAX_IMPORT_FILE_BYTES = 1000
    server = http_server(lambda n: Answer(200, b"x" * 5000, "application/json"))
    run = run_import("--from-mlflow", server.url, "--experiment-id", "1")
    assert_one_error_line(run, "error: GET /api/2.0/mlflow/experiments/get at http://127.0.0.1:")
    assert "answered more than 1000 bytes (MAX_IMPORT_FILE_BYTES)" in run.err


def test_a_redirect_is_refused_rather_than_followed(http_server) -> None:
    server = http_server(lambda n: Answer(302, b""))
    run = run_import("--from-mlflow", server.url, "--experiment-id", "1")
    assert_one_error_line(run, f"error: {server.url} redirects GET /api/2.0/mlflow/experiments/get (HTTP 302)")


def test_since_becomes_a_timestamp_clause_joined_to_the_filter() -> None:
    assert since_filter("2026-11-01") == "attributes.timestamp_ms >= 1793491200000"
    assert since_filter("2026-11-01T01:00:00+01:00") == "attributes.timestamp_ms >= 1793491200000"
    assert since_filter("2026-11-01T00:00:00Z") == "attributes.timestamp_ms >= 1793491200000"
    assert combined_filter("tags.env = 'prod'", "2026-11-01") == (
        "tags.env = 'prod' AND attributes.timestamp_ms >= 1793491200000"
    )
    assert combined_filter(None, None) == combined_filter("  ", None) == ""
