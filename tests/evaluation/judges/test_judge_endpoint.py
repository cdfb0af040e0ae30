"""Judge requests under our rules: what is sent, retries on 429/5xx, the deadline, and each failure's error code."""

from __future__ import annotations

import time
from typing import Any

import pytest

from evaluation.judges import endpoint
from tests.evaluation.judges.conftest import API_KEY, MODEL, FakeJudgeServer, answer, failure, free_port, silence


def test_a_check_sends_one_request_as_mlflow_judges_do(judge_server: FakeJudgeServer) -> None:
    check = endpoint.check_connection()
    assert check.ok and check.model == f"{MODEL}-2026-01" and check.seconds < 1
    (request,) = judge_server.requests
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.body["model"] == MODEL
    schema = request.body["response_format"]["json_schema"]["schema"]
    assert request.body["response_format"]["type"] == "json_schema"
    assert set(schema["properties"]) == {"result", "rationale"}


def test_mlflow_model_catalogue_is_never_fetched(judge_server: FakeJudgeServer) -> None:
    import os

    endpoint.activate()
    assert os.environ["MLFLOW_MODEL_CATALOG_URI"] == ""
    assert os.environ["OPENAI_API_BASE"] == os.environ["OPENAI_BASE_URL"] == judge_server.url


def test_without_a_key_no_authorization_header_is_sent(judge_server: FakeJudgeServer, settings: Any) -> None:
    settings.JUDGE_API_KEY = ""
    assert endpoint.check_connection().ok
    assert "authorization" not in judge_server.requests[0].headers


def test_429_then_success_is_retried(judge_server: FakeJudgeServer) -> None:
    judge_server.then(failure(429, "slow down"), failure(429, "slow down", **{"Retry-After": "0"}))
    check = endpoint.check_connection()
    assert check.ok and len(judge_server.requests) == 3


def test_500s_are_retried_at_most_judge_max_retries_times(judge_server: FakeJudgeServer) -> None:
    judge_server.default = failure(500, "upstream exploded")
    check = endpoint.check_connection()
    assert not check.ok and check.code == "HTTP_500"
    assert check.error == "HTTP 500 from the judge endpoint: upstream exploded"
    assert len(judge_server.requests) == 3  # 1 + JUDGE_MAX_RETRIES


def test_a_401_is_not_retried_and_keeps_the_servers_words_without_the_key(judge_server: FakeJudgeServer) -> None:
    judge_server.default = failure(401, f"Incorrect API key provided: {API_KEY}.")
    check = endpoint.check_connection()
    assert check.code == "HTTP_401" and len(judge_server.requests) == 1
    assert check.error == "HTTP 401 from the judge endpoint: Incorrect API key provided: [redacted]."


def test_a_400_about_response_format_is_retried_without_it(judge_server: FakeJudgeServer) -> None:
    judge_server.then(failure(400, "response_format json_schema is not supported by this model"))
    assert endpoint.check_connection().ok
    first, second = judge_server.requests
    assert "response_format" in first.body and "response_format" not in second.body


def test_silence_costs_the_timeout_once_not_minutes(judge_server: FakeJudgeServer) -> None:
    judge_server.default = silence(5)
    started = time.monotonic()
    check = endpoint.check_connection()
    assert time.monotonic() - started < 1.6
    assert check.code == "TIMEOUT" and "within 1 s" in check.error


def test_a_dead_endpoint_is_connection_refused_quickly(judge_env: Any) -> None:
    judge_env.JUDGE_BASE_URL = f"http://127.0.0.1:{free_port()}/v1"
    judge_env.JUDGE_MODEL = MODEL
    started = time.monotonic()
    check = endpoint.check_connection()
    assert time.monotonic() - started < 1.2
    assert check.code == "CONNECTION_ERROR"
    assert check.error == f"cannot connect to {judge_env.JUDGE_BASE_URL}: connection refused"


def test_an_answer_that_is_not_json_is_a_parse_error(judge_server: FakeJudgeServer) -> None:
    judge_server.default = answer('{"result": "yes", "rationale": ')
    check = endpoint.check_connection()
    assert check.code == "PARSE_ERROR" and "not a JSON object" in check.error


def test_a_reply_that_is_not_json_is_a_parse_error(judge_server: FakeJudgeServer) -> None:
    from tests.evaluation.judges.conftest import Reply

    judge_server.default = Reply(body="<html>gateway</html>")
    check = endpoint.check_connection()
    assert check.code == "PARSE_ERROR" and "<html>gateway</html>" in check.error


def test_not_configured_says_which_settings(judge_env: Any) -> None:
    check = endpoint.check_connection()
    assert not check.ok and check.code == "NOT_CONFIGURED" and "JUDGE_BASE_URL and JUDGE_MODEL" in check.error


def test_the_shown_base_url_drops_credentials(judge_env: Any) -> None:
    judge_env.JUDGE_BASE_URL = "https://user:pw@gateway.example.com:8443/v1?key=abc"
    assert endpoint.current().shown_base_url == "https://gateway.example.com:8443/v1"


def test_requests_go_through_the_environment_proxy_read_once_per_url(
    judge_server: FakeJudgeServer, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Judge threads keep a session that ignores the environment per request; its proxy settings still apply."""
    endpoint._environment_settings.cache_clear()
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{judge_server.http.server_port}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    settings.JUDGE_BASE_URL = "http://judge.invalid/v1"
    try:
        check = endpoint.check_connection()
    finally:
        endpoint._environment_settings.cache_clear()
    assert judge_server.requests[0].path == "http://judge.invalid/v1/chat/completions"  # as a proxy is asked
    assert not check.ok and check.code == "HTTP_404"
