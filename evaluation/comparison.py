"""Comparing two evaluation runs: their metrics, and per example what got better or worse.

* **Metrics.** Every ``<name>/<aggregation>`` metric either run has, with A's value, B's value, the
  difference ``B - A`` and a direction. **Higher is better** for every metric (as for pass rates and
  scores); a metric only one run has is ``missing``.
* **Overall average.** The unweighted mean of the ``<name>/mean`` metrics *both* runs have, for A and
  for B (``None`` when they share none). Scorers on larger scales (a length in characters) weigh
  more than pass rates (0 to 1): read it next to the per-metric rows.
* **Examples.** A run's traces are matched to the other's on ``EvaluationRunTrace.inputs_key`` (the
  hash of the inputs, as dataset merging keys records), so a trace and the dataset record made
  from it, or two versions of an app answering the same question, are one example. Traces with the
  same inputs are paired in the order the runs list them; the rest are "only in A" / "only in B".
  For each assessment name both runs have, a matched example's Feedback is compared with the one
  rule, ``evaluation.outcomes.change``: pass → fail (or an error) is a regression, fail → pass an
  improvement, a number going down a regression and up an improvement.

A run's Feedback is what it wrote: valid Feedback on its traces whose metadata
``mlflow.assessment.sourceRunId`` is its run id (``runs.of_run``; for runs imported from MLflow that
includes its judges' Feedback, as their metrics do). ``compare_runs`` runs a fixed number of queries
whatever the size (runs scored before ``inputs_key`` existed get theirs computed once, then stored);
``load_details`` adds rationales and previews for the examples about to be shown, in two more.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import orjson
from django.db import transaction
from django.db.models import TextField
from django.db.models.fields.json import KT
from django.db.models.functions import Cast
from django.urls import reverse

from traces.models import Assessment, AssessmentKind, Trace

from .models import EvaluationRun, EvaluationRunTrace
from .outcomes import change
from .scorers.runner import SOURCE_RUN_KEY
from .trace_records import trace_inputs_keys

MEAN_SUFFIX = "/mean"
DETAIL_CHUNK = 500  # primary keys per IN list when loading details (far under SQLite's variable limit)


class Direction(StrEnum):
    IMPROVED = "improved"
    WORSE = "worse"
    SAME = "same"
    MISSING = "missing"

    @property
    def arrow(self) -> str:
        return {"improved": "↑", "worse": "↓", "same": "=", "missing": "–"}[self.value]

    @property
    def label(self) -> str:
        return {"improved": "better", "worse": "worse", "same": "same", "missing": "in one run only"}[self.value]


def number_text(value: float | None, *, signed: bool = False) -> str:
    """A metric as the page and the command print it: four significant digits (``–`` when absent)."""
    if value is None:
        return "–"
    if signed and value == 0:
        return "0"
    return f"{value:+.4g}" if signed else f"{value:.4g}"


def value_text(value: Any, error: dict[str, Any] | None = None) -> str:
    """A Feedback value in one short line: ``error: CODE`` for an error, JSON-ish otherwise."""
    if error:
        return f"error: {error.get('error_code') or 'ERROR'}"
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return f"{value:.4g}"
    text = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS, default=str).decode()
    return text if len(text) <= 80 else text[:79] + "…"


def direction(a: float | None, b: float | None) -> Direction:
    """Higher is better; values equal to 1e-9 relative are the same."""
    if a is None or b is None or math.isnan(a) or math.isnan(b):
        return Direction.MISSING
    if math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12):
        return Direction.SAME
    return Direction.IMPROVED if b > a else Direction.WORSE


@dataclass(frozen=True)
class MetricRow:
    name: str
    a: float | None
    b: float | None
    direction: Direction

    @property
    def difference(self) -> float | None:
        return None if self.a is None or self.b is None else self.b - self.a

    @property
    def texts(self) -> tuple[str, str, str]:
        return number_text(self.a), number_text(self.b), number_text(self.difference, signed=True)


@dataclass(frozen=True)
class OverallAverage:
    """The mean of the ``/mean`` metrics both runs have (``metrics`` names them)."""

    metrics: tuple[str, ...]
    a: float
    b: float
    direction: Direction

    @property
    def difference(self) -> float:
        return self.b - self.a

    @property
    def texts(self) -> tuple[str, str, str]:
        return number_text(self.a), number_text(self.b), number_text(self.difference, signed=True)


@dataclass
class Judgement:
    """One run's Feedback of one name on one trace (``error`` when the scorer failed)."""

    assessment_pk: int
    value: Any
    error: dict[str, Any] | None
    rationale: str = ""

    @property
    def text(self) -> str:
        return value_text(self.value, self.error)

    @property
    def error_message(self) -> str:
        return str((self.error or {}).get("error_message") or "")


