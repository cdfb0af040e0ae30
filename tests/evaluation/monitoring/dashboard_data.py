"""Ledger rows for dashboard tests: registered scorers and their verdicts at chosen request times."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from django.contrib.auth.models import User

from evaluation.monitoring.dashboard import Window
from evaluation.monitoring.models import MonitoringResult, RegisteredScorer
from evaluation.monitoring.registrations import register_scorer
from evaluation.monitoring.rollups import add_to_rollups
from evaluation.monitoring.scoring import REGISTRATION_KEY, REGISTRATION_VERSION_KEY
from labeling import services as labeling_services
from labeling.models import LabelingSession, LabelSchema
from tests.factories import make_assessment, make_trace
from traces.models import Experiment, Trace


def register(experiment: Experiment, name: str, scorer: str = "latency_under_threshold", rate: float = 1.0):
    return register_scorer(experiment=experiment, name=name, scorer_name=scorer, sample_rate=rate)


def bare_traces(experiment: Experiment, times: list[datetime]) -> list[Trace]:
    """Traces without spans (fast, for volume); ``make_trace`` when a test opens them."""
    return Trace.objects.bulk_create(
        Trace(trace_id=f"tr-{uuid.uuid4().hex}", experiment=experiment, request_time=t, request_preview="q")
        for t in times
    )


def verdicts(
    registration: RegisteredScorer,
    when: datetime,
    *codes: str,
    values: list[float | None] | None = None,
    traces: list[Trace] | None = None,
) -> list[MonitoringResult]:
    """Ledger rows at ``when`` with these verdicts (and values); new traces unless given."""
    traces = traces or bare_traces(registration.experiment, [when] * len(codes))
    version = registration.versions.get(version=registration.version)
    values = values or [1.0 if c == "passed" else 0.0 if c == "failed" else None for c in codes]
    rows = MonitoringResult.objects.bulk_create(
        MonitoringResult(
            trace=trace,
            registration=registration,
            registration_version=version,
            request_time=when,
            queued_at=when,
            scored_at=when,
            verdict=code,
            value=value,
        )
        for trace, code, value in zip(traces, codes, values, strict=True)
    )
    add_to_rollups(rows)  # as the worker does, in the transaction that writes the ledger rows
    return rows


def failure_with_feedback(
    registration: RegisteredScorer, when: datetime, *, rationale: str = "", error: dict | None = None
) -> Trace:
    """A real trace (with spans) that the scorer failed or errored on, with its Feedback as a worker writes it."""
    trace = make_trace(experiment=registration.experiment, request_time=when, question=f"Question at {when:%H:%M}?")
    meta = {REGISTRATION_KEY: registration.name, REGISTRATION_VERSION_KEY: str(registration.version)}
    make_assessment(
        trace, registration.name, value=None if error else False, rationale=rationale, error=error, metadata=meta
    )
    verdicts(registration, when, "error" if error else "failed", traces=[trace])
    return trace


def in_bucket(window: Window, index: int, minutes: int = 5) -> datetime:
    """A time inside the window's ``index``-th bucket (negative counts from the latest)."""
    return window.bucket_starts()[index] + timedelta(minutes=minutes)


def make_session(name: str, leads: list[User] = ()) -> LabelingSession:
    schema = LabelSchema.objects.get(name="expected_response")
    session = labeling_services.create_labeling_session(name=name, schemas=[schema], reviewers=[])
    labeling_services.set_session_leads(session=session, leads=list(leads))
    return session
