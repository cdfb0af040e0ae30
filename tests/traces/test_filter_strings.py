"""MLflow filter strings (``mlflow.search_traces(filter_string=…)``): grammar, translation, ordering.

The first table is the filter strings of MLflow's own documentation, each with the traces it must
find in a small fixture; then edge cases, the explorer and add-to-session pages, and fuzzing.
"""

from __future__ import annotations

import io
import re
import string
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import connection
from django.db.models import Count
from django.test import Client
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labeling import services
from tests.factories import make_assessment, make_trace
from traces.demo import DEMO_EXPERIMENT
from traces.models import Span, Trace
from traces.search import FilterError, apply_filter, parse_filter, parse_order_by, search_traces
from traces.search.expressions import glob_pattern
from traces.search.form import SEARCH_EXAMPLES

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
T0_MS = int(T0.timestamp() * 1000)
HOUR_MS = 3_600_000
TIMESTAMP = T0_MS + 2 * HOUR_MS  # "now" in the documentation's timestamp examples


def _span(trace: Trace, span_id: str, name: str, span_type: str, **fields) -> Span:
    return Span.objects.create(
        trace=trace,
        span_id=span_id,
        parent_id=f"{1:016x}",
        name=name,
        span_type=span_type,
        start_time_ns=1,
        end_time_ns=2,
        **fields,
    )


@pytest.fixture
def traces() -> dict[str, Trace]:
    """Five traces, each a different answer to some documented filter."""
    predict = make_trace(
        name="predict",
        request_time=T0,
        execution_duration_ms=500,
        question="Tell me a story about an authentication error",
        client_request_id="req-1",
        model_id="m-v1",
        tags={
            "environment": "production",
            "model_name": "gpt-4",
            "version": "v1.2",
            "importance": "high",
            "mlflow.traceName": "my_function",
        },
        trace_metadata={
            "mlflow.user": "alice@company.com",
            "mlflow.sourceRun": "run_id_123456",
            "user_id": "user42",
            "mlflow.modelId": "m-v1",
        },
    )
    _span(predict, "a1", "llm_call", "LLM", attributes={"model_version": "v2.1", "temperature": 0.7})
    make_assessment(predict, "rating", "positive")
    make_assessment(predict, "user_comment", "Very helpful answer")
    make_assessment(predict, "accuracy", "high", kind="expectation")

    inference = make_trace(
        name="inference_2",
        state="ERROR",
        request_time=T0 + timedelta(hours=1),
        execution_duration_ms=1500,
        answer="The upstream call hit a timeout.",
        model_id="m-v2",
        tags={"environment": "production", "model_name": "gpt-3.5"},
        trace_metadata={"mlflow.modelId": "m-v2"},
    )
    _span(inference, "b1", "embedding_lookup", "EMBEDDING", status_code="ERROR", attributes={"model_version": "v2.0"})
    make_assessment(inference, "rating", "negative")
    make_assessment(inference, "correctness", "no")

    big = make_trace(
        name="Predict_big",
        request_time=T0 + timedelta(hours=2),
        execution_duration_ms=800,
        tags={"environment": "staging", "version": "v10.0"},
    )
    make_assessment(big, "score", 4)
    make_assessment(big, "correct", True)
    make_assessment(big, "label", "SUCCESS case", kind="expectation")

    chat = make_trace(
        name="chat",
        state="IN_PROGRESS",
        request_time=T0 + timedelta(hours=3),
        execution_duration_ms=None,
        question="Où est le café?",
        tags={"env": "dev", "a.b": "dot", 'we"ird': "q", "0": "zero"},
    )
    _span(
        chat,
        "c1",
        "tool",
        "TOOL",
        inputs={"note": "50% off, 100_000 items", "path": "C:\\temp", "said": 'say "hi"\nbye'},
    )

    old = make_trace(
        name="predict_7",
        request_time=T0 - timedelta(days=1),
        execution_duration_ms=200,
        trace_metadata={"mlflow.sourceRun": "run_other"},
    )
    make_assessment(old, "rating", "positive", valid=False)  # overridden: no longer counts
    make_assessment(old, "score", 2)
    return {t.name: t for t in (predict, inference, big, chat, old)}


