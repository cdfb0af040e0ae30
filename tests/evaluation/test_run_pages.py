"""Evaluation run pages: the runs list, a run's results and its "failed on" filter, adding its traces to a
session, starting, cancelling, downloading; who may see what; a constant number of queries."""

from __future__ import annotations

import json
from io import BytesIO
from typing import Any

import pandas as pd
import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from evaluation.models import DatasetRecord, EvaluationDataset, EvaluationRun, EvaluationRunTrace, inputs_key
from evaluation.outcomes import failed as outcome_failed
from evaluation.runs import execute_run, of_run, start_evaluation_run
from evaluation.trace_export import COLUMNS
from labeling import services as labeling_services
from labeling.models import LabelingSession, LabelSchema, ReviewItem, TraceAddJob
from tests.factories import make_experiment, make_trace
from traces.models import Trace

VERDICTS = "tests.evaluation.scorer_modules.verdicts"
SHAPES = "tests.evaluation.scorer_modules.shapes"
BROKEN = "tests.evaluation.scorer_modules.broken"
# answers: is_short fails the long ones; picky says "No" on "bad", raises on "boom"
ANSWERS = ["ok", "a bad answer", "boom", "fine answer words here", "bad", "good"]
LIST = reverse("evaluation:run_list")
START = reverse("evaluation:run_start")


@pytest.fixture(autouse=True)
def scorer_modules(settings: Any) -> None:
    settings.SCORER_MODULES = [VERDICTS, SHAPES]
    settings.SCORER_TIMEOUT_SECONDS = 5


def detail(run: EvaluationRun) -> str:
    return reverse("evaluation:run_detail", args=[run.pk])


def make_traces(answers: list[str] = ANSWERS, experiment: str = "Support") -> list[Trace]:
    exp = make_experiment(experiment)
    return [
        make_trace(experiment=exp, question=f"Question {i}?", answer=a, model_id="m-1") for i, a in enumerate(answers)
    ]


def finished_run(experiment: str = "Support", scorers: tuple[str, ...] = ("is_short", "picky", "length"), **kw: Any):
    run = start_evaluation_run(scorer_names=list(scorers), experiment=experiment, filter_string="", enqueue=False, **kw)
    return execute_run(run.pk)


def make_session(name: str = "Cardio", leads: list[User] = ()) -> LabelingSession:
    schema = LabelSchema.objects.get(name="expected_response")
    session = labeling_services.create_labeling_session(name=name, schemas=[schema], reviewers=[])
    labeling_services.set_session_leads(session=session, leads=list(leads))
    return session


@pytest.fixture
def lead(db: None) -> User:
    user = User.objects.create_user("lead", password="pw-123456")
    make_session("Led by lead", leads=[user])
    return user


def failed_in_python(run: EvaluationRun, scorer: str) -> set[str]:
    """The traces outcomes.failed() calls failed on ``scorer`` (the rule the SQL filter must follow)."""
    return {
        a.trace.trace_id
        for a in of_run(run).filter(source_id=scorer).select_related("trace")
        if outcome_failed(a.value, error=a.error)
    }


def shown_trace_ids(response: Any) -> set[str]:
    return {row.row.trace.trace_id for row in response.context["rows"]}


# ---------------------------------------------------------------- the runs list


def test_runs_list_shows_each_run_with_metrics_source_version_and_starter(client: Client, admin_user: User) -> None:
    make_traces()
    run = finished_run(name="nightly", started_by=admin_user)
    client.force_login(admin_user)
    response = client.get(LIST)
    assert response.status_code == 200
    html = response.content.decode()
    assert "nightly" in html and detail(run) in html
    assert "Finished" in html and "by admin" in html and "m-1" in html
    assert "Support" in html  # what it ran on
    assert "length/mean" in html and "is_short" in html  # the means
    assert f"{run.metrics['length/mean']:.3f}".rstrip("0").rstrip(".") in html
    assert 'hx-trigger="every' not in html  # nothing to poll: the run ended
    assert reverse("evaluation:run_start") in html
    assert "<html" in html


def test_runs_list_partial_is_the_table_region_and_pages(client: Client, admin_user: User, settings: Any) -> None:
    make_traces(["ok"])
    for i in range(27):
        start_evaluation_run(
            scorer_names=["length"], experiment="Support", filter_string="", name=f"r{i}", enqueue=False
        )
    client.force_login(admin_user)
    response = client.get(LIST, {"page": 2}, headers={"HX-Request": "true"})
    html = response.content.decode()
    assert response.status_code == 200 and "<html" not in html and 'id="runs"' in html
    assert "Page 2 of 2" in html and "r0" in html and "r26" not in html