@dataclass
class Change:
    """A scorer whose result moved between the runs: ``change`` is -1 (regression) or +1 (improvement)."""

    name: str
    change: int
    a: Judgement
    b: Judgement

    @property
    def regressed(self) -> bool:
        return self.change < 0


@dataclass
class TraceSide:
    pk: int
    trace_id: str
    request_preview: str = ""
    response_preview: str = ""

    @property
    def url(self) -> str:
        return reverse("traces:detail", args=[self.trace_id])


@dataclass
class Example:
    """A pair of traces with the same inputs whose Feedback changed on at least one scorer."""

    inputs_key: str
    position: int  # where A lists its trace: keeps the order stable
    a: TraceSide
    b: TraceSide
    changes: list[Change]

    @property
    def regressions(self) -> list[Change]:
        return [c for c in self.changes if c.change < 0]

    @property
    def improvements(self) -> list[Change]:
        return [c for c in self.changes if c.change > 0]

    @property
    def input_preview(self) -> str:
        return self.a.request_preview or self.b.request_preview

    def only(self, name: str) -> Example | None:
        """This example with only the changes of ``name``, or None when that scorer did not change."""
        changes = [c for c in self.changes if c.name == name]
        return Example(self.inputs_key, self.position, self.a, self.b, changes) if changes else None


@dataclass(frozen=True)
class ScorerCounts:
    """Per assessment name both runs have: examples compared (both runs have a result) and how they moved."""

    name: str
    compared: int
    regressions: int
    improvements: int


@dataclass
class RunComparison:
    a: EvaluationRun
    b: EvaluationRun
    metrics: list[MetricRow]
    overall: OverallAverage | None
    matched: int
    only_in_a: int
    only_in_b: int
    scorers: list[ScorerCounts]
    examples: list[Example] = field(default_factory=list)  # those with a regression first

    @property
    def scorer_names(self) -> list[str]:
        return [s.name for s in self.scorers]

    @property
    def regressed_examples(self) -> int:
        return sum(1 for e in self.examples if e.regressions)

    @property
    def improved_examples(self) -> int:
        return sum(1 for e in self.examples if e.improvements)

    def examples_for(self, scorer: str | None = None) -> list[Example]:
        """The changed examples (regressions first), or those where ``scorer`` changed, with only its changes."""
        if not scorer:
            return self.examples
        return [only for e in self.examples if (only := e.only(scorer)) is not None]

    def as_dict(self) -> dict[str, Any]:
        return {
            "a": _run_dict(self.a),
            "b": _run_dict(self.b),
            "higher_is_better": True,
            "metrics": [
                {"name": m.name, "a": m.a, "b": m.b, "difference": m.difference, "direction": m.direction.value}
                for m in self.metrics
            ],
            "overall_average": None
            if self.overall is None
            else {
                "metrics": list(self.overall.metrics),
                "a": self.overall.a,
                "b": self.overall.b,
                "difference": self.overall.difference,
                "direction": self.overall.direction.value,
            },
            "examples": {"matched": self.matched, "only_in_a": self.only_in_a, "only_in_b": self.only_in_b},
            "scorers": [
                {"name": s.name, "compared": s.compared, "regressions": s.regressions, "improvements": s.improvements}
                for s in self.scorers
            ],
            "changed_examples": [_example_dict(e) for e in self.examples],
        }


def _run_dict(run: EvaluationRun) -> dict[str, Any]:
    return {"pk": run.pk, "run_id": run.run_id, "name": run.name, "app_version": run.app_version}


