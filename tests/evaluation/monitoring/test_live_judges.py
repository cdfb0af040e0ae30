"""LLM judges as registered scorers: their verdicts on live traffic are LLM_JUDGE Feedback; failures are errors."""

from __future__ import annotations

from typing import Any

import pytest

from evaluation.monitoring.models import MonitoringResult
from evaluation.monitoring.registrations import register_scorer
from evaluation.monitoring.scoring import REGISTRATION_KEY
from tests.conftest import DATA_DIR
from tests.evaluation.judges.conftest import MODEL, FakeJudgeServer, failure, verdict
from tests.factories import make_experiment
from traces.ingest import read_trace_file, store_traces
from traces.models import Assessment, Experiment, Trace

pytestmark = pytest.mark.django_db
RAG = "rag_retriever_dict_input.json"


def _ingest(experiment: Experiment, capture: Any) -> Trace:
    records = read_trace_file(DATA_DIR / RAG)
    with capture(execute=True):
        store_traces(records, experiment=experiment)
    return Trace.objects.get(trace_id=records[0].trace_id)


def test_a_registered_judge_gives_llm_judge_feedback_under_the_registration_name(
    judge_server: FakeJudgeServer, django_capture_on_commit_callbacks: Any
) -> None:
    experiment = make_experiment("Production")
    register_scorer(experiment=experiment, name="safety_watch", scorer_name="Safety", sample_rate=1.0)
    judge_server.then(verdict("yes", "Nothing harmful."))
    trace = _ingest(experiment, django_capture_on_commit_callbacks)
    feedback = Assessment.objects.get(trace=trace, name="safety_watch")
    assert (feedback.source_type, feedback.source_id) == ("LLM_JUDGE", f"openai:/{MODEL}")
    assert feedback.value == "yes" and feedback.rationale == "Nothing harmful."
    assert feedback.metadata[REGISTRATION_KEY] == "safety_watch"
    assert MonitoringResult.objects.get(trace=trace).verdict == "passed"


def test_a_failing_judge_gives_an_error_feedback_and_an_error_verdict(
    judge_server: FakeJudgeServer, django_capture_on_commit_callbacks: Any
) -> None:
    experiment = make_experiment("Production")
    register_scorer(experiment=experiment, name="safety_watch", scorer_name="Safety", sample_rate=1.0)
    judge_server.then(failure(400, "model not found"))
    trace = _ingest(experiment, django_capture_on_commit_callbacks)
    feedback = Assessment.objects.get(trace=trace, name="safety_watch")
    assert feedback.error and feedback.value is None
    assert MonitoringResult.objects.get(trace=trace).verdict == "error"


def test_a_judge_whose_endpoint_went_away_gives_an_error_not_a_stuck_queue(
    judge_server: FakeJudgeServer, django_capture_on_commit_callbacks: Any, settings: Any
) -> None:
    experiment = make_experiment("Production")
    register_scorer(experiment=experiment, name="safety_watch", scorer_name="Safety", sample_rate=1.0)
    settings.JUDGE_BASE_URL = ""  # unconfigured after it was registered
    trace = _ingest(experiment, django_capture_on_commit_callbacks)
    feedback = Assessment.objects.get(trace=trace, name="safety_watch")
    assert feedback.error["error_code"] == "SCORER_UNAVAILABLE"
    assert "not available" in feedback.error["error_message"]
    assert feedback.source_type == "LLM_JUDGE"
    assert MonitoringResult.objects.get(trace=trace).verdict == "error"


def test_a_registered_custom_judge_keeps_scoring_with_its_pinned_version(
    judge_server: FakeJudgeServer, django_capture_on_commit_callbacks: Any
) -> None:
    from evaluation.judge_services import save_custom_judge
    from evaluation.monitoring.registrations import update_scorer
    from tests.evaluation.judges.custom_fixtures import yes_no_definition

    judge = save_custom_judge(definition=yes_no_definition(instructions="Is the response {{ outputs }} polite?"))
    experiment = make_experiment("Production")
    registration = register_scorer(experiment=experiment, name="polite", scorer_name="is_polite", sample_rate=1.0)
    assert registration.versions.get().pinned_judge["version"] == 1
    save_custom_judge(definition=yes_no_definition(instructions="Is {{ outputs }} rude?"), judge=judge)

    judge_server.then(verdict("yes", "Polite."), verdict("no", "Not rude."))
    first = _ingest(experiment, django_capture_on_commit_callbacks)
    assert "polite?" in judge_server.judged()[-1].prompt  # v1, as registered, not the edit
    assert Assessment.objects.get(trace=first, name="polite").value == "yes"

    update_scorer(registration=registration, sample_rate=1.0, filter_string="")  # a change pins the judge's latest
    assert registration.versions.get(version=2).pinned_judge["version"] == 2
    Trace.objects.all().delete()
    second = _ingest(experiment, django_capture_on_commit_callbacks)
    assert "rude?" in judge_server.judged()[-1].prompt
    result = MonitoringResult.objects.get(trace=second)
    assert (result.registration_version.version, result.verdict) == (2, "failed")