def test_a_queued_run_row_polls_until_the_run_ends(client: Client, admin_user: User) -> None:
    make_traces()
    run = start_evaluation_run(scorer_names=["length"], experiment="Support", filter_string="", enqueue=False)
    client.force_login(admin_user)
    row_url = reverse("evaluation:run_row", args=[run.pk])
    page = client.get(LIST).content.decode()
    assert f'hx-get="{row_url}"' in page and "<progress" in page and "0 / 6" in page
    queued = client.get(row_url, headers={"HX-Request": "true"}).content.decode()
    assert queued.lstrip().startswith("<tr") and 'hx-trigger="every 3s"' in queued
    execute_run(run.pk)
    ended = client.get(row_url, headers={"HX-Request": "true"}).content.decode()
    assert "hx-trigger" not in ended and "Finished" in ended and "length" in ended


def test_runs_link_in_the_top_bar_for_explorers_only(
    client: Client, admin_user: User, lead: User, reviewer: User
) -> None:
    for person in (admin_user, lead):
        client.force_login(person)
        assert f'href="{LIST}"' in client.get(reverse("traces:list")).content.decode()
    client.force_login(admin_user)
    html = client.get(LIST).content.decode()
    assert f'href="{reverse("evaluation:dataset_list")}"' in html  # Datasets still in the bar
    assert f'href="{reverse("evaluation:scorer_list")}"' in html
    client.force_login(reviewer)
    assert f'href="{LIST}"' not in client.get(reverse("labeling:my_sessions")).content.decode()


# ---------------------------------------------------------------- access


def test_reviewers_outsiders_and_anonymous_users_see_no_run(
    client: Client, admin_user: User, reviewer: User, outsider: User
) -> None:
    make_traces()
    run = finished_run()
    urls = [
        LIST,
        detail(run),
        reverse("evaluation:run_row", args=[run.pk]),
        reverse("evaluation:run_download", args=[run.pk, "jsonl"]),
        START,
    ]
    for person in (reviewer, outsider):
        client.force_login(person)
        for url in urls:
            assert client.get(url).status_code == 404, url
        assert client.post(reverse("evaluation:run_cancel", args=[run.pk])).status_code == 404
    client.logout()
    assert client.get(LIST).status_code == 302


def test_a_lead_sees_runs_except_over_sessions_they_do_not_manage(client: Client, admin_user: User, lead: User) -> None:
    traces = make_traces()
    theirs = LabelingSession.objects.get(name="Led by lead")
    other = make_session("Someone else's")
    for session in (theirs, other):
        labeling_services.add_traces_to_session(session=session, trace_ids=[t.trace_id for t in traces[:2]])
    over_theirs = execute_run(start_evaluation_run(scorer_names=["length"], session=theirs.name, enqueue=False).pk)
    over_other = execute_run(start_evaluation_run(scorer_names=["length"], session=other.name, enqueue=False).pk)
    over_experiment = finished_run(scorers=("length",))
    client.force_login(lead)
    html = client.get(LIST).content.decode()
    assert detail(over_theirs) in html and detail(over_experiment) in html and detail(over_other) not in html
    assert client.get(detail(over_theirs)).status_code == 200
    assert client.get(detail(over_experiment)).status_code == 200
    for url in (
        detail(over_other),
        reverse("evaluation:run_row", args=[over_other.pk]),
        reverse("evaluation:run_download", args=[over_other.pk, "jsonl"]),
    ):
        assert client.get(url).status_code == 404
    # the session was deleted: its run stays hidden from leads
    EvaluationRun.objects.filter(pk=over_other.pk).update(session=None)
    assert client.get(detail(over_other)).status_code == 404
    client.force_login(admin_user)
    assert client.get(detail(over_other)).status_code == 200


