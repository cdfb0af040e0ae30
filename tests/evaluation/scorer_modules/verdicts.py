"""Scorers that pass some traces and fail others, every way ``evaluation.outcomes`` calls a failure."""

from mlflow.entities import Feedback
from mlflow.genai.scorers import scorer


@scorer
def is_short(outputs) -> bool:
    """True for answers of at most two words."""
    return len(str(outputs).split()) <= 2


@scorer
def picky(outputs) -> Feedback:
    """ "No" (any case fails) for answers with "bad"; raises on "boom"; else "yes"."""
    text = str(outputs)
    if "boom" in text:
        raise ValueError("boom in the answer")
    return Feedback(value="No" if "bad" in text else "yes", rationale=f"looked at {len(text)} characters")


@scorer
def length(outputs) -> int:
    """A number: never passed nor failed."""
    return len(str(outputs))
