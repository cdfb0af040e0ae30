"""Keyset pagination of the trace list: every trace once in every order, bad cursors, counts, query counts."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from html import unescape
from urllib.parse import parse_qs

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse

from tests.factories import make_assessment, make_experiment, make_trace
from traces.models import Trace
from traces.pagination import (
    NEWEST_FIRST,
    InvalidCursor,
    Ordering,
    decode_cursor,
    encode_cursor,
    estimate_count,
    keyset_page,
)
from traces.search import ORDER_CHOICES, parse_order_by

ORDER_BYS = [value for value, _ in ORDER_CHOICES] + ["name DESC", "status DESC, name", "request_id"]


def ordering_for(order_by: str) -> Ordering:
    return Ordering.from_order_by(parse_order_by(order_by.split(", ") if order_by else None))


pytestmark = pytest.mark.django_db
BASE = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture
def client_in(client: Client, admin_user) -> Client:
    client.force_login(admin_user)
    return client


def make_tied_traces(count: int) -> list[Trace]:
    """``count`` traces, three per request_time and per name, some without a duration."""
    experiment = make_experiment()
    traces = []
    for i in range(count):
        duration = None if i % 7 == 0 else (i * 37) % 11
        traces.append(
            make_trace(
                experiment=experiment,
                n_spans=1,
                name=f"n{(i // 3) % 5}",
                request_time=BASE + timedelta(seconds=(i * 5) % count // 3),
                execution_duration_ms=duration,
            )
        )
    return traces


def walk(ordering_key: str, size: int) -> list[int]:
    ordering = ordering_for(ordering_key)
    seen: list[int] = []
    cursor = None
    while True:
        page = keyset_page(Trace.objects.all(), ordering, cursor, size)
        seen += [t.pk for t in page.rows]
        if page.next_cursor is None:
            return seen
        cursor = page.next_cursor


@pytest.mark.parametrize("order_by", ORDER_BYS)
def test_every_trace_exactly_once_in_every_order_with_ties(order_by: str) -> None:
    traces = make_tied_traces(40)
    seen = walk(order_by, 6)
    assert sorted(seen) == sorted(t.pk for t in traces)  # all of them, none twice
    expected = Trace.objects.order_by(*parse_order_by(order_by.split(", ") if order_by else None))
    assert seen == list(expected.values_list("pk", flat=True))  # in MLflow's order (NULLS LAST)


def test_list_pages_through_every_trace_with_load_more(client_in: Client) -> None:
    traces = make_tied_traces(120)
    seen: list[str] = []
    params: dict[str, str] = {"order_by": "execution_time_ms DESC"}
    for _ in range(10):
        body = client_in.get(reverse("traces:list"), params).content.decode()
        seen += re.findall(r'<a href="/traces/([^/"]+)/">', body)
        link = re.search(r'<a class="button" href="\?([^"]+)"[^>]*>Load more', body)
        if not link:
            break
        params = {k: v[0] for k, v in parse_qs(unescape(link.group(1))).items()}
        assert params["order_by"] == "execution_time_ms DESC"
    assert sorted(seen) == sorted(t.trace_id for t in traces)


def test_htmx_load_more_appends_rows_and_a_new_link(client_in: Client) -> None:
    make_tied_traces(60)
    first = client_in.get(reverse("traces:list")).content.decode()
    cursor = unescape(re.search(r'href="\?after=([^"&]+)"', first).group(1))
    response = client_in.get(
        reverse("traces:list"),
        {"after": parse_qs(f"a={cursor}")["a"][0]},
        HTTP_HX_REQUEST="true",
        HTTP_HX_TARGET="load-more",
    )
    body = response.content.decode()
    assert response.status_code == 200
    assert "<table" not in body and body.count('class="trace-name"') == 10  # just the rows
    assert 'id="load-more"' not in body  # the last page: no further link


@pytest.mark.parametrize(
    "after",
    [
        "garbage",
        "W10:1abc:xyz",
        encode_cursor(ordering_for("name ASC"), Trace(pk=1, name="x", request_time=BASE)),  # another order
        "x" * 5000,
    ],
)
def test_bad_cursor_is_a_400_with_a_message(client_in: Client, after: str) -> None:
    make_trace()
    response = client_in.get(reverse("traces:list"), {"after": after})
    assert response.status_code == 400
    assert "damaged or out of date" in response.content.decode() or "another list order" in response.content.decode()


def test_cursor_is_signed() -> None:
    ordering = NEWEST_FIRST
    cursor = encode_cursor(ordering, Trace(pk=5, request_time=BASE))
    assert decode_cursor(cursor, ordering) == [BASE, 5]
    with pytest.raises(InvalidCursor):
        decode_cursor(cursor.replace(cursor[3], "A" if cursor[3] != "A" else "B", 1), ordering)


def test_list_query_count_is_the_same_at_any_depth(client_in: Client, django_assert_max_num_queries) -> None:
    experiment = make_experiment()
    for i in range(130):
        trace = make_trace(experiment=experiment, n_spans=1, request_time=BASE + timedelta(minutes=i))
        make_assessment(trace)
    params: dict[str, str] = {}
    for _ in range(3):
        with django_assert_max_num_queries(8):  # session, user, versions, page, badges, estimate (2)
            body = client_in.get(reverse("traces:list"), params).content.decode()
        link = re.search(r'<a class="button" href="\?([^"]+)"', body)
        if link:
            params = {k: v[0] for k, v in parse_qs(unescape(link.group(1))).items()}


def test_count_is_exact_on_demand(client_in: Client) -> None:
    make_tied_traces(60)
    response = client_in.get(reverse("traces:list"), {"count": "exact"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert re.search(r"60 traces", response.content.decode())
    assert "about" not in response.content.decode()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="planner estimates are PostgreSQL's")
def test_estimate_says_about_when_large_and_counts_exactly_when_small() -> None:
    make_tied_traces(60)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE traces_trace")
    large = estimate_count(Trace.objects.all(), exact_up_to=10)
    assert not large.exact and str(large).startswith("about ")
    small = estimate_count(Trace.objects.filter(name="n1"), exact_up_to=1000)
    assert small.exact and small.value == Trace.objects.filter(name="n1").count()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="planner estimates are PostgreSQL's")
def test_list_shows_an_estimate_labelled_about(client_in: Client, settings) -> None:
    make_tied_traces(60)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE traces_trace")
    from traces import pagination

    original = pagination.EXACT_COUNT_UP_TO
    pagination.estimate_count.__defaults__ = (10,)
    try:
        body = client_in.get(reverse("traces:list")).content.decode()
    finally:
        pagination.estimate_count.__defaults__ = (original,)
    assert re.search(r"about [\d,]+ traces", body) and "count=exact" in body


@pytest.mark.skipif(connection.vendor != "postgresql", reason="query plans are PostgreSQL's")
def test_list_pages_use_an_index_not_a_scan_of_every_trace() -> None:
    from traces.search import traces_for_list

    experiment = make_experiment()
    Trace.objects.bulk_create(
        Trace(
            trace_id=f"tr-plan-{i}",
            experiment=experiment,
            name=f"name-{i % 40}",
            request_time=BASE + timedelta(seconds=i // 3),
            tags={"env": ["prod", "dev", "staging"][i % 3], "customer": f"c-{i % 500}"},
        )
        for i in range(5000)
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE traces_trace")
        cursor.execute("ANALYZE traces_experiment")
    # Only the unfiltered list: on a table this small a filtered plan may rightly be a scan (the
    # search benchmark shows the filtered plans at a million traces).
    queries = {"unfiltered": Trace.objects.explorable(), "one experiment": Trace.objects.filter(experiment=experiment)}
    for label, queryset in queries.items():
        ordered = NEWEST_FIRST.apply(traces_for_list(queryset))
        plan = ordered[:51].explain()
        assert "Seq Scan on traces_trace" not in plan, (label, plan)
        deep = ordered.filter(NEWEST_FIRST.after([BASE + timedelta(seconds=100), 10]))[:51].explain()
        assert "Seq Scan on traces_trace" not in deep, (label, deep)