def test_a_lead_sees_no_rows_of_other_sessions_copies_in_a_dataset_run(client: Client, lead: User) -> None:
    traces = make_traces(["ok", "bad"])
    other = make_session("Other")
    labeling_services.add_traces_to_session(session=other, trace_ids=[traces[0].trace_id])
    copy = other.items.get().trace
    dataset = EvaluationDataset.objects.create(name="Mixed")
    for trace in (copy, traces[1]):
        inputs = {"q": trace.trace_id}
        DatasetRecord.objects.create(
            dataset=dataset, inputs=inputs, inputs_key=inputs_key(inputs), source_data={"trace_id": trace.trace_id}
        )
    run = execute_run(start_evaluation_run(scorer_names=["length"], dataset="Mixed", enqueue=False).pk)
    client.force_login(lead)
    response = client.get(detail(run))
    assert response.status_code == 200 and shown_trace_ids(response) == {traces[1].trace_id}


# ---------------------------------------------------------------- a run's page


def test_run_page_shows_metrics_errors_scorers_and_each_traces_feedback(client: Client, admin_user: User) -> None:
    traces = make_traces()
    run = finished_run(app_version="v-42")
    client.force_login(admin_user)
    response = client.get(detail(run))
    assert response.status_code == 200
    html = response.content.decode()
    assert "length" in html and "mean" in html and "v-42" in html and "Support" in html
    assert response.context["errors_total"] == 1
    by_name = {s["name"]: s for s in response.context["scorers"]}
    assert by_name["picky"]["errors"] == 1 and by_name["is_short"]["errors"] == 0
    assert run.scorers[0]["digest"].removeprefix("sha256:")[:8] in html  # short digest
    assert response.context["names"] == ["is_short", "picky", "length"]
    assert "error: ValueError" in html and "boom in the answer" in html  # errors marked, message shown
    assert 'title="looked at' in html and "<details" in html  # rationale on hover and expandable
    for trace in traces:
        assert trace.get_absolute_url() in html
    assert "Question 0?" in html and "fine answer words here" in html  # input and response previews
    assert len(response.context["rows"]) == 6 and "pending" not in html


def test_unscored_traces_are_pending_and_the_status_polls(client: Client, admin_user: User) -> None:
    make_traces()
    run = start_evaluation_run(scorer_names=["length"], experiment="Support", filter_string="", enqueue=False)
    client.force_login(admin_user)
    html = client.get(detail(run)).content.decode()
    assert html.count("pending-cell") == 6  # a column per scorer, before it wrote anything
    assert "pending" in html and 'hx-trigger="every 2s"' in html and "Waiting for a background worker" in html
    status = client.get(detail(run), {"part": "status"}, headers={"HX-Request": "true"})
    assert status.status_code == 200 and "<html" not in status.content.decode()
    assert 'hx-trigger="every 2s"' in status.content.decode() and "HX-Refresh" not in status
    execute_run(run.pk)
    ended = client.get(detail(run), {"part": "status"}, headers={"HX-Request": "true"})
    assert ended["HX-Refresh"] == "true" and "hx-trigger" not in ended.content.decode()


def test_half_scored_rows_show_pending(client: Client, admin_user: User) -> None:
    make_traces()
    run = finished_run(scorers=("length",))
    EvaluationRunTrace.objects.filter(run=run, trace__response_preview__contains="bad").update(scored=False)
    of_run(run).filter(trace__response_preview__contains="bad").delete()
    client.force_login(admin_user)
    html = client.get(detail(run)).content.decode()
    assert html.count("pending-cell") == 2


def test_results_partial_pages_and_filters(client: Client, admin_user: User, monkeypatch: Any) -> None:
    from evaluation import run_views

    monkeypatch.setattr(run_views, "ROWS_PER_PAGE", 2)
    make_traces()
    run = finished_run()
    client.force_login(admin_user)
    response = client.get(detail(run), {"part": "results", "page": 2}, headers={"HX-Request": "true"})
    html = response.content.decode()
    assert response.status_code == 200 and "<html" not in html and 'id="results"' in html
    assert "Page 2 of 3" in html and html.count('<td class="preview"><a') == 2
    failed = client.get(detail(run), {"part": "results", "failed": "picky"}, headers={"HX-Request": "true"})
    assert "Page 1 of 2" in failed.content.decode() and "failed=picky" in failed.content.decode()
    assert failed["HX-Replace-Url"] == f"{detail(run)}?failed=picky"
    download = reverse("evaluation:run_download", args=[run.pk, "jsonl"])
    assert f'href="{download}?failed=picky"' in failed.content.decode()