def found(filter_string: str) -> set[str]:
    return set(apply_filter(Trace.objects.all(), parse_filter(filter_string)).values_list("name", flat=True))


ALL = {"predict", "inference_2", "Predict_big", "chat", "predict_7"}

# Filter strings copied from MLflow's documentation: docs/docs/genai/tracing/search-traces.mdx in
# mlflow/mlflow ("Search Traces", Example Queries; timestamps computed as the page does), and the
# "Search and analyze traces" quick reference (docs.databricks.com …/tracing/observe-with-traces/
# query-via-sdk) and MLflow 3.0's "Query Traces" page (mlflow.org/docs/3.0.0rc1/tracing/api/search).
MLFLOW_DOC_FILTERS = [
    # Full text search
    ("trace.text LIKE '%authentication error%'", {"predict"}),
    ("trace.text LIKE '%timeout%'", {"inference_2"}),
    # Filter by name
    ("trace.name = 'predict'", {"predict"}),
    ("trace.name LIKE '%inference%'", {"inference_2"}),
    ("trace.name ILIKE '%PREDICT%'", {"predict", "Predict_big", "predict_7"}),
    ("trace.name RLIKE '^(predict|inference)_[0-9]+'", {"inference_2", "predict_7"}),
    # Filter by status
    ("trace.status = 'OK'", {"predict", "Predict_big", "predict_7"}),
    ("trace.status = 'ERROR'", {"inference_2"}),
    ("trace.status != 'OK'", {"inference_2", "chat"}),
    # Filter by execution time
    ("trace.execution_time_ms > 1000", {"inference_2"}),
    ("trace.execution_time_ms >= 200 AND trace.execution_time_ms <= 800", {"predict", "Predict_big", "predict_7"}),
    ("trace.execution_time_ms = 500", {"predict"}),
    # Filter by timestamp
    (f"trace.timestamp_ms > {TIMESTAMP - 3600000}", {"Predict_big", "chat"}),
    (f"trace.timestamp_ms = {TIMESTAMP}", {"Predict_big"}),
    (
        f"trace.timestamp_ms >= {TIMESTAMP - 7200000} AND trace.timestamp_ms <= {TIMESTAMP - 3600000}",
        {"predict", "inference_2"},
    ),
    # Filter by tags
    ("tag.model_name = 'gpt-4'", {"predict"}),
    ("tag.model_name LIKE 'gpt-%'", {"predict", "inference_2"}),
    ("tag.environment ILIKE '%prod%'", {"predict", "inference_2"}),
    ("tag.version RLIKE '^v[0-9]+\\.[0-9]+'", {"predict", "Predict_big"}),
    # Filter by run association
    ("trace.run_id = 'run_id_123456'", {"predict"}),
    # Filter by span attributes
    ("span.name = 'llm_call'", {"predict"}),
    ("span.name LIKE '%embedding%'", {"inference_2"}),
    ("span.type = 'LLM'", {"predict"}),
    ("span.attributes.model_version LIKE '%v2%'", {"predict", "inference_2"}),
    ("span.attributes.temperature LIKE '%0.7%'", {"predict"}),
    ("span.attributes.model_version ILIKE '%V2%'", {"predict", "inference_2"}),
    # Filter by feedback / expectations
    ("feedback.rating = 'positive'", {"predict"}),
    ("feedback.user_comment LIKE '%helpful%'", {"predict"}),
    ("expectation.accuracy = 'high'", {"predict"}),
    ("expectation.label ILIKE '%success%'", {"Predict_big"}),
    # Combine multiple conditions
    ("trace.status = 'OK' AND tag.importance = 'high'", {"predict"}),
    (
        """
        tag.environment = 'production'
        AND trace.status = 'ERROR'
        AND trace.execution_time_ms > 500
    """,
        {"inference_2"},
    ),
    (
        """
        span.name LIKE '%llm%'
        AND feedback.rating = 'positive'
        AND trace.execution_time_ms < 1000
    """,
        {"predict"},
    ),
    (
        """
        trace.name ILIKE '%inference%'
        AND trace.timestamp_ms > 1700000000000
        AND span.attributes.model_version LIKE '%v2%'
    """,
        {"inference_2"},
    ),
    # The Databricks quick reference
    ("attributes.status = 'OK'", {"predict", "Predict_big", "predict_7"}),
    ("attributes.status = 'ERROR'", {"inference_2"}),
    ("attributes.timestamp_ms > 1749006880539", ALL),
    ("attributes.execution_time_ms > 5000", set()),
    ("tags.environment = 'production'", {"predict", "inference_2"}),
    ("tags.`mlflow.traceName` = 'my_function'", {"predict"}),
    ("metadata.`mlflow.user` = 'alice@company.com'", {"predict"}),
    ("attributes.status = 'OK' AND tags.environment = 'production'", {"predict"}),
    # MLflow 3.0's "Query Traces"
    ("status = 'ERROR'", {"inference_2"}),
    ("name = 'predict'", {"predict"}),
    (f"trace.timestamp > {TIMESTAMP - 3600000}", {"Predict_big", "chat"}),
]


