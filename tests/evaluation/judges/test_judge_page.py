"""The judges page: built-in judges and what they read, the endpoint without its key, and Test connection."""

from __future__ import annotations

from typing import Any

from django.test import Client
from django.urls import reverse

from tests.evaluation.judges.conftest import API_KEY, MODEL, FakeJudgeServer, failure

URL = reverse("evaluation:judge_list")
CHECK = reverse("evaluation:judge_check")


def test_admins_see_the_judges_the_endpoint_and_no_key(
    admin_client: Client, judge_server: FakeJudgeServer, settings: Any, django_assert_max_num_queries: Any
) -> None:
    settings.JUDGE_BASE_URL = judge_server.url.replace("http://", "http://user:secret-pw@")
    settings.JUDGE_GUIDELINES = {"concise_communication": ["The response must be concise."]}
    with django_assert_max_num_queries(4):
        response = admin_client.get(URL)
    body = response.content.decode()
    assert response.status_code == 200
    for name in ("Guidelines", "ExpectationsGuidelines", "Correctness", "RelevanceToQuery", "Safety",
                 "RetrievalGroundedness", "RetrievalRelevance", "RetrievalSufficiency"):  # fmt: skip
        assert f"<strong>{name}</strong>" in body
    assert "expected_response or expected_facts" in body and "RETRIEVER span" in body
    assert f"<code>{judge_server.url}</code>" in body and f"<code>{MODEL}</code>" in body
    assert "concise_communication" in body and "The response must be concise." in body
    assert API_KEY not in body and "secret-pw" not in body
    assert body.count('class="badge v-pass">available') == 8
    assert 'hx-post="/datasets/judges/check/"' in body and "Test connection" in body
    assert judge_server.requests == []  # the page itself sends nothing


def test_without_an_endpoint_the_page_says_so_and_judges_are_unavailable(admin_client: Client, judge_env: Any) -> None:
    body = admin_client.get(URL).content.decode()
    assert "No judge endpoint is configured, so judges cannot be started." in body
    assert body.count("unavailable</span>") == 8 and "Test connection" not in body
    assert "Feedback <code>retrieval_relevance</code>" in body  # MLflow's Feedback name, configured or not


def test_configured_without_guidelines_only_guidelines_is_unavailable_with_the_reason(
    admin_client: Client, judge_server: FakeJudgeServer
) -> None:
    body = admin_client.get(URL).content.decode()
    assert body.count("unavailable</span>") == 1 and body.count("available</span>") == 8
    assert "no guidelines are configured: set JUDGE_GUIDELINES" in body
    assert "None configured. Set <code>JUDGE_GUIDELINES</code>" in body


def test_test_connection_as_htmx_shows_the_latency(admin_client: Client, judge_server: FakeJudgeServer) -> None:
    response = admin_client.post(CHECK, headers={"HX-Request": "true"})
    body = response.content.decode()
    assert response.status_code == 200 and body.lstrip().startswith('<div id="judge-check"')
    assert f"{MODEL}-2026-01 answered in " in body and "<html" not in body
    assert len(judge_server.requests) == 1


def test_test_connection_shows_the_exact_error_escaped_and_without_the_key(
    admin_client: Client, judge_server: FakeJudgeServer
) -> None:
    judge_server.default = failure(401, f"<b>Incorrect</b> API key provided: {API_KEY}")
    body = admin_client.post(CHECK, headers={"HX-Request": "true"}).content.decode()
    assert "<strong>HTTP_401</strong>" in body
    assert "HTTP 401 from the judge endpoint: &lt;b&gt;Incorrect&lt;/b&gt; API key provided: [redacted]" in body
    assert API_KEY not in body


def test_without_htmx_the_check_renders_the_whole_page(admin_client: Client, judge_server: FakeJudgeServer) -> None:
    response = admin_client.post(CHECK)
    assert response.status_code == 200
    assert b"<h1>LLM judges</h1>" in response.content and b"answered in" in response.content


def test_test_connection_not_configured(admin_client: Client, judge_env: Any) -> None:
    body = admin_client.post(CHECK, headers={"HX-Request": "true"}).content.decode()
    assert "NOT_CONFIGURED" in body and "set JUDGE_BASE_URL and JUDGE_MODEL" in body


def test_only_admins(client: Client, reviewer: Any, judge_server: FakeJudgeServer) -> None:
    client.force_login(reviewer)
    assert client.get(URL).status_code == 404
    assert client.post(CHECK).status_code == 403  # a refused write, as every admin action here
    assert judge_server.requests == []


def test_check_is_post_only(admin_client: Client, judge_env: Any) -> None:
    assert admin_client.get(CHECK).status_code == 405


def test_the_scorers_page_links_to_the_judges(admin_client: Client) -> None:
    assert b'href="/datasets/judges/"' in admin_client.get(reverse("evaluation:scorer_list")).content
