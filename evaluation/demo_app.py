"""The demo's application in two versions, called by the demo's predict runs (``evaluate --predict``).

A health-insurance assistant: it retrieves policy excerpts and answers. Both versions are traced with
MLflow (the root span, a RETRIEVER span with the documents, a CHAT_MODEL span with the messages), and
answer from fixed data, so the demo needs no model and gives the same results every time.

* ``answer_v1`` answers in full, but for a few questions it only says to read the policy.
* ``answer_v2`` answers every question, but "concisely": at most two sentences. That fixes the
  questions v1 dodged (improvements) and drops details experts expect elsewhere (regressions).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import mlflow
from mlflow.entities import Document, SpanType

from traces.demo_scenarios import SCENARIOS

SYSTEM_PROMPT = "You are a careful health-insurance support assistant. Answer only from the policy excerpts."
DODGE = "Please check your policy documents or call us; I cannot answer that here."
DODGED_BY_V1 = 4  # every 4th question


@dataclass(frozen=True)
class DemoQuestion:
    question: str
    answer: str
    documents: tuple[tuple[str, str], ...]

    @property
    def expected_fact(self) -> str:
        """What experts expect the answer to say: the last sentence's closing words."""
        last = _sentences(self.answer)[-1]
        words = re.sub(r"[^\w\s%$.-]", "", last).rstrip(".").split()
        return " ".join(words[-3:])


def _sentences(text: str) -> list[str]:
    return [part for part in re.split(r"(?<=[.!?])\s+", text.strip()) if part]


def demo_questions() -> list[DemoQuestion]:
    """Twenty questions: each scenario's, then the first follow-ups."""
    first = [DemoQuestion(s.question, s.answer, tuple(s.documents)) for s in SCENARIOS]
    follow = [DemoQuestion(s.follow_up, s.follow_up_answer, tuple(s.documents)) for s in SCENARIOS]
    return (first + follow)[:20]


def _by_question() -> dict[str, DemoQuestion]:
    return {q.question: q for q in demo_questions()}


@mlflow.trace(span_type=SpanType.RETRIEVER)
def retrieve_policies(question: str) -> list[Document]:
    found = _by_question().get(question)
    documents = found.documents if found else ()
    return [Document(page_content=text, metadata={"doc_uri": uri}) for uri, text in documents]


def _chat(question: str, documents: list[Document], answer: str, model: str) -> str:
    context = "\n".join(f"- {d.page_content} ({d.metadata.get('doc_uri')})" for d in documents)
    messages = [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": f"Policy excerpts:\n{context}\n\nQuestion: {question}"},
    ]
    with mlflow.start_span(name="chat_completion", span_type=SpanType.CHAT_MODEL) as span:
        span.set_inputs({"model": model, "messages": messages})
        span.set_outputs({"choices": [{"index": 0, "message": {"role": "assistant", "content": answer}}]})
    return answer


def _index(question: str) -> int:
    return next((i for i, q in enumerate(demo_questions()) if q.question == question), -1)


@mlflow.trace(name="support_assistant", span_type=SpanType.AGENT)
def answer_v1(question: str) -> str:
    """Version 1: full answers, except that every 4th question gets a referral to the policy."""
    documents = retrieve_policies(question)
    known = _by_question().get(question)
    dodge = known is None or _index(question) % DODGED_BY_V1 == DODGED_BY_V1 - 1
    return _chat(question, documents, DODGE if dodge else known.answer, "demo-model-v1")


@mlflow.trace(name="support_assistant", span_type=SpanType.AGENT)
def answer_v2(question: str) -> str:
    """Version 2: every question answered, in at most two sentences."""
    documents = retrieve_policies(question)
    known = _by_question().get(question)
    answer = " ".join(_sentences(known.answer)[:2]) if known else DODGE
    return _chat(question, documents, answer, "demo-model-v2")


def demo_records() -> list[dict[str, Any]]:
    """The demo dataset: each question with the fact experts expect in its answer."""
    return [
        {
            "inputs": {"question": q.question},
            "expectations": {"expected_facts": [q.expected_fact]},
            "source": {"source_type": "HUMAN", "source_data": {"user_name": "demo"}},
        }
        for q in demo_questions()
    ]
