"""Plain factories: ``make_trace(**overrides)`` builds a stored trace with a realistic span tree."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from traces.models import Assessment, Experiment, Span, Trace

START_NS = 1_795_418_565_959_869_148


def make_experiment(name: str = "Tests") -> Experiment:
    return Experiment.objects.get_or_create(name=name)[0]


def make_trace(
    *,
    n_spans: int = 3,
    n_documents: int = 2,
    experiment: Experiment | None = None,
    question: str = "What does MLflow Tracing record?",
    answer: str = "Inputs, outputs and metadata.",
    document_uri: str = "https://docs.example.com/tracing.md",
    **overrides: Any,
) -> Trace:
    """A RAG-shaped trace: root CHAIN, one RETRIEVER with ``n_documents`` documents, the rest LLM/TOOL spans."""
    trace_id = overrides.pop("trace_id", f"tr-{uuid.uuid4().hex}")
    fields: dict[str, Any] = {
        "experiment": experiment or make_experiment(),
        "name": "rag",
        "state": "OK",
        "request_time": datetime(2026, 11, 23, 7, 22, tzinfo=UTC),
        "execution_duration_ms": 62,
        "request_preview": f'{{"question": "{question}"}}',
        "response_preview": f'"{answer}"',
        "span_count": n_spans,
        **overrides,
    }
    trace = Trace.objects.create(trace_id=trace_id, **fields)
    spans = [
        Span(
            trace=trace,
            span_id=f"{1:016x}",
            name="rag",
            span_type="CHAIN",
            status_code="OK",
            start_time_ns=START_NS,
            end_time_ns=START_NS + 62_000_000,
            inputs={"question": question},
            outputs=answer,
        )
    ]
    documents = [
        {
            "page_content": f"Document {i} text about tracing.",
            "metadata": {"doc_uri": document_uri, "chunk_id": f"c-{i}"},
            "id": f"doc-{i}",
        }
        for i in range(n_documents)
    ]
    for index in range(2, n_spans + 1):
        kind = "RETRIEVER" if index == 2 else ("TOOL" if index % 3 == 0 else "LLM")
        parent = 1 if index < 10 else index // 10
        spans.append(
            Span(
                trace=trace,
                span_id=f"{index:016x}",
                parent_id=f"{parent:016x}",
                name=f"step_{index}" if kind != "RETRIEVER" else "retrieve",
                span_type=kind,
                status_code="OK",
                start_time_ns=START_NS + index * 10_000,
                end_time_ns=START_NS + index * 10_000 + 5_000_000,
                inputs={"query": question} if kind == "RETRIEVER" else {"x": index, "pad": "y" * 200},
                outputs=documents if kind == "RETRIEVER" else {"result": index},
            )
        )
    Span.objects.bulk_create(spans)
    return trace


def make_assessment(trace: Trace, name: str = "correct", value: Any = True, **overrides: Any) -> Assessment:
    now = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    fields: dict[str, Any] = {
        "assessment_id": f"a-{uuid.uuid4().hex}",
        "trace": trace,
        "name": name,
        "kind": "feedback",
        "value": value,
        "source_type": "LLM_JUDGE",
        "source_id": "judge",
        "create_time": now,
        "last_update_time": now,
        **overrides,
    }
    return Assessment.objects.create(**fields)
