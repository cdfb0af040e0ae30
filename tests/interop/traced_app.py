"""A small RAG app traced with the real MLflow SDK; where its traces go is up to the environment.

Run as a script (its own process, as a user's app would be): it answers one question, prints the
MLflow trace id, and flushes the exporter. With ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` set, MLflow
sends the spans over OTLP instead of to a tracking server.
"""

from __future__ import annotations

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
    documents = search_policies(question)
    context = "\n".join(d.page_content for d in documents)
    messages = [
        {"role": "system", "content": f"Answer from the policies:\n{context}"},
        {"role": "user", "content": question},
    ]
    return chat(messages)["choices"][0]["message"]["content"]


def main() -> None:
    support_agent(QUESTION)
    print(trace_ids[-1])
    from mlflow.tracing.provider import provider

    provider.get().force_flush()  # the OTLP exporter batches spans; send them before exiting
    sys.stdout.flush()


if __name__ == "__main__":
    main()
