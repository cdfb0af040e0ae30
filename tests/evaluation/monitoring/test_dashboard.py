"""The monitoring dashboard: buckets, pass rates and means, errors, windows, the failures table, access, queries."""

from __future__ import annotations

from datetime import timedelta
from xml.etree import ElementTree

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from evaluation.monitoring.dashboard import WINDOWS, latest_failures, parse_window, quality_over_time
from evaluation.monitoring.registrations import delete_scorer, register_scorer, stop_scorer
from tests.evaluation.monitoring.dashboard_data import (
    bare_traces,
    failure_with_feedback,
    in_bucket,
    make_session,
    register,
    verdicts,
)
from tests.factories import make_experiment
from traces.models import Experiment, ExperimentKind

pytestmark = pytest.mark.django_db
WEEK, DAY, MONTH = WINDOWS["7d"], WINDOWS["24h"], WINDOWS["30d"]


@pytest.fixture
def lead(db: None) -> User:
    user = User.objects.create_user("lead", password="pw-123456")
    make_session("Led by lead", leads=[user])
    return user


def url(experiment: Experiment, **params: str) -> str:
    base = reverse("evaluation:monitoring", args=[experiment.pk])
    return base + ("?" + "&".join(f"{k}={v}" for k, v in params.items()) if params else "")


# ---------------------------------------------------------------- the series


def test_pass_rate_per_day_counts_errors_against_quality_and_ignores_other_windows() -> None:
    experiment = make_experiment("Production")
    fast = register(experiment, "fast")
    verdicts(fast, in_bucket(WEEK, 1), "passed", "passed", "passed", "failed")
    verdicts(fast, in_bucket(WEEK, -1), "passed", "error")
    verdicts(fast, WEEK.bucket_starts()[0] - timedelta(minutes=1), "failed", "failed")  # the day before the window
    [series] = quality_over_time(experiment, WEEK)
    assert [b.total for b in series.buckets] == [0, 4, 0, 0, 0, 0, 2]
    assert [b.pass_rate for b in series.buckets] == [None, 0.75, None, None, None, None, 0.5]
    assert [b.errors for b in series.buckets] == [0, 0, 0, 0, 0, 0, 1]
    assert not series.numeric
    assert (series.totals.total, series.totals.passed, series.totals.failed, series.totals.errors) == (6, 4, 1, 1)
    assert series.totals.pass_rate == pytest.approx(4 / 6)


def test_a_numeric_scorer_shows_its_mean_value_per_bucket() -> None:
    experiment = make_experiment("Production")
    length = register(experiment, "length", scorer="response_length")
    verdicts(length, in_bucket(WEEK, 2), "number", "number", "error", values=[10.0, 20.0, None])
    verdicts(length, in_bucket(WEEK, 5), "number", values=[40.0])
    [series] = quality_over_time(experiment, WEEK)
    assert series.numeric
    assert [series.value(b) for b in series.buckets] == [None, None, 15.0, None, None, 40.0, None]
    assert series.totals.mean == pytest.approx(70 / 3)
    assert series.buckets[2].errors == 1


def test_the_24_hour_window_buckets_by_hour_and_30_days_by_day() -> None:
    experiment = make_experiment("Production")
    fast = register(experiment, "fast")
    verdicts(fast, in_bucket(DAY, -3), "failed")
    verdicts(fast, timezone.now() - timedelta(days=20), "passed")
    [hourly] = quality_over_time(experiment, DAY)
    assert len(hourly.buckets) == 24 and [b.total for b in hourly.buckets][-3] == 1 and hourly.totals.total == 1
    assert hourly.buckets[1].start - hourly.buckets[0].start == timedelta(hours=1)
    [daily] = quality_over_time(experiment, MONTH)
    assert len(daily.buckets) == 30 and daily.totals.total == 2
    assert parse_window("") is WEEK and parse_window("30d") is MONTH


def test_deleted_scorers_show_while_they_have_results_in_the_window() -> None:
    experiment = make_experiment("Production")
    kept, gone, empty = register(experiment, "kept"), register(experiment, "gone"), register(experiment, "empty")
    verdicts(gone, in_bucket(WEEK, -1), "failed")
    delete_scorer(registration=gone)
    delete_scorer(registration=empty)
    stop_scorer(registration=kept)
    shown = quality_over_time(experiment, WEEK)
    assert [(s.registration.name, s.deleted) for s in shown] == [("kept", False), ("gone", True)]
    assert quality_over_time(make_experiment("Quiet"), WEEK) == []


