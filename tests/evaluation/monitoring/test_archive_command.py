"""``python manage.py archive_traces``: the summary, a real kill during archival, and every bad input."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from deltalake import DeltaTable
from django.core.management import CommandError, call_command
from django.utils import timezone

from tests.factories import make_assessment, make_experiment, make_trace
from tests.processes import child_database_url
from traces.models import Experiment, Span, Trace

ROOT = Path(__file__).resolve().parents[3]

pytestmark = pytest.mark.django_db


@dataclass
class Run:
    code: int
    out: str
    err: str


def run_archive(*args: str | Path) -> Run:
    stdout, stderr = io.StringIO(), io.StringIO()
    code = 0
    try:
        call_command("archive_traces", *map(str, args), stdout=stdout, stderr=stderr)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    return Run(code=code, out=stdout.getvalue(), err=stderr.getvalue())


def aged(experiment: Experiment, *days_ago: int) -> list[Trace]:
    now = timezone.now()
    return [make_trace(experiment=experiment, request_time=now - timedelta(days=d)) for d in days_ago]


def table_ids(path: Path) -> list[str]:
    return sorted(DeltaTable(str(path)).to_pandas(columns=["trace_id"])["trace_id"])


def test_archive_prints_one_summary_line(tmp_path: Path) -> None:
    experiment = make_experiment("Support bot")
    old, _new = aged(experiment, 45, 3)
    make_assessment(old)
    path = tmp_path / "archive"
    done = run_archive("--experiment", "Support bot", "--to", path, "--older-than", "30d", "--delete-after")
    assert done.code == 0, done.err
    assert done.out == f"archived 1 traces, skipped 0 already in the table, deleted 1, to {path} (table version 0)\n"
    assert done.err == ""  # no progress bar off a terminal
    again = run_archive("--experiment", "Support bot", "--to", path, "--older-than", "0d")
    assert again.out.startswith("archived 1 traces, skipped 0 already in the table, deleted 0")
    assert table_ids(path) == sorted(DeltaTable(str(path)).to_pandas()["trace_id"])
    assert len(table_ids(path)) == 2


def test_an_empty_directory_becomes_the_table(tmp_path: Path) -> None:
    aged(make_experiment("Bot"), 3)
    (tmp_path / "empty").mkdir()
    done = run_archive("--experiment", "Bot", "--to", tmp_path / "empty")
    assert done.code == 0 and done.out.startswith("archived 1 traces")
    assert len(table_ids(tmp_path / "empty")) == 1


def test_the_table_reads_back_with_import_traces(tmp_path: Path) -> None:
    experiment = make_experiment("Bot")
    traces = aged(experiment, 10, 9)
    make_assessment(traces[0], "correct", False, rationale="Wrong document.")
    path = tmp_path / "archive"
    assert run_archive("--experiment", "Bot", "--to", path, "--delete-after").code == 0
    assert not Trace.objects.exists()
    stdout, stderr = io.StringIO(), io.StringIO()
    call_command("import_traces", str(path), stdout=stdout, stderr=stderr)
    assert stdout.getvalue().startswith("2 imported, 0 updated, 0 failed (6 spans from 1 of 1 files)")
    assert Trace.objects.filter(experiment__name="Bot").count() == 2
    assert Trace.objects.get(trace_id=traces[0].trace_id).assessments.get().rationale == "Wrong document."


# The command in a real process, SIGKILLed right after its second Delta commit (deterministic: a wrapper
# around the commit, not a timer). Batches of 2, so: batch 1 committed and deleted, batch 2 committed and
# not deleted, batch 3 never written.
KILLED_RUN = """
import os, signal, sys
import django
django.setup()
from django.core.management import CommandError, call_command
from evaluation.monitoring import archive
archive.BATCH_TRACES = 2
real_commit, commits = archive._commit, []
def commit_then_die(*args, **kwargs):
    real_commit(*args, **kwargs)
    commits.append(1)
    if len(commits) == 2:
        os.kill(os.getpid(), signal.SIGKILL)
