"""Code scorers both sides run: our export's direct calls (make_export.py) and mlflow.genai.evaluate (the test)."""

from __future__ import annotations

import json
from typing import Any

from mlflow.genai.scorers import scorer


@scorer
def response_length(outputs: Any) -> int:
    """Characters of the response (JSON text when it is not a string)."""
    return len(outputs if isinstance(outputs, str) else json.dumps(outputs, sort_keys=True))


@scorer
def retrieved_documents(trace: Any) -> int:
    """Documents returned by the trace's RETRIEVER spans."""
    return sum(len(span.outputs or []) for span in trace.search_spans(span_type="RETRIEVER"))


@scorer
def span_count(trace: Any) -> int:
    return len(trace.data.spans)


SCORERS = [response_length, retrieved_documents, span_count]


def row_key(request: Any, response: Any, spans: list[dict[str, Any]]) -> str:
    """How a result row is matched to our trace: evaluate scores a clone (a new trace id) with the same
    request, response and spans (``spans``: span dicts, as the DataFrame's ``spans`` column holds them)."""
    return json.dumps([request, response, sorted(span["name"] for span in spans)], sort_keys=True, default=str)
