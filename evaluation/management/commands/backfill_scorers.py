"""``python manage.py backfill_scorers``: re-score an experiment's history with its registered scorers.

It prints the job id at once. Without ``--wait`` the job's task is queued for ``db_worker``; with
``--wait`` this process is the job's worker: it plans and scores the job itself (no task is queued,
so no worker races it for the planning), with a progress bar on a terminal and a final line, until
the job ends. Work a running ``db_worker`` holds meanwhile is waited for, not scored twice.
Ctrl-C cancels a job this process was running (what was scored stays; ``--resume`` goes on).
"""

from __future__ import annotations

import sys
import time
from typing import Any, NoReturn

from django.core.management.base import BaseCommand, CommandParser
from tqdm import tqdm

from evaluation.monitoring.backfill import (
    ENDED,
    BackfillError,
    Progress,
    cancel_backfill,
    execute_backfill,
    parse_scorer_spec,
    resume_backfill,
    start_backfill,
)
from evaluation.monitoring.backfill_forms import parse_utc
from evaluation.monitoring.models import BackfillJob, BackfillStatus
from traces.models import Experiment, ExperimentKind

WAIT_POLL_SECONDS = 1.0
MIN_PREFIX = 6


class Command(BaseCommand):
    help = (
        "Re-score an experiment's history (a backfill): registered scorers, each at its sample rate or at "
        "NAME:RATE for this job, over the completed traces whose request time is in [--start, --end]. Traces "
        "the scorer's current version already scored are skipped. Prints the job id; with --wait, runs the job "
        "here with a progress bar until it ends. --resume and --cancel take a job id (or its first 6+ characters)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--experiment", metavar="NAME", help="the experiment whose traces are re-scored")
        parser.add_argument(
            "--scorer",
            nargs="+",
            action="extend",
            default=[],
            metavar="NAME[:RATE]",
            help="a registered scorer, optionally with a sample rate for this job (0 < RATE <= 1)",
        )
        parser.add_argument("--start", metavar="ISO", help="from this request time (default: the first trace)")
        parser.add_argument("--end", metavar="ISO", help="to this request time (default: now); UTC unless it says")
        parser.add_argument("--wait", action="store_true", help="run the job in this process until it ends")
        parser.add_argument("--resume", metavar="JOB_ID", help="go on with a cancelled, failed or interrupted job")
        parser.add_argument("--cancel", metavar="JOB_ID", help="cancel a queued or running job")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            if options["cancel"]:
                self._only(options, "--cancel", allowed=())
                self._cancel(_job(options["cancel"]))
                return
            if options["resume"]:
                self._only(options, "--resume", allowed=("wait",))
                job = resume_backfill(job=_job(options["resume"]), enqueue=not options["wait"])
            else:
                job = self._start(options)
        except BackfillError as error:
            self._fail(str(error))
        self.stdout.write(job.job_id)
        self.stdout.flush()
        if not options["wait"]:
            self.stderr.write(f"queued: a db_worker runs it (backfill_scorers --cancel {job.job_id} stops it)")
            return
        ended = self._follow(job)
        self.stdout.write(_summary(ended))
        if ended.error:
            self.stderr.write(f"error: {ended.error}")
        if ended.status != BackfillStatus.FINISHED:
            sys.exit(1)

    def _only(self, options: dict[str, Any], flag: str, *, allowed: tuple[str, ...]) -> None:
        extra = [name for name in ("experiment", "scorer", "start", "end", "wait", "resume") if options[name]]
        extra = [name for name in extra if name not in allowed and f"--{name}" != flag]
        if extra:
            raise BackfillError(f"{flag} takes a job id only (not --{extra[0]})")

    def _start(self, options: dict[str, Any]) -> BackfillJob:
        if not options["experiment"] or not options["scorer"]:
            raise BackfillError("give --experiment NAME and --scorer NAME[:RATE] (or --resume/--cancel JOB_ID)")
        experiment = Experiment.objects.filter(name=options["experiment"], kind=ExperimentKind.TRACES).first()
        if experiment is None:
            raise BackfillError(f"no experiment named {options['experiment']!r}")
        scorers = [parse_scorer_spec(spec) for spec in options["scorer"]]
        start, end = (_time(options[name], f"--{name}") for name in ("start", "end"))
        return start_backfill(experiment=experiment, scorers=scorers, start=start, end=end, enqueue=not options["wait"])

    def _cancel(self, job: BackfillJob) -> None:
        if not cancel_backfill(job=job):
            self._fail(f"backfill {job.job_id} has already ended ({job.get_status_display().lower()})")
        self.stdout.write(
            f"Backfill {job.job_id} cancelled: {job.progress_done:,} of {job.progress_total:,} verdicts written stay"
        )

    def _follow(self, job: BackfillJob) -> BackfillJob:
        """Run the job here until it ends (waiting for work another worker holds)."""
        bar = tqdm(unit="verdict", disable=not sys.stderr.isatty(), file=sys.stderr, desc="planning")

        def show(progress: Progress) -> None:
            bar.total = progress.total
            bar.n = progress.done
            bar.set_description("scoring" if progress.planned else "planning", refresh=False)
            bar.refresh()

        try:
            while True:
                ran = execute_backfill(job.pk, on_progress=show)
                if ran is None or ran.status in ENDED:
                    return ran or job
                time.sleep(WAIT_POLL_SECONDS)
        except KeyboardInterrupt:
            cancel_backfill(job=job)
            bar.close()
            self._fail(f"interrupted: backfill {job.job_id} cancelled (resume it with --resume {job.job_id})")
        finally:
            bar.close()

    def _fail(self, message: str) -> NoReturn:
        self.stderr.write(f"error: {message}")
        sys.exit(1)


def _job(job_id: str) -> BackfillJob:
    text = job_id.strip()
    found = list(BackfillJob.objects.filter(job_id__startswith=text)[:2]) if len(text) >= MIN_PREFIX else []
    exact = [job for job in found if job.job_id == text]
    if exact or len(found) == 1:
        return (exact or found)[0]
    if len(found) > 1:
        raise BackfillError(f"{text!r} names more than one backfill job: give more of its id")
    raise BackfillError(f"no backfill job {text!r}")


def _time(text: str | None, flag: str) -> Any:
    if not text:
        return None
    try:
        return parse_utc(text)
    except ValueError:
        raise BackfillError(f"bad {flag} {text!r}: give an ISO 8601 time such as 2026-11-01T00:00:00Z") from None


def _summary(job: BackfillJob) -> str:
    seconds = (job.finished_at - job.started_at).total_seconds() if job.finished_at and job.started_at else 0.0
    scorers = ", ".join(f"{s['name']} v{s['version']} @{s['sample_rate']:g}" for s in job.scorers)
    return (
        f"Backfill {job.job_id}: {job.status}, {job.progress_done:,} of {job.progress_total:,} verdicts "
        f"in {seconds:.1f} s; scorers: {scorers}"
    )
