"""``python manage.py archive_traces --experiment NAME --to PATH [--older-than 30d] [--delete-after]``.

Appends the experiment's traces to the Delta table at PATH (see :mod:`evaluation.monitoring.archive`);
``import_traces PATH`` reads them back.
"""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from tqdm import tqdm

from evaluation.monitoring.archive import (
    ArchiveError,
    ArchiveResult,
    archivable_experiment,
    archive_traces,
    check_target,
    parse_duration,
)


class Command(BaseCommand):
    help = (
        "Archive an experiment's traces (with spans and assessments) to a Delta table partitioned by date: "
        "one row per trace, appended in commits of 1000, never rewritten; traces already in the table are "
        "skipped. With --delete-after, traces leave the database once their rows are committed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--experiment", metavar="NAME", required=True, help="the experiment to archive")
        parser.add_argument("--to", metavar="PATH", required=True, help="the Delta table's directory (made if new)")
        parser.add_argument(
            "--older-than",
            metavar="AGE",
            help="only traces requested longer ago than AGE: 30d, 12h, 90m, 0d (default: every trace)",
        )
        parser.add_argument("--delete-after", action="store_true", help="delete the archived traces from the database")

    def handle(self, *args: Any, **options: Any) -> None:
        try:  # every check before anything is written
            older_than = parse_duration(options["older_than"]) if options["older_than"] is not None else None
            check_target(options["to"])
            experiment = archivable_experiment(options["experiment"])
        except ArchiveError as exc:
            self._fail(str(exc))
        progress = tqdm(unit="trace", disable=not sys.stderr.isatty(), file=sys.stderr)

        def show(result: ArchiveResult) -> None:
            progress.total = result.candidates
            progress.n = result.archived + result.skipped
            progress.set_postfix(archived=result.archived, skipped=result.skipped, deleted=result.deleted)

        try:
            result = archive_traces(
                experiment=experiment,
                path=options["to"],
                older_than=older_than,
                delete_after=options["delete_after"],
                on_progress=show,
            )
        except ArchiveError as exc:
            self._fail(str(exc))
        except KeyboardInterrupt:  # committed batches are kept; a re-run skips them
            self.stderr.write("error: interrupted; run the same command again to archive the rest")
            raise SystemExit(130) from None
        except Exception as exc:  # the table or the disk refused a write: committed batches are kept
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            self._fail(f"{type(exc).__name__}: {first}; batches committed before it are kept, a re-run goes on")
        finally:
            progress.close()
        self.stdout.write(result.summary(options["to"]))

    def _fail(self, message: str) -> None:
        self.stderr.write(f"error: {message}")
        raise SystemExit(1)