@pytest.mark.parametrize(("filter_string", "expected"), MLFLOW_DOC_FILTERS)
def test_mlflow_documentation_filters(traces, filter_string: str, expected: set[str]) -> None:
    assert found(filter_string) == expected


OUR_FILTERS = [
    # double quotes, doubled quotes, backslash-quote
    ('trace.name = "predict"', {"predict"}),
    ("tags.`we\"ird` = 'q'", {"chat"}),
    ("tags.`a.b` = 'dot'", {"chat"}),
    ("tags.`0` = 'zero'", {"chat"}),  # a digit key is a key, not an array index
    ("tags.\"a.b\" = 'dot'", {"chat"}),
    ("`tags`.`environment` = 'staging'", {"Predict_big"}),
    ("tags.environment != 'production'", {"Predict_big"}),  # traces without the tag are not "different"
    ("tags.environment IN ('staging', 'production')", {"predict", "inference_2", "Predict_big"}),
    ("tags.environment NOT IN ('production')", {"Predict_big"}),
    ("tags.environment IS NULL", {"chat", "predict_7"}),
    ("tags.env IS NOT NULL", {"chat"}),
    ("tags.environment LIKE 'PROD%'", set()),  # LIKE is case-sensitive on every database
    ("tags.environment ILIKE 'PROD%'", {"predict", "inference_2"}),
    ("tags.version LIKE 'v1_2'", {"predict"}),  # _ is one character
    ("metadata.user_id LIKE 'user%'", {"predict"}),
    # the app version: the Trace.model_id column
    ("metadata.`mlflow.modelId` = 'm-v1'", {"predict"}),
    ("metadata.`mlflow.modelId` != 'm-v1'", {"inference_2"}),
    ("metadata.`mlflow.modelId` IN ('m-v1', 'm-v2')", {"predict", "inference_2"}),
    ("metadata.`mlflow.modelId` IS NULL", {"Predict_big", "chat", "predict_7"}),
    ("metadata.`mlflow.modelId` LIKE 'm-%'", {"predict", "inference_2"}),
    ("trace.model_id = 'm-v2'", {"inference_2"}),
    # attributes
    ("request_id = 'tr-none'", set()),
    ("client_request_id = 'req-1'", {"predict"}),
    ("state IN ('ERROR', 'IN_PROGRESS')", {"inference_2", "chat"}),
    ("status NOT IN ('OK')", {"inference_2", "chat"}),
    ("execution_time > 600", {"inference_2", "Predict_big"}),
    ("execution_time_ms < 300.5", {"predict_7"}),
    (f"timestamp_ms != {T0_MS}", ALL - {"predict"}),
    (f"timestamp_ms <= {T0_MS}", {"predict", "predict_7"}),
    (f"timestamp_ms < {T0_MS}", {"predict_7"}),
    ("run_id IN ('run_other', 'nope')", {"predict_7"}),
    ("run_id != 'run_other'", {"predict"}),
    ("NAME = 'chat'", {"chat"}),  # attribute names are not case-sensitive (as MLflow's aliases)
    ("trace.name like 'chat' and trace.state = 'IN_PROGRESS'", {"chat"}),  # keywords in any case
    # text and span content
    ("text ILIKE '%CAFÉ%'", {"chat"}),
    ("text LIKE '%café%'", {"chat"}),
    ("span.content LIKE '%50\\% off%'", {"chat"}),  # backslash escapes a wildcard
    ("span.content LIKE '%100\\_000%'", {"chat"}),
    ("span.content LIKE '%C:\\\\temp%'", {"chat"}),  # an escaped backslash
    ("span.content LIKE '%say \"hi\"%'", {"chat"}),  # quotes inside JSON text
    ("span.content LIKE '%hi\"\nbye%'", {"chat"}),  # a newline inside JSON text
    ("span.content ILIKE '%DOCUMENT 1 TEXT%'", ALL),  # every fixture trace retrieves documents
    ("span.status = 'ERROR'", {"inference_2"}),
    ("span.status = 'STATUS_CODE_ERROR'", {"inference_2"}),
    ("span.type IN ('EMBEDDING', 'LLM')", {"predict", "inference_2"}),
    ("span.name RLIKE '^llm'", {"predict"}),
    # assessment values are JSON
    ("feedback.score = 4", {"Predict_big"}),
    ("feedback.score >= 3.5", {"Predict_big"}),
    ("feedback.score < 3", {"predict_7"}),
    ("feedback.score = '4'", {"Predict_big"}),
    ("feedback.correct = true", {"Predict_big"}),
    ("feedback.correct = 'true'", {"Predict_big"}),
    ("feedback.correct = false", set()),
    ("feedback.rating != 'positive'", {"inference_2"}),
    ("feedback.rating IN ('positive', 'negative')", {"predict", "inference_2"}),
    ("feedback.rating NOT IN ('positive')", {"inference_2"}),
    ("feedback.rating IS NULL", {"Predict_big", "chat", "predict_7"}),  # predict_7's is overridden
    ("feedback.correctness IS NOT NULL", {"inference_2"}),
    ("feedback.score IN (4, 2)", {"Predict_big", "predict_7"}),
    ("feedback.rating RLIKE '^pos'", {"predict"}),
    ("feedback.`rating` = 'positive' AND expectation.accuracy = 'high'", {"predict"}),
    ("expectation.rating = 'positive'", set()),  # a feedback is not an expectation
    # unicode and empty values
    ("tags.`é` IS NULL", ALL),
    ("tags.environment = ''", set()),
    ("", ALL),
    ("   ", ALL),
]


