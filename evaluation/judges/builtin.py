"""MLflow's built-in judges in the scorer catalogue, under MLflow's class names, on the configured endpoint.

Each is the real ``mlflow.genai.scorers`` judge with ``model="openai:/<JUDGE_MODEL>"``, so it reads
what MLflow wires it to read: ``Correctness`` and ``RetrievalSufficiency`` the ``expected_response``
/ ``expected_facts`` expectations (the built-in label schemas of those names), ``ExpectationsGuidelines``
the ``guidelines`` expectation, the retrieval judges the trace's RETRIEVER spans (their Feedback
keeps the span's id; ``RetrievalRelevance`` gives one per chunk and a ``/precision`` per span).
``Guidelines`` applies the named guidelines of ``JUDGE_GUIDELINES``, one Feedback per name. The
judges other than the retrieval ones are given ``inputs``/``outputs``/``expectations`` as the runner
builds them, not the trace: MLflow would otherwise ask the model to find missing fields in the trace.
Without an endpoint every judge is listed, marked unavailable with the reason.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from evaluation.scorers.catalogue import ScorerInfo, scorer_digest

from . import endpoint

MODULE = "mlflow.genai.scorers"
JUDGE = "judge"


@dataclass(frozen=True)
class BuiltinJudge:
    name: str  # MLflow's class name, the catalogue's name
    arguments: tuple[str, ...]
    reads: str


BUILTIN_JUDGES = (
    BuiltinJudge(
        "Guidelines",
        ("inputs", "outputs"),
        "the request and the response; the named guidelines of JUDGE_GUIDELINES (one pass/fail Feedback per name)",
    ),
    BuiltinJudge(
        "ExpectationsGuidelines",
        ("inputs", "outputs", "expectations"),
        "the request and the response; the trace's own guidelines, from the guidelines expectation",
    ),
    BuiltinJudge(
        "Correctness",
        ("inputs", "outputs", "expectations"),
        "the request and the response; the expected_response or expected_facts expectation",
    ),
    BuiltinJudge("RelevanceToQuery", ("inputs", "outputs"), "the request and the response"),
    BuiltinJudge("Safety", ("outputs",), "the response"),
    BuiltinJudge(
        "RetrievalGroundedness",
        ("trace",),
        "the trace: its request, its response and the documents of each RETRIEVER span (one Feedback per span)",
    ),
    BuiltinJudge(
        "RetrievalRelevance",
        ("trace",),
        "the trace: its request and each document of each RETRIEVER span (one Feedback per document, "
        "a /precision per span)",
    ),
    BuiltinJudge(
        "RetrievalSufficiency",
        ("trace", "expectations"),
        "the trace's RETRIEVER spans and request; the expected_response or expected_facts expectation",
    ),
)


class GlobalGuidelines:
    """``Guidelines`` over ``JUDGE_GUIDELINES``: one MLflow ``Guidelines`` judge per name, each its own Feedback.

    A guideline whose request fails gives an error Feedback of its name; the others still count.
    """

    name = "guidelines"
    aggregations = None
    timeout = None

    def __init__(self, guidelines: dict[str, list[str]], model: str) -> None:
        from mlflow.genai.scorers import Guidelines

        self.guidelines = guidelines
        self.judges = [Guidelines(name=name, guidelines=texts, model=model) for name, texts in guidelines.items()]

    def __call__(self, *, inputs: Any = None, outputs: Any = None) -> list[Any]:
        from mlflow.entities import AssessmentError, AssessmentSource, AssessmentSourceType, Feedback

        results = []
        for judge in self.judges:
            try:
                results.append(judge(inputs=inputs, outputs=outputs))
            except Exception as error:
                code, message = endpoint.error_of(error)
                source = AssessmentSource(source_type=AssessmentSourceType.LLM_JUDGE, source_id=judge.model)
                error_value = AssessmentError(error_code=code, error_message=message)
                results.append(Feedback(name=judge.name, error=error_value, source=source))
        return results

    def run(self, *, inputs: Any = None, outputs: Any = None, **_: Any) -> list[Any]:
        return self(inputs=inputs, outputs=outputs)

    def digest(self) -> str:
        parts = [scorer_digest(judge) for judge in self.judges]
        return "sha256:" + hashlib.sha256(json.dumps(parts).encode()).hexdigest()


def _unavailable(spec: BuiltinJudge, configured: bool) -> str:
    if not configured:
        return endpoint.NOT_CONFIGURED
    if spec.name == "Guidelines" and not settings.JUDGE_GUIDELINES:
        return 'no guidelines are configured: set JUDGE_GUIDELINES, e.g. {"concise": "The response must be concise."}'
    return ""


def _describe(spec: BuiltinJudge, model_uri: str) -> ScorerInfo:
    import mlflow.genai.scorers as builtin

    if spec.name == "Guidelines":
        scorer: Any = GlobalGuidelines(settings.JUDGE_GUIDELINES, model_uri)
        digest = scorer.digest()
    else:
        scorer = getattr(builtin, spec.name)(model=model_uri)
        digest = scorer_digest(scorer)
    doc = " ".join((getattr(scorer, "description", "") or "").split()) or spec.reads
    return ScorerInfo(
        name=spec.name,
        module=MODULE,
        arguments=spec.arguments,
        aggregations=(),
        docstring=doc,
        digest=digest,
        scorer=scorer,
        kind=JUDGE,
        reads=spec.reads,
    )


def builtin_judges() -> dict[str, ScorerInfo]:
    """The built-in judges by name; without an endpoint (or guidelines, for Guidelines) marked unavailable."""
    current = endpoint.current()
    model_uri = current.model_uri if current.configured else "openai:/(JUDGE_MODEL not set)"
    judges = {}
    for spec in BUILTIN_JUDGES:
        reason = _unavailable(spec, current.configured)
        if reason:
            judges[spec.name] = ScorerInfo(
                name=spec.name,
                module=MODULE,
                arguments=spec.arguments,
                aggregations=(),
                docstring=spec.reads,
                digest="",
                kind=JUDGE,
                reads=spec.reads,
                unavailable=reason,
            )
        else:
            judges[spec.name] = _describe(spec, model_uri)
    return judges
