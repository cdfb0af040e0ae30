"""What a scorer's Feedback value means for a trace: passed, failed, or a number to compare.

One rule for the run page ("failed on scorer X") and the comparison (regressions, improvements):

* ``True`` / ``"yes"`` (any case) pass; ``False`` / ``"no"`` fail;
* an error Feedback (the scorer raised or timed out) fails;
* other numbers are not pass/fail: a comparison calls a drop a regression and a rise an improvement;
* anything else (other strings, lists, ``None``) is neither.
"""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Any


class Verdict(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    NUMBER = "number"
    OTHER = "other"


def verdict(value: Any, *, error: Any = None) -> Verdict:
    if error:
        return Verdict.FAILED
    if isinstance(value, bool):
        return Verdict.PASSED if value else Verdict.FAILED
    if isinstance(value, str) and value.lower() in ("yes", "no"):
        return Verdict.PASSED if value.lower() == "yes" else Verdict.FAILED
    if isinstance(value, int | float) and not math.isnan(value):
        return Verdict.NUMBER
    return Verdict.OTHER


def failed(value: Any, *, error: Any = None) -> bool:
    return verdict(value, error=error) is Verdict.FAILED


def change(before: Any, after: Any, *, before_error: Any = None, after_error: Any = None) -> int:
    """+1 when ``after`` is better than ``before``, -1 when worse, 0 when neither (or not comparable).

    pass → fail (or error) is worse, fail → pass better; numbers compare as numbers, higher is better.
    """
    a, b = verdict(before, error=before_error), verdict(after, error=after_error)
    if {a, b} <= {Verdict.PASSED, Verdict.FAILED}:
        return 0 if a is b else (1 if b is Verdict.PASSED else -1)
    if a is Verdict.NUMBER and b is Verdict.NUMBER:
        return (after > before) - (after < before)
    return 0