@pytest.mark.parametrize(("filter_string", "expected"), OUR_FILTERS)
def test_edge_cases_find_the_right_traces(traces, filter_string: str, expected: set[str]) -> None:
    assert found(filter_string) == expected


BAD_FILTERS = [
    # (filter, position, words the message must contain)
    ("status = 'OK' AND tags.env 'prod'", 28, "expected a comparator (=, !=, <"),
    ("status = 'OK' OR status = 'ERROR'", 15, "no OR"),
    ("status = 'OK' AND", 15, "ends with AND"),
    ("status = 'OK' AND AND name = 'x'", 19, "expected a key"),
    ("status = 'OK' name = 'x'", 15, "expected AND"),
    ("unknown = 'x'", 1, "unknown key 'unknown'"),
    ("foo.bar = 'x'", 1, "unknown key prefix 'foo'"),
    ("span.colour = 'x'", 1, "unknown span key"),
    ("tags = 'x'", 1, "expected '.' and a name after 'tags'"),
    ("tags.env > 'a'", 10, "cannot be compared with >"),
    ("execution_time_ms LIKE '%1%'", 19, "cannot be compared with LIKE"),
    ("text = 'x'", 6, "cannot be compared with ="),
    ("execution_time_ms > '5'", 21, "compares with a number"),
    ("name = 5", 8, "expected a quoted string"),
    ("tags.env = prod", 12, "expected a quoted string"),
    ("name IN ()", 9, "at least one value"),
    ("name IN 'a'", 9, "a list in parentheses"),
    ("name IN ('a' 'b')", 14, "expected ',' or ')'"),
    ("name IN ('a',)", 14, "expected a quoted string"),
    ("name = 'open", 8, "no closing '"),
    ('name = "open', 8, 'no closing "'),
    ("tags.`open = 'x'", 6, "no closing `"),
    ("tags.`` = 'x'", 6, "cannot be empty"),
    ("name = 'a\x00b'", 10, "NUL"),
    ("name <> 'a'", 6, "use !="),
    ("name == 'a'", 6, "use ="),
    ("name NOT LIKE 'a'", 10, "no NOT LIKE"),
    ("name IS 'a'", 9, "NULL or NOT NULL"),
    ("name IS NOT 'a'", 13, "expected NULL"),
    ("name RLIKE '('", 12, "regular expression"),
    ("execution_time_ms > 99999999999999999999", 21, "too large"),
    ("execution_time_ms > 1e999", 21, "too large"),
    ("timestamp_ms > 9223372036854775807", 16, "not a timestamp"),
    ("name = 'a' ; DROP TABLE traces_trace", 12, "unexpected character ';'"),
    ("name = 'a')", 11, "expected AND"),
    ("= 'a'", 1, "expected a key"),
    ("name", 5, "expected a comparator"),
    ("name =", 7, "expected a quoted string for name after '=', got the end of the filter"),
    ("tags.", 6, "a name after '.'"),
    ("prompt = 'qa/4'", 1, "unknown key 'prompt'"),  # linked prompts are not kept here
    ("trace.end_time_ms > 1", 1, "unknown key"),
]