def _judgement_dict(j: Judgement) -> dict[str, Any]:
    return {"value": j.value, "error": j.error, "rationale": j.rationale}


def _example_dict(e: Example) -> dict[str, Any]:
    return {
        "inputs_key": e.inputs_key,
        "input_preview": e.input_preview,
        "a": {"trace_id": e.a.trace_id, "url": e.a.url, "response_preview": e.a.response_preview},
        "b": {"trace_id": e.b.trace_id, "url": e.b.url, "response_preview": e.b.response_preview},
        "changes": [
            {
                "scorer": c.name,
                "change": "regression" if c.regressed else "improvement",
                "a": _judgement_dict(c.a),
                "b": _judgement_dict(c.b),
            }
            for c in e.changes
        ],
    }


# ---------------------------------------------------------------- metrics


def compare_metrics(a: dict[str, float], b: dict[str, float]) -> tuple[list[MetricRow], OverallAverage | None]:
    rows = [MetricRow(name, a.get(name), b.get(name), direction(a.get(name), b.get(name))) for name in sorted({*a, *b})]
    shared = tuple(sorted(name for name in a.keys() & b.keys() if name.endswith(MEAN_SUFFIX)))
    if not shared:
        return rows, None
    mean_a = math.fsum(a[name] for name in shared) / len(shared)
    mean_b = math.fsum(b[name] for name in shared) / len(shared)
    return rows, OverallAverage(shared, mean_a, mean_b, direction(mean_a, mean_b))


# ---------------------------------------------------------------- examples

Row = tuple[int, int, str, str]  # (run pk, trace pk, trace id, inputs key)


def _run_rows(a: EvaluationRun, b: EvaluationRun) -> list[Row]:
    """Both runs' traces in their order (one query); those without an inputs key get it computed and stored."""
    rows = list(
        EvaluationRunTrace.objects.filter(run__in=[a.pk, b.pk])
        .order_by("id")
        .values_list("pk", "run_id", "trace_id", "trace__trace_id", "inputs_key")
    )
    missing = [(pk, trace_pk) for pk, _, trace_pk, _, key in rows if not key]
    keys: dict[int, str] = {}
    if missing:
        keys = trace_inputs_keys(sorted({trace_pk for _, trace_pk in missing}))
        with transaction.atomic():
            EvaluationRunTrace.objects.bulk_update(
                [EvaluationRunTrace(pk=pk, inputs_key=keys[trace_pk]) for pk, trace_pk in missing],
                ["inputs_key"],
                batch_size=500,
            )
    return [(run_pk, trace_pk, trace_id, key or keys[trace_pk]) for _, run_pk, trace_pk, trace_id, key in rows]


Result = tuple[int, Any, dict[str, Any] | None]  # (assessment pk, value, error)


def _feedback(a: EvaluationRun, b: EvaluationRun) -> dict[str, dict[tuple[int, str], Result]]:
    """Per run id: each (trace pk, name)'s Feedback that run wrote, the latest when there are several (one query).

    Plain tuples, not objects: at 10,000 traces × several scorers per run this loop is most of the time.
    """
    traces = EvaluationRunTrace.objects.filter(run__in=[a.pk, b.pk]).values("trace_id")
    rows = (
        Assessment.objects.filter(trace_id__in=traces, kind=AssessmentKind.FEEDBACK, valid=True)
        .annotate(source_run=Cast(KT(f"metadata__{SOURCE_RUN_KEY}"), TextField()))
        .filter(source_run__in=[a.run_id, b.run_id])
        .annotate(value_text=Cast("value", TextField()), error_text=Cast("error", TextField()))
        .order_by()
        .values_list("pk", "source_run", "trace_id", "name", "value_text", "error_text")
    )
    found: dict[str, dict[tuple[int, str], Result]] = {a.run_id: {}, b.run_id: {}}
    loads = orjson.loads
    for pk, run_id, trace_pk, name, value, error in rows:
        results = found[run_id]
        key = (trace_pk, name)
        if key not in results or results[key][0] < pk:
            results[key] = (pk, None if value is None else loads(value), None if error is None else loads(error))
    return found


