"""Two runs of two app versions over the same questions, for the comparison tests (service, page, command).

Per question (``v1`` answer → ``v2`` answer), with scorers answer_words (a number), polite ("yes"/"no")
and grounded (True/False, raises on "crash"):

* Q0 "please see the source" → "see the source": words 4 → 3 and polite yes → no regress.
* Q1 "no idea" → "please check the source docs": words 2 → 5, polite no → yes, grounded False → True improve.
* Q2 "please read the source" → "please crash": words 4 → 2 and grounded True → error regress.
* Q3 the same answer in both (v2 answers it twice: the second is only in B); Q4 "crash now" → "crash later"
  (an error both times: no change); Q5 only in v1; Q6 only in v2.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from evaluation.models import EvaluationRun
from evaluation.runs import execute_run, start_evaluation_run
from tests.factories import make_experiment, make_trace

SCORER_MODULES = [
    "evaluation.example_scorers",
    "tests.evaluation.scorer_modules.shapes",
    "tests.evaluation.scorer_modules.versions",
]
SCORERS = ["answer_words", "polite", "grounded"]
V1 = {
    "Q0": "please see the source",
    "Q1": "no idea",
    "Q2": "please read the source",
    "Q3": "please, source here",
    "Q4": "crash now",
    "Q5": "bye",
}
V2 = [
    ("Q0", "see the source"),
    ("Q1", "please check the source docs"),
    ("Q2", "please crash"),
    ("Q3", "please, source here"),
    ("Q3", "please, source here"),
    ("Q4", "crash later"),
    ("Q6", "hello"),
]


@dataclass
class TwoVersions:
    v1: EvaluationRun
    v2: EvaluationRun
    traces: dict[tuple[str, str], Any]  # (version, question) -> trace (the first when asked twice)


def make_run(name: str, answers: list[tuple[str, str]], **options: Any) -> tuple[EvaluationRun, dict[str, Any]]:
    experiment = make_experiment(f"app-{name}")
    traces: dict[str, Any] = {}
    for question, answer in answers:
        trace = make_trace(experiment=experiment, question=question, answer=answer, model_id=name)
        traces.setdefault(question, trace)
    run = start_evaluation_run(
        scorer_names=SCORERS, filter_string="", experiment=experiment.name, name=name, enqueue=False, **options
    )
    finished = execute_run(run.pk)
    assert finished is not None and finished.status == "finished", finished and finished.error
    return finished, traces


def make_two_versions() -> TwoVersions:
    v1, first = make_run("v1", list(V1.items()))
    v2, second = make_run("v2", V2)
    traces = {("v1", q): t for q, t in first.items()} | {("v2", q): t for q, t in second.items()}
    return TwoVersions(v1, v2, traces)


def make_many(name: str, count: int, *, broken: bool) -> EvaluationRun:
    """``count`` questions; with ``broken`` every answer loses its please (each example regresses)."""
    answers = [(f"Question {i}", "see the source" if broken else "please see the source") for i in range(count)]
    return make_run(name, answers)[0]