@pytest.mark.parametrize("scorer", ["picky", "is_short", "length"])
def test_failed_on_a_scorer_keeps_exactly_what_outcomes_calls_failed(
    client: Client, admin_user: User, scorer: str
) -> None:
    make_traces()
    run = finished_run()
    expected = failed_in_python(run, scorer)
    client.force_login(admin_user)
    response = client.get(detail(run), {"failed": scorer})
    assert response.status_code == 200
    assert shown_trace_ids(response) == expected
    assert response.context["page"].paginator.count == len(expected)
    assert f"{len(expected)} trace{'s' if len(expected) != 1 else ''} failed on" in response.content.decode()
    sizes = {"picky": 3, "is_short": 2, "length": 0}  # picky: "No" twice and an error; is_short: two long answers
    assert len(expected) == sizes[scorer]


def test_failed_on_counts_false_and_no_in_any_case_and_errors_only_for_this_run(
    client: Client, admin_user: User
) -> None:
    traces = make_traces()
    first = finished_run(scorers=("picky",))
    second = finished_run(scorers=("picky",))
    # a human "no" on a trace is not this run's Feedback
    from tests.factories import make_assessment

    make_assessment(traces[0], name="picky", value="no", source_type="HUMAN", source_id="picky")
    client.force_login(admin_user)
    for run in (first, second):
        response = client.get(detail(run), {"failed": "picky"})
        assert shown_trace_ids(response) == {
            t.trace_id for t in traces if "bad" in t.response_preview or "boom" in t.response_preview
        }


def test_an_unknown_failed_scorer_is_a_400_showing_every_trace(client: Client, admin_user: User) -> None:
    make_traces()
    run = finished_run()
    client.force_login(admin_user)
    response = client.get(detail(run), {"failed": "nope"})
    assert response.status_code == 400 and "no scorer named “nope”" in response.content.decode()
    assert len(response.context["rows"]) == 6


def test_unknown_run_is_404(client: Client, admin_user: User) -> None:
    client.force_login(admin_user)
    assert client.get(reverse("evaluation:run_detail", args=[999])).status_code == 404


def _queries(client: Client, url: str, params: dict[str, str]) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url, params).status_code == 200
    return len(captured)


@pytest.mark.parametrize("params", [{}, {"failed": "picky"}])
def test_run_page_queries_do_not_grow_with_its_traces(
    client: Client, admin_user: User, django_assert_max_num_queries: Any, params: dict[str, str]
) -> None:
    make_traces(ANSWERS[:5], experiment="Small")
    make_traces((ANSWERS * 5)[:30], experiment="Large")
    small, large = finished_run("Small"), finished_run("Large")
    client.force_login(admin_user)
    client.get(detail(small))  # warm the session
    counts = [_queries(client, detail(run), params) for run in (small, large)]
    assert counts[0] == counts[1]
    with django_assert_max_num_queries(14):
        client.get(detail(large), params)
    with django_assert_max_num_queries(10):
        client.get(LIST)


def test_runs_list_queries_do_not_grow_with_its_runs(client: Client, lead: User) -> None:
    make_traces(["ok"])
    client.force_login(lead)
    client.get(LIST)
    start_evaluation_run(scorer_names=["length"], experiment="Support", filter_string="", enqueue=False)
    one = _queries(client, LIST, {})
    for _ in range(10):
        start_evaluation_run(scorer_names=["length"], experiment="Support", filter_string="", enqueue=False)
    assert _queries(client, LIST, {}) == one


# ---------------------------------------------------------------- adding a run's traces to a session


def add_url(run: EvaluationRun) -> str:
    return reverse("evaluation:run_add_to_session", args=[run.pk])


def test_adding_a_filtered_run_copies_only_its_failures(client: Client, admin_user: User) -> None:
    traces = make_traces()
    run = finished_run()
    session = make_session("Triage")
    client.force_login(admin_user)
    response = client.post(add_url(run), {"session": session.pk, "failed": "picky"})
    assert response.status_code == 302 and response["Location"].endswith("?failed=picky")
    expected = failed_in_python(run, "picky")
    assert set(session.items.values_list("source_trace_id_text", flat=True)) == expected
    assert all(item.trace.experiment_id == session.experiment_id for item in session.items.select_related("trace"))
    message = [str(m) for m in client.get(response["Location"]).context["messages"]]
    assert message == ["Added 3 traces to “Triage” (0 were already there)."]
    again = client.post(add_url(run), {"session": session.pk, "failed": "is_short"}, follow=True)
    assert "Added 1 trace to “Triage” (1 was already there)." in again.content.decode()
    assert session.items.count() == 4 and len(traces) == 6


