"""What a run's judges cost: calls, HTTP requests (retries included), tokens, failures by code and time.

Each judge call (one judge on one trace) leaves its :class:`~evaluation.judges.endpoint.CallLog` in
the metadata of the first Feedback it gives (:func:`call_metadata`): requests, retries, wall time
and the tokens of every response's ``usage`` (a failed call's spent tokens included; a judge that
gives several Feedback from one call, such as ``Guidelines`` or ``RetrievalRelevance``, counts once).
So the Feedback carries its own cost, in exports too, and a resumed run counts each stored call once.

:func:`summarize` adds them up in SQL (two queries) over the run's stored Feedback; the run keeps
the result in ``EvaluationRun.judge_usage``, recounted at the end of every batch, so the run page
and the runs list read it without a query of their own.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from django.db.models import BigIntegerField, Count, Sum, TextField
from django.db.models.fields.json import KT
from django.db.models.functions import Cast, Coalesce

from traces.models import AssessmentKind, AssessmentSource

if TYPE_CHECKING:
    from evaluation.models import EvaluationRun

    from .endpoint import CallLog

PREFIX = "traceReview.judgeCall."
REQUESTS_KEY = PREFIX + "requests"
RETRIES_KEY = PREFIX + "retries"
LATENCY_KEY = PREFIX + "latencyMs"
INPUT_TOKENS_KEY = PREFIX + "inputTokens"
OUTPUT_TOKENS_KEY = PREFIX + "outputTokens"


def call_metadata(log: CallLog) -> dict[str, str]:
    """The metadata the first Feedback of one judge call records (strings, as all Feedback metadata)."""
    return {
        REQUESTS_KEY: str(log.requests),
        RETRIES_KEY: str(log.retries),
        LATENCY_KEY: str(log.latency_ms),
        INPUT_TOKENS_KEY: str(log.prompt_tokens),
        OUTPUT_TOKENS_KEY: str(log.completion_tokens),
    }


@dataclass
class JudgeUsage:
    """A run's judge cost so far; ``errors`` is error Feedback of judges by error code."""

    calls: int = 0
    requests: int = 0
    retries: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    latency_ms: int = 0
    errors: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, stored: dict[str, Any] | None) -> JudgeUsage | None:
        """From ``EvaluationRun.judge_usage``; ``None`` for a run without judges (an empty value)."""
        if not stored:
            return None
        known = {name: stored[name] for name in cls.__dataclass_fields__ if name in stored}
        return cls(**known)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def failures(self) -> int:
        return sum(self.errors.values())

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def judge_seconds(self) -> float:
        """Time spent in judge calls, added up over calls (they overlap: up to JUDGE_MAX_CONCURRENCY at once)."""
        return self.latency_ms / 1000

    @property
    def mean_latency_ms(self) -> int:
        return round(self.latency_ms / self.calls) if self.calls else 0

    @property
    def errors_by_code(self) -> list[tuple[str, int]]:
        return sorted(self.errors.items(), key=lambda pair: (-pair[1], pair[0]))


def _total(key: str) -> Coalesce:
    return Coalesce(Sum(Cast(KT(f"metadata__{key}"), BigIntegerField())), 0)


def summarize(run: EvaluationRun) -> JudgeUsage:
    """The run's judge cost from its stored Feedback: one query for the calls, one for the failures by code."""
    from evaluation.runs import of_run

    feedback = of_run(run).filter(kind=AssessmentKind.FEEDBACK)
    totals = (
        feedback.filter(metadata__has_key=REQUESTS_KEY)
        .order_by()
        .aggregate(
            calls=Count("id"),
            requests=_total(REQUESTS_KEY),
            retries=_total(RETRIES_KEY),
            latency_ms=_total(LATENCY_KEY),
            input_tokens=_total(INPUT_TOKENS_KEY),
            output_tokens=_total(OUTPUT_TOKENS_KEY),
        )
    )
    codes = (
        feedback.filter(source_type=AssessmentSource.LLM_JUDGE, error__isnull=False)
        .values(code=Cast(KT("error__error_code"), TextField()))
        .annotate(count=Count("id"))
        .order_by("code")
    )
    errors = {row["code"] or "ERROR": row["count"] for row in codes}
    return JudgeUsage(**{name: int(value or 0) for name, value in totals.items()}, errors=errors)
