"""``python manage.py import_traces PATH… [--experiment NAME]``: load MLflow trace files.

A directory holding a ``_delta_log`` is a Delta table of archived traces (``archive_traces``), read
by :mod:`traces.ingest.delta_table`.

``import_traces --from-mlflow URL --experiment-id ID [--filter …] [--since DATE]``: import from a
running MLflow tracking server instead (see :mod:`traces.ingest.mlflow_server`).
"""

from __future__ import annotations

import sys
from functools import partial
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.utils.module_loading import import_string
from tqdm import tqdm

from traces.ingest import (
    StoreResult,
    TraceFormatError,
    expand_paths,
    import_delta_table,
    import_trace_file,
    is_delta_table,
    resolve_experiment,
)
from traces.ingest.mlflow_server import (
    MAX_PAGE_SIZE,
    PAGE_SIZE,
    MlflowServerClient,
    MlflowServerError,
    auth_from_environment,
    server_url,
)
from traces.ingest.server_import import MlflowImportResult, combined_filter, import_from_mlflow


class Command(BaseCommand):
    help = (
        "Import MLflow traces: Trace.to_json() files (v3 and v2), REST get/search responses, "
        "OTLP/JSON export requests, JSON lists, JSONL, Delta tables written by archive_traces (back into "
        "the experiment each row names), and directories of these. "
        "Re-importing a trace updates it; bad files are reported and skipped. "
        "With --from-mlflow, import from a running MLflow tracking server instead."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("paths", nargs="*", metavar="PATH", help="trace files or directories")
        parser.add_argument(
            "--from-mlflow",
            metavar="URL",
            help="import from the MLflow tracking server at URL (e.g. http://host:5000); credentials from "
            "MLFLOW_TRACKING_TOKEN, or MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD",
        )
        parser.add_argument("--experiment-id", metavar="ID", help="with --from-mlflow: the MLflow experiment id")
        parser.add_argument(
            "--filter", metavar="FILTER", help="with --from-mlflow: an MLflow filter string, e.g. \"tags.env = 'prod'\""
        )
        parser.add_argument(
            "--since", metavar="DATE", help="with --from-mlflow: only traces started on or after DATE (UTC) or ISO time"
        )
        parser.add_argument(
            "--page-size",
            type=int,
            default=PAGE_SIZE,
            metavar="N",
            help=f"with --from-mlflow: traces per search page and per stored batch (default {PAGE_SIZE})",
        )
        parser.add_argument(
            "--timeout", type=float, default=30.0, metavar="SECONDS", help="with --from-mlflow: deadline per request"
        )
        parser.add_argument(
            "--experiment",
            metavar="NAME",
            help="put every trace in this experiment (created if needed); "
            "default: one experiment per MLflow experiment id (for a Delta table: the experiment each row names)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if any(options[name] is not None for name in ("from_mlflow", "experiment_id", "filter", "since")):
            self._handle_mlflow(options)
            return
        if not options["paths"]:
            self._fail("give trace files or directories, or --from-mlflow URL --experiment-id ID")
        files = expand_paths(options["paths"])
        experiment = resolve_experiment(options["experiment"]) if options["experiment"] else None
        total = StoreResult()
        failed = 0
        progress = tqdm(files, unit="file", disable=not sys.stderr.isatty(), file=sys.stderr)
        for path in progress:
            try:
                read = import_delta_table if is_delta_table(path) else import_trace_file
                stored = read(path, experiment=experiment, on_batch=partial(_show_progress, progress, total, failed))
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
        self._after_import(total)
        if failed:
            raise SystemExit(1)

    def _handle_mlflow(self, options: dict[str, Any]) -> None:
        try:
            if options["from_mlflow"] is None:
                raise MlflowServerError("--experiment-id, --filter and --since go with --from-mlflow URL")
            if options["paths"]:
                raise MlflowServerError("give either trace files or --from-mlflow, not both")
            url = server_url(options["from_mlflow"])
            experiment_id = (options["experiment_id"] or "").strip()
            if not experiment_id:
                raise MlflowServerError("--from-mlflow needs --experiment-id ID (the MLflow experiment's id)")
            if not 0 < options["timeout"] <= 600:
                raise MlflowServerError("--timeout must be between 0 and 600 seconds")
            if not 1 <= options["page_size"] <= MAX_PAGE_SIZE:
                raise MlflowServerError(f"--page-size must be between 1 and {MAX_PAGE_SIZE}")
            filter_string = combined_filter(options["filter"], options["since"])
        except MlflowServerError as exc:
            self._fail(str(exc))
        client = MlflowServerClient(url, timeout=options["timeout"], auth=auth_from_environment())
        progress = tqdm(unit="trace", disable=not sys.stderr.isatty(), file=sys.stderr)
        result, error, status = MlflowImportResult(), "", 1
        try:
            import_from_mlflow(
                client,
                experiment_id=experiment_id,
                filter_string=filter_string,
                experiment_name=options["experiment"],
                page_size=options["page_size"],
                result=result,
                on_page=partial(_show_mlflow_progress, progress),
            )
        except MlflowServerError as exc:
            error = str(exc)
        except KeyboardInterrupt:  # the pages stored so far are kept; a re-run skips them
            error, status = "interrupted; run the same command again to import the rest", 130
        except Exception as exc:  # a bug, not bad input: still one line
            error = f"internal error ({type(exc).__name__}: {_first_line(exc)})"
        finally:
            client.close()
            progress.close()
        for trace_id, warning in result.stored.warnings:
            self._error(progress, f"warning: {trace_id}: {warning}")
        for trace_id, reason in result.failed:
            self._error(progress, f"error: {trace_id}: {reason}")
        if result.seen or not error:  # an error before the first page leaves only its own line
            stored = result.stored
            self.stdout.write(
                f"{stored.created} imported, {stored.updated} updated, {len(result.failed)} failed "
                f"({stored.spans} spans; {result.unchanged} unchanged of {result.seen} traces in "
                f"MLflow experiment {experiment_id})"
            )
            self._after_import(result.stored)
        if error:
            self.stderr.write(_one_line(f"error: {error}"))
            raise SystemExit(status)
        if result.failed:
            raise SystemExit(1)

    def _after_import(self, stored: StoreResult) -> None:
        """The ``AFTER_TRACE_IMPORT`` hook (evaluation runs that MLflow made appear as runs)."""
        if not (stored.created or stored.updated) or not settings.AFTER_TRACE_IMPORT:
            return
        found = import_string(settings.AFTER_TRACE_IMPORT)()
        if found:
            self.stdout.write(f"{len(found)} mlflow.genai.evaluate run(s) found in the traces; see Runs")

    def _fail(self, message: str) -> None:
        self.stderr.write(_one_line(f"error: {message}"))
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


def _show_mlflow_progress(progress: tqdm, result: MlflowImportResult, page: int) -> None:
    progress.update(page)
    stored = result.stored
    progress.set_postfix(
        imported=stored.created, updated=stored.updated, unchanged=result.unchanged, failed=len(result.failed)
    )


def _one_line(text: str) -> str:
    """Control characters from the file (a key with a newline…) escaped, so each message stays one line."""
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
