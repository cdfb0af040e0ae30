"""The judge endpoint: ``JUDGE_*`` settings mapped onto what MLflow reads, and every judge request under our rules.

MLflow's judges (``model="openai:/<model>"``) read the endpoint from the process environment
(``OPENAI_API_BASE`` / ``OPENAI_BASE_URL``, ``OPENAI_API_KEY``) and post with
``mlflow.genai.judges.adapters.gateway_adapter.send_chat_request``, which retries ten times with
backoff up to 30 s and a 300 s timeout per attempt (a dead endpoint raised only after 181 s).
:func:`activate` sets that environment and puts :func:`send_chat_request` in its place, so each
request of a judge has one deadline (what is left of ``JUDGE_TIMEOUT_S`` for the judge's call
on one trace, see :func:`judge_call`), at most ``JUDGE_MAX_RETRIES`` retries after a 429, a 5xx
or a dropped connection (exponential backoff, ``Retry-After`` honoured, never past the
deadline), and typed failures (:class:`JudgeCallError`) that :func:`error_of` turns into the
error code and message of an error Feedback. A 400 is raised as MLflow's own
``ChatCompletionError``, so MLflow still retries without ``response_format`` when the server
refuses it. ``MLFLOW_MODEL_CATALOG_URI`` is set to ``""``: no model catalogue is fetched from the
internet. The API key goes only into the process environment and the request's header; every
message we keep passes :func:`redact`. Each judge thread posts on its own ``requests.Session``
(connections kept alive; the environment's proxy and CA settings read once per URL, not per
request), and MLflow's default response schema is built once: a judge request costs about 2.5 ms of
CPU here (see ``bench/judges.py``).
"""

from __future__ import annotations

import functools
import json
import os
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings

NOT_CONFIGURED = "no judge endpoint is configured: set JUDGE_BASE_URL and JUDGE_MODEL"
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
BACKOFF_BASE_S = 0.5
BACKOFF_MAX_S = 8.0
NO_KEY = "no-key"  # MLflow refuses an empty OPENAI_API_KEY; with it we send no Authorization header
REDACTED = "[redacted]"
CHECK_PROMPT = 'This is a connection test. Answer with exactly this JSON object: {"result": "yes", "rationale": "ok"}'


@dataclass(frozen=True)
class JudgeEndpoint:
    base_url: str
    model: str
    api_key: str = field(repr=False)
    timeout: float
    max_retries: int
    max_concurrency: int

    @property
    def configured(self) -> bool:
        return bool(self.base_url and self.model)

    @property
    def model_uri(self) -> str:
        """What MLflow's judges take as ``model``, and what their Feedback names as its source."""
        return f"openai:/{self.model}"

    @property
    def shown_base_url(self) -> str:
        """The base URL without user info, query or fragment (safe on a page)."""
        parts = urlsplit(self.base_url)
        host = parts.hostname or ""
        netloc = f"[{host}]" if ":" in host else host
        if parts.port:
            netloc += f":{parts.port}"
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def current() -> JudgeEndpoint:
    return JudgeEndpoint(
        base_url=settings.JUDGE_BASE_URL.rstrip("/"),
        model=settings.JUDGE_MODEL,
        api_key=settings.JUDGE_API_KEY,
        timeout=float(settings.JUDGE_TIMEOUT_S),
        max_retries=int(settings.JUDGE_MAX_RETRIES),
        max_concurrency=int(settings.JUDGE_MAX_CONCURRENCY),
    )


class JudgeCallError(Exception):
    """A judge request failed: ``code`` (``TIMEOUT``, ``HTTP_429``, ``CONNECTION_ERROR``, ``PARSE_ERROR`` …)."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = redact(message)
        super().__init__(self.message)


def redact(text: str) -> str:
    """``text`` without the API key (a server may echo it in an error)."""
    key = settings.JUDGE_API_KEY
    if key and len(key) >= 4 and key in text:
        text = text.replace(key, REDACTED)
    return text


def activate() -> JudgeEndpoint:
    """Point MLflow's judges at the endpoint (process environment) and route their requests through ours."""
    os.environ["MLFLOW_MODEL_CATALOG_URI"] = ""
    endpoint = current()
    if endpoint.configured:
        os.environ["OPENAI_API_BASE"] = os.environ["OPENAI_BASE_URL"] = endpoint.base_url
        os.environ["OPENAI_API_KEY"] = endpoint.api_key or NO_KEY
    from mlflow.genai.judges.adapters import gateway_adapter

    if not callable(getattr(gateway_adapter, "send_chat_request", None)):  # MLflow moved it: our rules would not apply
        raise RuntimeError("mlflow.genai.judges.adapters.gateway_adapter.send_chat_request is gone; update judges")
    gateway_adapter.send_chat_request = send_chat_request
    schema = getattr(gateway_adapter, "_get_default_judge_response_schema", None)
    if callable(schema) and not hasattr(schema, "cache_info"):
        # MLflow builds the same pydantic model for every request (≈1 ms of CPU each); build it once
        gateway_adapter._get_default_judge_response_schema = functools.cache(schema)
    return endpoint


