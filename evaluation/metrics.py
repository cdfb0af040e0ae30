"""Run metrics as ``mlflow.genai.evaluate`` computes them: ``<assessment name>/<aggregation>``.

Each Feedback value counts as a number: numbers as they are, ``True``/``False`` as 1/0, the strings
``"yes"``/``"no"`` (any case) as 1/0; other strings, lists, ``None`` and error Feedback are left
out. The aggregations of an assessment name are those of the scorer with that name (``mean`` when
it names none or no scorer has that name): ``min``, ``max``, ``mean``, ``median``, ``variance``
(of the population, as ``numpy.var``) and ``p90`` (``numpy.percentile(values, 90)``, linear); a
scorer's own aggregation function is named after the function, and one that raises is skipped.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

Aggregation = str | Callable[[list[float]], float]
logger = logging.getLogger(__name__)

AGGREGATIONS = ("min", "max", "mean", "median", "variance", "p90")
DEFAULT_AGGREGATIONS = ("mean",)


def as_number(value: Any) -> float | None:
    """The value a metric counts, or None when it is not aggregated."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and value.lower() in ("yes", "no"):
        return 1.0 if value.lower() == "yes" else 0.0
    return None


def _percentile(ordered: Sequence[float], q: float) -> float:
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def aggregate(values: Sequence[float], aggregation: str) -> float:
    ordered = sorted(values)
    mean = math.fsum(values) / len(values)
    if aggregation == "min":
        return ordered[0]
    if aggregation == "max":
        return ordered[-1]
    if aggregation == "mean":
        return mean
    if aggregation == "median":
        return _percentile(ordered, 50)
    if aggregation == "variance":
        return math.fsum((v - mean) ** 2 for v in values) / len(values)
    if aggregation == "p90":
        return _percentile(ordered, 90)
    raise ValueError(f"unknown aggregation {aggregation!r}; known: {', '.join(AGGREGATIONS)}")


def compute_metrics(
    feedback: Iterable[tuple[str, Any]], aggregations: Mapping[str, Sequence[Aggregation]] | None = None
) -> dict[str, float]:
    """``{"<name>/<agg>": value}`` from (assessment name, value) pairs of a run's valid, error-free Feedback."""
    values: dict[str, list[float]] = defaultdict(list)
    for name, value in feedback:
        number = as_number(value)
        if number is not None and not math.isnan(number):
            values[name].append(number)
    metrics: dict[str, float] = {}
    for name in sorted(values):
        for aggregation in (aggregations or {}).get(name) or DEFAULT_AGGREGATIONS:
            if isinstance(aggregation, str):
                metrics[f"{name}/{aggregation}"] = aggregate(values[name], aggregation)
                continue
            try:
                metrics[f"{name}/{aggregation.__name__}"] = float(aggregation(list(values[name])))
            except Exception:  # as MLflow: a failing custom aggregation is logged and left out
                logger.exception("aggregation %r of %s failed", aggregation, name)
    return metrics