@pytest.mark.parametrize(("filter_string", "position", "words"), BAD_FILTERS)
def test_bad_filters_name_the_position_and_what_was_expected(
    traces, filter_string: str, position: int, words: str
) -> None:
    with pytest.raises(FilterError) as caught:
        apply_filter(Trace.objects.all(), parse_filter(filter_string)).count()
    assert caught.value.position == position, str(caught.value)
    assert words in str(caught.value)
    assert str(caught.value).startswith(f"position {position}: ")


def test_the_documented_example_error_reads_well() -> None:
    with pytest.raises(FilterError, match=r"^position 10: expected a comparator \(=, !=, <, .*\) after 'tags\.env'"):
        parse_filter("tags.env 'prod'")


def test_a_huge_filter_is_refused_whole() -> None:
    with pytest.raises(FilterError, match="longer than"):
        parse_filter("name = 'x' AND " * 400)


def test_like_patterns_become_case_sensitive_globs() -> None:
    assert glob_pattern("a%b_c") == "a*b?c"
    assert glob_pattern("50\\%*[") == "50%[*][[]"
    assert glob_pattern("x\\\\") == "x\\"


# ---------------------------------------------------------------- order_by


def ordered(*order_by: str) -> list[str]:
    return list(Trace.objects.order_by(*parse_order_by(list(order_by))).values_list("name", flat=True))


def test_order_by(traces) -> None:
    assert ordered() == ["chat", "Predict_big", "inference_2", "predict", "predict_7"]  # timestamp_ms DESC
    assert ordered("timestamp_ms DESC") == ordered()
    assert ordered("timestamp_ms ASC") == ordered()[::-1]
    assert ordered("execution_time ASC") == ["predict_7", "predict", "Predict_big", "inference_2", "chat"]
    assert ordered("attributes.execution_time_ms DESC")[:2] == ["inference_2", "Predict_big"]  # no duration last
    assert ordered("status")[0] == "inference_2"  # ERROR < IN_PROGRESS < OK
    assert ordered("name") == sorted(ALL)


def test_order_by_ties_break_on_time_then_id() -> None:
    same = [make_trace(name="same", request_time=T0) for _ in range(3)]
    names_and_ids = list(Trace.objects.order_by(*parse_order_by(["name"])).values_list("pk", flat=True))
    assert names_and_ids == sorted(t.pk for t in same)[::-1]


@pytest.mark.parametrize(
    ("order_by", "words"),
    [("colour", "cannot order by 'colour'"), ("name SIDEWAYS", "expected ASC or DESC"), ("tags.x", "only trace")],
)
def test_bad_order_by(order_by: str, words: str) -> None:
    with pytest.raises(FilterError, match=words):
        parse_order_by([order_by])


