"""Example code scorers, written exactly as for ``mlflow.genai.evaluate`` (the demo and the README use them).

Put your own in any importable module and list it in ``SCORER_MODULES``.
"""

from __future__ import annotations

import json
from typing import Any

from mlflow.entities import Feedback, SpanType, Trace
from mlflow.genai.scorers import scorer

LATENCY_THRESHOLD_MS = 2000


def _text(value: Any) -> str:
    """The answer as text: a string as is; a chat completion's message content; anything else as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        choices = value.get("choices")
        if isinstance(choices, list) and choices and isinstance(choices[0], dict):
            content = (choices[0].get("message") or {}).get("content")
            if isinstance(content, str):
                return content
        for key in ("content", "answer", "response", "output", "text"):
            if isinstance(value.get(key), str):
                return value[key]
    return "" if value is None else json.dumps(value, ensure_ascii=False)


@scorer(aggregations=["mean", "min", "max", "median"])
def response_length(outputs: Any) -> int:
    """Characters in the response."""
    return len(_text(outputs))


def _documents(outputs: Any) -> list[Any]:
    """A retriever's documents: its output list, or the list under ``documents``."""
    if isinstance(outputs, dict):
        outputs = outputs.get("documents")
    return outputs if isinstance(outputs, list) else []


@scorer
def has_retrieved_documents(trace: Trace) -> Feedback:
    """Whether a RETRIEVER span of the trace returned at least one document."""
    retrievers = trace.search_spans(span_type=SpanType.RETRIEVER)
    documents = sum(len(_documents(span.outputs)) for span in retrievers)
    if not retrievers:
        return Feedback(value=False, rationale="The trace has no RETRIEVER span.")
    return Feedback(value=documents > 0, rationale=f"{documents} documents from {len(retrievers)} retriever spans.")


@scorer
def mentions_expected_fact(outputs: Any, expectations: dict[str, Any]) -> Feedback | None:
    """ "yes" when the response mentions every expected fact (``expectations.expected_facts``), else "no"."""
    facts = (expectations or {}).get("expected_facts")
    if not facts:
        return None
    text = _text(outputs).lower()
    missing = [fact for fact in facts if str(fact).lower() not in text]
    if missing:
        return Feedback(value="no", rationale="Missing: " + "; ".join(str(fact) for fact in missing))
    return Feedback(value="yes", rationale=f"All {len(facts)} expected facts are mentioned.")


@scorer
def latency_under_threshold(trace: Trace) -> Feedback:
    """Whether the trace took less than ``LATENCY_THRESHOLD_MS`` milliseconds."""
    duration = trace.info.execution_duration
    if duration is None:
        return Feedback(value=False, rationale="The trace records no duration.")
    return Feedback(
        value=duration < LATENCY_THRESHOLD_MS, rationale=f"{duration} ms (threshold {LATENCY_THRESHOLD_MS} ms)."
    )
