"""Filters of the evaluation run pages: durations, metric numbers, Feedback values and their verdicts."""

from __future__ import annotations

import json
from typing import Any

from django import template

from ..models import EvaluationRun
from ..outcomes import verdict

register = template.Library()


@register.filter
def duration(seconds: float | None) -> str:
    """``42 ms``, ``3.4 s``, ``5 min 2 s``, ``2 h 5 min``; empty for no value."""
    if seconds is None:
        return ""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


@register.filter
def metric(value: Any) -> str:
    """A metric as a person reads it: at most 3 decimals, no trailing zeros."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int) or float(value).is_integer():
        return f"{int(value)}"
    return f"{value:.3f}".rstrip("0").rstrip(".")


@register.filter
def feedback_text(value: Any) -> str:
    """A Feedback value in a table cell: strings as they are, numbers as metrics, the rest as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int | float):
        return metric(value)
    return json.dumps(value, ensure_ascii=False)


@register.filter
def verdict_of(assessment: Any) -> str:
    """``passed``, ``failed``, ``number`` or ``other`` (``evaluation.outcomes``: the one rule)."""
    return verdict(assessment.value, error=assessment.error).value


@register.filter
def get_item(mapping: dict[str, Any], key: str) -> Any:
    return mapping.get(key)


@register.filter
def percent_done(run: EvaluationRun) -> int:
    return run.percent_done


@register.filter
def short_digest(digest: str) -> str:
    """``sha256:1a2b3c4d…`` → ``1a2b3c4d``."""
    return (digest or "").removeprefix("sha256:")[:8]


@register.filter
def judge_usage(run: EvaluationRun) -> Any:
    """The run's judge cost (``evaluation.judges.cost.JudgeUsage``), or ``None`` for a run without judges."""
    from ..judges.cost import JudgeUsage

    return JudgeUsage.of(run.judge_usage)


@register.filter
def count(value: int | None) -> str:
    """``950``, ``12,345``, ``1.2M``: a count that fits a cell."""
    if value is None:
        return ""
    if abs(value) >= 1_000_000:
        return f"{value / 1_000_000:.1f}M".replace(".0M", "M")
    return f"{value:,}"
