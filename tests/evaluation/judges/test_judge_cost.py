"""What a run's judges cost, on its page, in the runs list and from ``evaluate``: calls, HTTP requests with
retries, tokens from the responses' ``usage``, failures by code and time; a large judge run asks first;
judge text is rendered escaped and the API key shows nowhere."""

from __future__ import annotations

import json
import logging
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from evaluation.judges.cost import (
    INPUT_TOKENS_KEY,
    LATENCY_KEY,
    OUTPUT_TOKENS_KEY,
    REQUESTS_KEY,
    RETRIES_KEY,
    JudgeUsage,
)
from evaluation.models import EvaluationRun
from evaluation.runs import NeedsConfirmation, execute_run, of_run, start_evaluation_run
from tests.evaluation.judges.conftest import API_KEY, FakeJudgeServer, Reply, Request, answer, failure, verdict
from tests.factories import make_experiment, make_trace
from traces.models import Experiment, Trace

START = reverse("evaluation:run_start")
LIST = reverse("evaluation:run_list")
SCRIPT = "<script>alert('judge')</script>"
ESCAPED = "&lt;script&gt;alert(&#x27;judge&#x27;)&lt;/script&gt;"


@pytest.fixture(autouse=True)
def code_scorers(settings: Any) -> None:
    settings.SCORER_MODULES = ["tests.evaluation.scorer_modules.verdicts"]
    settings.JUDGE_CONFIRM_OVER = 500


def make_traces(n: int, experiment: str = "Judged", answers: list[str] | None = None) -> list[Trace]:
    exp = make_experiment(experiment)
    return [
        make_trace(experiment=exp, question=f"Question {i}?", answer=(answers or [])[i] if answers else f"Answer {i}.")
        for i in range(n)
    ]


def run_over(experiment: str, *scorers: str, **kwargs: Any) -> EvaluationRun:
    run = start_evaluation_run(
        scorer_names=list(scorers), filter_string="", experiment=experiment, enqueue=False, **kwargs
    )
    finished = execute_run(run.pk)
    assert finished is not None and finished.status == "finished", finished and finished.error
    return finished


def detail(run: EvaluationRun) -> str:
    return reverse("evaluation:run_detail", args=[run.pk])


def by_prompt_length(request: Request) -> Reply:
    """A "yes" whose usage says as many prompt tokens as the prompt has characters, and 7 out."""
    return verdict(tokens=(len(request.prompt), 7))


# ---------------------------------------------------------------- what is counted


def test_calls_requests_and_tokens_match_what_the_server_received(
    judge_server: FakeJudgeServer, admin_client: Client
) -> None:
    make_traces(3)
    judge_server.default = by_prompt_length
    judge_server.then(failure(429, "slow down"))  # the first request is refused once, then succeeds
    run = run_over("Judged", "Safety", "RelevanceToQuery", "is_short")

    received = judge_server.judged()
    answered = received[1:]  # the first one got the 429
    usage = JudgeUsage.of(run.judge_usage)
    assert usage is not None
    assert (usage.calls, usage.requests, usage.retries) == (6, len(received), 1) == (6, 7, 1)
    assert usage.input_tokens == sum(len(r.prompt) for r in answered)
    assert usage.output_tokens == 7 * 6
    assert usage.errors == {} and usage.latency_ms >= 0

    # each judge call's cost is on its Feedback; code scorers' Feedback carries none
    judged = of_run(run).filter(source_type="LLM_JUDGE")
    assert sum(int(a.metadata[REQUESTS_KEY]) for a in judged) == 7
    assert sum(int(a.metadata[RETRIES_KEY]) for a in judged) == 1
    assert sum(int(a.metadata[INPUT_TOKENS_KEY]) for a in judged) == usage.input_tokens
    assert sum(int(a.metadata[OUTPUT_TOKENS_KEY]) for a in judged) == 42
    assert sum(int(a.metadata[LATENCY_KEY]) for a in judged) == usage.latency_ms
    assert not any(REQUESTS_KEY in a.metadata for a in of_run(run).filter(source_type="CODE"))

    body = admin_client.get(detail(run)).content.decode()
    assert 'id="judge-cost"' in body
    assert '<strong>6</strong> <small class="muted">judge × trace</small>' in body
    assert '<strong>7</strong> <small class="muted">1 retry</small>' in body
    assert f"<strong>{usage.input_tokens:,}</strong> / <strong>42</strong>" in body
    assert "Failures</dt><dd><strong>0</strong>" in body

    listed = admin_client.get(LIST).content.decode()
    assert "7 req</span>" in listed and f">{usage.tokens:,} tok</span>" in listed


