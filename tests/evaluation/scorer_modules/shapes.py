"""Scorers that return each shape MLflow accepts."""

from mlflow.entities import AssessmentSource, Feedback
from mlflow.genai.scorers import Scorer, scorer


@scorer
def exact_answer(outputs, expectations) -> bool:
    """True when the response is the expected response."""
    return outputs == (expectations or {}).get("expected_response")


@scorer(aggregations=["min", "max", "mean", "median", "variance", "p90"])
def answer_words(outputs) -> int:
    return len(str(outputs).split())


@scorer
def default_named(inputs) -> Feedback:
    return Feedback(value="yes", rationale="asked something")


@scorer
def custom_named(outputs) -> Feedback:
    return Feedback(name="politeness", value="no", rationale="curt", source=AssessmentSource("CODE", "ignored"))


@scorer
def several(inputs, outputs) -> list[Feedback]:
    return [Feedback(name="has_question", value=bool(inputs)), Feedback(name="has_answer", value=bool(outputs))]


@scorer
def nothing(outputs):
    return None


@scorer
def span_count(trace) -> int:
    return len(trace.data.spans)


class KeywordScorer(Scorer):
    """A class-based scorer: does the response contain the keyword?"""

    keyword: str = "MLflow"

    def __call__(self, *, outputs) -> bool:
        return self.keyword.lower() in str(outputs).lower()


keyword = KeywordScorer(name="keyword")


def spread(values: list[float]) -> float:
    return max(values) - min(values)


@scorer(aggregations=["mean", spread])
def answer_chars(outputs) -> int:
    return len(str(outputs))