# ---------------------------------------------------------------- the page


def test_the_page_shows_each_scorer_with_its_totals_and_chart(client: Client, admin_user: User) -> None:
    experiment = make_experiment("Production")
    fast = register(experiment, "fast")
    length = register(experiment, "length", scorer="response_length", rate=0.2)
    verdicts(fast, in_bucket(WEEK, -2), "passed", "passed", "passed", "error")
    verdicts(length, in_bucket(WEEK, -2), "number", "number", values=[100.0, 200.0])
    client.force_login(admin_user)
    response = client.get(url(experiment))
    html = response.content.decode()
    assert response.status_code == 200
    assert "Production: quality over time" in html
    assert "75%" in html and "3 of 4" in html  # the pass rate of fast: an error counts against it
    assert "150.00" in html and "sample rate 20%" in html  # the mean of length
    assert html.count("<svg") == 2 and "fast: pass rate, last 7 days" in html and "length: mean value" in html
    assert 'aria-current="page">Last 7 days' in html
    assert f'href="{url(experiment)}scorers/"' in html and f'href="{url(experiment)}backfill/"' in html
    nav = html.split('aria-label="Main"')[1].split("</nav>")[0]
    assert "Monitoring</a>" in nav and 'class="active">Monitoring' in nav and 'class="active">Datasets' not in nav


def test_the_window_parameter_changes_the_buckets_and_a_bad_one_is_a_400(client: Client, lead: User) -> None:
    experiment = make_experiment("Production")
    verdicts(register(experiment, "fast"), in_bucket(DAY, -2), "failed")
    client.force_login(lead)
    hourly = client.get(url(experiment, window="24h"))
    assert hourly.status_code == 200 and 'aria-current="page">Last 24 hours' in hourly.content.decode()
    assert len(hourly.context["scorers"][0][0].buckets) == 24
    bad = client.get(url(experiment, window="1y"))
    html = bad.content.decode()
    assert bad.status_code == 400
    assert "Unknown window “1y”: choose 24h, 7d, 30d. Showing the last 7 days." in html
    assert len(bad.context["scorers"][0][0].buckets) == 7