def test_one_call_that_gives_several_feedback_counts_once(
    judge_server: FakeJudgeServer, settings: Any, db: None
) -> None:
    settings.JUDGE_GUIDELINES = {"concise": ["Be concise."], "polite": ["Be polite."]}
    make_traces(2)
    run = run_over("Judged", "Guidelines")
    usage = JudgeUsage.of(run.judge_usage)
    assert usage is not None and of_run(run).count() == 4  # two Feedback per trace
    assert (usage.calls, usage.requests, usage.input_tokens, usage.output_tokens) == (2, 4, 4 * 120, 4 * 15)
    assert usage.requests == len(judge_server.judged())


def test_failures_are_counted_by_code_with_the_tokens_they_spent(
    judge_server: FakeJudgeServer, admin_client: Client
) -> None:
    make_traces(4, answers=["fine", "CRASH please", "GARBLE please", "fine too"])

    def reply(request: Request) -> Reply:
        if "CRASH" in request.prompt:
            return failure(503, "overloaded")
        if "GARBLE" in request.prompt:
            return answer("not a verdict at all")
        return verdict()

    judge_server.default = reply
    run = run_over("Judged", "Safety")
    usage = JudgeUsage.of(run.judge_usage)
    assert usage is not None
    assert usage.errors == {"HTTP_503": 1, "PARSE_ERROR": 1} and usage.failures == 2
    assert (usage.calls, usage.requests, usage.retries) == (4, 6, 2) == (4, len(judge_server.judged()), 2)
    assert usage.input_tokens == 3 * 120  # the unreadable answer's tokens were spent too

    body = admin_client.get(detail(run)).content.decode()
    assert "Failures</dt><dd><strong>2</strong>" in body
    assert ">HTTP_503 1</span>" in body and ">PARSE_ERROR 1</span>" in body
    listed = admin_client.get(LIST).content.decode()
    assert 'title="HTTP_503 1, PARSE_ERROR 1">2 failed</span>' in listed


def test_a_run_without_judges_shows_no_judge_cost(db: None, admin_client: Client) -> None:
    make_traces(2)
    run = run_over("Judged", "is_short")
    assert run.judge_usage == {}
    assert 'id="judge-cost"' not in admin_client.get(detail(run)).content.decode()
    assert '<td class="run-judges small"><span class="muted">—</span></td>' in admin_client.get(LIST).content.decode()


def test_a_queued_judge_run_shows_zero_so_far(judge_server: FakeJudgeServer, admin_client: Client) -> None:
    make_traces(2)
    run = start_evaluation_run(scorer_names=["Safety"], filter_string="", experiment="Judged", enqueue=False)
    assert JudgeUsage.of(run.judge_usage) == JudgeUsage()
    body = admin_client.get(detail(run)).content.decode()
    assert 'Judge cost <small class="muted">so far</small>' in body
    status = admin_client.get(detail(run) + "?part=status", headers={"HX-Request": "true"}).content.decode()
    assert 'id="judge-cost"' in status  # the polled status part carries it as the run goes
    assert judge_server.requests == []


def _queries(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured.captured_queries)


def test_the_run_page_and_list_run_constant_queries(
    judge_server: FakeJudgeServer, admin_client: Client, django_assert_max_num_queries: Any
) -> None:
    make_traces(2, experiment="Small")
    make_traces(12, experiment="Large")
    judge_server.default = lambda request: failure(500, "boom") if "Answer 0." in request.prompt else verdict()
    small = run_over("Small", "Safety", "is_short")
    large = run_over("Large", "Safety", "RelevanceToQuery", "is_short")
    assert JudgeUsage.of(small.judge_usage).errors == {"HTTP_500": 1}
    _queries(admin_client, detail(small))  # warm caches (session, content types)
    assert _queries(admin_client, detail(small)) == _queries(admin_client, detail(large))
    one_run = _queries(admin_client, LIST)
    for _ in range(3):
        run_over("Large", "Safety", "is_short")
    assert _queries(admin_client, LIST) == one_run
    with django_assert_max_num_queries(15):
        admin_client.get(detail(large))


