"""``python manage.py export_dataset``: labels from sessions (or a stored dataset) as an MLflow dataset."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandParser
from tqdm import tqdm

from evaluation import services
from evaluation.exporters import (
    INCLUSION_RULE,
    POLICIES,
    ExportError,
    ExportStats,
    count_items,
    nothing_to_export,
    output_target,
    session_records,
    write_atomically,
    write_lines,
)
from evaluation.models import EvaluationDataset
from evaluation.parquet import write_parquet
from labeling.models import LabelingSession


class Command(BaseCommand):
    help = (
        "Export expert labels as an evaluation dataset: one record per labeled trace, "
        '{"inputs", "outputs", "expectations", "tags", "source"}, readable as-is by mlflow.genai.evaluate. '
        "With --include-feedback, feedback answers are added as tags named feedback.<question>. " + INCLUSION_RULE
    )

    def add_arguments(self, parser: CommandParser) -> None:
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument("--session", action="append", metavar="NAME", help="a labeling session (repeatable)")
        source.add_argument("--dataset", metavar="NAME", help="a stored evaluation dataset")
        parser.add_argument(
            "--format",
            choices=["jsonl", "csv", "parquet"],
            default="jsonl",
            help="jsonl (as-is for mlflow.genai.evaluate), csv (columns as JSON text), or parquet (nested columns "
            "read back as dicts; a key some records lack reads back as None: drop those before evaluating)",
        )
        parser.add_argument("--output", metavar="PATH", help="file to write, or - for stdout")
        parser.add_argument("--save-as", metavar="NAME", help="also merge the records into this stored dataset")
        parser.add_argument("--include-feedback", action="store_true", help="add feedback labels as tags")
        parser.add_argument(
            "--policy",
            choices=sorted(POLICIES),
            default="latest",
            help="with several reviewers per item: latest answer, majority (consensus; ties left out), "
            "or the lead's final answer falling back to consensus (adjudicated)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            self._export(options)
        except ExportError as exc:
            self.stderr.write(f"error: {exc}")
            sys.exit(1)
        except ValidationError as exc:
            self.stderr.write(f"error: {' '.join(exc.messages)}")
            sys.exit(1)

    def _export(self, options: dict[str, Any]) -> None:
        if not options["output"] and not options["save_as"]:
            raise ExportError("say where to write: --output PATH (or - for stdout), or --save-as NAME")
        if options["output"] == "-" and options["format"] == "parquet":
            raise ExportError("Parquet cannot be streamed to stdout; give --output PATH")
        if options["output"] and options["output"] != "-":
            output_target(Path(options["output"]))  # refuse a directory, FIFO or device before any work
        if options["save_as"]:
            services.clean_dataset_name(options["save_as"])
        started = time.perf_counter()
        stats = ExportStats()
        make_records, total = self._source(options, stats)
        if options["save_as"]:
            dataset, merged, _ = self._save(options, make_records)
            self.stderr.write(f"merged into dataset “{dataset.name}”: {merged.created} new, {merged.updated} updated")
        if options["output"]:
            self._write(options, make_records, total, stats)
        where = options["output"] or f"dataset “{options['save_as']}”"
        seconds = time.perf_counter() - started
        detail = f"{stats.expectations} expectations"
        if stats.feedback_only:
            detail += f"; {stats.feedback_only} record{'s' * (stats.feedback_only != 1)} with feedback tags only"
        summary = f"{stats.records} records ({detail}) to {where} in {seconds:.1f} s"
        if stats.ties:
            summary += f"; {len(stats.ties)} tied answers left out"
        (self.stderr if options["output"] == "-" else self.stdout).write(summary)

    def _source(self, options: dict[str, Any], stats: ExportStats) -> tuple[Callable[..., Iterable[dict]], int]:
        if options["dataset"]:
            dataset = EvaluationDataset.objects.filter(name=options["dataset"]).first()
            if dataset is None:
                raise ExportError(f"no evaluation dataset named “{options['dataset']}”")
            if options["policy"] != "latest" or options["include_feedback"]:
                raise ExportError("--policy and --include-feedback apply to --session exports only")

            def dataset_records(on_item: Callable[[], None] | None = None) -> Iterator[dict[str, Any]]:
                stats.reset()
                for record in dataset.records.order_by("id").iterator(chunk_size=2000):
                    if on_item:
                        on_item()
                    stats.records += 1
                    stats.expectations += len(record.expectations)
                    yield record.as_mlflow()

            return dataset_records, dataset.records.count()
        names = list(dict.fromkeys(options["session"]))
        sessions = list(LabelingSession.objects.filter(name__in=names))
        missing = sorted(set(names) - {s.name for s in sessions})
        if missing:
            raise ExportError(f"no labeling session named “{missing[0]}”")
        if problem := nothing_to_export(sessions, include_feedback=options["include_feedback"]):
            quoted = ", ".join(f"“{n}”" for n in names)
            hint = "; --include-feedback exports the feedback answers as tags" if "feedback" in problem else ""
            verb = "have" if len(names) > 1 else "has"
            raise ExportError(f"nothing to export: {quoted} {verb} {problem}{hint}")

        def records(on_item: Callable[[], None] | None = None) -> Iterator[dict[str, Any]]:
            stats.reset()
            return session_records(
                sessions,
                policy=options["policy"],
                include_feedback=options["include_feedback"],
                stats=stats,
                on_item=on_item,
            )

        return records, count_items(sessions)

    def _save(self, options: dict[str, Any], make_records: Callable[..., Iterable[dict]]) -> Any:
        dataset = services.get_or_create_dataset(name=options["save_as"])
        merged = services.merge_records(dataset=dataset, records=make_records())
        return dataset, merged, None

    def _write(
        self, options: dict[str, Any], make_records: Callable[..., Iterable[dict]], total: int, stats: ExportStats
    ) -> None:
        show = sys.stderr.isatty() and options["output"] != "-"
        bar = tqdm(total=total, unit="item", disable=not show, file=sys.stderr)

        def tick() -> None:
            bar.update(1)

        try:
            if options["output"] == "-":
                self._stream(options["format"], make_records(), sys.stdout.buffer)
                return
            path = Path(options["output"])
            if options["format"] == "parquet":
                layout = write_atomically(path, lambda out: write_parquet(lambda: make_records(tick), out))
                for line in layout.warnings():
                    self.stderr.write(f"warning: {line}")
                for line in layout.notes():
                    self.stderr.write(f"note: {line}")
            else:
                write_atomically(path, lambda out: self._stream(options["format"], make_records(tick), out))
        finally:
            bar.close()
        for tie in stats.ties:
            self.stderr.write(f"tie left out: {tie}")

    @staticmethod
    def _stream(fmt: str, records: Iterable[dict], out: IO[bytes]) -> None:
        write_lines(fmt, records, out)