def test_adding_from_a_session_run_copies_the_source_traces(client: Client, lead: User) -> None:
    traces = make_traces()
    theirs = LabelingSession.objects.get(name="Led by lead")
    labeling_services.add_traces_to_session(session=theirs, trace_ids=[t.trace_id for t in traces])
    run = execute_run(start_evaluation_run(scorer_names=["picky"], session=theirs.name, enqueue=False).pk)
    target = make_session("Second pass", leads=[lead])
    client.force_login(lead)
    response = client.post(add_url(run), {"session": target.pk, "failed": "picky"})
    assert response.status_code == 302
    bad = {t.trace_id for t in traces if "bad" in t.response_preview or "boom" in t.response_preview}
    assert set(target.items.values_list("source_trace_id_text", flat=True)) == bad
    assert set(target.items.values_list("source_trace__experiment__name", flat=True)) == {"Support"}


def test_a_large_add_goes_to_the_background_job(client: Client, admin_user: User, settings: Any) -> None:
    settings.TRACE_ADD_BACKGROUND_THRESHOLD = 2
    make_traces()
    run = finished_run()
    session = make_session("Triage")
    client.force_login(admin_user)
    response = client.post(add_url(run), {"session": session.pk, "failed": "picky"})
    job = TraceAddJob.objects.get(session=session)
    assert job.total == 3
    assert response.status_code == 302
    assert response["Location"] == reverse("labeling:trace_add_job", args=[session.pk, job.pk])


def test_bad_adds_are_400s_with_a_message_and_write_nothing(
    client: Client, admin_user: User, lead: User, reviewer: User
) -> None:
    make_traces()
    run = finished_run()
    theirs = LabelingSession.objects.get(name="Led by lead")
    other = make_session("Not theirs")
    archived = make_session("Archived")
    LabelingSession.objects.filter(pk=archived.pk).update(status="archived")
    cases = [
        (admin_user, {"session": "999", "failed": "picky"}, "Choose a labeling session you manage"),
        (admin_user, {"session": "abc"}, "Choose a labeling session you manage"),
        (admin_user, {"failed": "picky"}, "required"),
        (admin_user, {"session": archived.pk}, "Choose a labeling session you manage"),
        (lead, {"session": other.pk, "failed": "picky"}, "Choose a labeling session you manage"),
        (admin_user, {"session": theirs.pk, "failed": "length"}, "Nothing to add: no stored trace failed on “length”"),
        (admin_user, {"session": theirs.pk, "failed": "nope"}, "no scorer named “nope”"),
    ]
    for person, data, message in cases:
        client.force_login(person)
        response = client.post(add_url(run), data)
        assert response.status_code == 400, data
        assert message in response.content.decode(), data
    assert ReviewItem.objects.count() == 0 and TraceAddJob.objects.count() == 0
    client.force_login(reviewer)
    assert client.post(add_url(run), {"session": theirs.pk}).status_code == 404
    assert ReviewItem.objects.count() == 0


# ---------------------------------------------------------------- starting a run


def test_start_form_offers_the_catalogue_and_shows_modules_that_fail(client: Client, lead: User, settings: Any) -> None:
    settings.SCORER_MODULES = [VERDICTS, BROKEN]
    EvaluationDataset.objects.create(name="Golden")
    make_session("Not theirs")
    client.force_login(lead)
    response = client.get(START, {"source": "session"})
    html = response.content.decode()
    assert response.status_code == 200
    for name in ("is_short", "picky", "length"):
        assert f'value="{name}"' in html
    assert "missing API key for the scorer service" in html and BROKEN in html
    assert "Golden" in html and "Led by lead" in html and "Not theirs" not in html


def test_starting_a_run_queues_it_and_opens_its_page(
    client: Client, lead: User, django_capture_on_commit_callbacks: Any
) -> None:
    make_traces()
    experiment = make_experiment("Support")
    client.force_login(lead)
    data = {
        "source": "filter",
        "experiment": experiment.pk,
        "filter_string": "trace.status = 'OK'",
        "scorers": ["picky", "length"],
        "name": "from the page",
        "app_version": "v-7",
    }
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(START, data)
    run = EvaluationRun.objects.get()
    assert response.status_code == 302 and response["Location"] == detail(run)
    assert run.name == "from the page" and run.app_version == "v-7" and run.started_by == lead
    assert run.scorer_names == ["picky", "length"] and run.progress_total == 6
    run.refresh_from_db()
    assert run.status == "finished"  # the task ran (immediate backend)
    page = client.get(response["Location"])
    assert "queued over 6 traces" in page.content.decode()