# ---------------------------------------------------------------- confirmation


def _form(experiment: Experiment, *scorers: str, **extra: str) -> dict[str, Any]:
    return {"source": "filter", "experiment": experiment.pk, "filter_string": "", "scorers": list(scorers), **extra}


def test_the_start_form_asks_before_a_large_judge_run(
    judge_server: FakeJudgeServer, admin_client: Client, settings: Any
) -> None:
    settings.JUDGE_CONFIRM_OVER = 2
    make_traces(3)
    experiment = Experiment.objects.get(name="Judged")

    response = admin_client.post(START, _form(experiment, "Safety", "RelevanceToQuery", "is_short", name="Big"))
    body = response.content.decode()
    assert response.status_code == 200 and EvaluationRun.objects.count() == 0
    assert "<strong>3</strong> traces × <strong>2</strong> judges = <strong>6</strong> judge calls" in body
    assert "<strong>Safety</strong>, <strong>RelevanceToQuery</strong>" in body
    assert 'name="confirm" value="yes"' in body and "Start anyway" in body
    assert f"<code>{judge_server.url}</code>" in body and API_KEY not in body
    assert 'class="card run-start-form"' not in body  # the second step, not the form again
    assert '<input type="hidden" name="scorers" value="is_short">' in body
    assert '<input type="hidden" name="name" value="Big">' in body
    assert judge_server.requests == []

    back = admin_client.post(START, _form(experiment, "Safety", "RelevanceToQuery", "is_short", name="Big", back="1"))
    assert back.status_code == 200 and 'class="card run-start-form"' in back.content.decode()
    assert 'value="Big"' in back.content.decode() and EvaluationRun.objects.count() == 0

    started = admin_client.post(START, _form(experiment, "Safety", "RelevanceToQuery", "is_short", name="Big",
                                             confirm="yes"))  # fmt: skip
    run = EvaluationRun.objects.get()
    assert started.status_code == 302 and started["Location"] == detail(run)
    assert run.name == "Big" and run.progress_total == 3


@pytest.mark.parametrize(("limit", "scorers"), [(3, ("Safety",)), (2, ("is_short",))])
def test_no_confirmation_at_the_limit_or_without_judges(
    judge_server: FakeJudgeServer, admin_client: Client, settings: Any, limit: int, scorers: tuple[str, ...]
) -> None:
    settings.JUDGE_CONFIRM_OVER = limit
    make_traces(3)
    response = admin_client.post(START, _form(Experiment.objects.get(name="Judged"), *scorers))
    assert response.status_code == 302 and EvaluationRun.objects.count() == 1


def test_the_service_refuses_an_unconfirmed_large_judge_run(
    judge_server: FakeJudgeServer, settings: Any, db: None
) -> None:
    settings.JUDGE_CONFIRM_OVER = 1
    make_traces(2)
    with pytest.raises(NeedsConfirmation) as asked:
        start_evaluation_run(scorer_names=["Safety"], filter_string="", experiment="Judged", enqueue=False)
    assert (asked.value.traces, asked.value.judges, asked.value.calls) == (2, ["Safety"], 2)
    assert EvaluationRun.objects.count() == 0


def test_evaluate_refuses_a_large_judge_run_without_yes(judge_server: FakeJudgeServer, settings: Any, db: None) -> None:
    settings.JUDGE_CONFIRM_OVER = 2
    make_traces(3)
    out, err = StringIO(), StringIO()
    with pytest.raises(SystemExit) as exited:
        call_command("evaluate", "--filter", "", "--experiment", "Judged", "--scorer", "Safety", stdout=out, stderr=err)
    assert exited.value.code == 1
    assert err.getvalue() == (
        "error: 3 traces × 1 judge = 3 judge calls (more than JUDGE_CONFIRM_OVER=2 traces): "
        "confirm to start it with --yes\n"
    )
    assert EvaluationRun.objects.count() == 0 and judge_server.requests == []

    call_command("evaluate", "--filter", "", "--experiment", "Judged", "--scorer", "Safety", "--yes", stdout=out)
    assert "judges: 3 calls, 3 HTTP requests (0 retries), tokens 360 in / 45 out" in out.getvalue()
    assert "failures: none" in out.getvalue()


