"""A real OpenAI-compatible judge endpoint on 127.0.0.1: it records each request and answers from a script."""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from evaluation.judges import endpoint

API_KEY = "sk-test-5f1c0ffee-DO-NOT-LEAK-92e4"
MODEL = "judge-model"


@dataclass
class Request:
    path: str
    headers: dict[str, str]  # lower-case names
    body: dict[str, Any]

    @property
    def prompt(self) -> str:
        return "\n".join(str(m.get("content")) for m in self.body.get("messages", []))


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # dict → JSON; str → sent as is
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


def verdict(result: str = "yes", rationale: str = "Looks right.", *, tokens: tuple[int, int] = (120, 15)) -> Reply:
    return answer(json.dumps({"result": result, "rationale": rationale}), tokens=tokens)


def answer(content: str, *, tokens: tuple[int, int] = (120, 15)) -> Reply:
    """A chat completion whose message is ``content`` (any text, malformed JSON included)."""
    return Reply(
        body={
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "created": 1,
            "model": f"{MODEL}-2026-01",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": tokens[0], "completion_tokens": tokens[1], "total_tokens": sum(tokens)},
        }
    )


def failure(status: int, message: str, **headers: str) -> Reply:
    return Reply(status=status, body={"error": {"message": message, "type": "error"}}, headers=headers)


def silence(seconds: float = 5.0) -> Reply:
    """No answer for ``seconds`` (past the tests' JUDGE_TIMEOUT_S of 1 s)."""
    return Reply(delay=seconds, body={"choices": []})


Script = Reply | Callable[[Request], Reply]


class FakeJudgeServer:
    """Answers ``POST /v1/chat/completions``: the next scripted reply, else ``default`` (a "yes" verdict)."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.script: deque[Script] = deque()
        self.default: Script = verdict()
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                request = Request(self.path, {k.lower(): v for k, v in self.headers.items()}, json.loads(raw or b"{}"))
                with server.lock:
                    server.requests.append(request)
                    script = server.script.popleft() if server.script else server.default
                if self.path != "/v1/chat/completions":
                    reply = failure(404, f"no route {self.path}")
                else:
                    reply = script(request) if callable(script) else script
                if reply.delay and server.stopping.wait(reply.delay):
                    return
                body = reply.body if isinstance(reply.body, str) else json.dumps(reply.body)
                data = body.encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout)
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.http.daemon_threads = True
        self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http.server_port}/v1"

    def then(self, *replies: Script) -> FakeJudgeServer:
        with self.lock:
            self.script.extend(replies)
        return self

    def judged(self) -> list[Request]:
        """The requests that asked for a verdict (not connection checks)."""
        return [r for r in self.requests if endpoint.CHECK_PROMPT not in r.prompt]

    def stop(self) -> None:
        self.stopping.set()
        self.http.shutdown()
        self.http.server_close()


@pytest.fixture
def judge_env(settings: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Judge settings small enough for tests; the process environment MLflow reads is restored afterwards."""
    for name in ("OPENAI_API_BASE", "OPENAI_BASE_URL", "OPENAI_API_KEY", "MLFLOW_MODEL_CATALOG_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(endpoint, "BACKOFF_BASE_S", 0.01)
    settings.JUDGE_BASE_URL = ""
    settings.JUDGE_MODEL = ""
    settings.JUDGE_API_KEY = ""
    settings.JUDGE_TIMEOUT_S = 1
    settings.JUDGE_MAX_RETRIES = 2
    settings.JUDGE_MAX_CONCURRENCY = 4
    settings.JUDGE_GUIDELINES = {}
    endpoint.forget_capabilities()
    yield settings
    endpoint.forget_capabilities()


@pytest.fixture
def judge_server(judge_env: Any) -> Iterator[FakeJudgeServer]:
    """A running fake endpoint, configured as the app's judge endpoint (with an API key)."""
    server = FakeJudgeServer()
    server.thread.start()
    judge_env.JUDGE_BASE_URL = server.url
    judge_env.JUDGE_MODEL = MODEL
    judge_env.JUDGE_API_KEY = API_KEY
    yield server
    server.stop()


def free_port() -> int:
    """A port nothing listens on (bound, then closed)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
