"""A code scorer that takes a little while, so two workers are scoring at the same time."""

import time

from mlflow.genai.scorers import scorer


@scorer
def slow_length(outputs) -> int:
    """The answer's length, after 20 ms."""
    time.sleep(0.02)
    return len(str(outputs))
