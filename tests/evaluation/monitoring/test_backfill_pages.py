"""Backfill pages: the start form and the experiment's jobs, a job's page (polled while it runs), cancel and
resume; explorers see, admins change, anyone else gets 404; every bad input is a 400 that starts nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from evaluation.monitoring.backfill import plan_backfill, start_backfill
from evaluation.monitoring.models import BackfillJob, BackfillStatus, MonitoringWork
from evaluation.monitoring.registrations import register_scorer
from evaluation.monitoring.sampling import is_sampled
from evaluation.monitoring.scoring import BatchScorer, score_next_batch
from labeling import services as labeling_services
from labeling.models import LabelSchema
from tests.factories import make_experiment, make_trace
from traces.models import Experiment, ExperimentKind, Trace

pytestmark = pytest.mark.django_db
DAY = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture
def lead(db: None) -> User:
    """A session lead: may explore traces (so watch monitoring), is no admin."""
    user = User.objects.create_user("lead", password="pw-123456")
    schema = LabelSchema.objects.get(name="expected_response")
    session = labeling_services.create_labeling_session(name="Led by lead", schemas=[schema], reviewers=[])
    labeling_services.set_session_leads(session=session, leads=[user])
    return user


@pytest.fixture
def production(db: None) -> Experiment:
    experiment = make_experiment("Production")
    for i in range(4):
        make_trace(experiment=experiment, request_time=DAY + timedelta(hours=i), answer="a" * (i + 1))
    register_scorer(experiment=experiment, name="length", scorer_name="response_length", sample_rate=1.0)
    register_scorer(experiment=experiment, name="docs", scorer_name="has_retrieved_documents", sample_rate=0.0)
    return experiment


def start_url(experiment: Experiment) -> str:
    return reverse("evaluation:backfill_start", args=[experiment.pk])


def detail_url(job: BackfillJob) -> str:
    return reverse("evaluation:backfill_detail", args=[job.job_id])


def queued_job(experiment: Experiment, scorers: Any = (("length", None),)) -> BackfillJob:
    return start_backfill(experiment=experiment, scorers=list(scorers), start=DAY, enqueue=False)


def running_job(experiment: Experiment, *, scored: int = 1) -> BackfillJob:
    """A job planned and partly scored, as a worker leaves it between two batches."""
    job = queued_job(experiment)
    BackfillJob.objects.filter(pk=job.pk).update(status=BackfillStatus.RUNNING, started_at=timezone.now())
    plan_backfill(job)
    scorer = BatchScorer()
    try:
        score_next_batch(scorer, limit=scored)
    finally:
        scorer.close()
    job.refresh_from_db()
    return job


def form_data(**overrides: Any) -> dict[str, Any]:
    return {"scorers": ["length"], "start": "2026-11-01T00:00", "end": "", **overrides}


# ---------------------------------------------------------------- the start page


def test_the_start_page_offers_the_registered_scorers_and_lists_the_jobs(client: Client, admin_user, production):
    job = queued_job(production)
    client.force_login(admin_user)
    response = client.get(start_url(production))
    assert response.status_code == 200
    page = response.content.decode()
    assert 'name="scorers" value="length"' in page and 'name="scorers" value="docs"' in page
    assert 'type="datetime-local"' in page and "From (UTC)" in page
    assert "Start the backfill" in page
    assert job.get_absolute_url() in page and "Queued" in page


def test_starting_a_backfill_redirects_to_its_page_at_once(
    client: Client, admin_user, production, django_capture_on_commit_callbacks
):
    client.force_login(admin_user)
    rate_field = f"rate_{_registration_pk(production, 'docs')}"  # the registration's id names its rate input
    data = form_data(scorers=["length", "docs"], **{rate_field: "0.5"}, end="2026-11-01T02:00")
    with django_capture_on_commit_callbacks(execute=True):  # the (immediate) worker runs the job at commit
        response = client.post(start_url(production), data)
    job = BackfillJob.objects.get()
    assert response.status_code == 302 and response["Location"] == job.get_absolute_url()
    assert [(s["name"], s["sample_rate"], s["rate_overridden"]) for s in job.scorers] == [
        ("length", 1.0, False),
        ("docs", 0.5, True),
    ]
    assert (job.start_time, job.end_time) == (DAY, DAY + timedelta(hours=2))  # read as UTC
    assert job.created_by == admin_user
    job.refresh_from_db()
    in_range = Trace.objects.filter(experiment=production, request_time__lte=DAY + timedelta(hours=2))
    docs = [t for t in in_range if is_sampled(t.trace_id, "docs", 0.5)]
    assert job.status == BackfillStatus.FINISHED and job.progress_done == job.progress_total == 3 + len(docs)
    page = client.get(response["Location"]).content.decode()
    assert "Backfill" in page and "queued." in page  # the message on arrival


def _registration_pk(experiment: Experiment, name: str) -> int:
    from evaluation.monitoring.models import RegisteredScorer

    return RegisteredScorer.objects.get(experiment=experiment, name=name).pk


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"scorers": []}, "Pick at least one registered scorer."),
        ({"scorers": ["nope"]}, "“nope” is not a scorer registered on this experiment."),
        ({"rate_length": "2"}, "The rate for length must be from 0 to 1."),
        ({"rate_length": "-0.5"}, "The rate for length must be from 0 to 1."),
        ({"rate_length": "half"}, "The rate for length must be a number from 0 to 1."),
        ({"rate_length": "nan"}, "The rate for length must be a number from 0 to 1."),
        ({"rate_length": "0"}, "samples nothing (rate 0)"),
        ({"scorers": ["docs"]}, "Scorer &#x27;docs&#x27; samples nothing (rate 0): give it a rate for this job"),
        ({"start": ""}, "Give the range&#x27;s start."),
        ({"start": "yesterday"}, "Enter a date and time, e.g. 2026-11-01T00:00."),
        ({"end": "2026-13-01T00:00"}, "Enter a date and time"),
        ({"end": "2026-10-01T00:00"}, "The end must be after the start."),
        ({"start": "2026-11-01T00:00", "end": "2026-11-01T00:00"}, "The end must be after the start."),
        ({"start": (timezone.now() + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")}, "must be before its end"),
    ],
)
def test_bad_input_is_a_400_that_starts_nothing(client: Client, admin_user, production, data, message):
    client.force_login(admin_user)
    data = {key.replace("rate_length", f"rate_{_registration_pk(production, 'length')}"): v for key, v in data.items()}
    response = client.post(start_url(production), form_data(**data))
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not BackfillJob.objects.exists() and not MonitoringWork.objects.exists()


def test_an_explorer_sees_the_jobs_but_cannot_start_one(client: Client, lead, production):
    queued_job(production)
    client.force_login(lead)
    page = client.get(start_url(production))
    assert page.status_code == 200
    assert "Start the backfill" not in page.content.decode() and "Backfill jobs" in page.content.decode()
    assert client.post(start_url(production), form_data()).status_code == 403
    assert BackfillJob.objects.count() == 1


@pytest.mark.parametrize("persona", ["outsider", "reviewer"])
def test_others_get_404(client: Client, production, persona, request):
    job = queued_job(production)
    client.force_login(request.getfixturevalue(persona))
    assert client.get(start_url(production)).status_code == 404
    assert client.post(start_url(production), form_data()).status_code == 404
    assert client.get(detail_url(job)).status_code == 404
    assert client.post(reverse("evaluation:backfill_cancel", args=[job.job_id])).status_code == 404
    assert client.post(reverse("evaluation:backfill_resume", args=[job.job_id])).status_code == 404
    assert BackfillJob.objects.get().status == BackfillStatus.QUEUED


def test_signed_out_people_are_sent_to_sign_in(client: Client, production):
    response = client.get(start_url(production))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_no_such_experiment_or_job(client: Client, admin_user, production):
    copies = Experiment.objects.create(name="Copies", kind=ExperimentKind.LABELING)
    client.force_login(admin_user)
    assert client.get(start_url(copies)).status_code == 404
    assert client.get(reverse("evaluation:backfill_start", args=[999_999])).status_code == 404
    assert client.get(reverse("evaluation:backfill_detail", args=["nope"])).status_code == 404


# ---------------------------------------------------------------- a job's page


def test_a_running_job_shows_its_progress_rate_and_polls(client: Client, admin_user, production):
    job = running_job(production, scored=1)
    client.force_login(admin_user)
    page = client.get(detail_url(job)).content.decode()
    assert "Running" in page and "1 of 4 verdicts written" in page
    assert '<progress class="wide" max="4" value="1">25%</progress>' in page
    assert "verdicts/s" in page  # a rate once a verdict is written
    assert f'hx-get="{detail_url(job)}?part=status" hx-trigger="every 2s"' in page
    assert f'<a href="{detail_url(job)}">refresh</a>' in page  # without JavaScript
    assert "Cancel backfill" in page and "Resume" not in page
    assert "<strong>length</strong>" in page and "v1" in page and "response_length" in page
    assert job.job_id in page


def test_the_polled_status_is_the_partial_and_stops_when_the_job_ends(
    client: Client, admin_user, production, django_capture_on_commit_callbacks
):
    job = running_job(production)
    client.force_login(admin_user)
    partial = client.get(detail_url(job), {"part": "status"}, headers={"HX-Request": "true"}).content.decode()
    assert partial.lstrip().startswith('<section id="backfill-status"') and "<html" not in partial
    assert 'hx-trigger="every 2s"' in partial
    scorer = BatchScorer()
    try:
        score_next_batch(scorer)
    finally:
        scorer.close()
    partial = client.get(detail_url(job), {"part": "status"}, headers={"HX-Request": "true"}).content.decode()
    assert "Finished" in partial and "4 of 4" in partial and "hx-trigger" not in partial


def test_a_job_still_planning_says_so(client: Client, admin_user, production):
    job = queued_job(production)
    BackfillJob.objects.filter(pk=job.pk).update(status=BackfillStatus.RUNNING, started_at=timezone.now())
    client.force_login(admin_user)
    page = client.get(detail_url(job)).content.decode()
    assert "planning…" in page and "0 of 0+ verdicts" in page


def test_a_failed_job_shows_its_error_and_offers_resume(client: Client, admin_user, production):
    job = queued_job(production)
    BackfillJob.objects.filter(pk=job.pk).update(status=BackfillStatus.FAILED, error="RuntimeError: boom")
    client.force_login(admin_user)
    page = client.get(detail_url(job)).content.decode()
    assert "RuntimeError: boom" in page and ">Resume</button>" in page and "Cancel backfill" not in page


def test_an_explorer_watches_a_job_without_its_buttons(client: Client, lead, production):
    job = running_job(production)
    client.force_login(lead)
    page = client.get(detail_url(job)).content.decode()
    assert "1 of 4 verdicts written" in page and "Cancel backfill" not in page
    assert client.post(reverse("evaluation:backfill_cancel", args=[job.job_id])).status_code == 403
    BackfillJob.objects.filter(pk=job.pk).update(status=BackfillStatus.CANCELLED)
    assert client.post(reverse("evaluation:backfill_resume", args=[job.job_id])).status_code == 403
    assert BackfillJob.objects.get().status == BackfillStatus.CANCELLED


# ---------------------------------------------------------------- cancel and resume


def test_cancel_then_resume(client: Client, admin_user, production, django_capture_on_commit_callbacks):
    job = running_job(production, scored=1)
    client.force_login(admin_user)
    response = client.post(reverse("evaluation:backfill_cancel", args=[job.job_id]))
    assert response.status_code == 302 and response["Location"] == detail_url(job)
    job.refresh_from_db()
    assert job.status == BackfillStatus.CANCELLED and not MonitoringWork.objects.exists()
    page = client.get(detail_url(job)).content.decode()
    assert "Backfill cancelled" in page and "1 of 4 verdicts written" in page and ">Resume</button>" in page
    again = client.post(reverse("evaluation:backfill_cancel", args=[job.job_id]))
    assert again.status_code == 400 and "already ended (cancelled): nothing to cancel" in again.content.decode()

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("evaluation:backfill_resume", args=[job.job_id]))
    assert response.status_code == 302
    job.refresh_from_db()
    assert (job.status, job.progress_done, job.progress_total) == (BackfillStatus.FINISHED, 4, 4)
    again = client.post(reverse("evaluation:backfill_resume", args=[job.job_id]))
    assert again.status_code == 400 and "is finished: nothing to resume" in again.content.decode()


def test_cancel_and_resume_take_posts_only(client: Client, admin_user, production):
    job = running_job(production)
    client.force_login(admin_user)
    assert client.get(reverse("evaluation:backfill_cancel", args=[job.job_id])).status_code == 405
    assert client.get(reverse("evaluation:backfill_resume", args=[job.job_id])).status_code == 405
    assert BackfillJob.objects.get().status == BackfillStatus.RUNNING


# ---------------------------------------------------------------- a constant number of queries


def _queries(client: Client, url: str, **kwargs: Any) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url, **kwargs).status_code == 200
    return len(captured)


def test_pages_run_a_constant_number_of_queries(
    client: Client, admin_user, django_assert_max_num_queries, django_capture_on_commit_callbacks
):
    small, large = make_experiment("Small"), make_experiment("Large")
    for experiment, traces, scorers in ((small, 2, 1), (large, 30, 4)):
        for i in range(traces):
            make_trace(experiment=experiment, request_time=DAY + timedelta(minutes=i))
        for n in range(scorers):
            register_scorer(experiment=experiment, name=f"s{n}", scorer_name="response_length", sample_rate=1.0)
    jobs = {}
    for experiment, n_jobs in ((small, 1), (large, 8)):
        for _ in range(n_jobs):
            scorers = [(r, None) for r in ("s0", "s1", "s2", "s3")[: 1 if experiment is small else 4]]
            with django_capture_on_commit_callbacks(execute=True):
                jobs[experiment.pk] = start_backfill(experiment=experiment, scorers=scorers, start=DAY)
    client.force_login(admin_user)
    client.get(start_url(small))  # warm the session
    starts = [_queries(client, start_url(e)) for e in (small, large)]
    details = [_queries(client, detail_url(jobs[e.pk])) for e in (small, large)]
    partials = [
        _queries(client, detail_url(jobs[e.pk]), data={"part": "status"}, headers={"HX-Request": "true"})
        for e in (small, large)
    ]
    assert starts[0] == starts[1] and details[0] == details[1] and partials[0] == partials[1]
    with django_assert_max_num_queries(6):
        client.get(start_url(large))
    with django_assert_max_num_queries(6):
        client.get(detail_url(jobs[large.pk]))
