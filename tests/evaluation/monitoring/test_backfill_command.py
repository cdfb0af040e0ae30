"""``manage.py backfill_scorers``: the job id at once, --wait running the job to its end, --resume and --cancel,
and one ``error:`` line with exit 1 for every bad input, writing nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command

from evaluation.monitoring import backfill
from evaluation.monitoring.models import BackfillJob, BackfillStatus, MonitoringResult, MonitoringWork
from evaluation.monitoring.registrations import register_scorer
from evaluation.monitoring.sampling import is_sampled
from tests.factories import make_experiment, make_trace
from traces.models import Assessment, Experiment, ExperimentKind, Trace

pytestmark = pytest.mark.django_db
DAY = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture
def traces(db: None) -> list[Trace]:
    experiment = make_experiment("Production")
    made = [
        make_trace(experiment=experiment, request_time=DAY + timedelta(hours=i), answer="a" * (i + 1)) for i in range(6)
    ]
    register_scorer(experiment=experiment, name="length", scorer_name="response_length", sample_rate=1.0)
    register_scorer(experiment=experiment, name="docs", scorer_name="has_retrieved_documents", sample_rate=0.0)
    return made


def backfill_scorers(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("backfill_scorers", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def fails(*args: str) -> str:
    """The one line a bad invocation prints (it exits 1)."""
    err = StringIO()
    with pytest.raises(SystemExit) as exit_info:
        call_command("backfill_scorers", *args, stdout=StringIO(), stderr=err)
    assert exit_info.value.code == 1
    lines = err.getvalue().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    return lines[0]


def test_it_prints_the_job_id_and_queues_its_task(traces, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        out, err = backfill_scorers("--experiment", "Production", "--scorer", "length")
    job = BackfillJob.objects.get()
    assert out.splitlines() == [job.job_id]
    assert "queued: a db_worker runs it" in err
    assert job.status == BackfillStatus.QUEUED and len(callbacks) == 1  # the task, enqueued at commit
    callbacks[0]()  # the worker picks it (the test backend runs it at once)
    job.refresh_from_db()
    assert (job.status, job.progress_done) == (BackfillStatus.FINISHED, 6)


def test_wait_runs_the_job_here_and_ends_with_a_summary(traces, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        out, err = backfill_scorers(
            "--experiment", "Production", "--scorer", "length", "docs:0.5",
            "--start", "2026-11-01T01:00:00Z", "--end", "2026-11-01T04:00", "--wait",
        )  # fmt: skip
    assert not callbacks  # no task: this process was the worker
    job = BackfillJob.objects.get()
    lines = out.splitlines()
    assert lines[0] == job.job_id
    in_range = traces[1:5]
    sampled = [t for t in in_range if is_sampled(t.trace_id, "docs", 0.5)]
    total = len(in_range) + len(sampled)
    assert lines[-1].startswith(f"Backfill {job.job_id}: finished, {total} of {total} verdicts in ")
    assert lines[-1].endswith("scorers: length v1 @1, docs v1 @0.5")
    assert (job.start_time, job.end_time) == (DAY + timedelta(hours=1), DAY + timedelta(hours=4))  # UTC
    assert err == ""  # no progress bar off a terminal
    assert set(Assessment.objects.filter(name="length").values_list("trace_id", flat=True)) == {t.pk for t in in_range}


def test_wait_shows_progress_on_a_terminal(traces, monkeypatch):
    monkeypatch.setattr(backfill, "PLAN_CHUNK", 2)
    seen: list[tuple[str, int, int]] = []

    class Bar:  # tqdm, as the command drives it on a terminal
        def __init__(self, **kwargs: Any) -> None:
            self.total, self.n, self.desc = None, 0, kwargs.get("desc")

        def set_description(self, desc: str, refresh: bool = True) -> None:
            self.desc = desc

        def refresh(self) -> None:
            seen.append((self.desc, self.n, self.total))

        def close(self) -> None:
            pass

    from evaluation.management.commands import backfill_scorers as command

    monkeypatch.setattr(command, "tqdm", Bar)
    backfill_scorers("--experiment", "Production", "--scorer", "length", "--wait")
    assert ("planning", 0, 2) in seen and ("planning", 0, 4) in seen
    assert seen[-1] == ("scoring", 6, 6)


def test_wait_looks_again_while_another_worker_holds_the_jobs_last_work(traces, monkeypatch):
    """A pass that finds nothing claimable while the job is unfinished (another worker holds its last batch)
    returns the job still running: the command waits and runs it again until it ends."""
    from evaluation.management.commands import backfill_scorers as command

    real_execute = command.execute_backfill
    passes: list[str] = []

    def first_pass_finds_it_all_held(job_pk: int, **kwargs: Any) -> Any:
        passes.append("pass")
        if len(passes) == 1:
            BackfillJob.objects.filter(pk=job_pk).update(status=BackfillStatus.RUNNING)
            return BackfillJob.objects.get(pk=job_pk)
        return real_execute(job_pk, **kwargs)

    sleeps: list[float] = []
    monkeypatch.setattr(command, "execute_backfill", first_pass_finds_it_all_held)
    monkeypatch.setattr(command.time, "sleep", sleeps.append)
    out, _ = backfill_scorers("--experiment", "Production", "--scorer", "length", "--wait")
    assert passes == ["pass", "pass"] and sleeps == [command.WAIT_POLL_SECONDS]
    assert ": finished, 6 of 6 verdicts" in out.splitlines()[-1]
    assert MonitoringResult.objects.count() == 6


def test_resume_and_cancel(traces, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        out, _ = backfill_scorers("--experiment", "Production", "--scorer", "length")
    job_id = out.strip()
    out, _ = backfill_scorers("--cancel", job_id)
    assert out.strip() == f"Backfill {job_id} cancelled: 0 of 0 verdicts written stay"
    assert fails("--cancel", job_id) == f"error: backfill {job_id} has already ended (cancelled)"
    out, _ = backfill_scorers("--resume", job_id[:6], "--wait")  # a prefix will do
    assert out.splitlines()[0] == job_id and ": finished, 6 of 6 verdicts" in out
    assert fails("--resume", job_id) == f"error: backfill {job_id} is finished: nothing to resume"
    assert Assessment.objects.filter(name="length").count() == 6


def test_ctrl_c_while_waiting_cancels_the_job(traces, monkeypatch):
    def interrupted(*_args: Any, **_kwargs: Any) -> Any:
        raise KeyboardInterrupt

    from evaluation.management.commands import backfill_scorers as command

    monkeypatch.setattr(command, "execute_backfill", interrupted)
    line = fails("--experiment", "Production", "--scorer", "length", "--wait")
    job = BackfillJob.objects.get()
    assert line == f"error: interrupted: backfill {job.job_id} cancelled (resume it with --resume {job.job_id})"
    assert job.status == BackfillStatus.CANCELLED


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give --experiment NAME and --scorer NAME[:RATE]"),
        (["--experiment", "Production"], "give --experiment NAME and --scorer NAME[:RATE]"),
        (["--experiment", "Nope", "--scorer", "length"], "no experiment named 'Nope'"),
        (["--experiment", "Copies", "--scorer", "length"], "no experiment named 'Copies'"),
        (["--experiment", "Production", "--scorer", "nope"], "has no scorer registered as 'nope'"),
        (["--experiment", "Production", "--scorer", "length:2"], "length: the sample rate must be from 0 to 1"),
        (["--experiment", "Production", "--scorer", "length:half"], "bad sample rate in 'length:half'"),
        (["--experiment", "Production", "--scorer", "length:"], "bad sample rate in 'length:'"),
        (["--experiment", "Production", "--scorer", "length:nan"], "the sample rate must be a number from 0 to 1"),
        (["--experiment", "Production", "--scorer", "docs"], "scorer 'docs' samples nothing (rate 0)"),
        (["--experiment", "Production", "--scorer", ":0.5"], "bad scorer ':0.5'"),
        (["--experiment", "Production", "--scorer", "length", "--start", "last week"], "bad --start 'last week'"),
        (["--experiment", "Production", "--scorer", "length", "--end", "2026-02-30"], "bad --end '2026-02-30'"),
        (
            ["--experiment", "Production", "--scorer", "length", "--start", "2026-11-02", "--end", "2026-11-01"],
            "the start of the range must be before its end",
        ),
        (["--experiment", "Production", "--scorer", "length", "--start", "2999-01-01"], "before its end"),
        (["--cancel", "0123456789abcdef"], "no backfill job '0123456789abcdef'"),
        (["--cancel", "abc"], "no backfill job 'abc'"),
        (["--resume", "0123456789abcdef"], "no backfill job '0123456789abcdef'"),
        (["--cancel", "0123456789abcdef", "--wait"], "--cancel takes a job id only (not --wait)"),
        (["--resume", "0123456789abcdef", "--experiment", "Production"], "--resume takes a job id only"),
    ],
)
def test_bad_input_exits_1_with_one_line_and_writes_nothing(traces, args, message):
    Experiment.objects.create(name="Copies", kind=ExperimentKind.LABELING)
    assert message in fails(*args)
    assert not BackfillJob.objects.exists() and not MonitoringWork.objects.exists()


def test_an_ambiguous_job_prefix_is_refused(traces):
    experiment = Experiment.objects.get(name="Production")
    for job_id in ("abcdef01" + "0" * 24, "abcdef02" + "0" * 24):
        BackfillJob.objects.create(job_id=job_id, experiment=experiment, status=BackfillStatus.RUNNING)
    assert fails("--cancel", "abcdef") == "error: 'abcdef' names more than one backfill job: give more of its id"
    assert set(BackfillJob.objects.values_list("status", flat=True)) == {BackfillStatus.RUNNING}


SEED = """
import django, json
django.setup()
from datetime import UTC, datetime, timedelta
from evaluation.monitoring.registrations import register_scorer
from tests.factories import make_experiment, make_trace
exp = make_experiment("Worker")
day = datetime(2026, 11, 1, tzinfo=UTC)
for i in range(5):
    make_trace(experiment=exp, request_time=day + timedelta(hours=i), answer="x" * (i + 1))