def test_starting_a_run_over_a_dataset_or_a_managed_session(client: Client, admin_user: User, lead: User) -> None:
    traces = make_traces(["ok", "bad"])
    theirs = LabelingSession.objects.get(name="Led by lead")
    labeling_services.add_traces_to_session(session=theirs, trace_ids=[t.trace_id for t in traces])
    dataset = EvaluationDataset.objects.create(name="Golden")
    inputs = {"q": 1}
    DatasetRecord.objects.create(
        dataset=dataset, inputs=inputs, inputs_key=inputs_key(inputs), source_data={"trace_id": traces[0].trace_id}
    )
    client.force_login(lead)
    assert client.post(START, {"source": "session", "session": theirs.pk, "scorers": ["length"]}).status_code == 302
    client.force_login(admin_user)
    assert client.post(START, {"source": "dataset", "dataset": dataset.pk, "scorers": ["length"]}).status_code == 302
    kinds = sorted(EvaluationRun.objects.values_list("source_kind", "progress_total"))
    assert kinds == [("dataset", 1), ("session", 2)]
    assert EvaluationRun.objects.get(source_kind="session").app_version == "m-1"  # empty: the traces' model id


def test_bad_starts_show_the_form_again_as_a_400_and_write_nothing(client: Client, lead: User) -> None:
    make_traces()
    experiment = make_experiment("Support")
    empty = make_experiment("Empty")
    other = make_session("Not theirs")
    EvaluationDataset.objects.create(name="No records")
    dataset = EvaluationDataset.objects.get(name="No records")
    client.force_login(lead)
    cases = [
        ({"source": "filter", "experiment": experiment.pk}, "This field is required"),  # no scorer
        ({"source": "filter", "experiment": experiment.pk, "scorers": ["nope"]}, "Select a valid choice"),
        ({"source": "filter", "scorers": ["length"]}, "Choose the experiment to run on"),
        ({"source": "dataset", "dataset": "999", "scorers": ["length"]}, "Select a valid choice"),
        ({"source": "session", "session": other.pk, "scorers": ["length"]}, "Select a valid choice"),
        ({"source": "elsewhere", "scorers": ["length"]}, "Select a valid choice"),
        (
            {"source": "filter", "experiment": experiment.pk, "filter_string": "trace.nope = 1", "scorers": ["length"]},
            "bad filter string",
        ),
        ({"source": "filter", "experiment": empty.pk, "scorers": ["length"]}, "no trace of experiment"),
        ({"source": "dataset", "dataset": dataset.pk, "scorers": ["length"]}, "has no records whose source trace"),
    ]
    for data, message in cases:
        response = client.post(START, data)
        assert response.status_code == 400, data
        assert message in response.content.decode(), data
        assert "<form" in response.content.decode()
    assert EvaluationRun.objects.count() == 0 and EvaluationRunTrace.objects.count() == 0


def test_only_admins_and_leads_may_start_runs(client: Client, reviewer: User) -> None:
    client.force_login(reviewer)
    assert client.get(START).status_code == 404
    assert client.post(START, {"source": "filter"}).status_code == 403
    assert EvaluationRun.objects.count() == 0


# ---------------------------------------------------------------- cancelling


def cancel_url(run: EvaluationRun) -> str:
    return reverse("evaluation:run_cancel", args=[run.pk])


def test_admins_cancel_a_queued_run(client: Client, admin_user: User) -> None:
    make_traces()
    run = start_evaluation_run(scorer_names=["length"], experiment="Support", filter_string="", enqueue=False)
    client.force_login(admin_user)
    assert "Cancel run" in client.get(detail(run)).content.decode()
    response = client.post(cancel_url(run))
    assert response.status_code == 302 and response["Location"] == detail(run)
    run.refresh_from_db()
    assert run.status == "cancelled" and run.finished_at is not None
    assert "Cancel run" not in client.get(detail(run)).content.decode()


