"""Stored traces as the DataFrame ``mlflow.search_traces()`` returns (MLflow 3.17.2), streamed as rows.

One row per trace with MLflow's columns (``Trace.pandas_dataframe_columns()``) holding what
``Trace.to_pandas_dataframe_row()`` puts there: ``trace`` is the trace's ``Trace.to_json()``
text (``traces.mlflow_shape``), ``state`` the state's name, ``request_time`` epoch milliseconds,
``execution_duration`` milliseconds (or None), ``request``/``response`` the root span's inputs and
outputs decoded (MLflow's rule: the first span without a parent), ``trace_metadata`` and ``tags``
dicts, ``spans`` the ``Span.to_dict()`` list and ``assessments`` the ``Assessment.to_dictionary()``
list, invalid (overridden) ones included, oldest first.

Which traces: a :class:`TraceSelection`, made by one of :data:`SELECTIONS` (an experiment, a
labeling session's copies, an evaluation run's traces, or every explorable trace) and narrowed by
an MLflow filter string.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db.models import QuerySet

from labeling.copies import on_session_copies
from labeling.models import LabelingSession
from traces.mlflow_shape import trace_dicts
from traces.models import Experiment, ExperimentKind, Trace
from traces.search import FilterError, search_traces

from .exporters import ExportError
from .models import EvaluationRun, EvaluationRunTrace

COLUMNS = [
    "trace_id",
    "trace",
    "client_request_id",
    "state",
    "request_time",
    "execution_duration",
    "request",
    "response",
    "trace_metadata",
    "tags",
    "spans",
    "assessments",
]
CHUNK = 500  # traces rendered per batch (three queries each)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_MS = timedelta(milliseconds=1)
INPUTS_KEY, OUTPUTS_KEY = "mlflow.spanInputs", "mlflow.spanOutputs"


@dataclass(frozen=True)
class TraceSelection:
    """The traces an export writes (ordered as ``search_traces`` orders them) and how to name them."""

    traces: QuerySet[Trace]
    description: str


@dataclass
class TraceExportStats:
    traces: int = 0
    spans: int = 0
    assessments: int = 0
    spanless: int = 0  # traces stored without spans: MLflow finds no root span, so evaluate cannot score them


def _experiment(name: str) -> QuerySet[Trace]:
    experiment = Experiment.objects.filter(name=name, kind=ExperimentKind.TRACES).first()
    if experiment is None:
        raise ExportError(f"no experiment named “{name}”")
    return Trace.objects.filter(experiment=experiment)


def _session(name: str) -> QuerySet[Trace]:
    session = LabelingSession.objects.filter(name=name).first()
    if session is None:
        raise ExportError(f"no labeling session named “{name}”")
    return Trace.objects.filter(on_session_copies(session, "id"))


def find_run(name_or_run_id: str) -> EvaluationRun:
    """The run with this run id, else the one run with this name; several of that name is an error naming them."""
    run = EvaluationRun.objects.filter(run_id=name_or_run_id).first()
    if run is not None:
        return run
    named = list(EvaluationRun.objects.filter(name=name_or_run_id).order_by("created_at", "id")[:21])
    if not named:
        raise ExportError(f"no evaluation run named or with run id “{name_or_run_id}”")
    if len(named) > 1:
        ids = ", ".join(r.run_id for r in named[:20]) + (", …" if len(named) > 20 else "")
        raise ExportError(f"several evaluation runs are named “{name_or_run_id}”; give one's run id: {ids}")
    return named[0]


def _run(name_or_run_id: str) -> QuerySet[Trace]:
    run = find_run(name_or_run_id)
    return Trace.objects.filter(pk__in=EvaluationRunTrace.objects.filter(run=run).values("trace_id"))


# option name → the traces it names; ``None`` (no option) means every trace of the explorer.
SELECTIONS: dict[str, tuple[str, Callable[[str], QuerySet[Trace]]]] = {
    "experiment": ("experiment", _experiment),
    "session": ("labeling session", _session),
    "run": ("evaluation run", _run),
}


def select_traces(*, source: str | None = None, name: str = "", filter_string: str = "") -> TraceSelection:
    """The traces of ``SELECTIONS[source]`` named ``name`` (every explorable trace without a source),
    narrowed by the MLflow ``filter_string``. Raises ``ExportError`` naming the problem."""
    if source is None:
        if not filter_string.strip():
            raise ExportError('say which traces: --experiment NAME, --session NAME or --filter "..."')
        traces, description = Trace.objects.explorable(), "traces"
    else:
        label, find = SELECTIONS[source]
        traces, description = find(name), f"{label} “{name}”"
    try:
        traces = search_traces(traces, filter_string)
    except FilterError as exc:
        raise ExportError(f"bad filter: {exc}") from None
    if filter_string.strip():
        description += f" matching {filter_string.strip()!r}"
    return TraceSelection(traces, description)


def _epoch_ms(text: str) -> int:
    return (datetime.fromisoformat(text.replace("Z", "+00:00")) - EPOCH) // ONE_MS


def _root_value(spans: list[dict[str, Any]], key: str) -> Any:
    """``Trace._deserialize_json_attr(trace.data.request)``: the root span's attribute decoded, else as is."""
    root = next((span for span in spans if span["parent_span_id"] is None), None)
    raw = None if root is None else root["attributes"].get(key)
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def dataframe_row(shaped: dict[str, Any]) -> dict[str, Any]:
    """``Trace.to_pandas_dataframe_row()`` for a trace in ``Trace.to_dict()`` layout."""
    info, spans = shaped["info"], shaped["data"]["spans"]
    return {
        "trace_id": info["trace_id"],
        "trace": json.dumps(shaped),  # Trace.to_json()
        "client_request_id": info.get("client_request_id"),
        "state": info["state"],
        "request_time": _epoch_ms(info["request_time"]),
        "execution_duration": info.get("execution_duration_ms"),
        "request": _root_value(spans, INPUTS_KEY),
        "response": _root_value(spans, OUTPUTS_KEY),
        "trace_metadata": info["trace_metadata"],
        "tags": info["tags"],
        "spans": spans,
        "assessments": info["assessments"],
    }


def trace_rows(
    selection: TraceSelection,
    *,
    stats: TraceExportStats | None = None,
    on_trace: Callable[[], None] | None = None,
) -> Iterator[dict[str, Any]]:
    """One row per selected trace, in order, rendered ``CHUNK`` traces at a time so memory stays flat."""
    stats = stats if stats is not None else TraceExportStats()
    chunk: list[int] = []
    for pk in selection.traces.values_list("pk", flat=True).iterator(chunk_size=CHUNK * 4):
        chunk.append(pk)
        if len(chunk) >= CHUNK:
            yield from _rows_for(chunk, stats, on_trace)
            chunk = []
    if chunk:
        yield from _rows_for(chunk, stats, on_trace)


def _rows_for(pks: list[int], stats: TraceExportStats, on_trace: Callable[[], None] | None) -> Iterator[dict[str, Any]]:
    shaped = trace_dicts(pks)
    for pk in pks:
        if pk not in shaped:  # deleted since the list was read
            continue
        row = dataframe_row(shaped[pk])
        stats.traces += 1
        stats.spans += len(row["spans"])
        stats.spanless += not row["spans"]
        stats.assessments += len(row["assessments"])
        if on_trace:
            on_trace()
        yield row