register_scorer(experiment=exp, name="length", scorer_name="response_length", sample_rate=1.0)
print(json.dumps({"ok": True}))
"""

READ = """
import django, json
django.setup()
from evaluation.monitoring.models import BackfillJob, MonitoringResult
from traces.models import Assessment
job = BackfillJob.objects.get()
print(json.dumps({"job_id": job.job_id, "status": job.status, "done": job.progress_done, "total": job.progress_total,
                  "results": MonitoringResult.objects.count(),
                  "feedback": Assessment.objects.filter(name="length").count()}))
"""


def test_a_queued_backfill_is_run_by_a_db_worker(tmp_path: Any) -> None:
    """End to end: the command queues the job's task in django-tasks-db; a real ``db_worker`` runs it."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'worker.sqlite3'}",
        "DJANGO_SETTINGS_MODULE": "reviewapp.settings",
        "TASKS_BACKEND": "django_tasks_db.DatabaseBackend",
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(args, cwd=root, env=env, capture_output=True, text=True, timeout=300, check=False)
        assert done.returncode == 0, done.stderr[-3000:]
        return done

    manage = [sys.executable, "manage.py"]
    run(*manage, "migrate", "-v0")
    run(sys.executable, "-c", SEED)
    queued = run(*manage, "backfill_scorers", "--experiment", "Worker", "--scorer", "length")
    job_id = queued.stdout.strip()
    assert len(job_id) == 32
    run(*manage, "db_worker", "--batch", "--no-startup-delay")
    state = json.loads(run(sys.executable, "-c", READ).stdout.strip().splitlines()[-1])
    assert state == {"job_id": job_id, "status": "finished", "done": 5, "total": 5, "results": 5, "feedback": 5}
