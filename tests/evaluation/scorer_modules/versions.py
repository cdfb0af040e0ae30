"""Scorers for comparing two versions of an app: a yes/no judge with a rationale, and a check that can crash."""

from mlflow.entities import Feedback
from mlflow.genai.scorers import scorer


@scorer
def polite(outputs) -> Feedback:
    """ "yes" when the answer says please."""
    if "please" in str(outputs).lower():
        return Feedback(value="yes", rationale="says please")
    return Feedback(value="no", rationale="no please")


@scorer
def grounded(outputs) -> bool:
    """Whether the answer cites a source; raises on answers containing "crash" (a flaky dependency)."""
    if "crash" in str(outputs):
        raise RuntimeError("grounding service down")
    return "source" in str(outputs)