def test_htmx_gets_the_quality_region_alone(client: Client, admin_user: User) -> None:
    experiment = make_experiment("Production")
    verdicts(register(experiment, "fast"), in_bucket(MONTH, -1), "passed")
    client.force_login(admin_user)
    response = client.get(url(experiment, window="30d"), HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert response.status_code == 200 and html.lstrip().startswith('<section id="quality"')
    assert "<svg" in html and "<html" not in html and "Last 30 days" in html


def test_an_experiment_without_scorers_says_how_to_start(client: Client, lead: User) -> None:
    experiment = make_experiment("Quiet")
    client.force_login(lead)
    html = client.get(url(experiment)).content.decode()
    assert "No scorer is registered on this experiment yet" in html and "(admins register scorers)" in html
    assert "Send failures" not in html


def test_only_explorers_see_the_dashboard(client: Client, outsider: User, reviewer: User, lead: User) -> None:
    experiment = make_experiment("Production")
    register(experiment, "fast")
    assert client.get(url(experiment)).status_code == 302  # to the login page
    for person in (outsider, reviewer):
        client.force_login(person)
        assert client.get(url(experiment)).status_code == 404
        assert client.get(reverse("evaluation:monitoring_index")).status_code == 404
    client.force_login(lead)
    assert client.get(url(experiment)).status_code == 200
    copies = Experiment.objects.create(name="Copies", kind=ExperimentKind.LABELING)
    assert client.get(url(copies)).status_code == 404
    assert client.get(reverse("evaluation:monitoring", args=[99999])).status_code == 404


def test_the_index_lists_every_ordinary_experiment_those_with_scorers_first(client: Client, lead: User) -> None:
    watched, quiet = make_experiment("Zebra traffic"), make_experiment("Alpha quiet")
    register(watched, "fast")
    register(watched, "later", rate=0.0)
    Experiment.objects.create(name="Session copies", kind=ExperimentKind.LABELING)
    client.force_login(lead)
    html = client.get(reverse("evaluation:monitoring_index")).content.decode()
    assert html.index("Zebra traffic") < html.index("Alpha quiet")
    assert "1 active" in html and "Set up monitoring" in html and "Session copies" not in html
    assert reverse("evaluation:monitoring", args=[quiet.pk]) in html


# ---------------------------------------------------------------- the latest failures


def test_the_failures_table_links_traces_with_the_reason_and_version(client: Client, admin_user: User) -> None:
    experiment = make_experiment("Production")
    fast = register(experiment, "fast")
    slow = failure_with_feedback(fast, in_bucket(WEEK, -1, minutes=20), rationale="took 3.2 s <over 2 s>")
    broken = failure_with_feedback(
        fast, in_bucket(WEEK, -1, minutes=10), error={"error_code": "TIMEOUT", "error_message": "scorer timed out"}
    )
    verdicts(fast, in_bucket(WEEK, -1), "passed")
    rows = latest_failures([fast], WEEK)
    assert [(r.trace.pk, r.is_error, r.message, r.version) for r in rows] == [
        (slow.pk, False, "took 3.2 s <over 2 s>", 1),
        (broken.pk, True, "TIMEOUT: scorer timed out", 1),
    ]
    client.force_login(admin_user)
    html = client.get(url(experiment)).content.decode()
    table = html.split('id="failures"')[1]
    assert f'href="{slow.get_absolute_url()}"' in table and f'href="{broken.get_absolute_url()}"' in table
    assert "took 3.2 s &lt;over 2 s&gt;" in table and "TIMEOUT: scorer timed out" in table and "v1" in table


# ---------------------------------------------------------------- queries


def _queries(client: Client, experiment: Experiment, django_assert_max_num_queries, limit: int) -> None:
    with django_assert_max_num_queries(limit):
        assert client.get(url(experiment)).status_code == 200


def test_the_page_runs_the_same_queries_with_one_or_many_scorers_and_results(
    client: Client, lead: User, django_assert_num_queries, django_assert_max_num_queries
) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    small, large = make_experiment("Small"), make_experiment("Large")
    fast = register(small, "fast")
    failure_with_feedback(fast, in_bucket(WEEK, -1), rationale="slow")
    client.force_login(lead)
    client.get(url(small))  # warm the session
    with CaptureQueriesContext(connection) as one:
        client.get(url(small))
    for n in range(6):
        registration = register(large, f"scorer-{n}", scorer="response_length" if n % 2 else "latency_under_threshold")
        for day in range(7):
            times = [in_bucket(WEEK, day, minutes=m) for m in range(0, 50, 5)]
            traces = bare_traces(large, times)
            for trace, when in zip(traces, times, strict=True):
                verdicts(registration, when, "failed" if n % 2 == 0 else "number", traces=[trace])
        for _ in range(3):
            failure_with_feedback(registration, in_bucket(WEEK, -1), error={"error_message": "boom"})
    with CaptureQueriesContext(connection) as many:
        response = client.get(url(large))
    assert len(response.context["scorers"]) == 6 and len(response.context["failures"]) == 25
    assert len(many) == len(one), [q["sql"][:120] for q in many.captured_queries]
    _queries(client, large, django_assert_max_num_queries, len(one))


# ---------------------------------------------------------------- the chart on the page


def test_the_charts_on_the_page_are_well_formed_svg_and_texts_are_escaped(client: Client, admin_user: User) -> None:
    experiment = make_experiment("Production")
    tagged = register_scorer(
        experiment=experiment,
        name="tagged",
        scorer_name="latency_under_threshold",
        sample_rate=0.5,
        filter_string="tags.team = 'a<b&c'",
    )
    verdicts(tagged, in_bucket(WEEK, -1), "passed", "error")
    client.force_login(admin_user)
    html = client.get(url(experiment)).content.decode()
    assert "filter <code>tags.team = &#x27;a&lt;b&amp;c&#x27;</code>" in html
    svg = html[html.index("<svg") : html.index("</svg>") + 6]
    root = ElementTree.fromstring(svg)
    assert root.find("{http://www.w3.org/2000/svg}title").text == "tagged: pass rate, last 7 days"
    assert "1 error" in root.get("aria-label")
