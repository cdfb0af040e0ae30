"""Trace list and trace detail pages: access, filters, HTMX partials, escaping, query counts."""

from __future__ import annotations

import re
from urllib.parse import unquote

import pytest
from django.test import Client
from django.urls import reverse

from tests.factories import make_assessment, make_experiment, make_trace
from traces.models import Span

pytestmark = pytest.mark.django_db


@pytest.fixture
def client_in(client: Client, admin_user) -> Client:
    client.force_login(admin_user)
    return client


def test_reviewers_have_no_trace_explorer(client: Client, reviewer) -> None:
    trace = make_trace()
    client.force_login(reviewer)
    assert client.get(reverse("traces:list")).status_code == 404
    assert client.get(trace.get_absolute_url()).status_code == 404
    assert client.get(reverse("home"))["Location"] == reverse("labeling:my_sessions")


def test_session_leads_may_explore_traces(client: Client, reviewer) -> None:
    from labeling import services

    trace = make_trace()
    session = services.create_labeling_session(name="led")
    services.set_session_leads(session=session, leads=[reviewer])
    client.force_login(reviewer)
    assert client.get(reverse("traces:list")).status_code == 200
    assert client.get(trace.get_absolute_url()).status_code == 200


def test_pages_require_login(client: Client) -> None:
    trace = make_trace()
    for url in (reverse("traces:list"), trace.get_absolute_url()):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))


def test_login_page_looks_like_the_app(client: Client) -> None:
    response = client.get(reverse("login"))
    assert response.status_code == 200
    assert b"Trace Review" in response.content and b"Sign in" in response.content


def test_list_shows_previews_duration_and_badges(client_in: Client) -> None:
    trace = make_trace(question="Is aspirin safe with ibuprofen?", execution_duration_ms=1834)
    make_assessment(trace, "correct", False)
    make_assessment(trace, "old", True, valid=False)
    response = client_in.get(reverse("traces:list"))
    body = response.content.decode()
    assert response.status_code == 200
    assert "Is aspirin safe with ibuprofen?" in body
    assert "1.83 s" in body
    assert "correct: no" in body
    assert "old: yes" not in body  # overridden assessments are not badges
    assert '<html lang="en">' in body


