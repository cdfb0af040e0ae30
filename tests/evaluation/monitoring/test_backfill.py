"""Backfill jobs: re-scoring history with registered scorers, exactly once per trace × registration version,
with progress, rate overrides, time ranges, cancel, resume, a killed worker and two jobs at once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone

from evaluation.monitoring import backfill
from evaluation.monitoring.backfill import (
    BackfillError,
    cancel_backfill,
    count_progress,
    execute_backfill,
    parse_scorer_spec,
    plan_backfill,
    rate_and_eta,
    resume_backfill,
    start_backfill,
)
from evaluation.monitoring.models import BackfillJob, BackfillStatus, MonitoringResult, MonitoringWork
from evaluation.monitoring.registrations import delete_scorer, register_scorer, start_scorer, update_scorer
from evaluation.monitoring.sampling import is_sampled
from evaluation.monitoring.scoring import BACKFILL_KEY, REGISTRATION_VERSION_KEY, BatchScorer, score_next_batch
from tests.factories import make_experiment, make_trace
from traces.completion import traces_completed
from traces.models import Assessment, Experiment, ExperimentKind, Trace

pytestmark = pytest.mark.django_db
DAY = datetime(2026, 11, 1, tzinfo=UTC)


class Killed(BaseException):
    """A worker process dying: nothing in the code under test catches it (it is no ``Exception``)."""


@pytest.fixture
def production() -> Experiment:
    return make_experiment("Production")


def history(experiment: Experiment, n: int, *, hours: int = 1, **fields: Any) -> list[Trace]:
    """``n`` completed traces an hour apart from DAY (not scored live: they predate the registrations)."""
    return [
        make_trace(experiment=experiment, request_time=DAY + timedelta(hours=i * hours), answer="a" * (i + 1), **fields)
        for i in range(n)
    ]


def length_scorer(experiment: Experiment, rate: float = 1.0, **kw: Any):
    return register_scorer(experiment=experiment, name="length", scorer_name="response_length", sample_rate=rate, **kw)


def scored(name: str = "length") -> dict[int, int]:
    """Assessments named ``name`` per trace pk."""
    counts: dict[int, int] = {}
    for trace_pk in Assessment.objects.filter(name=name).values_list("trace_id", flat=True):
        counts[trace_pk] = counts.get(trace_pk, 0) + 1
    return counts


def run(job: BackfillJob, capture: Any) -> BackfillJob:
    """Execute the job as its task would (at commit, like a worker picking it)."""
    with capture(execute=True):
        execute_backfill(job.pk)
    job.refresh_from_db()
    return job


# ---------------------------------------------------------------- scoring history once


def test_a_backfill_scores_every_completed_trace_of_the_range_once(production, django_capture_on_commit_callbacks):
    traces = history(production, 5)
    registration = length_scorer(production)
    with django_capture_on_commit_callbacks(execute=True):
        job = start_backfill(experiment=production, scorers=[("length", None)])  # the task runs at commit
    job.refresh_from_db()
    assert job.status == BackfillStatus.FINISHED and job.planned
    assert (job.progress_done, job.progress_total) == (5, 5)
    assert job.started_at is not None and job.finished_at is not None
    assert scored() == {t.pk: 1 for t in traces}
    feedback = Assessment.objects.get(trace=traces[2], name="length")
    assert feedback.value == 3
    assert feedback.metadata[BACKFILL_KEY] == job.job_id
    assert feedback.metadata[REGISTRATION_VERSION_KEY] == str(registration.version)
    assert set(MonitoringResult.objects.values_list("backfill_id", flat=True)) == {job.pk}
    assert not MonitoringWork.objects.exists()


def test_progress_counts_done_and_total_as_batches_commit(production):
    history(production, 5)
    length_scorer(production)
    job = start_backfill(experiment=production, scorers=[("length", None)], enqueue=False)
    assert (job.status, job.progress_total, job.planned) == (BackfillStatus.QUEUED, 0, False)
    assert plan_backfill(job)
    job.refresh_from_db()
    assert (job.progress_done, job.progress_total, job.planned) == (0, 5, True)
    assert MonitoringWork.objects.filter(backfill=job, priority=backfill.BACKFILL_PRIORITY).count() == 5
    scorer = BatchScorer()
    try:
        assert score_next_batch(scorer, limit=2) == 2
        job.refresh_from_db()
        assert (job.progress_done, job.progress_total, job.status) == (2, 5, BackfillStatus.QUEUED)
        assert score_next_batch(scorer, limit=10) == 3
    finally:
        scorer.close()
    job.refresh_from_db()
    assert (job.progress_done, job.progress_total, job.status) == (5, 5, BackfillStatus.FINISHED)


def test_planning_in_chunks_counts_each_trace_once(production, monkeypatch, django_capture_on_commit_callbacks):
    monkeypatch.setattr(backfill, "PLAN_CHUNK", 2)
    traces = history(production, 5)
    length_scorer(production)
    seen: list[tuple[int, bool]] = []
    job = start_backfill(experiment=production, scorers=[("length", None)], enqueue=False)
    execute_backfill(job.pk, on_progress=lambda p: seen.append((p.total, p.planned)))
    job.refresh_from_db()
    assert (job.progress_done, job.progress_total, job.status) == (5, 5, BackfillStatus.FINISHED)
    assert seen[:2] == [(2, False), (4, False)]  # planning… then the bar's total is final
    assert seen[-1] == (5, True)
    assert scored() == {t.pk: 1 for t in traces}


def test_a_job_with_nothing_to_score_finishes_at_zero(production, django_capture_on_commit_callbacks):
    length_scorer(production)
    job = run(start_backfill(experiment=production, scorers=[("length", None)], enqueue=False),
              django_capture_on_commit_callbacks)  # fmt: skip
    assert (job.status, job.progress_done, job.progress_total) == (BackfillStatus.FINISHED, 0, 0)


# ---------------------------------------------------------------- what is skipped, what is re-scored


def test_traces_already_scored_by_the_same_version_are_skipped(production, django_capture_on_commit_callbacks):
    old = history(production, 3)
    length_scorer(production)
    with django_capture_on_commit_callbacks(execute=True):  # two new traces are scored live by the same version
        live = [make_trace(experiment=production, request_time=DAY + timedelta(days=1, hours=i)) for i in range(2)]
        traces_completed([t.pk for t in live])
    assert scored() == {t.pk: 1 for t in live}
    job = run(start_backfill(experiment=production, scorers=[("length", None)], enqueue=False),
              django_capture_on_commit_callbacks)  # fmt: skip
    assert (job.progress_done, job.progress_total) == (3, 3)
    assert scored() == {t.pk: 1 for t in old + live}
    assert MonitoringResult.objects.count() == 5


def test_a_new_registration_version_scores_history_again(production, django_capture_on_commit_callbacks):
    traces = history(production, 3)
    registration = length_scorer(production)
    first = run(start_backfill(experiment=production, scorers=[("length", None)], enqueue=False),
                django_capture_on_commit_callbacks)  # fmt: skip
    registration = update_scorer(registration=registration, sample_rate=0.999)  # a new version (v2)
    again = run(start_backfill(experiment=production, scorers=[("length", None)], enqueue=False),
                django_capture_on_commit_callbacks)  # fmt: skip
    assert first.scorers[0]["version"] == 1 and again.scorers[0]["version"] == 2
    sampled = {t.pk for t in traces if is_sampled(t.trace_id, "length", 0.999)}
    assert (again.progress_done, again.progress_total) == (len(sampled), len(sampled))
    assert set(MonitoringResult.objects.filter(backfill=again).values_list("trace_id", flat=True)) == sampled
    feedback = Assessment.objects.filter(name="length").values_list("trace_id", "metadata")
    versions = [(trace_pk, metadata[REGISTRATION_VERSION_KEY]) for trace_pk, metadata in feedback]
    assert sorted(versions) == sorted([(t.pk, "1") for t in traces] + [(pk, "2") for pk in sampled])
    # and the same version again adds nothing
    third = run(start_backfill(experiment=production, scorers=[("length", None)], enqueue=False),
                django_capture_on_commit_callbacks)  # fmt: skip
    assert (third.progress_total, third.status) == (0, BackfillStatus.FINISHED)


def test_a_rate_override_scores_the_traces_live_sampling_at_that_rate_would(
    production, django_capture_on_commit_callbacks
):
    traces = history(production, 60, hours=0)
    registration = length_scorer(production, rate=0.0)  # registered, not sampling
    job = run(start_backfill(experiment=production, scorers=[("length", 0.3)], enqueue=False),
              django_capture_on_commit_callbacks)  # fmt: skip
    by_backfill = set(MonitoringResult.objects.filter(backfill=job).values_list("trace_id", flat=True))
    assert 5 < len(by_backfill) < 35
    assert job.scorers[0]["sample_rate"] == 0.3 and job.scorers[0]["rate_overridden"]
    start_scorer(registration=registration, sample_rate=0.3)  # live at 0.3 (a new version: everything again)
    with django_capture_on_commit_callbacks(execute=True):
        traces_completed([t.pk for t in traces])
    by_live = set(MonitoringResult.objects.filter(backfill=None).values_list("trace_id", flat=True))
    assert by_backfill == by_live


def test_the_registration_filter_applies(production, django_capture_on_commit_callbacks):
    prod = history(production, 2, tags={"env": "prod"})
    history(production, 2, tags={"env": "dev"})
    register_scorer(
        experiment=production, name="length", scorer_name="response_length", filter_string="tags.env = 'prod'"
    )
    job = run(start_backfill(experiment=production, scorers=[("length", 1.0)], enqueue=False),
              django_capture_on_commit_callbacks)  # fmt: skip
    assert job.progress_total == 2
    assert scored() == {t.pk: 1 for t in prod}


def test_the_time_range_limits_the_traces(production, django_capture_on_commit_callbacks):
    traces = history(production, 6)  # DAY 00:00 … 05:00
    later = make_trace(experiment=production, request_time=timezone.now() + timedelta(days=1))
    other = make_trace(experiment=make_experiment("Staging"), request_time=DAY)
    length_scorer(production)
    job = start_backfill(
        experiment=production,
        scorers=[("length", None)],
        start=DAY + timedelta(hours=1),
        end=DAY + timedelta(hours=3),
        enqueue=False,
    )
    job = run(job, django_capture_on_commit_callbacks)
    assert scored() == {t.pk: 1 for t in traces[1:4]}  # both ends included
    open_ended = run(start_backfill(experiment=production, scorers=[("length", None)], enqueue=False),
                     django_capture_on_commit_callbacks)  # fmt: skip
    assert open_ended.end_time is not None  # blank end: when the job was created
    assert scored() == {t.pk: 1 for t in traces}  # not the trace from tomorrow, nor another experiment's
    assert later.pk not in scored() and other.pk not in scored()


def test_traces_still_in_progress_are_skipped(production, django_capture_on_commit_callbacks):
    done = history(production, 2)
    make_trace(experiment=production, request_time=DAY, state="IN_PROGRESS")
    length_scorer(production)
    job = run(start_backfill(experiment=production, scorers=[("length", None)], enqueue=False),
              django_capture_on_commit_callbacks)  # fmt: skip
    assert job.progress_total == 2
    assert scored() == {t.pk: 1 for t in done}


# ---------------------------------------------------------------- cancel and resume


def _planned_and_partly_scored(experiment: Experiment, n: int = 5, done: int = 2) -> BackfillJob:
    job = start_backfill(experiment=experiment, scorers=[("length", None)], enqueue=False)
    BackfillJob.objects.filter(pk=job.pk).update(status=BackfillStatus.RUNNING, started_at=timezone.now())
    assert plan_backfill(job)
    scorer = BatchScorer()
    try:
        assert score_next_batch(scorer, limit=done) == done
    finally:
        scorer.close()
    job.refresh_from_db()
    return job


def test_cancel_drops_the_queued_work_and_keeps_what_was_scored(production, django_capture_on_commit_callbacks):
    history(production, 5)
    length_scorer(production)
    job = _planned_and_partly_scored(production)
    with django_capture_on_commit_callbacks(execute=False):  # live work queued meanwhile (its worker not run)
        live = make_trace(experiment=production, request_time=timezone.now())
        traces_completed([live.pk])
    assert cancel_backfill(job=job)
    assert (job.status, job.progress_done, job.progress_total) == (BackfillStatus.CANCELLED, 2, 5)
    assert job.finished_at is not None
    assert not MonitoringWork.objects.filter(backfill=job).exists()
    assert MonitoringWork.objects.filter(trace=live, backfill=None).count() == 1  # live work is not the job's
    assert len(scored()) == 2 and MonitoringResult.objects.filter(backfill=job).count() == 2
    assert not cancel_backfill(job=job)  # it had ended
    assert execute_backfill(job.pk).status == BackfillStatus.CANCELLED  # a late task does nothing


def test_resume_finishes_with_no_duplicate_assessments_or_ledger_rows(production, django_capture_on_commit_callbacks):
    traces = history(production, 5)
    length_scorer(production)
    job = _planned_and_partly_scored(production)
    cancel_backfill(job=job)
    with django_capture_on_commit_callbacks(execute=True):
        resume_backfill(job=job)
    job.refresh_from_db()
    assert (job.status, job.progress_done, job.progress_total) == (BackfillStatus.FINISHED, 5, 5)
    assert scored() == {t.pk: 1 for t in traces}
    assert MonitoringResult.objects.filter(backfill=job).count() == 5
    with pytest.raises(BackfillError, match="finished: nothing to resume"):
        resume_backfill(job=job)


def test_a_cancel_between_planning_chunks_stops_the_planner(production, monkeypatch):
    monkeypatch.setattr(backfill, "PLAN_CHUNK", 2)
    history(production, 5)
    length_scorer(production)
    job = start_backfill(experiment=production, scorers=[("length", None)], enqueue=False)
    BackfillJob.objects.filter(pk=job.pk).update(status=BackfillStatus.RUNNING)
    assert not plan_backfill(job, on_progress=lambda _progress: cancel_backfill(job=job))
    assert not MonitoringWork.objects.exists()
    job.refresh_from_db()
    assert job.status == BackfillStatus.CANCELLED and not job.planned


def test_a_queued_job_cannot_be_resumed(production):
    length_scorer(production)
    job = start_backfill(experiment=production, scorers=[("length", None)], enqueue=False)
    with pytest.raises(BackfillError, match="is queued"):
        resume_backfill(job=job)


# ---------------------------------------------------------------- a worker killed mid-job


def test_a_worker_killed_while_planning_and_while_scoring_loses_and_repeats_nothing(
    production, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(backfill, "PLAN_CHUNK", 2)
    traces = history(production, 5)
    length_scorer(production)
    job = start_backfill(experiment=production, scorers=[("length", None)], enqueue=False)
    real_plan_chunk = backfill._plan_chunk
    calls = []

    def dies_in_the_second_chunk(job: BackfillJob, chunk: list[tuple[int, str]]) -> int:
        calls.append(chunk)
        written = real_plan_chunk(job, chunk)
        if len(calls) == 2:
            raise Killed  # after its rows were inserted: the chunk's transaction rolls back
        return written

    monkeypatch.setattr(backfill, "_plan_chunk", dies_in_the_second_chunk)
    with pytest.raises(Killed):
        execute_backfill(job.pk)
    job.refresh_from_db()
    assert job.status == BackfillStatus.RUNNING  # as a dead worker leaves it
    assert (job.planned_through, job.planned) == (traces[1].pk, False)
    assert MonitoringWork.objects.filter(backfill=job).count() == 2
    monkeypatch.setattr(backfill, "_plan_chunk", real_plan_chunk)

    def dies_after_writing(_pks: Any) -> None:
        raise Killed  # inside score_next_batch, after its assessments and ledger rows were inserted

    monkeypatch.setattr(backfill, "count_progress", dies_after_writing)
    scorer = BatchScorer()
    try:
        with pytest.raises(Killed):
            score_next_batch(scorer)
    finally:
        scorer.close()
    assert not Assessment.objects.filter(name="length").exists() and not MonitoringResult.objects.exists()
    assert MonitoringWork.objects.filter(backfill=job).count() == 2  # the batch is claimable again
    monkeypatch.setattr(backfill, "count_progress", count_progress)

    with django_capture_on_commit_callbacks(execute=True):
        resume_backfill(job=job)  # a running job whose worker died may be resumed
    job.refresh_from_db()
    assert (job.status, job.progress_done, job.progress_total) == (BackfillStatus.FINISHED, 5, 5)
    assert scored() == {t.pk: 1 for t in traces}
    assert MonitoringResult.objects.count() == 5 and not MonitoringWork.objects.exists()


def test_running_the_same_job_twice_adds_nothing(production, django_capture_on_commit_callbacks):
    traces = history(production, 3)
    length_scorer(production)
    job = start_backfill(experiment=production, scorers=[("length", None)], enqueue=False)
    run(job, django_capture_on_commit_callbacks)
    BackfillJob.objects.filter(pk=job.pk).update(status=BackfillStatus.RUNNING, planned=False, planned_through=0)
    job = run(job, django_capture_on_commit_callbacks)  # a retried task
    assert job.status == BackfillStatus.FINISHED and job.progress_done == 3
    assert scored() == {t.pk: 1 for t in traces}


def test_an_error_on_our_side_fails_the_job_and_resume_goes_on(
    production, monkeypatch, django_capture_on_commit_callbacks
):
    traces = history(production, 3)
    length_scorer(production)
    job = start_backfill(experiment=production, scorers=[("length", None)], enqueue=False)

    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("database went away")

    monkeypatch.setattr(backfill, "_plan_chunk", broken)
    job = execute_backfill(job.pk)
    assert job.status == BackfillStatus.FAILED and job.error == "RuntimeError: database went away"
    monkeypatch.undo()
    with django_capture_on_commit_callbacks(execute=True):
        resume_backfill(job=job)
    job.refresh_from_db()
    assert (job.status, job.error, job.progress_done) == (BackfillStatus.FINISHED, "", 3)
    assert scored() == {t.pk: 1 for t in traces}


# ---------------------------------------------------------------- two jobs at once


def test_two_jobs_over_the_same_scorer_score_each_trace_once(production, django_capture_on_commit_callbacks):
    traces = history(production, 20, hours=0)
    length_scorer(production)
    small = start_backfill(experiment=production, scorers=[("length", 0.3)], enqueue=False)
    full = start_backfill(experiment=production, scorers=[("length", None)], enqueue=False)
    for job in (small, full):  # both planned before either is scored
        BackfillJob.objects.filter(pk=job.pk).update(status=BackfillStatus.RUNNING)
        assert plan_backfill(job)
    sampled = {t.pk for t in traces if is_sampled(t.trace_id, "length", 0.3)}
    small.refresh_from_db()
    full.refresh_from_db()
    assert small.progress_total == len(sampled)
    assert full.progress_total == 20 - len(sampled)  # what the other job queued is left to it
    run(full, django_capture_on_commit_callbacks)  # its worker scores the whole queue
    small.refresh_from_db()
    full.refresh_from_db()
    assert (small.status, small.progress_done) == (BackfillStatus.FINISHED, len(sampled))
    assert (full.status, full.progress_done) == (BackfillStatus.FINISHED, 20 - len(sampled))
    assert scored() == {t.pk: 1 for t in traces}
    assert MonitoringResult.objects.count() == 20


def test_a_job_over_two_scorers_counts_each_verdict(production, django_capture_on_commit_callbacks):
    traces = history(production, 4)
    length_scorer(production)
    register_scorer(experiment=production, name="docs", scorer_name="has_retrieved_documents", sample_rate=0.5)
    job = run(start_backfill(experiment=production, scorers=[("length", None), ("docs", 1.0)], enqueue=False),
              django_capture_on_commit_callbacks)  # fmt: skip
    assert (job.progress_done, job.progress_total) == (8, 8)
    assert scored("length") == scored("docs") == {t.pk: 1 for t in traces}
    assert [s["name"] for s in job.scorers] == ["length", "docs"]


# ---------------------------------------------------------------- rate and ETA


def test_rate_and_eta_follow_the_ledger_of_the_current_stretch(production, django_capture_on_commit_callbacks):
    history(production, 4)
    length_scorer(production)
    job = run(start_backfill(experiment=production, scorers=[("length", None)], enqueue=False),
              django_capture_on_commit_callbacks)  # fmt: skip
    scored_at = MonitoringResult.objects.filter(backfill=job).values_list("scored_at", flat=True)
    first, last = min(scored_at), max(scored_at)
    # as if it were still running 10 s after it started, with 6 more verdicts to go
    BackfillJob.objects.filter(pk=job.pk).update(
        status=BackfillStatus.RUNNING, started_at=first, finished_at=None, progress_total=10
    )
    job.refresh_from_db()
    rate, eta = rate_and_eta(job, now=first + timedelta(seconds=10))
    assert rate == pytest.approx(0.4) and eta == pytest.approx(15.0)
    assert last - first < timedelta(seconds=30)
    assert rate_and_eta(job, now=first + timedelta(seconds=100)) == (None, None)  # only the last minute counts
    assert rate_and_eta(BackfillJob(progress_done=0), now=first) == (None, None)  # not started


# ---------------------------------------------------------------- bad input changes nothing


@pytest.mark.parametrize(
    ("scorers", "message"),
    [
        ([], "pick at least one registered scorer"),
        ([("nope", None)], "has no scorer registered as 'nope'"),
        ([("gone", None)], "has no scorer registered as 'gone'"),
        ([("length", 1.5)], "length: the sample rate must be from 0 to 1 (got 1.5)"),
        ([("length", -0.1)], "the sample rate must be from 0 to 1"),
        ([("length", float("nan"))], "the sample rate must be a number from 0 to 1"),
        ([("length", 0.0)], "samples nothing (rate 0)"),
        ([("idle", None)], "scorer 'idle' samples nothing (rate 0): give it a rate for this job"),
        ([("length", None), ("nope", 0.5)], "has no scorer registered as 'nope'"),
    ],
)
def test_bad_scorers_start_nothing(production, scorers, message):
    length_scorer(production)
    register_scorer(experiment=production, name="idle", scorer_name="response_length")
    gone = register_scorer(experiment=production, name="gone", scorer_name="response_length", sample_rate=1.0)
    delete_scorer(registration=gone)
    with pytest.raises(BackfillError) as error:
        start_backfill(experiment=production, scorers=scorers)
    assert message in str(error.value)
    assert not BackfillJob.objects.exists()


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        (DAY, DAY, "the start of the range must be before its end"),
        (DAY + timedelta(hours=1), DAY, "the start of the range must be before its end"),
        (timezone.now() + timedelta(days=1), None, "the start of the range must be before its end"),
        (datetime(2026, 11, 1), None, "give times with a time zone"),
        (None, datetime(2026, 11, 1), "give times with a time zone"),
    ],
)
def test_bad_time_ranges_start_nothing(production, start, end, message):
    length_scorer(production)
    with pytest.raises(BackfillError, match=message):
        start_backfill(experiment=production, scorers=[("length", None)], start=start, end=end)
    assert not BackfillJob.objects.exists()


def test_a_labeling_copy_experiment_is_refused(production):
    copies = Experiment.objects.create(name="Session copies", kind=ExperimentKind.LABELING)
    with pytest.raises(BackfillError, match="labeling session's copies"):
        start_backfill(experiment=copies, scorers=[("length", None)])
    assert not BackfillJob.objects.exists()


@pytest.mark.parametrize(
    ("spec", "parsed"), [("length", ("length", None)), ("length:0.25", ("length", 0.25)), (" a :1", ("a", 1.0))]
)
def test_scorer_specs(spec, parsed):
    assert parse_scorer_spec(spec) == parsed


@pytest.mark.parametrize("spec", ["", ":0.5", "length:", "length:half", "length:0.5:1"])
def test_bad_scorer_specs(spec):
    with pytest.raises(BackfillError):
        parse_scorer_spec(spec)


# ---------------------------------------------------------------- a cancel racing a worker (PostgreSQL row locks)


@pytest.mark.django_db(transaction=True)
def test_a_cancel_while_a_worker_holds_a_batch_neither_waits_nor_loses_the_batch():
    import threading

    from django.db import connection, connections

    if connection.vendor != "postgresql":
        pytest.skip("row locks (SKIP LOCKED) are PostgreSQL's")
    production = make_experiment("Production")
    history(production, 6)
    length_scorer(production)
    job = start_backfill(experiment=production, scorers=[("length", None)], enqueue=False)
    BackfillJob.objects.filter(pk=job.pk).update(status=BackfillStatus.RUNNING, started_at=timezone.now())
    assert plan_backfill(job)
    claimed, go, failures = threading.Event(), threading.Event(), []

    def worker() -> None:
        scorer = BatchScorer()
        real_score = scorer.score

        def score_when_told(batch: Any) -> Any:
            claimed.set()  # its two rows are locked (FOR UPDATE) until it commits
            go.wait(timeout=20)
            return real_score(batch)

        scorer.score = score_when_told  # type: ignore[method-assign]
        try:
            score_next_batch(scorer, limit=2)
        except Exception as error:  # reported to the test thread
            failures.append(error)
        finally:
            scorer.close()
            connections.close_all()

    thread = threading.Thread(target=worker)
    thread.start()
    try:
        assert claimed.wait(timeout=20)
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '5s'")  # waiting on the worker's rows would fail here
        assert cancel_backfill(job=job)
        assert MonitoringWork.objects.filter(backfill=job).count() == 2  # the held rows stay with their worker
    finally:
        go.set()
        thread.join(timeout=30)
    assert not failures
    job.refresh_from_db()
    assert job.status == BackfillStatus.CANCELLED and job.progress_done == 2  # the batch was kept and counted
    assert not MonitoringWork.objects.exists() and MonitoringResult.objects.filter(backfill=job).count() == 2