archive._commit = commit_then_die
call_command("archive_traces", *sys.argv[1:])
"""


@pytest.mark.django_db(transaction=True)
def test_a_killed_archive_job_leaves_a_valid_table_and_a_rerun_finishes_it(tmp_path: Path) -> None:
    experiment = make_experiment("Bot")
    traces = aged(experiment, 40, 39, 38, 37, 36)
    path = tmp_path / "archive"
    env = {**os.environ, "DATABASE_URL": child_database_url(), "DJANGO_SETTINGS_MODULE": "reviewapp.settings"}
    args = ["--experiment", "Bot", "--to", str(path), "--delete-after"]
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_RUN, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert killed.returncode == -9, killed.stderr
    table = DeltaTable(str(path))
    assert table.version() == 1
    assert table_ids(path) == sorted(t.trace_id for t in traces[:4])
    # Batch 1 left the database after its commit; batch 2 was committed but the kill came before its delete;
    # batch 3 was never written and is untouched.
    assert sorted(Trace.objects.values_list("trace_id", flat=True)) == sorted(t.trace_id for t in traces[2:])
    assert Span.objects.count() == 3 * 3

    done = run_archive(*args)
    assert done.code == 0, done.err
    assert done.out.startswith("archived 1 traces, skipped 2 already in the table, deleted 3")
    assert table_ids(path) == sorted(t.trace_id for t in traces)  # each once
    assert not Trace.objects.exists()


def test_a_terminal_gets_a_progress_bar(tmp_path: Path, monkeypatch) -> None:
    experiment = make_experiment("Bot")
    aged(experiment, 2)
    stderr = io.StringIO()
    stderr.isatty = lambda: True  # type: ignore[method-assign]
    monkeypatch.setattr(sys, "stderr", stderr)
    done = run_archive("--experiment", "Bot", "--to", tmp_path / "t")
    assert done.code == 0
    assert "trace" in stderr.getvalue() and "archived=1" in stderr.getvalue()


def test_a_failing_write_is_one_line_and_keeps_the_database(tmp_path: Path, monkeypatch) -> None:
    from evaluation.monitoring import archive

    experiment = make_experiment("Bot")
    aged(experiment, 40, 39)

    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(archive, "_commit", disk_full)
    done = run_archive("--experiment", "Bot", "--to", tmp_path / "t", "--delete-after")
    assert done.code == 1 and done.err.count("\n") == 1
    assert done.err.startswith("error: OSError: [Errno 28] No space left on device;")
    assert Trace.objects.count() == 2 and not (tmp_path / "t").exists()


# Bad input: one line, exit 1, nothing written (no table, no change in the database).


@pytest.fixture
def bot() -> Experiment:
    experiment = make_experiment("Bot")
    aged(experiment, 40)
    return experiment


def refused(*args: str | Path) -> str:
    done = run_archive(*args)
    assert done.code == 1 and done.out == ""
    assert done.err.startswith("error: ") and done.err.count("\n") == 1
    assert Trace.objects.count() == 1
    return done.err


def test_unknown_experiment(bot: Experiment, tmp_path: Path) -> None:
    assert "no experiment named “Nope”" in refused("--experiment", "Nope", "--to", tmp_path / "t")
    assert not (tmp_path / "t").exists()


def test_a_labeling_copy_experiment_is_not_archivable(bot: Experiment, tmp_path: Path) -> None:
    Experiment.objects.create(name="Copies", kind="labeling")
    assert "no experiment named" in refused("--experiment", "Copies", "--to", tmp_path / "t")


@pytest.mark.parametrize("age", ["30", "thirty days", "-1d", "1.5d", "2w", ""])
def test_bad_duration(bot: Experiment, tmp_path: Path, age: str) -> None:
    assert "bad duration" in refused("--experiment", "Bot", "--to", tmp_path / "t", f"--older-than={age}")
    assert not (tmp_path / "t").exists()


def test_path_is_a_file(bot: Experiment, tmp_path: Path) -> None:
    target = tmp_path / "notes.txt"
    target.write_text("keep me")
    assert "is a file" in refused("--experiment", "Bot", "--to", target, "--delete-after")
    assert target.read_text() == "keep me"


def test_path_below_a_file(bot: Experiment, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("keep me")
    assert "cannot be created" in refused("--experiment", "Bot", "--to", tmp_path / "notes.txt" / "table")


def test_a_directory_that_is_not_a_delta_table(bot: Experiment, tmp_path: Path) -> None:
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.jpg").write_bytes(b"\xff\xd8")
    assert "neither empty nor a Delta table" in refused("--experiment", "Bot", "--to", tmp_path / "photos")
    assert [p.name for p in (tmp_path / "photos").iterdir()] == ["cat.jpg"]


def test_an_empty_path(bot: Experiment) -> None:
    assert "give the Delta table's path" in refused("--experiment", "Bot", "--to", "  ")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere: permissions cannot refuse it")
def test_a_directory_that_is_not_writable(bot: Experiment, tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        assert "not writable" in refused("--experiment", "Bot", "--to", locked / "table")
        assert "not writable" in refused("--experiment", "Bot", "--to", locked)
    finally:
        locked.chmod(0o700)


def test_a_missing_destination_is_a_usage_error() -> None:
    with pytest.raises(CommandError, match="--to"):
        call_command("archive_traces", "--experiment", "Bot")
