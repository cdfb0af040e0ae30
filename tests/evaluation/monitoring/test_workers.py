"""Real ``db_worker`` processes on the monitoring queue: two at once, and one killed mid-batch, score each
(trace, registration version) exactly once. On PostgreSQL (``DATABASE_URL``) the workers claim with
``SKIP LOCKED``; on SQLite they take turns on the file, and the unique ledger keeps results single."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from evaluation.monitoring.models import MonitoringResult, MonitoringRollup, MonitoringWork, RegisteredScorer
from evaluation.monitoring.registrations import register_scorer
from evaluation.monitoring.rollups import rebuild_rollups
from evaluation.monitoring.sampling import queue_completed_traces
from tests.factories import make_experiment, make_trace
from tests.processes import child_database_url
from traces.models import Assessment

ROOT = Path(__file__).resolve().parents[3]
SCORERS = "evaluation.example_scorers,tests.evaluation.scorer_modules.slow"
KILLED_WORKER = """
import os, sys, time
import django
django.setup()
from django.db import connection
from evaluation.monitoring.models import MonitoringResult
from evaluation.monitoring.scoring import drain_queue

manager = MonitoringResult.objects
original = manager.bulk_create

def written_then_hang(*args, **kwargs):
    rows = original(*args, **kwargs)  # the batch's assessments and ledger rows are written, not committed
    pid = connection.connection.info.backend_pid if connection.vendor == "postgresql" else 0
    with open(sys.argv[1], "w") as marker:
        marker.write(str(pid))
    time.sleep(300)
    return rows

manager.bulk_create = written_then_hang
drain_queue()
"""


def _env(**extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": child_database_url(),
        "DJANGO_SETTINGS_MODULE": "reviewapp.settings",
        "TASKS_BACKEND": "django_tasks_db.DatabaseBackend",
        "SCORER_MODULES": SCORERS,
        "MONITORING_BATCH_SIZE": "20",
        **extra,
    }


@pytest.fixture
def queued(transactional_db: None, settings: Any) -> int:
    """150 live traces × 2 registrations at rate 1 queued (with one worker task per registration waiting)."""
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
    settings.SCORER_MODULES = SCORERS.split(",")
    experiment = make_experiment("Production")
    register_scorer(experiment=experiment, name="length", scorer_name="slow_length", sample_rate=1.0)
    register_scorer(experiment=experiment, name="docs", scorer_name="has_retrieved_documents", sample_rate=1.0)
    traces = [make_trace(experiment=experiment, n_spans=2, answer=f"answer {i}") for i in range(150)]
    queue_completed_traces([t.pk for t in traces])
    from evaluation.tasks import score_monitoring_queue

    score_monitoring_queue.enqueue()  # a second task waiting, so both workers find one
    return MonitoringWork.objects.count()


def _worker(**env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "manage.py", "db_worker", "--batch", "--no-startup-delay", "--no-reload", "-v0"],
        cwd=ROOT,
        env=_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(worker: subprocess.Popen[str]) -> None:
    _, stderr = worker.communicate(timeout=300)
    assert worker.returncode == 0, stderr[-3000:]


def _assert_scored_once(expected: int) -> None:
    assert expected == 300
    assert not MonitoringWork.objects.exists()
    assert MonitoringResult.objects.count() == expected
    assert Assessment.objects.filter(name__in=["length", "docs"]).count() == expected
    pairs = MonitoringResult.objects.values_list("trace_id", "registration_version_id")
    assert len(set(pairs)) == expected
    # the workers' hourly counts (what the dashboard charts) agree with a recount of the ledger
    counted = sorted(MonitoringRollup.objects.values_list("registration_id", "hour", "total", "numbers", "passed"))
    rebuild_rollups(RegisteredScorer.objects.values_list("pk", flat=True))
    assert counted == sorted(
        MonitoringRollup.objects.values_list("registration_id", "hour", "total", "numbers", "passed")
    )
    assert sum(row[2] for row in counted) == expected


def test_two_workers_score_every_sampled_trace_exactly_once(queued: int) -> None:
    workers = [_worker(), _worker()]
    for worker in workers:
        _finish(worker)
    _assert_scored_once(queued)


def _wait_for(path: Path, process: subprocess.Popen[str]) -> str:
    deadline = time.monotonic() + 120
    while not (path.exists() and path.read_text()):
        if process.poll() is not None:
            raise AssertionError(f"the worker exited before its first batch: {process.stderr.read()[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError("the worker did not reach its first batch")
        time.sleep(0.05)
    return path.read_text()


def _wait_until_backend_gone(pid: int) -> None:
    """PostgreSQL ends a killed client's session (rolling back its transaction, releasing its row locks)."""
    if connection.vendor != "postgresql" or not pid:
        return
    deadline = time.monotonic() + 60
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [pid])
            if cursor.fetchone()[0] == 0:
                return
            time.sleep(0.05)
    raise AssertionError(f"backend {pid} of the killed worker is still there")


def test_a_worker_killed_mid_batch_loses_nothing_and_duplicates_nothing(queued: int, tmp_path: Path) -> None:
    marker = tmp_path / "written"
    doomed = subprocess.Popen(
        [sys.executable, "-c", KILLED_WORKER, str(marker)],
        cwd=ROOT,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        pid = int(_wait_for(marker, doomed))
    finally:
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(timeout=30)
    _wait_until_backend_gone(pid)
    assert MonitoringResult.objects.count() == 0  # its batch rolled back with it
    assert MonitoringWork.objects.count() == queued
    _finish(_worker())
    _assert_scored_once(queued)