_sessions = threading.local()


@functools.cache
def _environment_settings(url: str) -> dict[str, Any]:
    """What ``requests`` takes from the environment for ``url`` (proxies, CA bundle), read once, not per request."""
    import requests

    with requests.Session() as session:
        return session.merge_environment_settings(url, {}, None, None, None)


def _post(url: str, **kwargs: Any) -> Any:
    """``requests.post`` on this thread's session: connections kept alive between a judge's requests."""
    import requests

    session = getattr(_sessions, "session", None)
    if session is None:
        session = _sessions.session = requests.Session()
        session.trust_env = False  # the environment's settings come from _environment_settings, once per URL
    return session.post(url, **_environment_settings(url), **kwargs)


def forget_capabilities() -> None:
    """Forget which models MLflow saw refuse ``response_format`` (it remembers that for the process)."""
    from mlflow.genai.judges.adapters import gateway_adapter

    gateway_adapter._MODEL_RESPONSE_FORMAT_CAPABILITIES.clear()


@dataclass
class CallLog:
    """What the requests of one judge call did: for its caller (latency, model, tokens) and cost accounting."""

    deadline: float
    requests: int = 0
    retries: int = 0
    model: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None

    @property
    def latency_ms(self) -> int:
        """Wall time of the call so far (all its requests, retries and waits), in milliseconds."""
        return round(((self.finished or time.monotonic()) - self.started) * 1000)


_call_log: ContextVar[CallLog | None] = ContextVar("judge_call_log", default=None)


@contextmanager
def judge_call(seconds: float | None = None) -> Iterator[CallLog]:
    """One judge on one trace: every request inside shares one deadline (``JUDGE_TIMEOUT_S`` by default)."""
    log = CallLog(deadline=time.monotonic() + (seconds if seconds is not None else current().timeout))
    token = _call_log.set(log)
    try:
        yield log
    finally:
        log.finished = time.monotonic()
        _call_log.reset(token)


def send_chat_request(endpoint: str, headers: dict[str, str], payload: dict[str, Any], num_retries: int) -> dict:
    """In place of MLflow's: our deadline and retries (``num_retries`` is ignored), failures as ``JudgeCallError``."""
    import requests

    settings_now = current()
    log = _call_log.get() or CallLog(deadline=time.monotonic() + settings_now.timeout)
    sent = {"Content-Type": "application/json", **headers}
    if not settings_now.api_key:
        sent = {k: v for k, v in sent.items() if not (k.lower() == "authorization" and v == f"Bearer {NO_KEY}")}
    attempt = 0
    while True:
        remaining = log.deadline - time.monotonic()
        if remaining <= 0:
            raise _timeout(settings_now)
        log.requests += 1
        retry_after: float | None = None
        try:
            response = _post(endpoint, headers=sent, json=payload, timeout=min(remaining, settings_now.timeout))
        except requests.Timeout:
            raise _timeout(settings_now) from None
        except requests.ConnectionError as error:
            failure = JudgeCallError(
                "CONNECTION_ERROR", f"cannot connect to {settings_now.shown_base_url}: {_reason(error)}"
            )
        else:
            if response.status_code < 400:
                return _reply(response, log)
            failure = _http_error(response)
            if response.status_code not in RETRY_STATUSES:
                raise failure
            retry_after = _retry_after(response)
        if attempt >= settings_now.max_retries:
            raise failure
        delay = retry_after if retry_after is not None else min(BACKOFF_BASE_S * 2**attempt, BACKOFF_MAX_S)
        if time.monotonic() + delay >= log.deadline:
            raise failure
        time.sleep(delay)
        attempt += 1
        log.retries += 1


def _timeout(endpoint: JudgeEndpoint) -> JudgeCallError:
    return JudgeCallError(
        "TIMEOUT", f"no answer from {endpoint.shown_base_url} within {endpoint.timeout:g} s (JUDGE_TIMEOUT_S)"
    )


