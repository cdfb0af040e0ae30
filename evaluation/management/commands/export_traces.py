"""``python manage.py export_traces``: stored traces as the DataFrame ``mlflow.search_traces()`` returns."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from django.core.management.base import BaseCommand, CommandParser
from tqdm import tqdm

from evaluation.exporters import ExportError, jsonl_line, output_target, write_atomically
from evaluation.parquet import write_parquet
from evaluation.trace_export import COLUMNS, SELECTIONS, TraceExportStats, select_traces, trace_rows

PARQUET_NOTE = (
    "the “trace” column holds each trace exactly (mlflow.entities.Trace.from_json); the nested columns read back "
    "from Parquet with None for keys that only other traces have"
)


class Command(BaseCommand):
    help = (
        "Export stored traces as the DataFrame mlflow.search_traces() returns (columns "
        + ", ".join(COLUMNS)
        + "): one JSON line or Parquet row per trace; the trace column is Trace.to_json(), so "
        "mlflow.genai.evaluate(data=...) re-scores the traces without calling the application."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        source = parser.add_mutually_exclusive_group()
        source.add_argument("--experiment", metavar="NAME", help="the traces of this experiment")
        source.add_argument("--session", metavar="NAME", help="a labeling session's traces (with reviewers' labels)")
        source.add_argument(
            "--run", metavar="NAME_OR_RUN_ID", help="an evaluation run's traces (with its scorers' Feedback)"
        )
        parser.add_argument(
            "--filter",
            metavar="FILTER",
            default="",
            help="an MLflow search_traces filter string, e.g. \"trace.status = 'OK' AND tag.env = 'prod'\" "
            "(alone: over every experiment)",
        )
        parser.add_argument("--format", choices=["jsonl", "parquet"], default="jsonl")
        parser.add_argument("--output", metavar="PATH", required=True, help="file to write, or - for stdout (JSONL)")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            self._export(options)
        except ExportError as exc:
            self.stderr.write(f"error: {exc}")
            sys.exit(1)

    def _export(self, options: dict[str, Any]) -> None:
        to_stdout = options["output"] == "-"
        if to_stdout and options["format"] == "parquet":
            raise ExportError("Parquet cannot be streamed to stdout; give --output PATH")
        if not to_stdout:
            output_target(Path(options["output"]))  # refuse a directory, FIFO or device before any work
        source = next((name for name in SELECTIONS if options.get(name) is not None), None)
        selection = select_traces(
            source=source, name=options[source] if source else "", filter_string=options["filter"] or ""
        )
        total = selection.traces.count()
        if not total:
            raise ExportError(f"nothing to export: no traces in {selection.description}")
        started = time.perf_counter()
        stats = TraceExportStats()
        bar = tqdm(total=total, unit="trace", disable=not sys.stderr.isatty() or to_stdout, file=sys.stderr)

        def rows() -> Iterable[dict[str, Any]]:
            nonlocal stats
            stats = TraceExportStats()
            return trace_rows(selection, stats=stats, on_trace=lambda: bar.update(1))

        try:
            if to_stdout:
                self._stream(rows(), sys.stdout.buffer)
            elif options["format"] == "parquet":
                path = Path(options["output"])
                layout = write_atomically(path, lambda out: write_parquet(rows, out, columns=COLUMNS, keyed_columns=()))
                for line in layout.warnings():
                    self.stderr.write(f"warning: {line}")
                for line in [*layout.notes(), PARQUET_NOTE]:
                    self.stderr.write(f"note: {line}")
            else:
                write_atomically(Path(options["output"]), lambda out: self._stream(rows(), out))
        finally:
            bar.close()
        if stats.spanless:
            self.stderr.write(
                f"warning: {stats.spanless} trace{'s' * (stats.spanless != 1)} without spans (imported from trace "
                "info only): MLflow finds no root span in them, so mlflow.genai.evaluate cannot score them"
            )
        seconds = time.perf_counter() - started
        summary = (
            f"{stats.traces} traces ({stats.spans} spans, {stats.assessments} assessments) from "
            f"{selection.description} to {options['output']} in {seconds:.1f} s"
        )
        (self.stderr if to_stdout else self.stdout).write(summary)

    @staticmethod
    def _stream(rows: Iterable[dict[str, Any]], out: IO[bytes]) -> None:
        for row in rows:
            out.write(jsonl_line(row))
