"""``python manage.py build_dataset``: merge the traces an MLflow filter string finds into an evaluation dataset."""

from __future__ import annotations

import sys
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandParser
from tqdm import tqdm

from evaluation import services
from traces.models import Experiment, ExperimentKind, Trace
from traces.search import TraceFilterForm


class CommandError(Exception):
    """Bad input: printed as one line, exit status 1, nothing written."""


class Command(BaseCommand):
    help = (
        "Merge the traces of an experiment that an MLflow filter string matches into an evaluation dataset, "
        "as mlflow's EvaluationDataset.merge_records(traces) does: inputs and outputs from each trace, "
        "expectations from its valid expectation assessments, source TRACE with the trace id. Records are "
        "keyed by their inputs, so re-running adds new traces and updates expectations without duplicates."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--filter", default="", metavar="FILTER", help="an MLflow filter string, as for mlflow.search_traces"
        )
        parser.add_argument("--experiment", required=True, metavar="NAME", help="the experiment to search")
        parser.add_argument("--name", required=True, metavar="DATASET", help="the dataset (created if new)")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            self._build(options)
        except CommandError as exc:
            self.stderr.write(f"error: {exc}")
            sys.exit(1)
        except ValidationError as exc:
            self.stderr.write(f"error: {' '.join(exc.messages)}")
            sys.exit(1)

    def _build(self, options: dict[str, Any]) -> None:
        name = services.clean_dataset_name(options["name"])
        experiment = Experiment.objects.filter(kind=ExperimentKind.TRACES, name=options["experiment"]).first()
        if experiment is None:
            raise CommandError(f"no experiment named {options['experiment']!r}")
        form = TraceFilterForm({"filter_string": options["filter"], "experiment": experiment.pk})
        traces = form.filter(Trace.objects.explorable()) if form.is_valid() else None
        if traces is None or form.errors:
            problems = [e for errors in form.errors.values() for e in errors]
            raise CommandError(f"bad filter: {' '.join(problems)}")
        total = traces.count()
        with tqdm(total=total, unit="trace", file=sys.stderr, disable=not sys.stderr.isatty()) as bar:
            dataset, merged, read = services.build_dataset_from_traces(
                traces=traces, dataset_name=name, on_trace=bar.update
            )
        self.stdout.write(
            f"Merged {read} trace{'s' if read != 1 else ''} into “{dataset.name}”: "
            f"{merged.created} new records, {merged.updated} updated ({dataset.records.count()} in all)."
        )