def test_search_traces_filters_and_orders(traces) -> None:
    result = search_traces(Trace.objects.all(), "feedback.score IS NOT NULL", ["timestamp_ms ASC"])
    assert [t.name for t in result] == ["predict_7", "Predict_big"]


# ---------------------------------------------------------------- pages


@pytest.fixture
def admin_client(client: Client, admin_user: User) -> Client:
    client.force_login(admin_user)
    return client


def test_explorer_search_box_ands_with_the_fields(admin_client: Client, traces) -> None:
    url = reverse("traces:list")
    body = admin_client.get(url, {"filter_string": "tags.environment = 'production'"}).content.decode()
    assert ">predict</a>" in body and ">inference_2</a>" in body and ">Predict_big</a>" not in body
    body = admin_client.get(url, {"filter_string": "tags.environment = 'production'", "state": "ERROR"}).content
    assert b">inference_2</a>" in body and b">predict</a>" not in body
    assert b"2 traces" not in body and b"1 trace" in body


def test_explorer_shows_a_bad_filter_inline_with_its_position(admin_client: Client, traces) -> None:
    response = admin_client.get(reverse("traces:list"), {"filter_string": "tags.env 'prod'"})
    assert response.status_code == 400
    body = response.content.decode()
    assert "position 10: expected a comparator" in body
    assert '<pre class="filter-marker mono" aria-hidden="true">tags.env <mark>&#x27;</mark>prod&#x27;</pre>' in body
    assert "No traces match" in body


