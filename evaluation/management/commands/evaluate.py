"""``python manage.py evaluate``: run scorers over stored traces now, with a progress bar, and print the metrics."""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from tqdm import tqdm

from evaluation.judges.cost import JudgeUsage
from evaluation.models import EvaluationRun, RunStatus
from evaluation.runs import NeedsConfirmation, RunInputError, execute_run, run_errors, start_evaluation_run


class Command(BaseCommand):
    help = (
        "Run MLflow @scorer functions (from SCORER_MODULES) over stored traces: those of a labeling session, "
        "of a dataset's records, or matching a filter string in an experiment; or call the app (--predict) on a "
        "dataset's records and score the traces that makes. Each result is a CODE Feedback "
        "on the trace (LLM_JUDGE for MLflow's built-in judges, see the Judges page); the run's metrics "
        "(<name>/mean …) are printed at the end."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument("--session", metavar="NAME", help="the traces of a labeling session")
        source.add_argument("--dataset", metavar="NAME", help="the source traces of a stored dataset's records")
        source.add_argument("--filter", metavar="FILTER", help="an MLflow filter string, with --experiment")
        parser.add_argument(
            "--experiment",
            metavar="NAME",
            help="the experiment --filter searches; with --predict, where the new traces go (default: Evaluation runs)",
        )
        parser.add_argument(
            "--predict",
            metavar="MODULE:FUNCTION",
            help="call this function as predict_fn(**record.inputs) on each --dataset record and score the traces",
        )
        parser.add_argument("--scorer", nargs="+", action="extend", required=True, metavar="NAME", help="scorers")
        parser.add_argument("--name", default="", help="the run's name (default: what it ran on and when)")
        parser.add_argument("--app-version", default=None, help="the app version (default: the traces' model id)")
        parser.add_argument(
            "--yes",
            action="store_true",
            help="start a run with LLM judges over more than JUDGE_CONFIRM_OVER traces (refused without it)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            run = start_evaluation_run(
                scorer_names=options["scorer"],
                name=options["name"],
                dataset=options["dataset"],
                session=options["session"],
                filter_string=options["filter"],
                experiment=options["experiment"],
                app_version=options["app_version"],
                predict_fn=options["predict"],
                enqueue=False,
                confirmed=options["yes"],
            )
        except NeedsConfirmation as error:
            self.stderr.write(f"error: {error} with --yes")
            sys.exit(1)
        except RunInputError as error:
            self.stderr.write(f"error: {error}")
            sys.exit(1)
        progress = tqdm(total=run.progress_total, unit="trace", disable=not sys.stderr.isatty(), file=sys.stderr)
        with progress:
            finished = execute_run(run.pk, on_progress=lambda done, _total: progress.update(done))
        assert finished is not None
        self._summary(finished)
        if finished.status != RunStatus.FINISHED:
            sys.exit(1)

    def _summary(self, run: EvaluationRun) -> None:
        seconds = run.duration_seconds or 0.0
        self.stdout.write(
            f"Run {run.name!r} ({run.run_id}): {run.status}, {run.progress_done} of {run.progress_total} traces "
            f"in {seconds:.1f} s; scorers: {', '.join(run.scorer_names)}"
        )
        if run.error:
            self.stderr.write(f"error: {run.error}")
        errors = run_errors(run)
        width = max([len(name) for name in run.metrics] + [6])
        for name, value in run.metrics.items():
            self.stdout.write(f"  {name:<{width}}  {value:.4g}")
        for scorer, count in errors.items():
            self.stdout.write(f"  {scorer}: {count} traces with an error (see the Feedback's error)")
        usage = JudgeUsage.of(run.judge_usage)
        if usage is not None:
            failures = ", ".join(f"{code} {count}" for code, count in usage.errors_by_code) or "none"
            self.stdout.write(
                f"  judges: {usage.calls:,} calls, {usage.requests:,} HTTP requests ({usage.retries:,} retries), "
                f"tokens {usage.input_tokens:,} in / {usage.output_tokens:,} out, "
                f"{usage.judge_seconds:.1f} s in calls; failures: {failures}"
            )