def _reason(error: Exception) -> str:
    """The cause of a connection failure in a few words ("connection refused", "Name or service not known")."""
    text = str(error)
    found = re.findall(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
    if found:
        return found[-1].strip().lower() if "refused" in found[-1].lower() else found[-1].strip()
    return text[:300]


def _server_message(response: Any) -> str:
    """The server's own words: OpenAI's ``{"error": {"message": …}}``, another ``error``, or the body's start."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and "error" in body:
        error = body["error"]
        message = error.get("message") if isinstance(error, dict) else error
        if message:
            return str(message)[:500]
    text = " ".join((response.text or "").split())
    return text[:500] or (response.reason or "no message")


def _http_error(response: Any) -> Exception:
    from mlflow.genai.judges.adapters.utils import ChatCompletionError, is_context_window_error

    message = redact(_server_message(response))
    if response.status_code == 400:  # MLflow's: it retries without response_format, or prunes tool calls
        return ChatCompletionError(400, message, is_context_window_error(message))
    return JudgeCallError(
        f"HTTP_{response.status_code}", f"HTTP {response.status_code} from the judge endpoint: {message}"
    )


def _retry_after(response: Any) -> float | None:
    value = response.headers.get("Retry-After", "").strip()
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


def _reply(response: Any, log: CallLog) -> dict:
    """The chat completion as JSON, checked far enough that MLflow's parsing cannot fail on it unexplained."""
    from mlflow.genai.judges.utils.parsing_utils import _strip_markdown_code_blocks

    try:
        body = response.json()
    except ValueError:
        raise JudgeCallError(
            "PARSE_ERROR", f"the judge endpoint's reply is not JSON: {' '.join(response.text.split())[:200]!r}"
        ) from None
    choices = body.get("choices") if isinstance(body, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise JudgeCallError("PARSE_ERROR", "the judge endpoint's reply has no choices")
    _record(body, log)
    message = choices[0].get("message") or {}
    if isinstance(message, dict) and not message.get("tool_calls"):
        content = message.get("content")
        text = content if isinstance(content, str) else ""
        try:
            answer = json.loads(_strip_markdown_code_blocks(text), strict=False)
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise JudgeCallError("PARSE_ERROR", f"the judge's answer is not a JSON object: {text[:300]!r}")
    return body


def _record(body: dict, log: CallLog) -> None:
    if isinstance(body.get("model"), str):
        log.model = body["model"][:200]
    usage = body.get("usage")
    if isinstance(usage, dict):
        for name in ("prompt_tokens", "completion_tokens"):
            if isinstance(usage.get(name), int):
                setattr(log, name, getattr(log, name) + usage[name])


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current_error: BaseException | None = error
    while current_error is not None and id(current_error) not in seen:
        seen.add(id(current_error))
        yield current_error
        current_error = current_error.__cause__ or current_error.__context__


def error_of(error: BaseException) -> tuple[str, str]:
    """The error code and message an error Feedback records for what a judge raised (redacted, one line)."""
    from mlflow.genai.judges.adapters.utils import ChatCompletionError
    from pydantic import ValidationError

    from evaluation.scorers.pool import ScorerTimeout

    code, message = type(error).__name__, str(error) or type(error).__name__
    for found in _chain(error):
        if isinstance(found, JudgeCallError):
            code, message = found.code, found.message
            break
        if isinstance(found, ChatCompletionError):
            code, message = f"HTTP_{found.status_code}", f"HTTP {found.status_code} from the judge endpoint: {found}"
            break
        if isinstance(found, ScorerTimeout):
            code, message = "TIMEOUT", f"the judge {found} (JUDGE_TIMEOUT_S)"
            break
        if isinstance(found, json.JSONDecodeError | ValidationError) or (
            isinstance(found, KeyError) and found.args == ("result",)
        ):
            code, message = "PARSE_ERROR", f"the judge's answer cannot be read: {error}"
            break
    return code, redact(" ".join(message.split()))[:2000]


@dataclass(frozen=True)
class ConnectionCheck:
    ok: bool
    seconds: float
    model: str
    error: str = ""
    code: str = ""


def check_connection() -> ConnectionCheck:
    """One tiny judge request through MLflow, as the judges send it: latency and model, or the exact problem."""
    endpoint = activate()
    if not endpoint.configured:
        return ConnectionCheck(False, 0.0, "", NOT_CONFIGURED, "NOT_CONFIGURED")
    from mlflow.genai.judges.utils import invoke_judge_model

    started = time.monotonic()
    with judge_call() as log:
        try:
            invoke_judge_model(endpoint.model_uri, CHECK_PROMPT, assessment_name="check_judge")
        except Exception as error:
            code, message = error_of(error)
            return ConnectionCheck(False, time.monotonic() - started, log.model, message, code)
    return ConnectionCheck(True, time.monotonic() - started, log.model or endpoint.model)
