"""The monitoring part of the demo: an experiment of "production" traffic watched by two registered scorers.

``seed_demo`` calls ``seed_monitoring_demo``: it registers ``fast_enough`` (``latency_under_threshold``,
every trace) and ``answer_length`` (``response_length``, half the traces) on "Demo: production traffic"
and fills the last 7 days with a few traces an hour and the verdicts a worker would have written (the
Feedback and the ledger row), so the dashboard has a week to show. Latency got worse three days ago
for a few hours, and a few scorer calls timed out. Everything derives from the hour and a counter:
seeding again adds only the hours since the last seed.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from traces.demo import APP_VERSIONS
from traces.models import Assessment, AssessmentKind, AssessmentSource, Experiment, Span, Trace

from ..example_scorers import LATENCY_THRESHOLD_MS
from .models import MonitoringResult, RegisteredScorer, RegisteredScorerVersion, Verdict
from .registrations import register_scorer
from .rollups import rebuild_rollups
from .sampling import is_sampled
from .scoring import REGISTRATION_KEY, REGISTRATION_VERSION_KEY

DEMO_MONITORING_EXPERIMENT = "Demo: production traffic"
DEMO_MONITORS = [("fast_enough", "latency_under_threshold", 1.0), ("answer_length", "response_length", 0.5)]
DEMO_DAYS = 7
TRACES_PER_HOUR = 4
PRODUCTION_VERSION = APP_VERSIONS[-1]  # the version serving production traffic
QUESTIONS = [
    ("Is physiotherapy after knee surgery covered?", "Yes: up to 20 sessions a year with a referral, 20% co-pay."),
    ("How do I add my newborn to my plan?", "Add them within 30 days of birth in the member portal."),
    ("What does my plan pay for glasses?", "Up to 150 a year for frames and lenses with the Vision add-on."),
    ("Can I see a specialist without a referral?", "On the Gold plan yes; on Silver and Bronze you need one."),
    ("Is my dental cleaning covered?", "Two cleanings a year are covered in full."),
    ("How long does a reimbursement take?", "Usually 5 to 10 working days after the claim is complete."),
]


@dataclass
class MonitoringDemo:
    experiment: Experiment
    registrations: list[RegisteredScorer]
    traces_created: int


def _registration(experiment: Experiment, name: str, scorer: str, rate: float, by: AbstractBaseUser | None):
    found = RegisteredScorer.objects.filter(experiment=experiment, name=name).live().first()
    return found or register_scorer(experiment=experiment, name=name, scorer_name=scorer, sample_rate=rate, by=by)


def _slots(now: datetime) -> list[tuple[str, datetime]]:
    """(trace id, request time) of every demo trace in the last 7 days up to ``now``."""
    first = (now - timedelta(days=DEMO_DAYS)).astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    slots = []
    hour = first
    while hour <= now:
        for n in range(TRACES_PER_HOUR):
            when = hour + timedelta(minutes=7 + n * (60 // TRACES_PER_HOUR))
            if when <= now:
                slots.append((f"tr-demo-prod-{hour:%Y%m%d%H}-{n}", when))
        hour += timedelta(hours=1)
    return slots


def _duration_ms(trace_id: str, when: datetime, now: datetime) -> int:
    """Mostly well under the 2 s threshold; three days ago, from 09:00 to 17:00, the retriever was slow."""
    rng = random.Random(trace_id)
    slow_day = (now - timedelta(days=3)).astimezone(UTC).date()
    incident = when.astimezone(UTC).date() == slow_day and 9 <= when.astimezone(UTC).hour < 17
    if incident:
        return rng.randint(1500, 4200)
    return rng.randint(2050, 3000) if rng.random() < 0.07 else rng.randint(350, 1700)


def _point(trace_id: str) -> float:
    return int(hashlib.sha256(trace_id.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF


def _new_traces(experiment: Experiment, slots: list[tuple[str, datetime]], now: datetime) -> list[Trace]:
    traces = []
    for trace_id, when in slots:
        question, answer = QUESTIONS[int(_point(trace_id) * len(QUESTIONS)) % len(QUESTIONS)]
        if _point(trace_id + "more") < 0.4:
            answer += " If anything is unclear, call member services on 0800 123 456."
        traces.append(
            Trace(
                trace_id=trace_id,
                experiment=experiment,
                name="support_rag",
                request_time=when,
                execution_duration_ms=_duration_ms(trace_id, when, now),
                request_preview=f'{{"question": "{question}"}}',
                response_preview=f'"{answer}"',
                span_count=1,
                model_id=PRODUCTION_VERSION.model_id,
                trace_metadata={"mlflow.modelId": PRODUCTION_VERSION.model_id},
                tags={
                    "mlflow.traceName": "support_rag",
                    "environment": "production",
                    "app_version": PRODUCTION_VERSION.version,
                },
            )
        )
    Trace.objects.bulk_create(traces, batch_size=500, ignore_conflicts=True)
    stored = list(Trace.objects.filter(trace_id__in=[t.trace_id for t in traces]))
    spans = []
    for trace in stored:
        start_ns = int(trace.request_time.timestamp() * 1e9)
        question = trace.request_preview.split('"question": "')[1].rstrip('"}')
        spans.append(
            Span(
                trace=trace,
                span_id=hashlib.sha256(trace.trace_id.encode()).hexdigest()[:16],
                name="support_rag",
                span_type="CHAIN",
                status_code="OK",
                start_time_ns=start_ns,
                end_time_ns=start_ns + (trace.execution_duration_ms or 0) * 1_000_000,
                inputs={"question": question},
                outputs=trace.response_preview.strip('"'),
            )
        )
    Span.objects.bulk_create(spans, batch_size=500, ignore_conflicts=True)
    return stored


def _verdict(registration: RegisteredScorer, trace: Trace) -> tuple[dict, str, float | None]:
    """What the scorer's Feedback says (value, rationale, error) and the ledger's verdict and value."""
    if registration.scorer_name == "response_length":
        length = len(trace.response_preview.strip('"'))
        return {"value": length, "rationale": ""}, Verdict.NUMBER, float(length)
    if _point(trace.trace_id + registration.name) < 0.012:
        error = {"error_code": "SCORER_TIMEOUT", "error_message": "the scorer took longer than 30 s"}
        return {"value": None, "rationale": "", "error": error}, Verdict.ERROR, None
    duration = trace.execution_duration_ms or 0
    passed = duration < LATENCY_THRESHOLD_MS
    rationale = f"{duration} ms (threshold {LATENCY_THRESHOLD_MS} ms)."
    return {"value": passed, "rationale": rationale}, Verdict.PASSED if passed else Verdict.FAILED, float(passed)


def _score(registrations: list[RegisteredScorer], traces: list[Trace]) -> None:
    versions = {r.pk: RegisteredScorerVersion.objects.get(registration=r, version=r.version) for r in registrations}
    assessments, ledger = [], []
    for registration in registrations:
        version = versions[registration.pk]
        for trace in traces:
            if not is_sampled(trace.trace_id, registration.name, registration.sample_rate):
                continue
            feedback, verdict, value = _verdict(registration, trace)
            scored_at = trace.request_time + timedelta(seconds=2)
            assessments.append(
                Assessment(
                    assessment_id=f"a-demo-{trace.trace_id}-{registration.name}",
                    trace=trace,
                    name=registration.name,
                    kind=AssessmentKind.FEEDBACK,
                    value=feedback["value"],
                    rationale=feedback["rationale"],
                    error=feedback.get("error"),
                    source_type=AssessmentSource.CODE,
                    source_id=registration.scorer_name,
                    metadata={REGISTRATION_KEY: registration.name, REGISTRATION_VERSION_KEY: str(version.version)},
                    create_time=scored_at,
                    last_update_time=scored_at,
                )
            )
            ledger.append(
                MonitoringResult(
                    trace=trace,
                    registration=registration,
                    registration_version=version,
                    request_time=trace.request_time,
                    queued_at=trace.request_time + timedelta(seconds=1),
                    scored_at=scored_at,
                    verdict=verdict,
                    value=value,
                )
            )
    Assessment.objects.bulk_create(assessments, batch_size=1000, ignore_conflicts=True)
    MonitoringResult.objects.bulk_create(ledger, batch_size=1000, ignore_conflicts=True)
    rebuild_rollups({result.registration_id for result in ledger})


def seed_monitoring_demo(*, by: AbstractBaseUser | None = None, now: datetime | None = None) -> MonitoringDemo:
    """The demo experiment, its two registered scorers and a week of traffic with verdicts (only new hours)."""
    now = now or timezone.now()
    with transaction.atomic():
        experiment, _ = Experiment.objects.get_or_create(name=DEMO_MONITORING_EXPERIMENT)
        registrations = [_registration(experiment, *spec, by) for spec in DEMO_MONITORS]
        slots = _slots(now)
        existing = set(
            Trace.objects.filter(experiment=experiment, trace_id__in=[s[0] for s in slots]).values_list(
                "trace_id", flat=True
            )
        )
        new = [slot for slot in slots if slot[0] not in existing]
        traces = _new_traces(experiment, new, now) if new else []
        _score(registrations, traces)
    return MonitoringDemo(experiment, registrations, len(traces))
