"""Scorers that fail in every way a user's code can."""

import time

from mlflow.genai.scorers import scorer


@scorer
def raises(outputs) -> bool:
    raise ZeroDivisionError("division by zero in my scorer")


@scorer
def sleeps(outputs) -> bool:
    time.sleep(30)
    return True


@scorer
def returns_dict(outputs):
    return {"not": "supported"}


@scorer
def fine(outputs) -> bool:
    return True


@scorer(timeout=0.3)
def own_deadline(outputs) -> bool:
    time.sleep(10)
    return True
