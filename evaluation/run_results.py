"""An evaluation run's results as its page reads them: its traces, their Feedback, and "failed on scorer X" in SQL.

``failing`` is :func:`evaluation.outcomes.failed` written as a filter: an error Feedback, or the
value ``false`` or ``"no"`` (any case). Every function here is a fixed number of queries.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Exists, OuterRef, Q, QuerySet, TextField
from django.db.models.fields.json import KT
from django.db.models.functions import Cast, Lower

from labeling.access import is_admin
from traces.access import visible_traces
from traces.models import Assessment, AssessmentKind, ExperimentKind, Trace

from .models import EvaluationRun, EvaluationRunTrace
from .runs import of_run, scorer_of_feedback
from .scorers.runner import SOURCE_RUN_KEY

# JSON text of the values outcomes.failed() calls a failure (lowered: "No", "NO" fail too)
FAILING_JSON = ("false", '"no"')


def failing() -> Q:
    """Feedback that ``outcomes.failed`` calls failed: needs the ``value_text`` alias of :func:`with_value_text`."""
    return Q(error__isnull=False) | Q(value_text__in=FAILING_JSON)


def with_value_text(assessments: QuerySet[Assessment]) -> QuerySet[Assessment]:
    return assessments.alias(value_text=Lower(Cast("value", TextField())))


def failed_on(run: EvaluationRun, scorer: str) -> Exists:
    """For a run trace row: the run gave it a failing Feedback from ``scorer``."""
    feedback = (
        Assessment.objects.filter(trace_id=OuterRef("trace_id"), kind=AssessmentKind.FEEDBACK, valid=True)
        .alias(source_run=Cast(KT(f"metadata__{SOURCE_RUN_KEY}"), TextField()), scorer=scorer_of_feedback())
        .filter(source_run=run.run_id, scorer=scorer)
    )
    return Exists(with_value_text(feedback).filter(failing()))


def run_rows(run: EvaluationRun, user: Any, *, failed: str = "") -> QuerySet[EvaluationRunTrace]:
    """The run's traces the user may open (for a lead: no other session's copies), or those it failed on a scorer."""
    rows = EvaluationRunTrace.objects.filter(run=run)
    if not is_admin(user):
        rows = rows.filter(trace__in=visible_traces(user).values("pk"))
    if failed:
        rows = rows.filter(failed_on(run, failed))
    return rows.order_by("id")


def traces_to_add(rows: QuerySet[EvaluationRunTrace]) -> QuerySet[Trace]:
    """The ordinary traces behind ``rows``: a session copy stands for the trace it was copied from."""
    pks = rows.order_by().values("trace_id")
    sources = Trace.objects.filter(pk__in=pks, source_trace__isnull=False).order_by().values("source_trace_id")
    return Trace.objects.filter(Q(pk__in=pks) | Q(pk__in=sources)).filter(experiment__kind=ExperimentKind.TRACES)


@dataclass
class ResultRow:
    """One trace of the run with its Feedback by assessment name."""

    row: EvaluationRunTrace
    feedback: dict[str, Assessment] = field(default_factory=dict)

    @property
    def trace(self) -> Trace:
        return self.row.trace


def result_rows(run: EvaluationRun, rows: list[EvaluationRunTrace]) -> list[ResultRow]:
    """The page's rows with their Feedback from this run (one query); the latest valid one of each name wins."""
    found: dict[int, dict[str, Assessment]] = defaultdict(dict)
    feedback = (
        of_run(run)
        .filter(trace_id__in=[row.trace_id for row in rows], kind=AssessmentKind.FEEDBACK, valid=True)
        .only("trace_id", "name", "value", "rationale", "error", "source_id", "create_time")
        .order_by("create_time", "id")
    )
    for assessment in feedback:
        found[assessment.trace_id][assessment.name] = assessment
    return [ResultRow(row, found.get(row.trace_id, {})) for row in rows]


def assessment_names(run: EvaluationRun) -> list[str]:
    """The Feedback names the run wrote, in its scorers' order (a scorer may write several names)."""
    feedback = of_run(run).filter(kind=AssessmentKind.FEEDBACK).annotate(scorer=scorer_of_feedback())
    pairs = set(feedback.order_by().values_list("scorer", "name").distinct())
    # a scorer that wrote nothing yet gets a column of its name, so its rows show as pending
    pairs |= {(scorer, scorer) for scorer in run.scorer_names if scorer not in {source for source, _ in pairs}}
    order = {name: index for index, name in enumerate(run.scorer_names)}
    ranked = sorted(pairs, key=lambda pair: (order.get(pair[0], len(order)), pair[1] != pair[0], pair[1]))
    return list(dict.fromkeys(name for _, name in ranked))


@dataclass(frozen=True)
class MetricCard:
    name: str
    values: list[tuple[str, float]]  # (aggregation, value), mean first


def metric_cards(metrics: dict[str, Any]) -> list[MetricCard]:
    """``{"<name>/<agg>": value}`` grouped by name, the mean first."""
    grouped: dict[str, list[tuple[str, float]]] = defaultdict(list)
    for key, value in metrics.items():
        name, _, aggregation = key.rpartition("/")
        grouped[name or key].append((aggregation, value))
    return [
        MetricCard(name, sorted(values, key=lambda pair: (pair[0] != "mean", pair[0])))
        for name, values in grouped.items()
    ]


def means(metrics: dict[str, Any]) -> list[tuple[str, Any]]:
    """The ``<name>/mean`` metrics, for the runs list."""
    return [(key.removesuffix("/mean"), value) for key, value in metrics.items() if key.endswith("/mean")]