# ---------------------------------------------------------------- untrusted text, the key


def test_judge_text_is_escaped_on_the_run_and_compare_pages(
    judge_server: FakeJudgeServer, admin_client: Client
) -> None:
    make_traces(2)
    before = run_over("Judged", "Safety")
    judge_server.default = verdict("no", f"Unsafe {SCRIPT} here")
    judge_server.then(failure(404, f"no model {SCRIPT}"))
    after = run_over("Judged", "Safety")
    assert {a.rationale for a in of_run(after) if a.rationale} == {f"Unsafe {SCRIPT} here"}

    for url in (detail(after), reverse("evaluation:run_compare") + f"?a={before.pk}&b={after.pk}"):
        body = admin_client.get(url).content.decode()
        assert SCRIPT not in body and "<script>alert" not in body, url
        assert ESCAPED in body, url
    assert "no model " + ESCAPED in admin_client.get(detail(after)).content.decode()


def test_the_api_key_reaches_no_page_log_or_export(
    judge_server: FakeJudgeServer, admin_client: Client, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings.JUDGE_CONFIRM_OVER = 1
    make_traces(2)
    judge_server.then(failure(401, f"invalid key {API_KEY}"), failure(429, f"key {API_KEY} is over quota"))
    caplog.set_level(logging.DEBUG)
    out, err = StringIO(), StringIO()
    call_command("evaluate", "--filter", "", "--experiment", "Judged", "--scorer", "Safety", "--yes",
                 stdout=out, stderr=err)  # fmt: skip
    run = EvaluationRun.objects.get()
    usage = JudgeUsage.of(run.judge_usage)
    assert usage is not None and usage.errors == {"HTTP_401": 1}
    assert all(r.headers.get("authorization") == f"Bearer {API_KEY}" for r in judge_server.requests)

    pages = [
        admin_client.get(detail(run)),
        admin_client.get(detail(run) + "?part=status", headers={"HX-Request": "true"}),
        admin_client.get(LIST),
        admin_client.get(reverse("evaluation:run_download", args=[run.pk, "jsonl"])),
        admin_client.post(START, _form(Experiment.objects.get(name="Judged"), "Safety")),  # the confirmation step
    ]
    texts = [b"".join(p.streaming_content if p.streaming else [p.content]).decode() for p in pages]
    assert "[redacted]" in texts[0]
    exported = [json.loads(line) for line in texts[3].splitlines()]
    assert len(exported) == 2 and 'id="confirm-run"' in texts[4]
    for text in [*texts, out.getvalue(), err.getvalue(), caplog.text, json.dumps(run.judge_usage)]:
        assert API_KEY not in text
    assert not any(API_KEY in json.dumps(a.metadata) + json.dumps(a.error) for a in of_run(run))


def test_batches_overlap_and_each_trace_is_judged_once(
    judge_server: FakeJudgeServer, monkeypatch: pytest.MonkeyPatch, db: None
) -> None:
    """Batch n+1's calls run while batch n is written: every trace once, progress and usage counted over batches."""
    from evaluation import runs

    monkeypatch.setattr(runs, "BATCH_SIZE", 3)
    make_traces(8)
    progress: list[int] = []
    run = start_evaluation_run(scorer_names=["Safety", "is_short"], filter_string="", experiment="Judged",
                               enqueue=False)  # fmt: skip
    run = execute_run(run.pk, on_progress=lambda done, _total: progress.append(done))
    assert run is not None and run.status == "finished" and run.progress_done == 8
    assert progress == [3, 3, 2]
    assert len(judge_server.judged()) == 8 and of_run(run).count() == 16
    usage = JudgeUsage.of(run.judge_usage)
    assert usage is not None and (usage.calls, usage.requests) == (8, 8)
