"""Applications a predict run calls: traced and untraced, with a retriever, raising, hanging, with bad results."""

from __future__ import annotations

import threading
from typing import Any

import mlflow
from mlflow.entities import Document, SpanType

RELEASE = threading.Event()  # set by a test to let hanging calls return


@mlflow.trace(span_type=SpanType.RETRIEVER)
def retrieve(question: str) -> list[Document]:
    return [Document(page_content=f"About {question}", metadata={"doc_uri": "https://docs.example/1"})]


@mlflow.trace
def rag_app(question: str) -> str:
    """Traced already: its own span is the root, the retriever a child."""
    documents = retrieve(question)
    return f"Look it up ({len(documents)} document)"


def plain_app(question: str) -> str:
    """Not traced: the run wraps it, so its call is the root span."""
    documents = retrieve(question)
    return f"Answer to {question} using {documents[0].metadata['doc_uri']}"


def flaky_app(question: str) -> str:
    if "boom" in question:
        raise ValueError(f"cannot answer {question!r}")
    return f"Answer to {question}"


def hanging_app(question: str) -> str:
    if "slow" in question:
        RELEASE.wait(30)
    return f"Answer to {question}"


def dict_app(question: str, **extra: Any) -> dict[str, Any]:
    return {"choices": [{"message": {"role": "assistant", "content": f"Answer to {question}"}}], "extra": extra}


NOT_A_FUNCTION = 3