def test_explorer_htmx_bad_filter_swaps_the_inline_error(admin_client: Client, traces) -> None:
    response = admin_client.get(reverse("traces:list"), {"filter_string": "a = 1 OR"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    body = response.content.decode()
    assert 'id="filter-error" class="filter-error" hx-swap-oob="true"' in body and "unknown key" in body


def test_explorer_regex_postgres_refuses_is_a_form_error_too(admin_client: Client, traces) -> None:
    # Python reads (?P<n>…) but PostgreSQL's regular expressions do not: a form error there, never a 500.
    response = admin_client.get(reverse("traces:list"), {"filter_string": "name RLIKE '^(?P<n>pre)dict$'"})
    body = response.content.decode()
    if connection.vendor == "postgresql":
        assert response.status_code == 400
        assert "position 12: not a regular expression PostgreSQL can read" in body
    else:
        assert response.status_code == 200 and ">predict</a>" in body


def test_explorer_orders_by_the_chosen_order(admin_client: Client, traces) -> None:
    body = admin_client.get(reverse("traces:list"), {"order_by": "execution_time_ms DESC"}).content.decode()
    assert body.index(">inference_2</a>") < body.index(">Predict_big</a>") < body.index(">predict</a>")
    response = admin_client.get(reverse("traces:list"), {"order_by": "DROP"})
    assert response.status_code == 400


def test_explorer_help_has_examples_that_work_without_js(admin_client: Client, traces) -> None:
    body = admin_client.get(reverse("traces:list")).content.decode()
    assert '<details class="filter-help">' in body
    assert "?filter_string=status%20%3D%20%27ERROR%27" in body
    assert admin_client.get(reverse("traces:list") + "?filter_string=status%20%3D%20%27ERROR%27").status_code == 200


def test_explorer_version_column_and_filter(admin_client: Client, traces) -> None:
    url = reverse("traces:list")
    body = admin_client.get(url).content.decode()
    assert "<th>Version</th>" in body
    assert '<option value="m-v1">m-v1</option>' in body and '<option value="m-v2">m-v2</option>' in body
    body = admin_client.get(url, {"version": "m-v2"}).content.decode()
    assert ">inference_2</a>" in body and ">predict</a>" not in body
    assert admin_client.get(url, {"version": "m-unknown"}).status_code == 200  # a version not listed is a value
    refused = admin_client.get(url, {"version": "m-\x00"})  # PostgreSQL cannot compare text with NUL: a form error
    assert refused.status_code == 400 and ">inference_2</a>" not in refused.content.decode()


def test_explorer_query_count_stays_constant_with_a_filter_string(
    admin_client: Client, traces, django_assert_max_num_queries
) -> None:
    for _ in range(20):
        make_assessment(make_trace(tags={"environment": "production"}), "rating", "positive")
    filter_string = "tags.environment = 'production' AND feedback.rating = 'positive' AND span.content LIKE '%a%'"
    with django_assert_max_num_queries(7):
        response = admin_client.get(reverse("traces:list"), {"filter_string": filter_string})
    assert response.status_code == 200 and "21 traces" in response.content.decode()


def test_trace_page_shows_its_version(admin_client: Client, traces) -> None:
    body = admin_client.get(traces["predict"].get_absolute_url()).content.decode()
    assert "version" in body and "m-v1</a>" in body


def test_add_to_session_uses_the_filter_string(admin_client: Client, admin_user: User, traces) -> None:
    session = services.create_labeling_session(name="Filtered", schemas=[], reviewers=[])
    url = reverse("labeling:session_add_traces", args=[session.pk])
    filter_string = "feedback.rating IS NOT NULL AND tags.environment = 'production'"
    preview = admin_client.get(url, {"filter_string": filter_string}).content.decode()
    assert "<strong>2</strong> traces match" in preview and "all 2 traces" in preview
    assert 'name="filter_string" value="feedback.rating IS NOT NULL AND tags.environment = &#x27;production&#x27;"' in (
        preview
    )
    response = admin_client.post(url, {"filter_string": filter_string})
    assert response.status_code == 302
    assert set(session.items.values_list("source_trace__name", flat=True)) == {"predict", "inference_2"}


def test_add_to_session_refuses_a_bad_filter_and_adds_nothing(admin_client: Client, admin_user: User, traces) -> None:
    session = services.create_labeling_session(name="Refused", schemas=[], reviewers=[])
    url = reverse("labeling:session_add_traces", args=[session.pk])
    preview = admin_client.get(url, {"filter_string": "status = 'OK' OR name = 'x'"})
    assert preview.status_code == 400 and "no OR" in preview.content.decode()
    response = admin_client.post(url, {"filter_string": "status = 'OK' OR name = 'x'"})
    assert response.status_code == 400
    assert "position 15" in response.content.decode()
    assert session.items.count() == 0


# ---------------------------------------------------------------- fuzzing

FILTER_ALPHABET = string.ascii_letters + string.digits + " '\"`.,()=!<>%_\\-*[]éß\x00\t\n"
WORDS = ["AND", "OR", "NOT", "IN", "IS", "NULL", "LIKE", "ILIKE", "RLIKE", "tags.", "span.", "feedback.", "name", "="]


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(alphabet=FILTER_ALPHABET, max_size=80), st.lists(st.sampled_from(WORDS)).map(" ".join)))
def test_random_text_raises_nothing_but_filter_error(text: str) -> None:
    try:
        parse_filter(text)
    except FilterError as exc:
        assert exc.position >= 0 and str(exc)


PART_KEYS = ["name", "tags.`k`", "feedback.x", "span.content", "timestamp_ms", "execution_time_ms", "text", "status"]
PART_OPERATORS = ["=", "!=", "<", ">=", "LIKE", "ILIKE", "RLIKE", "IN", "NOT IN", "IS NULL", "AND", "(", ")", ","]
PART_VALUES = ["'a'", "'%'", "'\\'", "'('", "'[z-a]'", "5", "-1", "1e308", "9223372036854775807", "true", "'\x00'"]
CLAUSE_PARTS = st.sampled_from([*PART_KEYS, *PART_OPERATORS, *PART_VALUES])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(CLAUSE_PARTS, min_size=1, max_size=9).map(" ".join))
def test_near_valid_filters_run_or_raise_filter_error(traces, text: str) -> None:
    """Whatever parses also runs on the database: out-of-range numbers, odd patterns, bad regexes."""
    try:
        apply_filter(Trace.objects.all(), parse_filter(text)).count()
    except FilterError as exc:
        assert str(exc)


KEYS = st.sampled_from(
    [
        "name",
        "trace.status",
        "attributes.client_request_id",
        "run_id",
        "tags.environment",
        'tags.`we"ird`',
        "metadata.`mlflow.modelId`",
        "metadata.user_id",
        "span.name",
        "span.type",
        "span.status",
        "span.attributes.model_version",
        "feedback.rating",
        "expectation.`a b`",
    ]
)
STRINGS = st.text(alphabet=string.printable.replace("\x0b", "").replace("\x0c", "") + "é中", max_size=12)


