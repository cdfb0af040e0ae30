"""Adding traces to a session at scale: large adds run as a background job with a progress bar.

Small adds stay synchronous. The job copies in batches, each in its own transaction, and is
idempotent: re-running it, or resuming it after a killed worker, never adds an item twice.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from labeling import services
from labeling.adjudication import disagreement_count, disagreements
from labeling.models import COPIED_KEY, JobState, ReviewItem, TraceAddJob
from labeling.tasks import run_trace_add
from tests.factories import make_experiment, make_trace
from traces.models import Assessment, Span, Trace

pytestmark = pytest.mark.django_db
THRESHOLD = 6


@pytest.fixture(autouse=True)
def small_threshold(settings) -> None:
    settings.TRACE_ADD_BACKGROUND_THRESHOLD = THRESHOLD


@pytest.fixture
def admin(client: Client, admin_user) -> Client:
    client.force_login(admin_user)
    return client


@pytest.fixture
def batches_of_three(monkeypatch) -> None:
    monkeypatch.setattr(services, "COPY_BATCH", 3)


def traces(n: int, name: str = "bulk") -> list[Trace]:
    experiment = make_experiment("Production")
    return [make_trace(name=name, experiment=experiment, n_spans=4) for _ in range(n)]


def job_url(job: TraceAddJob) -> str:
    return reverse("labeling:trace_add_job", args=[job.session_id, job.pk])


def test_a_large_add_goes_through_the_task_and_copies_exactly_the_traces(admin: Client, batches_of_three) -> None:
    session = services.create_labeling_session(name="Big")
    originals = traces(8, "bulk")
    traces(2, "other")
    response = admin.post(reverse("labeling:session_add_traces", args=[session.pk]), {"name": "bulk"})
    assert response.status_code == 302 and response["Location"] == session.get_absolute_url()
    job = TraceAddJob.objects.get()
    assert (job.state, job.total, job.done, job.added, job.skipped, job.attempts) == (JobState.DONE, 8, 8, 8, 0, 1)
    items = list(session.items.order_by("position"))
    assert [i.source_trace_id for i in items] == [t.pk for t in sorted(originals, key=lambda t: (t.request_time, t.pk))]
    assert [i.position for i in items] == list(range(1, 9))
    for item in items:
        assert item.trace.experiment_id == session.experiment_id and item.trace.source_trace_id == item.source_trace_id
        assert item.trace.span_count == 4 and Span.objects.filter(trace=item.trace).count() == 4
    page = admin.get(session.get_absolute_url()).content.decode()
    assert "Adding 8 traces in the background" in page  # the message
    assert "Added 8 traces" in page and "0 were already in this session" in page


def test_a_small_add_stays_synchronous(admin: Client) -> None:
    session = services.create_labeling_session(name="Small")
    traces(THRESHOLD - 1)
    response = admin.post(reverse("labeling:session_add_traces", args=[session.pk]), {"name": "bulk"})
    assert response.status_code == 302
    assert session.items.count() == THRESHOLD - 1
    assert not TraceAddJob.objects.exists()


def test_pasted_ids_past_the_threshold_run_in_the_background_and_still_list_unknown_ids(admin: Client) -> None:
    session = services.create_labeling_session(name="Pasted")
    ids = [t.trace_id for t in traces(THRESHOLD)]
    response = admin.post(
        reverse("labeling:session_add_traces", args=[session.pk]), {"trace_ids": "\n".join([*ids, "tr-nope"])}
    )
    body = response.content.decode()
    assert response.status_code == 200 and "tr-nope" in body
    assert f"Adding {THRESHOLD} traces in the background" in body
    assert session.items.count() == THRESHOLD and TraceAddJob.objects.get().state == JobState.DONE


def test_copies_keep_assessments_with_their_overrides_chain() -> None:
    source = traces(1)[0]
    now = timezone.now()
    common = {"trace": source, "name": "correct", "kind": "feedback", "create_time": now, "last_update_time": now}
    Assessment.objects.create(assessment_id="a-old", value=False, valid=False, source_type="LLM_JUDGE", **common)
    Assessment.objects.create(assessment_id="a-new", value=True, overrides="a-old", metadata={"k": 1}, **common)
    session = services.create_labeling_session(name="Copies")
    job = services.start_trace_add(session=session, source_ids=[source.pk], requested_by=None)
    job.refresh_from_db()
    copy = session.items.get().trace
    old, new = copy.assessments.order_by("create_time", "id")
    assert new.overrides == old.assessment_id and old.assessment_id not in ("a-old", "a-new")
    assert old.metadata == {COPIED_KEY: "a-old"} and new.metadata == {"k": 1, COPIED_KEY: "a-new"}
    assert (old.valid, new.valid, new.value) == (False, True, True)
    assert Assessment.objects.filter(trace=source).count() == 2  # the originals are untouched


def test_running_the_task_twice_adds_nothing_twice(batches_of_three) -> None:
    session = services.create_labeling_session(name="Twice")
    ids = [t.pk for t in traces(7)]
    job = services.start_trace_add(session=session, source_ids=ids, requested_by=None)
    result = run_trace_add.call(job_id=job.pk)
    assert result == {"job_id": job.pk, "state": "done", "added": 7, "skipped": 0}
    assert session.items.count() == 7 and ReviewItem.objects.count() == 7


def test_a_killed_worker_resumes_after_its_last_batch_without_duplicates(batches_of_three) -> None:
    session = services.create_labeling_session(name="Resume")
    ids = [t.pk for t in traces(8)]
    job = services.start_trace_add(session=session, source_ids=ids, requested_by=None, enqueue=False)
    # The worker copied the first batch (committed with the job's counters), then was killed mid-way
    # through the second: that batch's transaction rolled back, so only the first is in. And
    # the second batch's first trace had meanwhile been added by hand.
    services.add_traces_to_session(session=session, traces=Trace.objects.filter(pk__in=ids[:3]))
    TraceAddJob.objects.filter(pk=job.pk).update(state=JobState.RUNNING, done=3, added=3, attempts=1)
    services.add_traces_to_session(session=session, traces=Trace.objects.filter(pk=ids[3]))
    TraceAddJob.objects.filter(pk=job.pk).update(updated_at=timezone.now() - timedelta(hours=1))
    job.refresh_from_db()
    assert job.is_stalled and job.can_retry
    services.retry_trace_add(job=job)
    job.refresh_from_db()
    assert (job.state, job.done, job.added, job.skipped, job.attempts) == (JobState.DONE, 8, 7, 1, 2)
    assert sorted(session.items.values_list("source_trace_id", flat=True)) == sorted(ids)
    assert list(session.items.order_by("position").values_list("position", flat=True)) == list(range(1, 9))


def test_a_batch_that_runs_again_skips_what_it_had_copied(batches_of_three) -> None:
    session = services.create_labeling_session(name="Again")
    ids = [t.pk for t in traces(5)]
    services.add_traces_to_session(session=session, traces=Trace.objects.filter(pk__in=ids))
    job = services.start_trace_add(session=session, source_ids=ids, requested_by=None)
    job.refresh_from_db()
    assert (job.state, job.added, job.skipped) == (JobState.DONE, 0, 5)
    assert session.items.count() == 5


def test_traces_deleted_after_the_request_are_counted_not_fatal(admin: Client) -> None:
    session = services.create_labeling_session(name="Deleted")
    ids = [t.pk for t in traces(4)]
    job = services.start_trace_add(session=session, source_ids=ids, requested_by=None, enqueue=False)
    Trace.objects.filter(pk=ids[0]).delete()
    run_trace_add.call(job_id=job.pk)
    job.refresh_from_db()
    assert (job.state, job.added, job.missing) == (JobState.DONE, 3, 1)
    assert "1 was deleted before it could be copied" in admin.get(job_url(job)).content.decode()


def test_a_failure_shows_a_message_and_a_retry_finishes_the_job(admin: Client, monkeypatch, batches_of_three) -> None:
    session = services.create_labeling_session(name="Fails")
    ids = [t.pk for t in traces(7)]
    real = services.copy_traces
    calls = {"n": 0}

    def flaky(**kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("disk full")
        return real(**kwargs)

    monkeypatch.setattr(services, "copy_traces", flaky)
    job = services.start_trace_add(session=session, source_ids=ids, requested_by=None)
    job.refresh_from_db()
    assert (job.state, job.done, job.added) == (JobState.FAILED, 3, 3) and "disk full" in job.error
    assert session.items.count() == 3  # the failed batch left nothing behind
    page = admin.get(session.get_absolute_url()).content.decode()
    assert "Adding traces stopped" in page and "RuntimeError: disk full" in page and ">Retry</button>" in page
    response = admin.post(reverse("labeling:trace_add_job_retry", args=[session.pk, job.pk]))
    assert response.status_code == 302
    job.refresh_from_db()
    assert (job.state, job.done, job.added, job.error) == (JobState.DONE, 7, 7, "")
    assert session.items.count() == 7


def test_progress_full_page_and_htmx_partial(admin: Client) -> None:
    session = services.create_labeling_session(name="Progress")
    ids = [t.pk for t in traces(10)]
    job = services.start_trace_add(session=session, source_ids=ids, requested_by=None, enqueue=False)
    TraceAddJob.objects.filter(pk=job.pk).update(state=JobState.RUNNING, done=4, added=4)
    full = admin.get(job_url(job))
    body = full.content.decode()
    assert full.status_code == 200 and "<html" in body
    assert '<progress class="wide" max="10" value="4">40%</progress>' in body
    assert "4 of 10 · 40%" in body and f'href="{job_url(job)}">Refresh</a>' in body  # works without JS
    partial = admin.get(job_url(job), HTTP_HX_REQUEST="true").content.decode()
    assert partial.strip().startswith(f'<section id="add-job-{job.pk}"') and "<html" not in partial
    assert 'hx-trigger="every 2s"' in partial
    dashboard = admin.get(session.get_absolute_url()).content.decode()
    assert f'id="add-job-{job.pk}"' in dashboard and 'hx-trigger="every 2s"' in dashboard
    run_trace_add.call(job_id=job.pk)
    done = admin.get(job_url(job), HTTP_HX_REQUEST="true")
    assert "Added 10 traces" in done.content.decode() and "hx-trigger" not in done.content.decode()  # polling stops
    assert done["HX-Trigger"] == "trace-add-done"  # and the progress card refreshes


def test_a_queued_job_says_it_waits_for_a_worker_and_a_stalled_one_can_be_retried(admin: Client) -> None:
    session = services.create_labeling_session(name="Waiting")
    job = services.start_trace_add(
        session=session, source_ids=[t.pk for t in traces(2)], requested_by=None, enqueue=False
    )
    assert "Waiting for a background worker" in admin.get(job_url(job)).content.decode()
    assert ">Retry</button>" not in admin.get(job_url(job)).content.decode()
    refused = admin.post(reverse("labeling:trace_add_job_retry", args=[session.pk, job.pk]), HTTP_HX_REQUEST="true")
    assert refused.status_code == 409 and "This add is still running." in refused.content.decode()
    TraceAddJob.objects.filter(pk=job.pk).update(updated_at=timezone.now() - timedelta(hours=1))
    stalled = admin.get(job_url(job)).content.decode()
    assert "is a background worker running" in stalled and ">Retry</button>" in stalled
    response = admin.post(reverse("labeling:trace_add_job_retry", args=[session.pk, job.pk]), HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and "Added 2 traces" in response.content.decode()


def test_only_session_managers_see_and_poll_a_job(client: Client, admin_user, reviewer, outsider) -> None:
    session = services.create_labeling_session(name="Private", reviewers=[reviewer])
    other = services.create_labeling_session(name="Other")
    lead = User.objects.create_user("lead")
    other.leads.add(lead)
    job = services.start_trace_add(session=session, source_ids=[traces(1)[0].pk], requested_by=None, enqueue=False)
    retry = reverse("labeling:trace_add_job_retry", args=[session.pk, job.pk])
    for user in (reviewer, outsider, lead):
        client.force_login(user)
        assert client.get(job_url(job)).status_code == 404
        assert client.get(job_url(job), HTTP_HX_REQUEST="true").status_code == 404
        assert client.post(retry).status_code == 403
    session.leads.add(lead)
    client.force_login(lead)
    assert client.get(job_url(job)).status_code == 200
    client.logout()
    assert client.get(job_url(job)).status_code == 302  # to the login page
    job.refresh_from_db()
    assert job.state == JobState.QUEUED and job.attempts == 0


def test_unknown_job_or_a_job_of_another_session_is_404(admin: Client) -> None:
    session = services.create_labeling_session(name="Mine")
    other = services.create_labeling_session(name="Theirs")
    job = services.start_trace_add(session=other, source_ids=[traces(1)[0].pk], requested_by=None, enqueue=False)
    for url in (
        reverse("labeling:trace_add_job", args=[session.pk, job.pk]),
        reverse("labeling:trace_add_job", args=[session.pk, 999_999]),
        reverse("labeling:trace_add_job", args=[999_999, job.pk]),
    ):
        assert admin.get(url).status_code == 404
    assert admin.post(reverse("labeling:trace_add_job_retry", args=[session.pk, job.pk])).status_code == 404
    assert admin.get(reverse("labeling:trace_add_job_retry", args=[other.pk, job.pk])).status_code == 405
    job.refresh_from_db()
    assert job.state == JobState.QUEUED and other.items.count() == 0


def test_retrying_a_finished_job_is_refused_and_changes_nothing(admin: Client) -> None:
    session = services.create_labeling_session(name="Finished")
    job = services.start_trace_add(session=session, source_ids=[traces(1)[0].pk], requested_by=None)
    response = admin.post(reverse("labeling:trace_add_job_retry", args=[session.pk, job.pk]), follow=True)
    assert "This add has already finished." in response.content.decode()
    job.refresh_from_db()
    assert (job.state, job.attempts, session.items.count()) == (JobState.DONE, 1, 1)


def test_dashboard_queries_stay_constant_with_jobs_and_answers(admin: Client, django_assert_max_num_queries) -> None:
    session = services.create_labeling_session(name="Counted")
    for n in (1, 3):
        services.start_trace_add(session=session, source_ids=[t.pk for t in traces(n)], requested_by=None)
    with django_assert_max_num_queries(25) as captured:
        assert admin.get(session.get_absolute_url()).status_code == 200
    first = len(captured)
    for _ in range(3):
        services.start_trace_add(
            session=session, source_ids=[t.pk for t in traces(2)], requested_by=None, enqueue=False
        )
    with django_assert_max_num_queries(first) as captured:
        assert admin.get(session.get_absolute_url()).status_code == 200
    assert len(captured) == first


def test_disagreement_count_in_sql_matches_the_item_list(reviewer, outsider) -> None:
    from labeling import claims, submissions
    from labeling.models import LabelSchema

    schemas = [
        services.save_label_schema(schema=LabelSchema(name="ok", title="OK?", input_type="pass_fail")),
        services.save_label_schema(
            schema=LabelSchema(name="tags", title="Tags", input_type="categorical_list", options=["a", "b", "c"])
        ),
    ]
    session = services.create_labeling_session(name="Split", schemas=schemas, reviewers=[reviewer, outsider])
    session.reviewers_per_item = 2
    session.save()
    services.add_traces_to_session(session=session, traces=Trace.objects.filter(pk__in=[t.pk for t in traces(5)]))
    answers = {
        reviewer: [("pass", ["a", "b"]), ("pass", ["a"]), ("fail", ["c"]), ("pass", ["b", "a"]), ("pass", ["a"])],
        outsider: [("pass", ["b", "a"]), ("fail", ["a"]), ("fail", ["c", "a"]), ("pass", ["a", "b"]), ("pass", ["a"])],
    }
    for index, item in enumerate(session.items.order_by("position")):
        for user, given in answers.items():
            claims.claim_next_item(session=session, reviewer=user)
            ok, tags = given[index]
            submissions.submit_review(item=item, reviewer=user, raw_answers={"ok": ok, "tags": tags})
    split = disagreements(session)
    assert len(split) == 2
    assert disagreement_count(session, ["ok", "tags"]) == 2
    assert disagreement_count(session, ["tags"]) == 1
