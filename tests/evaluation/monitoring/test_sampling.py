"""Which traces a registered scorer scores: deterministic sampling, filters, and the completion hook."""

from __future__ import annotations

import uuid

import pytest

from evaluation.monitoring.models import MonitoringResult, MonitoringWork
from evaluation.monitoring.registrations import register_scorer, update_scorer
from evaluation.monitoring.sampling import is_sampled, queue_completed_traces, sample_point
from tests.factories import make_experiment, make_trace
from tests.traces.otlp_helpers import protobuf_body, record_rag_trace
from traces.ingest import read_trace_file, store_traces
from traces.models import Assessment, Experiment, Trace
from traces.tokens import create_api_token

pytestmark = pytest.mark.django_db

TRACE_IDS = [f"tr-{uuid.UUID(int=i * 7919 + 13).hex}" for i in range(10_000)]


def test_the_same_trace_gets_the_same_decision_every_time():
    assert [is_sampled(t, "safety", 0.3) for t in TRACE_IDS[:500]] == [
        is_sampled(t, "safety", 0.3) for t in TRACE_IDS[:500]
    ]
    assert sample_point("tr-1", "safety") == sample_point("tr-1", "safety")
    assert sample_point("tr-1", "safety") != sample_point("tr-1", "relevance")  # per registration, not per trace


def test_a_rate_of_30_percent_samples_30_percent_of_10000_traces():
    chosen = sum(is_sampled(t, "safety", 0.3) for t in TRACE_IDS)
    assert 2800 <= chosen <= 3200


def test_raising_the_rate_only_adds_traces():
    at_20 = {t for t in TRACE_IDS if is_sampled(t, "safety", 0.2)}
    at_50 = {t for t in TRACE_IDS if is_sampled(t, "safety", 0.5)}
    assert at_20 < at_50
    assert all(is_sampled(t, "safety", 1.0) for t in TRACE_IDS[:100])
    assert not any(is_sampled(t, "safety", 0.0) for t in TRACE_IDS[:100])


def test_a_retried_completion_queues_and_scores_once(complete, django_capture_on_commit_callbacks):
    experiment = make_experiment("Production")
    register_scorer(experiment=experiment, name="docs", scorer_name="has_retrieved_documents", sample_rate=1.0)
    trace = complete(experiment=experiment)
    with django_capture_on_commit_callbacks(execute=True):
        queue_completed_traces([trace.pk])  # the same trace completes again (a retried import)
    assert MonitoringResult.objects.filter(trace=trace).count() == 1
    assert Assessment.objects.filter(trace=trace, name="docs").count() == 1
    assert not MonitoringWork.objects.exists()


def test_only_traces_the_filter_matches_are_scored(complete):
    experiment = make_experiment("Production")
    register_scorer(
        experiment=experiment,
        name="long_chats",
        scorer_name="response_length",
        sample_rate=1.0,
        filter_string="trace.name = 'checkout'",
    )
    kept = complete(experiment=experiment, name="checkout")
    skipped = complete(experiment=experiment, name="rag")
    assert MonitoringResult.objects.filter(trace=kept).exists()
    assert not MonitoringResult.objects.filter(trace=skipped).exists()


def test_a_filter_changed_by_an_update_applies_to_new_traces(complete):
    experiment = make_experiment("Production")
    registration = register_scorer(
        experiment=experiment, name="docs", scorer_name="has_retrieved_documents", sample_rate=1.0
    )
    update_scorer(registration=registration, filter_string="tags.env = 'prod'")
    assert not MonitoringResult.objects.filter(trace=complete(experiment=experiment)).exists()
    tagged = complete(experiment=experiment, tags={"env": "prod"})
    result = MonitoringResult.objects.get(trace=tagged)
    assert result.registration_version.version == 2


def test_traces_of_other_experiments_are_not_scored(complete):
    watched, other = make_experiment("Production"), make_experiment("Staging")
    register_scorer(experiment=watched, name="docs", scorer_name="has_retrieved_documents", sample_rate=1.0)
    assert not MonitoringResult.objects.filter(trace=complete(experiment=other)).exists()


def test_sampled_traces_match_the_rate_through_the_hook(complete):
    experiment = make_experiment("Production")
    register_scorer(experiment=experiment, name="docs", scorer_name="has_retrieved_documents", sample_rate=0.5)
    traces = [make_trace(experiment=experiment, n_spans=1) for _ in range(200)]
    queue_completed_traces([t.pk for t in traces])
    queued = set(MonitoringWork.objects.values_list("trace__trace_id", flat=True))
    assert queued == {t.trace_id for t in traces if is_sampled(t.trace_id, "docs", 0.5)}


def test_an_imported_trace_file_is_scored(data_dir, django_capture_on_commit_callbacks):
    experiment = make_experiment("Imported")
    register_scorer(experiment=experiment, name="length", scorer_name="response_length", sample_rate=1.0)
    records = read_trace_file(data_dir / "rag_retriever_dict_input.json")
    with django_capture_on_commit_callbacks(execute=True):
        store_traces(records, experiment=experiment)
    trace = Trace.objects.get(trace_id=records[0].trace_id)
    assert Assessment.objects.get(trace=trace, name="length").value > 0


def test_a_trace_completed_over_otlp_is_scored(client, admin_user, django_capture_on_commit_callbacks):
    experiment = Experiment.objects.create(name="Live", mlflow_experiment_id="77")
    register_scorer(experiment=experiment, name="docs", scorer_name="has_retrieved_documents", sample_rate=1.0)
    token = create_api_token(user=admin_user, name="exporter")[1]
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/v1/traces",
            protobuf_body(record_rag_trace()),
            content_type="application/x-protobuf",
            HTTP_AUTHORIZATION=f"Bearer {token}",
            HTTP_X_MLFLOW_EXPERIMENT_ID="77",
        )
    assert response.status_code == 200, response.content
    trace = Trace.objects.get(experiment=experiment)
    assert Assessment.objects.get(trace=trace, name="docs").value is True
