"""Dataset records from stored traces, as MLflow's ``EvaluationDataset.merge_records(traces)`` makes them.

Per trace: ``inputs`` and ``outputs`` by the conversation rule (``traces.conversation``, as the
exporters use: the root span's, or the outermost span that recorded them under a bare wrapper
root); ``expectations`` from its valid expectation assessments (the newest per name); source
``TRACE`` with the trace id (and the session id when the trace has one). Traces are read in
batches of ``TRACE_BATCH`` by primary key, so any number streams in flat memory.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

import orjson
from django.db.models import QuerySet, TextField
from django.db.models.functions import Cast

from traces.conversation import conversation_io
from traces.models import Assessment, AssessmentKind, Trace
from traces.search.expressions import JSONKeyText

from .exporters import mlflow_inputs
from .models import inputs_key

TRACE_BATCH = 1000
SESSION_KEY = "mlflow.trace.session"


def _loads(text: str | None) -> Any:
    return None if text is None else orjson.loads(text)


def record_inputs(inputs: Any) -> dict[str, Any]:
    """A trace's inputs as its dataset record holds them (``{}`` when the trace recorded none)."""
    return {} if inputs is None else mlflow_inputs(inputs)


def trace_inputs_key(inputs: Any) -> str:
    """The ``inputs_key`` of the dataset record a trace with these inputs merges into (runs match on it)."""
    return inputs_key(record_inputs(inputs))


def trace_inputs_keys(trace_pks: list[int], *, batch_size: int = TRACE_BATCH) -> dict[int, str]:
    """``trace_inputs_key`` of each trace, by the conversation rule, in batches (one to three queries each)."""
    keys: dict[int, str] = {}
    for first in range(0, len(trace_pks), batch_size):
        batch = trace_pks[first : first + batch_size]
        found = conversation_io(batch)
        for pk in batch:
            io = found.get(pk)
            keys[pk] = trace_inputs_key(io.inputs if io is not None else None)
    return keys


def trace_expectations(trace_pks: list[int]) -> dict[int, dict[str, Any]]:
    """Each trace's valid expectations by name; a later one of the same name wins (one query)."""
    rows = (
        Assessment.objects.filter(trace_id__in=trace_pks, kind=AssessmentKind.EXPECTATION, valid=True)
        .annotate(value_text=Cast("value", TextField()))
        .order_by("create_time", "id")
        .values_list("trace_id", "name", "value_text")
    )
    found: dict[int, dict[str, Any]] = defaultdict(dict)
    for trace_pk, name, value in rows:
        found[trace_pk][name] = _loads(value)
    return found


def trace_records(
    traces: QuerySet[Trace], *, on_trace: Callable[[], None] | None = None, batch_size: int = TRACE_BATCH
) -> Iterator[dict[str, Any]]:
    """One record per trace of ``traces``, streamed: three to five queries per batch."""
    rows = traces.order_by("pk").annotate(session=JSONKeyText("trace_metadata", SESSION_KEY))
    last = 0
    while True:
        batch = list(rows.filter(pk__gt=last).values_list("pk", "trace_id", "session")[:batch_size])
        if not batch:
            return
        last = batch[-1][0]
        pks = [pk for pk, _, _ in batch]
        io_by_trace = conversation_io(pks)
        expectations = trace_expectations(pks)
        for pk, trace_id, session in batch:
            if on_trace:
                on_trace()
            io = io_by_trace.get(pk)
            inputs, outputs = (io.inputs, io.outputs) if io is not None else (None, None)
            source_data = {"trace_id": trace_id}
            if session:
                source_data["session_id"] = session
            yield {
                "inputs": record_inputs(inputs),
                "outputs": outputs,
                "expectations": expectations.get(pk, {}),
                "source": {"source_type": "TRACE", "source_data": source_data},
            }
