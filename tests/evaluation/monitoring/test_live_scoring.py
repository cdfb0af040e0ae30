"""Live traffic: a completed trace is scored by each active registered scorer that samples it, exactly once."""

from __future__ import annotations

import pytest

from evaluation.monitoring.models import MonitoringResult, MonitoringWork
from evaluation.monitoring.registrations import register_scorer, stop_scorer
from evaluation.monitoring.scoring import REGISTRATION_KEY, REGISTRATION_VERSION_KEY, drain_queue
from tests.factories import make_experiment
from traces.models import Assessment, AssessmentSource

pytestmark = pytest.mark.django_db


def test_a_completed_trace_gets_the_verdict_of_an_active_scorer(complete):
    experiment = make_experiment("Production")
    register_scorer(experiment=experiment, name="long_enough", scorer_name="response_length", sample_rate=1.0)
    trace = complete(experiment=experiment)
    feedback = Assessment.objects.get(trace=trace, name="long_enough")
    assert feedback.source_type == AssessmentSource.CODE
    assert feedback.value == len("Inputs, outputs and metadata.")
    assert feedback.metadata[REGISTRATION_KEY] == "long_enough"
    assert feedback.metadata[REGISTRATION_VERSION_KEY] == "1"
    result = MonitoringResult.objects.get(trace=trace)
    assert result.verdict == "number"
    assert not MonitoringWork.objects.exists()


def test_a_stopped_scorer_scores_nothing_new(complete):
    experiment = make_experiment("Production")
    registration = register_scorer(
        experiment=experiment, name="docs", scorer_name="has_retrieved_documents", sample_rate=1.0
    )
    stop_scorer(registration=registration)
    trace = complete(experiment=experiment)
    assert not Assessment.objects.filter(trace=trace, name="docs").exists()


def test_scoring_the_same_work_twice_adds_nothing(complete):
    experiment = make_experiment("Production")
    register_scorer(experiment=experiment, name="docs", scorer_name="has_retrieved_documents", sample_rate=1.0)
    trace = complete(experiment=experiment)
    result = MonitoringResult.objects.get(trace=trace)
    MonitoringWork.objects.create(trace=trace, registration_version_id=result.registration_version_id)
    assert drain_queue() == 1
    assert Assessment.objects.filter(trace=trace, name="docs").count() == 1
    assert MonitoringResult.objects.filter(trace=trace).count() == 1
