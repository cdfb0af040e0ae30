"""``python manage.py compare_runs A B``: run B against run A, as the comparison page shows it.

Runs are named by run id or by name (a name several runs share is an error that lists their ids).

* ``--format table`` (default): the metrics (A, B, B − A, ↑ better / ↓ worse; higher is better),
  the overall average, examples matched and only in one run, regressions and improvements per
  scorer, then each regressed example: its input preview, the scorer, A's value → B's.
* ``--format csv``: a header, then one row per metric (``kind`` ``metric``, or ``overall`` for the
  overall average) and one per changed scorer of a changed example (``kind`` ``regression`` or
  ``improvement``). Columns: ``kind, name`` (metric or scorer), ``a, b`` (numbers for metrics,
  values for examples: ``error: CODE`` when the scorer failed), ``difference`` (B − A, metrics),
  ``direction`` (improved, worse, same, missing), ``input_preview, a_trace_id, b_trace_id,
  a_rationale, b_rationale, a_error, b_error`` (examples).
* ``--format json``: the whole comparison (``RunComparison.as_dict``).
"""

from __future__ import annotations

import csv
import sys
from typing import Any

import orjson
from django.core.management.base import BaseCommand, CommandParser

from evaluation.comparison import Change, Example, RunComparison, compare_runs, load_details
from evaluation.models import EvaluationRun, RunStatus

CSV_COLUMNS = [
    "kind", "name", "a", "b", "difference", "direction", "input_preview",
    "a_trace_id", "b_trace_id", "a_rationale", "b_rationale", "a_error", "b_error",
]  # fmt: skip
PREVIEW = 70


class RunNotFound(ValueError):
    pass


def find_run(reference: str) -> EvaluationRun:
    """The run with this run id, else the one run with this name; ``RunNotFound`` says why not."""
    found = EvaluationRun.objects.filter(run_id=reference).first()
    if found is None:
        named = list(EvaluationRun.objects.filter(name=reference).order_by("-created_at", "-id")[:20])
        if not named:
            raise RunNotFound(f"no evaluation run with the name or run id {reference!r}")
        if len(named) > 1:
            ids = ", ".join(run.run_id for run in named)
            raise RunNotFound(f"{len(named)} runs are named {reference!r}; give a run id: {ids}")
        found = named[0]
    if found.status != RunStatus.FINISHED:
        raise RunNotFound(f"run {found.name!r} ({found.run_id}) is {found.status}: only finished runs can be compared")
    return found


def _one_line(text: str, width: int = PREVIEW) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


class Command(BaseCommand):
    help = (
        "Compare two evaluation runs (by name or run id): metrics side by side (higher is better), and the "
        "examples matched on their inputs that regressed or improved per scorer. --format table, csv or json."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("a", help="run A (before): its name or run id")
        parser.add_argument("b", help="run B (after): its name or run id")
        parser.add_argument("--format", choices=["table", "csv", "json"], default="table")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            a, b = find_run(options["a"]), find_run(options["b"])
        except RunNotFound as error:
            self.stderr.write(f"error: {error}")
            sys.exit(1)
        if a.pk == b.pk:
            self.stderr.write("error: A and B are the same run; give two different runs")
            sys.exit(1)
        comparison = compare_runs(a, b)
        if options["format"] == "json":
            load_details(comparison.examples)
            self.stdout.write(orjson.dumps(comparison.as_dict(), option=orjson.OPT_INDENT_2).decode())
        elif options["format"] == "csv":
            load_details(comparison.examples)
            self._csv(comparison)
        else:
            self._table(comparison)

    def _table(self, comparison: RunComparison) -> None:
        a, b = comparison.a, comparison.b
        write = self.stdout.write
        write(f"A: {a.name} ({a.run_id})")
        write(f"B: {b.name} ({b.run_id})")
        write("Metrics (higher is better):")
        rows = [(m.name, *m.texts, f"{m.direction.arrow} {m.direction.label}") for m in comparison.metrics]
        if comparison.overall is not None:
            o = comparison.overall
            label = f"overall average ({len(o.metrics)} /mean)"
            rows.append((label, *o.texts, f"{o.direction.arrow} {o.direction.label}"))
        header = ("metric", "A", "B", "B - A", "")
        widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(4)]
        write(
            f"  {header[0]:<{widths[0]}}  {header[1]:>{widths[1]}}  {header[2]:>{widths[2]}}  {header[3]:>{widths[3]}}"
        )
        for name, va, vb, diff, change in rows:
            write(f"  {name:<{widths[0]}}  {va:>{widths[1]}}  {vb:>{widths[2]}}  {diff:>{widths[3]}}  {change}")
        if not rows:
            write("  (neither run has metrics)")
        write(
            f"Examples: {comparison.matched} in both runs (matched on their inputs), "
            f"{comparison.only_in_a} only in A, {comparison.only_in_b} only in B"
        )
        width = max([len(s.name) for s in comparison.scorers] + [6])
        for s in comparison.scorers:
            write(
                f"  {s.name:<{width}}  {s.regressions} regressions, {s.improvements} improvements "
                f"(of {s.compared} compared)"
            )
        regressed = [e for e in comparison.examples if e.regressions]
        load_details(regressed)
        write(f"Regressed examples ({len(regressed)}):")
        lines = [(_one_line(e.input_preview), c) for e in regressed for c in e.regressions]
        width = max([len(preview) for preview, _ in lines] + [0])
        for preview, c in lines:
            write(f"  {preview:<{width}}  {c.name}  {c.a.text} → {c.b.text}")

    def _csv(self, comparison: RunComparison) -> None:
        out = csv.writer(self.stdout, lineterminator="\n")
        out.writerow(CSV_COLUMNS)
        for m in comparison.metrics:
            out.writerow(["metric", m.name, *_numbers(m.a, m.b, m.difference), m.direction.value, *[""] * 7])
        if (o := comparison.overall) is not None:
            out.writerow(
                ["overall", "overall average", *_numbers(o.a, o.b, o.difference), o.direction.value, *[""] * 7]
            )
        for example in comparison.examples:
            for c in example.changes:
                out.writerow(_change_row(example, c))


def _numbers(*values: float | None) -> list[str]:
    return ["" if v is None else repr(v) for v in values]


def _change_row(example: Example, c: Change) -> list[str]:
    return [
        "regression" if c.regressed else "improvement",
        c.name,
        c.a.text,
        c.b.text,
        "",
        "worse" if c.regressed else "improved",
        example.input_preview,
        example.a.trace_id,
        example.b.trace_id,
        c.a.rationale,
        c.b.rationale,
        c.a.error_message,
        c.b.error_message,
    ]
