"""The client's production-monitoring calls (``reviewapp_client.scorers``) against a live server: a
registration's lifecycle as MLflow's scorer methods make it, and a backfill a worker then runs."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import pytest
from django.db import connection

from evaluation.monitoring.backfill import execute_backfill
from evaluation.monitoring.models import BackfillJob
from reviewapp_client import ReviewAppError
from reviewapp_client import scorers as monitoring
from reviewapp_client.scorers import BackfillScorerConfig, ScorerSamplingConfig
from tests.factories import make_experiment, make_trace
from traces.models import Assessment


@pytest.fixture(autouse=True)
def scorer_modules(settings: Any) -> None:
    settings.SCORER_MODULES = ["tests.evaluation.scorer_modules.verdicts"]
    settings.SCORER_TIMEOUT_SECONDS = 5


@pytest.fixture
def prod(transactional_db: None) -> Any:
    experiment = make_experiment("prod")
    for answer in ("ok", "a much longer answer", "fine"):
        make_trace(experiment=experiment, answer=answer)
    return experiment


def test_register_start_update_stop_delete(admin_client: Any, prod: Any) -> None:
    short = monitoring.register_scorer("is_short", name="short", experiment_id=prod.pk)
    assert (short.name, short.scorer_name, short.status, short.version) == ("short", "is_short", "registered", 1)
    active = short.start(sampling_config=ScorerSamplingConfig(sample_rate=0.5, filter_string="trace.status = 'OK'"))
    assert active.status == "active" and active.sampling_config == ScorerSamplingConfig(0.5, "trace.status = 'OK'")
    assert short.status == "registered"  # each change is a new object, as MLflow's scorers
    updated = active.update(sampling_config=ScorerSamplingConfig(sample_rate=0.25))
    assert updated.sample_rate == 0.25 and updated.filter_string == "trace.status = 'OK'"
    stopped = updated.stop()
    assert stopped.status == "stopped" and stopped.sample_rate == 0
    got = monitoring.get_scorer(name="short", experiment_id=prod.pk)
    assert [v["action"] for v in got.versions] == ["register", "start", "update", "stop"]
    assert [s.name for s in monitoring.list_scorers(experiment_id=prod.pk)] == ["short"]

    with pytest.raises(ReviewAppError) as caught:
        monitoring.register_scorer("is_short", name="short", experiment_id=prod.pk)
    assert caught.value.error_code == "RESOURCE_ALREADY_EXISTS" and caught.value.status_code == 409
    with pytest.raises(ReviewAppError) as caught:
        monitoring.register_scorer("no_such_scorer", experiment_id=prod.pk)
    assert caught.value.error_code == "INVALID_PARAMETER_VALUE"
    with pytest.raises(ReviewAppError) as caught:
        monitoring.list_scorers()
    assert caught.value.error_code == "INVALID_PARAMETER_VALUE" and "experiment_id" in caught.value.message

    monitoring.delete_scorer(name="short", experiment_id=prod.pk)
    assert monitoring.list_scorers(experiment_id=prod.pk) == []
    with pytest.raises(ReviewAppError) as caught:
        monitoring.get_scorer(name="short", experiment_id=prod.pk)
    assert caught.value.error_code == "RESOURCE_DOES_NOT_EXIST"


def run_as_worker(job_pk: int) -> None:
    try:
        execute_backfill(job_pk)
    finally:
        connection.close()


@pytest.fixture
def queued_tasks(settings: Any) -> None:
    """Tasks wait in the database, as in production, until a worker (here the test) runs them."""
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}


def test_backfill_scores_past_traffic(admin_client: Any, prod: Any, queued_tasks: None) -> None:
    short = monitoring.register_scorer("is_short", name="short", experiment_id=prod.pk)
    with pytest.raises(ReviewAppError) as caught:  # registered at rate 0: the job needs a rate of its own
        monitoring.backfill_scorers(experiment_id=prod.pk, scorers=["short"])
    assert "rate 0" in caught.value.message and not BackfillJob.objects.exists()
    with pytest.raises(ReviewAppError):
        monitoring.backfill_scorers(
            experiment_id=prod.pk, scorers=[BackfillScorerConfig(short, 1.0)], start_time=datetime(2026, 1, 1)
        )
    assert not BackfillJob.objects.exists()  # a time without a time zone

    job = monitoring.start_backfill(
        experiment_id=prod.pk,
        scorers=[BackfillScorerConfig(short, sample_rate=1.0)],
        start_time=datetime(2020, 1, 1, tzinfo=UTC),
    )
    assert job.status == "queued" and not job.done
    worker = threading.Timer(0.3, run_as_worker, args=[BackfillJob.objects.get(job_id=job.job_id).pk])
    worker.start()  # the queued task, run a moment later by a "worker" while wait() polls
    finished = job.wait(timeout=30, poll_seconds=0.05)
    worker.join()
    assert finished.status == "finished" and finished.progress["done"] == finished.progress["total"] == 3
    verdicts = Assessment.objects.filter(trace__experiment=prod, name="short", valid=True)
    assert sorted(v.value for v in verdicts) == [False, True, True]
    assert [j.job_id for j in monitoring.search_backfills(experiment_id=prod.pk)] == [job.job_id]
    assert monitoring.get_backfill(job.job_id).status == "finished"
    with pytest.raises(ReviewAppError) as caught:
        job.cancel()
    assert caught.value.error_code == "INVALID_PARAMETER_VALUE"


def test_search_experiments_gives_the_id_the_scorers_take(admin_client: Any, prod: Any) -> None:
    import reviewapp_client

    (found,) = reviewapp_client.search_experiments()
    assert (found.name, found.experiment_id) == ("prod", str(prod.pk))
    monitoring.register_scorer("is_short", experiment_id=found.experiment_id)
    assert [s.name for s in monitoring.list_scorers(experiment_id="prod")] == ["is_short"]