def test_cancelling_an_ended_run_is_a_400_and_changes_nothing(client: Client, admin_user: User) -> None:
    make_traces()
    run = finished_run()
    finished_at = run.finished_at
    client.force_login(admin_user)
    response = client.post(cancel_url(run))
    assert response.status_code == 400 and "already ended (finished)" in response.content.decode()
    run.refresh_from_db()
    assert run.status == "finished" and run.finished_at == finished_at


def test_leads_cancel_runs_they_started_or_over_sessions_they_manage(client: Client, lead: User) -> None:
    traces = make_traces()
    theirs = LabelingSession.objects.get(name="Led by lead")
    labeling_services.add_traces_to_session(session=theirs, trace_ids=[t.trace_id for t in traces])
    mine = start_evaluation_run(
        scorer_names=["length"], experiment="Support", filter_string="", started_by=lead, enqueue=False
    )
    over_theirs = start_evaluation_run(scorer_names=["length"], session=theirs.name, enqueue=False)
    someone_elses = start_evaluation_run(scorer_names=["length"], experiment="Support", filter_string="", enqueue=False)
    client.force_login(lead)
    assert "Cancel run" not in client.get(detail(someone_elses)).content.decode()
    assert client.post(cancel_url(someone_elses)).status_code == 403
    assert client.post(cancel_url(mine)).status_code == 302
    assert client.post(cancel_url(over_theirs)).status_code == 302
    statuses = dict(EvaluationRun.objects.values_list("pk", "status"))
    assert statuses == {mine.pk: "cancelled", over_theirs.pk: "cancelled", someone_elses.pk: "queued"}


# ---------------------------------------------------------------- downloads


def test_run_download_jsonl_and_parquet_in_search_traces_shape(client: Client, admin_user: User) -> None:
    traces = make_traces()
    make_traces(["elsewhere"], experiment="Other")
    run = finished_run()
    client.force_login(admin_user)
    response = client.get(reverse("evaluation:run_download", args=[run.pk, "jsonl"]))
    assert response.status_code == 200 and response["Content-Type"] == "application/x-ndjson"
    assert f'filename="run-{run.run_id}.jsonl"' in response["Content-Disposition"]
    rows = [json.loads(line) for line in b"".join(response.streaming_content).decode().splitlines()]
    assert [list(row) for row in rows] == [COLUMNS] * 6
    assert {row["trace_id"] for row in rows} == {t.trace_id for t in traces}
    names = {a["assessment_name"] for row in rows for a in row["assessments"]}
    assert {"is_short", "picky", "length"} <= names
    failed = client.get(reverse("evaluation:run_download", args=[run.pk, "jsonl"]), {"failed": "picky"})
    assert len(b"".join(failed.streaming_content).splitlines()) == 3
    parquet = client.get(reverse("evaluation:run_download", args=[run.pk, "parquet"]))
    assert parquet.status_code == 200
    frame = pd.read_parquet(BytesIO(b"".join(parquet.streaming_content)))
    assert list(frame.columns) == COLUMNS and set(frame["trace_id"]) == {t.trace_id for t in traces}
    assert client.get(reverse("evaluation:run_download", args=[run.pk, "csv"])).status_code == 404


def test_dataset_page_and_session_dashboard_link_to_a_prefilled_start_form(client: Client, admin_user: User) -> None:
    dataset = EvaluationDataset.objects.create(name="Golden")
    session = make_session("Triage")
    client.force_login(admin_user)
    to_dataset = f"{START}?source=dataset&amp;dataset={dataset.pk}"
    assert to_dataset in client.get(dataset.get_absolute_url()).content.decode()
    to_session = f"{START}?source=session&amp;session={session.pk}"
    assert to_session in client.get(reverse("labeling:session_dashboard", args=[session.pk])).content.decode()
    form = client.get(START, {"source": "session", "session": session.pk}).content.decode()
    assert f'<option value="{session.pk}" selected>Triage</option>' in form
    assert 'value="session" checked' in form


def test_a_predict_run_shows_its_function_and_dataset(client: Client, admin_user: User) -> None:
    dataset = EvaluationDataset.objects.create(name="Golden")
    run = EvaluationRun.objects.create(
        name="predicted", source_kind="predict", dataset=dataset, predict_fn="app:predict", source_label="Golden"
    )
    client.force_login(admin_user)
    page = client.get(detail(run)).content.decode()
    assert "<code>app:predict</code> called on dataset" in page and dataset.get_absolute_url() in page
    listing = client.get(LIST).content.decode()
    assert "predict over dataset" in listing and dataset.get_absolute_url() in listing