def _quoted(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


@st.composite
def valid_filters(draw: st.DrawFn) -> str:
    clauses = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["string", "number", "text"]))
        if kind == "number":
            key = draw(st.sampled_from(["timestamp_ms", "execution_time_ms", "feedback.score"]))
            op = draw(st.sampled_from(["=", "!=", ">", ">=", "<", "<="]))
            number = draw(st.one_of(st.integers(0, 10**13), st.floats(0, 1e12, allow_nan=False)))
            clauses.append(f"{key} {op} {number}")
        elif kind == "text":
            key = draw(st.sampled_from(["text", "span.content", "trace.text"]))
            op = draw(st.sampled_from(["LIKE", "ILIKE"]))
            clauses.append(f"{key} {op} {_quoted(draw(STRINGS))}")
        else:
            key = draw(KEYS)
            op = draw(st.sampled_from(["=", "!=", "IN", "NOT IN", "LIKE", "ILIKE", "IS NULL", "IS NOT NULL"]))
            if key in ("trace.status", "run_id", "span.status") and op in ("LIKE", "ILIKE", "IS NULL", "IS NOT NULL"):
                op = "="
            if key in ("name", "attributes.client_request_id", "span.name", "span.type") and op.startswith("IS"):
                op = "!="
            if key.startswith("span.attributes"):
                op = draw(st.sampled_from(["LIKE", "ILIKE"]))
            if op in ("IN", "NOT IN"):
                values = draw(st.lists(STRINGS, min_size=1, max_size=3))
                clauses.append(f"{key} {op} ({', '.join(_quoted(v) for v in values)})")
            elif op.startswith("IS"):
                clauses.append(f"{key} {op}")
            else:
                clauses.append(f"{key} {op} {_quoted(draw(STRINGS))}")
    return " AND ".join(clauses)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(filter_string=valid_filters())
def test_generated_valid_filters_translate_and_run(traces, filter_string: str) -> None:
    parsed = parse_filter(filter_string)
    assert len(parsed.clauses) == filter_string.count(" AND ") + 1 or "AND" in filter_string
    count = apply_filter(Trace.objects.all(), parsed).count()
    assert 0 <= count <= len(ALL)


# ---------------------------------------------------------------- the demo's app versions


@pytest.fixture
def demo(settings) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.DEBUG = True
    call_command("seed_demo", stdout=io.StringIO())


def test_demo_has_two_app_versions_and_every_help_example_finds_traces(demo) -> None:
    versions = dict(
        Trace.objects.explorable()
        .filter(experiment__name=DEMO_EXPERIMENT)  # not the evaluation demo's predict runs
        .values_list("model_id")
        .annotate(n=Count("pk"))
        .order_by()
        .values_list("model_id", "n")
    )
    assert len(versions) == 2 and all(v.startswith("m-") for v in versions) and sum(versions.values()) >= 60
    for trace in Trace.objects.explorable():  # the tag names the same version as the metadata
        assert trace.trace_metadata["mlflow.modelId"] == trace.model_id
    wrong = {
        version: search_traces(Trace.objects.all(), f"tags.app_version = '{version}' AND feedback.correct = false")
        for version in ("1.3.2", "1.4.0")
    }
    assert 0 < wrong["1.4.0"].count() < wrong["1.3.2"].count()  # the newer version is wrong less often
    for example, _meaning in SEARCH_EXAMPLES:
        assert search_traces(Trace.objects.explorable(), example).exists(), example


def test_every_filter_string_in_the_readme_parses() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## Searching traces", 1)[1].split("\n## ", 1)[0]
    cells = [line.split("|")[1] for line in section.splitlines() if line.startswith("| `")]
    examples = [a or b for cell in cells for a, b in re.findall(r"``\s?(.+?)\s?``|`([^`]+)`", cell)]
    assert len(examples) >= 12
    for example in examples:
        parse_filter(example)
    assert "status NOT IN ('OK')" in examples
