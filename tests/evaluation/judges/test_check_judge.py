"""manage.py check_judge: latency and model, or one error: line naming the problem and exit 1."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command

from tests.evaluation.judges.conftest import API_KEY, MODEL, FakeJudgeServer, answer, failure, free_port, silence


def _check() -> tuple[int, str, str]:
    out, err = StringIO(), StringIO()
    try:
        call_command("check_judge", stdout=out, stderr=err)
        code = 0
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    return code, out.getvalue(), err.getvalue()


def test_ok_prints_the_model_and_latency(judge_server: FakeJudgeServer) -> None:
    code, out, err = _check()
    assert code == 0 and err == ""
    assert out.startswith(f"ok: {MODEL}-2026-01 at {judge_server.url} answered in ")
    assert " ms (model openai:/judge-model)" in out and API_KEY not in out
    assert len(judge_server.requests) == 1


@pytest.mark.parametrize(
    ("reply", "line"),
    [
        (failure(401, f"Incorrect API key provided: {API_KEY}"), "error: HTTP 401 from the judge endpoint: "
         "Incorrect API key provided: [redacted]"),
        (failure(500, "boom"), "error: HTTP 500 from the judge endpoint: boom"),
        (silence(5), "error: no answer from {url} within 1 s (JUDGE_TIMEOUT_S)"),
        (answer("Sure, yes."), "error: the judge's answer is not a JSON object: 'Sure, yes.'"),
    ],
)  # fmt: skip
def test_each_problem_is_one_error_line(judge_server: FakeJudgeServer, reply: Any, line: str) -> None:
    judge_server.default = reply
    code, out, err = _check()
    assert code == 1 and out == ""
    assert err.splitlines() == [line.format(url=judge_server.url)]


def test_not_configured(judge_env: Any) -> None:
    code, _, err = _check()
    assert code == 1
    assert err.splitlines() == ["error: no judge endpoint is configured: set JUDGE_BASE_URL and JUDGE_MODEL"]


def test_connection_refused(judge_env: Any) -> None:
    judge_env.JUDGE_BASE_URL = f"http://127.0.0.1:{free_port()}/v1"
    judge_env.JUDGE_MODEL = MODEL
    code, _, err = _check()
    assert code == 1
    assert err.splitlines() == [f"error: cannot connect to {judge_env.JUDGE_BASE_URL}: connection refused"]