def test_htmx_request_gets_only_the_table(client_in: Client) -> None:
    make_trace()
    response = client_in.get(reverse("traces:list"), HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert response.status_code == 200
    assert body.strip().startswith('<section id="trace-table"')
    assert "<html" not in body


def test_filters_by_state_name_experiment_tag_and_time(client_in: Client) -> None:
    other = make_experiment("Other")
    make_trace(name="alpha", state="ERROR", tags={"env": "prod"})
    make_trace(name="beta", experiment=other, tags={"env": "dev"})

    def names(**params: str) -> set[str]:
        response = client_in.get(reverse("traces:list"), params)
        assert response.status_code == 200
        return {n for n in ("alpha", "beta") if f">{n}</a>" in response.content.decode()}

    assert names() == {"alpha", "beta"}
    assert names(state="ERROR") == {"alpha"}
    assert names(name="bet") == {"beta"}
    assert names(experiment=str(other.pk)) == {"beta"}
    assert names(tags="env=prod") == {"alpha"}
    assert names(tags="env") == {"alpha", "beta"}
    assert names(since="2026-11-24") == set()
    assert names(since="2026-11-23", until="2026-11-23") == {"alpha", "beta"}


def test_bad_filters_get_a_clear_400(client_in: Client) -> None:
    make_trace()
    response = client_in.get(reverse("traces:list"), {"since": "2026-12-01", "until": "2026-11-01"})
    assert response.status_code == 400
    assert "“From” must be on or before “To”" in response.content.decode()
    response = client_in.get(reverse("traces:list"), {"since": "not-a-date"})
    assert response.status_code == 400
    assert "Enter a valid date" in response.content.decode()
    response = client_in.get(reverse("traces:list"), {"tags": "=x"})
    assert response.status_code == 400
    assert "has no key" in response.content.decode()


def test_load_more_links_keep_filters(client_in: Client) -> None:
    for _ in range(55):
        make_trace(name="many")
    response = client_in.get(reverse("traces:list"), {"name": "many"})
    body = response.content.decode()
    assert body.count('class="trace-name"') == 50
    match = re.search(r'href="\?name=many&amp;after=([^"]+)"', body)
    assert match, "a Load more link that keeps the filter"
    second = client_in.get(reverse("traces:list"), {"name": "many", "after": unquote(match.group(1))})
    assert second.content.decode().count('class="trace-name"') == 5


def test_detail_shows_conversation_documents_tools_tree_and_assessments(client_in: Client) -> None:
    trace = make_trace(n_spans=4, n_documents=2, question="What does MLflow record?", answer="Inputs and outputs.")
    make_assessment(trace, "relevance", "yes", rationale="Judge thinks so", valid=False, assessment_id="a-old")
    make_assessment(trace, "relevance", "no", source_type="HUMAN", overrides="a-old")
    response = client_in.get(trace.get_absolute_url())
    body = response.content.decode()
    assert response.status_code == 200
    assert 'class="bubble user"' in body and "What does MLflow record?" in body
    assert 'class="bubble assistant"' in body and "Inputs and outputs." in body
    assert body.count('<li class="doc">') == 2
    assert 'href="https://docs.example.com/tracing.md"' in body
    assert 'id="tools"' in body and "step_3" in body
    assert body.count('class="span-link"') == 4
    assert "<s>yes</s>" in body  # overridden judge value struck through
    assert "Judge thinks so" in body


def test_error_spans_and_exceptions_are_highlighted(client_in: Client, import_sample) -> None:
    trace = import_sample("error_trace.json")
    body = client_in.get(trace.get_absolute_url()).content.decode()
    assert "span-row error" in body
    assert "ValueError: tool failed for x=3" in body
    assert "error: judge timeout" in body


def test_span_detail_full_page_and_htmx_partial(client_in: Client) -> None:
    trace = make_trace(n_spans=3)
    span = Span.objects.get(trace=trace, span_type="RETRIEVER")
    full = client_in.get(trace.get_absolute_url(), {"span": span.span_id})
    assert full.status_code == 200 and "<html" in full.content.decode()
    assert "Document 0 text about tracing." in full.content.decode()
    partial = client_in.get(trace.get_absolute_url(), {"span": span.span_id}, HTTP_HX_REQUEST="true")
    body = partial.content.decode()
    assert partial.status_code == 200 and "<html" not in body
    assert body.strip().startswith('<section class="card section span-detail"')
    assert "Document 0 text about tracing." in body


def test_unknown_trace_or_span_is_404(client_in: Client) -> None:
    trace = make_trace()
    assert client_in.get(reverse("traces:detail", args=["tr-nope"])).status_code == 404
    assert client_in.get(trace.get_absolute_url(), {"span": "ffffffffffffffff"}).status_code == 404


def test_untrusted_content_is_escaped_and_only_http_links(client_in: Client) -> None:
    trace = make_trace(
        question="<script>alert(1)</script>",
        answer="<img src=x onerror=alert(2)>",
        document_uri="javascript:alert(3)",
    )
    body = client_in.get(trace.get_absolute_url()).content.decode()
    assert "<script>alert(1)</script>" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "<img src=x" not in body
    assert 'href="javascript:alert(3)"' not in body
    assert "javascript:alert(3)" in body  # shown as text, not a link


def test_detail_query_count_is_constant(client_in: Client, django_assert_max_num_queries) -> None:
    small = make_trace(n_spans=3, n_documents=2)
    big = make_trace(n_spans=2000, n_documents=200)
    for trace in (small, big):
        make_assessment(trace)
        with django_assert_max_num_queries(6):
            response = client_in.get(trace.get_absolute_url())
        assert response.status_code == 200


def test_big_trace_collapses_what_is_large(client_in: Client) -> None:
    trace = make_trace(n_spans=2000, n_documents=200)
    body = client_in.get(trace.get_absolute_url()).content.decode()
    assert body.count('<li class="doc">') == 20 and "180 more documents from this search" in body
    assert "Show all 200 documents" in body
    assert "Showing the first 500 of 2000 spans" in body
    assert body.count('class="tool-call') == 20 and "Show all 666 tool calls" in body
    all_docs = client_in.get(trace.get_absolute_url(), {"docs": "all"}).content.decode()
    assert all_docs.count('<li class="doc">') == 200
    all_tools = client_in.get(trace.get_absolute_url(), {"tools": "all"}).content.decode()
    assert all_tools.count('class="tool-call') == 666
    all_spans = client_in.get(trace.get_absolute_url(), {"tree": "all"}).content.decode()
    assert all_spans.count('class="span-link"') == 2000


def test_list_query_count_does_not_grow_with_rows(client_in: Client, django_assert_max_num_queries) -> None:
    for _ in range(30):
        make_assessment(make_trace())
    with django_assert_max_num_queries(7):  # 7th: the distinct app versions for the version select
        assert client_in.get(reverse("traces:list")).status_code == 200


def test_the_trace_page_says_which_scorer_made_a_feedback(client, admin_user):
    from tests.factories import make_assessment, make_trace

    trace = make_trace()
    make_assessment(
        trace,
        "safety",
        True,
        source_type="LLM_JUDGE",
        source_id="openai:/gpt",
        metadata={"reviewapp.monitoring.registration": "safety", "reviewapp.monitoring.registrationVersion": "3"},
    )
    make_assessment(trace, "length", 12, source_type="CODE", metadata={"mlflow.assessment.sourceRunId": "1a2b3c4d5e6f"})
    client.force_login(admin_user)
    page = client.get(trace.get_absolute_url()).content.decode()
    assert "monitoring: safety v3" in page
    assert "evaluation run 1a2b3c4d" in page
