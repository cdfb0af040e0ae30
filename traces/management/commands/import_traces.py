"""``python manage.py import_traces PATH… [--experiment NAME]``: load MLflow trace files."""

from __future__ import annotations

import sys
from functools import partial
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from tqdm import tqdm

from traces.ingest import StoreResult, TraceFormatError, expand_paths, import_trace_file, resolve_experiment


class Command(BaseCommand):
    help = (
        "Import MLflow traces: Trace.to_json() files (v3 and v2), REST get/search responses, "
        "OTLP/JSON export requests, JSON lists, JSONL, and directories of these. "
        "Re-importing a trace updates it; bad files are reported and skipped."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("paths", nargs="+", metavar="PATH", help="trace files or directories")
        parser.add_argument(
            "--experiment",
            metavar="NAME",
            help="put every trace in this experiment (created if needed); "
            "default: one experiment per MLflow experiment id",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        files = expand_paths(options["paths"])
        experiment = resolve_experiment(options["experiment"]) if options["experiment"] else None
        total = StoreResult()
        failed = 0
        progress = tqdm(files, unit="file", disable=not sys.stderr.isatty(), file=sys.stderr)
        for path in progress:
            try:
                stored = import_trace_file(
                    path, experiment=experiment, on_batch=partial(_show_progress, progress, total, failed)
                )
            except TraceFormatError as exc:  # the whole file was rolled back
                failed += 1
                self._error(progress, f"error: {path}: {exc}")
                continue
            except Exception as exc:  # a bug, not bad input: still one line, and the other files go on
                failed += 1
                self._error(progress, f"error: {path}: internal error ({type(exc).__name__}: {_first_line(exc)})")
                continue
            for trace_id, warning in stored.warnings:
                self._error(progress, f"warning: {path}: {trace_id}: {warning}")
            total.add(stored)
            _show_progress(progress, total, failed, StoreResult())
        self.stdout.write(
            f"{total.created} imported, {total.updated} updated, {failed} failed "
            f"({total.spans} spans from {len(files) - failed} of {len(files)} files)"
        )
        if failed:
            raise SystemExit(1)

    def _error(self, progress: tqdm, message: str) -> None:
        message = _one_line(message)
        if progress.disable:
            self.stderr.write(message)
        else:
            progress.write(message, file=sys.stderr)  # keeps the bar intact


def _show_progress(progress: tqdm, total: StoreResult, failed: int, this_file: StoreResult) -> None:
    """Counts beside the bar, updated after every batch (a long JSONL file is one file of many batches)."""
    progress.set_postfix(
        imported=total.created + this_file.created, updated=total.updated + this_file.updated, failed=failed
    )


def _one_line(text: str) -> str:
    """Control characters from the file (a key with a newline…) escaped, so each message stays one line."""
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