def _pairs(rows: list[Row], a: EvaluationRun, b: EvaluationRun) -> tuple[list[tuple[Row, Row, int]], int, int]:
    """Matched (A row, B row, A's position) on the inputs key, in order; and the counts only in A, only in B."""
    by_key: dict[str, list[Row]] = defaultdict(list)
    a_rows = [row for row in rows if row[0] == a.pk]
    for row in rows:
        if row[0] == b.pk:
            by_key[row[3]].append(row)
    pairs: list[tuple[Row, Row, int]] = []
    taken: dict[str, int] = defaultdict(int)
    only_in_a = 0
    for position, row in enumerate(a_rows):
        key = row[3]
        candidates = by_key.get(key, [])
        if taken[key] < len(candidates):
            pairs.append((row, candidates[taken[key]], position))
            taken[key] += 1
        else:
            only_in_a += 1
    only_in_b = sum(len(candidates) - taken[key] for key, candidates in by_key.items())
    return pairs, only_in_a, only_in_b


def compare_runs(a: EvaluationRun, b: EvaluationRun) -> RunComparison:
    """Metrics and changed examples of B against A, in a fixed number of queries; see the module docstring."""
    metrics, overall = compare_metrics(a.metrics or {}, b.metrics or {})
    rows = _run_rows(a, b)
    pairs, only_in_a, only_in_b = _pairs(rows, a, b)
    feedback = _feedback(a, b)
    of_a, of_b = feedback[a.run_id], feedback[b.run_id]
    names = sorted({name for _, name in of_a} & {name for _, name in of_b})
    compared = dict.fromkeys(names, 0)
    moved: dict[str, list[int]] = {name: [0, 0] for name in names}  # [regressions, improvements]
    examples: list[Example] = []
    for row_a, row_b, position in pairs:
        changes = []
        for name in names:
            before, after = of_a.get((row_a[1], name)), of_b.get((row_b[1], name))
            if before is None or after is None:
                continue
            compared[name] += 1
            if before[1:] == after[1:]:
                continue  # the same value and error: no change (the common case, decided without the rule)
            moved_by = change(before[1], after[1], before_error=before[2], after_error=after[2])
            if moved_by:
                moved[name][0 if moved_by < 0 else 1] += 1
                changes.append(Change(name, moved_by, Judgement(*before), Judgement(*after)))
        if changes:
            examples.append(
                Example(row_a[3], position, TraceSide(row_a[1], row_a[2]), TraceSide(row_b[1], row_b[2]), changes)
            )
    examples.sort(key=_example_order)
    scorers = [ScorerCounts(name, compared[name], *moved[name]) for name in names]
    return RunComparison(a, b, metrics, overall, len(pairs), only_in_a, only_in_b, scorers, examples)


def _example_order(example: Example) -> tuple[int, int, int]:
    """Regressions first (most regressed scorers first), then improvements; in A's order within each."""
    regressions = len(example.regressions)
    if regressions:
        return (0, -regressions, example.position)
    return (1, -len(example.improvements), example.position)


def _chunks(values: Sequence[int]) -> Iterator[Sequence[int]]:
    for first in range(0, len(values), DETAIL_CHUNK):
        yield values[first : first + DETAIL_CHUNK]


def load_details(examples: Iterable[Example]) -> None:
    """Fill in the rationales and the traces' previews of these examples (two queries per 500 of each)."""
    examples = list(examples)
    judgements = [j for e in examples for c in e.changes for j in (c.a, c.b)]
    sides = [side for e in examples for side in (e.a, e.b)]
    rationales: dict[int, str] = {}
    for chunk in _chunks(sorted({j.assessment_pk for j in judgements})):
        rationales.update(Assessment.objects.filter(pk__in=chunk).values_list("pk", "rationale"))
    previews: dict[int, tuple[str, str]] = {}
    for chunk in _chunks(sorted({side.pk for side in sides})):
        rows = Trace.objects.filter(pk__in=chunk).values_list("pk", "request_preview", "response_preview")
        previews.update((pk, (request, response)) for pk, request, response in rows)
    for judgement in judgements:
        judgement.rationale = rationales.get(judgement.assessment_pk, "")
    for side in sides:
        side.request_preview, side.response_preview = previews.get(side.pk, ("", ""))
