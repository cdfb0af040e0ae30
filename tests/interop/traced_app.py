"""A small RAG app traced with the real MLflow SDK; where its traces go is up to the environment.

Run as a script (its own process, as a user's app would be): it answers one question, prints the
MLflow trace id, and flushes the exporter. With ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` set, MLflow
sends the spans over OTLP instead of to a tracking server.
"""

from __future__ import annotations

import os
import sys

import mlflow
from mlflow.entities import Document, SpanType

QUESTION = "Can I return my kettle after three weeks?"
DOCUMENTS = [
    Document(
        page_content="Refunds are accepted for 30 days after delivery.",
        metadata={"doc_uri": "https://docs.example.com/refunds", "chunk_id": "refunds-2"},
        id="doc-refunds",
    ),
    Document(
        page_content="Small appliances ship back free of charge.",
        metadata={"doc_uri": "https://docs.example.com/shipping"},
        id="doc-shipping",
    ),
]
ANSWER = "Yes: refunds are accepted for 30 days after delivery, and the return shipping is free."
trace_ids: list[str] = []


@mlflow.trace(span_type=SpanType.RETRIEVER)
def search_policies(query: str) -> list[Document]:
    return DOCUMENTS


@mlflow.trace(span_type=SpanType.CHAT_MODEL)
def chat(messages: list[dict[str, str]], model: str = "gpt-4o-mini") -> dict:
    return {
        "id": "chatcmpl-interop",
        "object": "chat.completion",
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": ANSWER}, "finish_reason": "stop"}],
    }


@mlflow.trace(span_type=SpanType.AGENT)
def support_agent(question: str) -> str:
    # No mlflow.update_current_trace(tags=…): under OTLP export MLflow 3.17.2 then fails to end the
    # root span ("Cannot mutate immutable BoundedAttributes") and never sends it.
    trace_ids.append(mlflow.get_active_trace_id())  # get_last_active_trace_id() is None under OTLP export
    if model_id := mlflow.get_active_model_id():
        # MLflow 3.17.2's OTLP exporter drops trace metadata, set_active_model's mlflow.modelId with it;
        # on the root span it reaches the app, which files it as the trace's metadata.
        mlflow.get_current_active_span().set_attribute("mlflow.modelId", model_id)
    documents = search_policies(question)
    context = "\n".join(d.page_content for d in documents)
    messages = [
        {"role": "system", "content": f"Answer from the policies:\n{context}"},
        {"role": "user", "content": question},
    ]
    return chat(messages)["choices"][0]["message"]["content"]


def main() -> None:
    """Answer the question (``TRACED_APP_RUNS`` times, as version ``TRACED_APP_MODEL`` when set)."""
    if model_name := os.environ.get("TRACED_APP_MODEL"):
        mlflow.set_active_model(name=model_name)
    for _ in range(int(os.environ.get("TRACED_APP_RUNS", "1"))):
        support_agent(QUESTION)
    print(trace_ids[-1])
    from mlflow.tracing.provider import provider

    provider.get().force_flush()  # the OTLP exporter batches spans; send them before exiting
    sys.stdout.flush()


if __name__ == "__main__":
    main()
