"""Huge span values: cut on the trace page, the span panel and the review screen, whole behind "show all"."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from django.test import Client, RequestFactory
from django.urls import reverse

from tests.factories import make_trace
from tests.traces.test_conversation import open_in_review
from traces.large_values import read_limit
from traces.loading import load_span_for_panel, load_spans_for_view
from traces.models import Span, Trace
from traces.views import span_value_response

pytestmark = pytest.mark.django_db

BIG_CHARS = 2_500_000  # over the 1,000,000 characters a page reads of one value


def big_text(chars: int) -> str:
    line = "The patient asked about the interaction of the two drugs again. "
    return (line * (chars // len(line) + 1))[:chars]


def make_big_trace(chars: int = BIG_CHARS, **overrides: Any) -> Trace:
    """A RAG trace whose root input is one huge chat message (and whose tool returned a huge result)."""
    trace = make_trace(n_spans=4, **overrides)
    root = Span.objects.get(trace=trace, parent_id="")
    root.inputs = {"messages": [{"role": "user", "content": "START " + big_text(chars) + " END-OF-INPUT"}]}
    root.save()
    tool = Span.objects.get(trace=trace, span_type="TOOL")
    tool.outputs = {"rows": big_text(30_000)}
    tool.save()
    return trace


@pytest.fixture
def as_admin(client: Client, admin_user) -> Client:
    client.force_login(admin_user)
    return client


@pytest.fixture
def small_limit(settings: Any) -> int:
    settings.TRACE_VALUE_LIMIT = 1_000
    return 1_000


def links(body: str) -> list[str]:
    return [h.replace("&amp;", "&") for h in re.findall(r'href="([^"]*value=[^"]*)"', body)]


def test_trace_page_with_a_huge_input_stays_small_and_links_to_all_of_it(as_admin: Client) -> None:
    trace = make_big_trace()
    response = as_admin.get(trace.get_absolute_url())
    body = response.content.decode()
    assert response.status_code == 200
    assert len(response.content) < 200_000  # was the whole 2.5 MB input
    assert "START The patient asked" in body and "END-OF-INPUT" not in body
    assert "Only the beginning of this value is shown. <a" in body and "Show all (2.4\xa0MB)" in body
    root = Span.objects.get(trace=trace, parent_id="")
    assert f"{trace.get_absolute_url()}?span={root.span_id}&value=inputs" in links(body)
    assert f"{trace.get_absolute_url()}?span={root.span_id}&value=inputs&download=1" in links(body)
    # The tool's 30,000-character result is cut to 5,000 with its own link.
    assert "Shortened for the page: 25,0" in body


def test_show_all_and_download_give_the_whole_stored_value(as_admin: Client) -> None:
    trace = make_big_trace()
    root = Span.objects.get(trace=trace, parent_id="")
    shown = as_admin.get(trace.get_absolute_url(), {"span": root.span_id, "value": "inputs"})
    assert shown.status_code == 200 and shown["Content-Type"] == "application/json; charset=utf-8"
    assert json.loads(shown.content) == root.inputs
    assert shown["Content-Disposition"].startswith("inline;")
    download = as_admin.get(trace.get_absolute_url(), {"span": root.span_id, "value": "inputs", "download": "1"})
    assert download.status_code == 200
    assert download["Content-Disposition"] == f'attachment; filename="{trace.trace_id}-{root.span_id}-inputs.json"'
    assert json.loads(download.content) == root.inputs
    assert download.content.decode().endswith('END-OF-INPUT"}]}')


def test_a_string_value_is_shown_as_plain_text(as_admin: Client) -> None:
    trace = make_trace(answer="line one\nline two")
    root = Span.objects.get(trace=trace, parent_id="")
    response = as_admin.get(trace.get_absolute_url(), {"span": root.span_id, "value": "outputs"})
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response.content.decode() == "line one\nline two"


def test_show_all_has_the_access_rule_of_the_trace_page(client: Client, reviewer, outsider) -> None:
    trace = make_big_trace(chars=10_000)
    root = Span.objects.get(trace=trace, parent_id="")
    params = {"span": root.span_id, "value": "inputs"}
    anonymous = client.get(trace.get_absolute_url(), params)
    assert anonymous.status_code == 302 and anonymous["Location"].startswith(reverse("login"))
    for user in (reviewer, outsider):
        client.force_login(user)
        assert client.get(trace.get_absolute_url(), params).status_code == 404
        assert client.get(trace.get_absolute_url(), {**params, "download": "1"}).status_code == 404


@pytest.mark.parametrize(
    ("params", "status", "message"),
    [
        ({"value": "secrets"}, 400, "Unknown value 'secrets': ask for one of inputs, outputs, attributes, events."),
        ({"value": "inputs\x00"}, 400, "Unknown value"),
        ({"value": "inputs", "span": "ffffffffffffffff"}, 404, ""),
        ({"value": "inputs", "span": "\x00"}, 404, ""),
        ({"value": "inputs", "span": ""}, 404, ""),
    ],
)
def test_bad_show_all_requests_get_a_clear_4xx(
    as_admin: Client, params: dict[str, str], status: int, message: str
) -> None:
    trace = make_trace()
    params.setdefault("span", Span.objects.get(trace=trace, parent_id="").span_id)
    response = as_admin.get(trace.get_absolute_url(), params)
    assert response.status_code == status
    assert message in response.content.decode()


def test_the_database_cuts_a_huge_value_before_python_sees_it() -> None:
    trace = make_big_trace()
    root = next(s for s in load_spans_for_view(trace.pk) if not s.parent_id)
    content = root.inputs["messages"][0]["content"]
    assert content.startswith("START ") and len(content) < read_limit()
    assert root.payload_chars["inputs"] > BIG_CHARS
    panel = load_span_for_panel(trace.pk, root.span_id)
    assert panel is not None and len(panel.inputs["messages"][0]["content"]) < read_limit()
    assert panel.payload_chars["inputs"] == root.payload_chars["inputs"]


def test_values_cut_mid_escape_or_mid_number_still_show(small_limit: int) -> None:
    trace = make_trace()
    root = Span.objects.get(trace=trace, parent_id="")
    root.inputs = {"numbers": list(range(400_000)), "tail": "é\n" * 10}
    root.save()
    span = load_span_for_panel(trace.pk, root.span_id)
    assert span is not None and span.inputs["numbers"][:3] == [0, 1, 2]


def test_span_panel_cuts_each_value_at_the_limit_with_links(as_admin: Client, small_limit: int) -> None:
    trace = make_big_trace(chars=50_000)
    root = Span.objects.get(trace=trace, parent_id="")
    for headers in ({}, {"HTTP_HX_REQUEST": "true"}):
        response = as_admin.get(trace.get_absolute_url(), {"span": root.span_id}, **headers)
        body = response.content.decode()
        panel = body[body.index('id="span-detail"') :]
        assert response.status_code == 200
        assert "Shortened for the page: 49," in panel and "END-OF-INPUT" not in panel
        assert f"{trace.get_absolute_url()}?span={root.span_id}&value=inputs" in links(panel)


def test_the_limit_applies_to_every_message_and_json_block(as_admin: Client, small_limit: int) -> None:
    trace = make_trace(question="x" * 5_000, answer="y" * 5_000)
    body = as_admin.get(trace.get_absolute_url()).content.decode()
    assert "x" * 1_000 in body and "x" * 1_001 not in body
    assert "y" * 1_000 in body and "y" * 1_001 not in body
    assert body.count("Shortened for the page: 4,000 more characters.") == 2


def test_trace_page_queries_stay_constant_with_huge_values(as_admin: Client, django_assert_max_num_queries) -> None:
    small = make_trace()
    big = make_big_trace()
    for trace in (small, big):
        with django_assert_max_num_queries(6):
            assert as_admin.get(trace.get_absolute_url()).status_code == 200
        root = Span.objects.get(trace=trace, parent_id="")
        with django_assert_max_num_queries(7):
            assert as_admin.get(trace.get_absolute_url(), {"span": root.span_id}).status_code == 200
        with django_assert_max_num_queries(4):
            panel = as_admin.get(trace.get_absolute_url(), {"span": root.span_id}, HTTP_HX_REQUEST="true")
            assert panel.status_code == 200
        with django_assert_max_num_queries(4):
            assert as_admin.get(trace.get_absolute_url(), {"span": root.span_id, "value": "inputs"}).status_code == 200


def test_review_screen_cuts_huge_values_and_links_under_the_item_url(client: Client, reviewer) -> None:
    trace = make_big_trace()
    body = open_in_review(client, reviewer, trace)
    assert "Only the beginning of this value is shown" in body and "END-OF-INPUT" not in body
    assert len(body) < 250_000
    value_links = links(body)
    assert value_links and all(re.match(r"^/review/\d+/items/\d+/\?span=", h) for h in value_links)


def test_review_value_helper_serves_the_item_trace_in_one_call(reviewer) -> None:
    """What the review item view calls for its own ``?span=…&value=…`` URL (after its access check)."""
    trace = make_big_trace(chars=10_000)
    root = Span.objects.get(trace=trace, parent_id="")
    request = RequestFactory().get("/labeling/review/1/items/1/", {"span": root.span_id, "value": "inputs"})
    request.user = reviewer
    response = span_value_response(request, trace)
    assert response.status_code == 200 and json.loads(response.content) == root.inputs
