"""Datasets from production traces: the explorer's "Save as a dataset" page and ``manage.py build_dataset``.

Records are made as MLflow's ``EvaluationDataset.merge_records(traces)`` makes them, and merge on inputs.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from evaluation import services
from evaluation.models import DatasetRecord, EvaluationDataset
from labeling import services as labeling_services
from tests.conftest import DATA_DIR
from tests.factories import make_assessment, make_experiment, make_trace
from traces.ingest import read_trace_file, store_traces
from traces.models import Experiment, Trace

pytestmark = pytest.mark.django_db

SAMPLES = ["rag_retriever_dict_input.json", "eval_trace_with_scorer_feedback.json", "multi_turn_wrapper_root.json"]
URL = reverse("evaluation:from_traces")


def import_samples(experiment: str = "Production") -> list[Trace]:
    traces = []
    for name in SAMPLES:
        records = read_trace_file(DATA_DIR / name)
        store_traces(records)
        traces.append(Trace.objects.get(trace_id=records[0].trace_id))
    target = make_experiment(experiment)
    Trace.objects.filter(pk__in=[t.pk for t in traces]).update(experiment=target)
    return traces


def expectation(trace: Trace, name: str, value: Any, *, minute: int = 0, **overrides: Any) -> None:
    when = datetime(2026, 11, 24, 9, minute, tzinfo=UTC)
    times = {"create_time": when, "last_update_time": when}
    make_assessment(trace, name, value, kind="expectation", source_type="HUMAN", **times, **overrides)


def records_by_trace(dataset: EvaluationDataset) -> dict[str, DatasetRecord]:
    return {r.source_data["trace_id"]: r for r in dataset.records.all()}


def build(filter_string: str = "", experiment: str = "Production", name: str = "prod") -> EvaluationDataset:
    call_command("build_dataset", "--filter", filter_string, "--experiment", experiment, "--name", name)
    return EvaluationDataset.objects.get(name=name)


@pytest.fixture
def lead(db: None) -> User:
    user = User.objects.create_user("lead")
    labeling_services.create_labeling_session(name="Led").leads.add(user)
    return user


# ---------------------------------------------------------------- records as MLflow makes them


def test_records_are_what_mlflow_merge_records_makes_of_the_traces() -> None:
    """The same inputs, outputs, expectations and source as mlflow's own ``_process_trace_records``."""
    entities = pytest.importorskip("mlflow.entities")
    from mlflow.entities.evaluation_dataset import EvaluationDataset as MlflowDataset

    rag, spark, _ = import_samples()
    dataset = build(name="prod")
    ours = records_by_trace(dataset)
    for trace in (rag, spark):
        mlflow_trace = entities.Trace.from_dict(json.loads((DATA_DIR / SAMPLES[[rag, spark].index(trace)]).read_text()))
        (theirs,) = MlflowDataset._process_trace_records(MlflowDataset.__new__(MlflowDataset), [mlflow_trace])
        record = ours[trace.trace_id].as_mlflow()
        assert {k: record[k] for k in ("inputs", "outputs", "expectations", "source")} == theirs
    # Valid expectations only: the file's overridden `relevance` is feedback, and no feedback is an expectation.
    assert ours[rag.trace_id].expectations == {
        "expected_facts": ["records inputs", "records outputs"],
        "expected_response": "It records inputs, outputs and metadata.",
    }


def test_a_wrapper_root_takes_the_conversation_from_the_span_that_recorded_it() -> None:
    """MLflow reads only the root span ({} for a bare wrapper); the app's conversation rule, as in exports."""
    *_, wrapper = import_samples()
    record = records_by_trace(build())[wrapper.trace_id]
    assert record.inputs["messages"][0]["content"].startswith("I have a model logged in MLflow.")
    assert record.outputs["choices"][0]["message"]["content"].startswith("Here's the K8s deploy")
    assert record.source_type == "TRACE"
    assert record.source_data == {"trace_id": wrapper.trace_id, "session_id": "session-deployment-v2"}


def test_only_valid_expectations_and_the_newest_of_a_name() -> None:
    trace = make_trace(question="Q1", experiment=make_experiment("Production"))
    expectation(trace, "expected_response", "old", minute=1)
    expectation(trace, "expected_response", "new", minute=2)
    expectation(trace, "expected_facts", ["withdrawn"], minute=3, valid=False)
    make_assessment(trace, "correct", True)  # feedback: not an expectation
    record = build().records.get()
    assert record.expectations == {"expected_response": "new"}
    assert record.inputs == {"question": "Q1"} and record.outputs == "Inputs, outputs and metadata."


# ---------------------------------------------------------------- merging


def test_rerunning_merges_without_duplicates_and_adds_expectations() -> None:
    production = make_experiment("Production")
    first = make_trace(question="Q1", experiment=production)
    make_trace(question="Q2", experiment=production)
    expectation(first, "expected_response", "A1", minute=1)
    dataset = build()
    assert dataset.records.count() == 2
    stamps = dict(dataset.records.values_list("pk", "updated_at"))
    dataset = build()  # nothing changed: nothing rewritten
    assert dict(dataset.records.values_list("pk", "updated_at")) == stamps

    expectation(first, "expected_response", "A1, corrected", minute=5)
    expectation(first, "expected_facts", ["fact"], minute=6)
    make_trace(question="Q3", experiment=production)
    dataset = build()
    assert sorted(r.inputs["question"] for r in dataset.records.all()) == ["Q1", "Q2", "Q3"]
    record = dataset.records.get(inputs_key=services.inputs_key({"question": "Q1"}))
    assert record.expectations == {"expected_response": "A1, corrected", "expected_facts": ["fact"]}
    assert [h["value"] for h in record.history] == ["A1"]  # the replaced value is kept


def test_traces_with_the_same_inputs_become_one_record_and_existing_records_gain_expectations() -> None:
    production = make_experiment("Production")
    older = make_trace(question="Same?", experiment=production)
    newer = make_trace(question="Same?", experiment=production)
    expectation(newer, "expected_response", "Yes")
    existing = services.get_or_create_dataset(name="prod")
    services.merge_records(
        dataset=existing, records=[{"inputs": {"question": "Same?"}, "expectations": {"guidelines": ["be brief"]}}]
    )
    result = services.build_dataset_from_traces(traces=Trace.objects.filter(experiment=production), dataset_name="prod")
    record = existing.records.get()
    assert result[1].created == 0 and result[1].updated == 1
    assert record.expectations == {"guidelines": ["be brief"], "expected_response": "Yes"}
    assert record.source_data["trace_id"] in {older.trace_id, newer.trace_id}


def test_large_selections_stream_in_batches(django_assert_max_num_queries) -> None:
    production = make_experiment("Production")
    for i in range(7):
        make_trace(question=f"Q{i}", experiment=production, n_spans=1)
    from evaluation import trace_records

    traces = Trace.objects.filter(experiment=production)
    with django_assert_max_num_queries(5 * 4 + 1):  # 4 batches of 2, a few queries each, whatever the total
        records = list(trace_records.trace_records(traces, batch_size=2))
    assert sorted(r["inputs"]["question"] for r in records) == [f"Q{i}" for i in range(7)]


# ---------------------------------------------------------------- the command


def test_command_builds_and_reruns(capsys) -> None:
    import_samples()
    make_trace(question="Elsewhere", experiment=make_experiment("Staging"))
    call_command("build_dataset", "--filter", "", "--experiment", "Production", "--name", "prod")
    assert "Merged 3 traces into “prod”: 3 new records, 0 updated (3 in all)." in capsys.readouterr().out
    call_command("build_dataset", "--experiment", "Production", "--name", "prod")
    assert "0 new records, 3 updated (3 in all)." in capsys.readouterr().out
    call_command("build_dataset", "--filter", "attributes.status = 'OK'", "--experiment", "Staging", "--name", "st")
    assert [r.inputs for r in EvaluationDataset.objects.get(name="st").records.all()] == [{"question": "Elsewhere"}]


def test_command_filter_string_selects_traces() -> None:
    import_samples()
    dataset = build(filter_string="trace.name = 'predict_fn'")
    assert [r.inputs for r in dataset.records.all()] == [{"question": "What is Spark?"}]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--experiment", "Production", "--name", "  "], "error: Give the dataset a name."),
        (["--experiment", "Production", "--name", "x", "--filter", "status = "], "error: bad filter:"),
        (["--experiment", "Production", "--name", "x", "--filter", "nonsense ~ 1"], "error: bad filter:"),
        (["--experiment", "Nope", "--name", "x"], "error: no experiment named 'Nope'"),
        (
            ["--experiment", "Production", "--name", "x", "--filter", "status = 'ERROR'"],
            "error: No trace matches these filters, so nothing was saved.",
        ),
    ],
)
def test_command_refuses_bad_input_with_one_line_and_writes_nothing(capsys, args: list[str], message: str) -> None:
    import_samples()
    Trace.objects.update(state="OK")
    with pytest.raises(SystemExit) as exit_info:
        call_command("build_dataset", *args)
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1, err
    assert not EvaluationDataset.objects.exists()


# ---------------------------------------------------------------- the page


def page_url(**filters: Any) -> str:
    return f"{URL}?{urlencode(filters)}" if filters else URL


def test_page_shows_filters_count_and_saves(client: Client, admin_user) -> None:
    import_samples()
    make_trace(question="Elsewhere", experiment=make_experiment("Staging"))
    production = Experiment.objects.get(name="Production")
    client.force_login(admin_user)
    url = page_url(filter_string="attributes.status = 'OK'", experiment=production.pk)
    body = client.get(url).content.decode()
    assert "<strong>3</strong> traces match" in body, body
    assert "attributes.status = &#x27;OK&#x27;" in body and "<dd>Production</dd>" in body
    assert 'action="/datasets/from-traces/?filter_string=' in body and ">Save 3 traces</button>" in body
    response = client.post(url, {"name": "prod"}, follow=True)
    dataset = EvaluationDataset.objects.get(name="prod")
    assert response.redirect_chain[-1][0] == dataset.get_absolute_url()
    assert "Saved 3 traces to “prod”: 3 new records, 0 updated." in response.content.decode()
    assert dataset.created_by == admin_user and dataset.records.count() == 3
    again = client.post(url, {"name": "prod"}, follow=True).content.decode()
    assert "0 new records, 3 updated." in again and dataset.records.count() == 3
    assert 'datalist id="dataset-names"><option value="prod">' in client.get(url).content.decode()


def test_trace_list_links_to_the_page_with_its_filters(client: Client, admin_user) -> None:
    make_trace(question="Q1")
    client.force_login(admin_user)
    body = client.get(reverse("traces:list"), {"filter_string": "status = 'OK'"}).content.decode()
    assert f'href="{URL}?filter_string=status+%3D+%27OK%27" class="save-as-dataset">Save as a dataset…</a>' in body


def test_leads_save_and_go_back_to_the_traces(client: Client, lead) -> None:
    make_trace(question="Q1")
    client.force_login(lead)
    assert client.get(URL).status_code == 200
    response = client.post(page_url(state="OK"), {"name": "from a lead"})
    assert response.status_code == 302 and response["Location"] == f"{reverse('traces:list')}?state=OK"
    assert EvaluationDataset.objects.get(name="from a lead").created_by == lead
    assert "<datalist" not in client.get(URL).content.decode()  # leads do not see the dataset list


def test_reviewers_and_outsiders_get_404_and_403(client: Client, reviewer, outsider) -> None:
    make_trace(question="Q1")
    labeling_services.create_labeling_session(name="Reviewed", reviewers=[reviewer])
    for user in (reviewer, outsider):
        client.force_login(user)
        assert client.get(URL).status_code == 404
        assert client.post(URL, {"name": "nope"}).status_code == 403
    client.logout()
    assert client.get(URL).status_code == 302  # to the login page
    assert not EvaluationDataset.objects.exists()


@pytest.mark.parametrize(
    ("filters", "name", "message"),
    [
        ({}, "", "Give the dataset a name."),
        ({}, "two\nlines", "Use one line of text"),
        ({"filter_string": "status = "}, "x", "expected a quoted string for status"),
        ({"experiment": "999999"}, "x", "Select a valid choice."),
        ({"since": "2026-12-02", "until": "2026-01-01"}, "x", "“From” must be on or before “To”."),
        ({"filter_string": "status = 'ERROR'"}, "x", "No trace matches these filters"),
    ],
)
def test_page_refuses_bad_input_and_writes_nothing(
    client: Client, admin_user, filters: dict[str, str], name: str, message: str
) -> None:
    make_trace(question="Q1")
    client.force_login(admin_user)
    response = client.post(page_url(**filters), {"name": name})
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not EvaluationDataset.objects.exists()


def test_page_shows_a_bad_filter_as_the_explorer_does(client: Client, admin_user) -> None:
    client.force_login(admin_user)
    response = client.get(page_url(filter_string="status = "))
    body = response.content.decode()
    assert response.status_code == 400 and "expected a quoted string for status after" in body
    assert "Correct the filters in the explorer." in body and "Dataset name" not in body


def test_same_inputs_share_a_record_and_the_message_says_so(client: Client, admin_user) -> None:
    for _ in range(2):
        make_trace(question="Same?")
    client.force_login(admin_user)
    body = client.post(URL, {"name": "same"}, follow=True).content.decode()
    assert "Saved 2 traces to “same”: 1 new records, 0 updated (traces with the same inputs share a record)." in body


def test_page_says_when_nothing_matches_or_too_many_do(client: Client, admin_user, settings) -> None:
    for i in range(3):
        make_trace(question=f"Q{i}")
    client.force_login(admin_user)
    nothing = client.get(page_url(filter_string="status = 'ERROR'")).content.decode()
    assert "No trace matches these filters, so there is nothing to save." in nothing
    assert 'class="primary"' not in nothing
    settings.DATASET_FROM_TRACES_PAGE_LIMIT = 2
    over = client.get(URL).content.decode()
    assert "More than <strong>2</strong> traces match" in over and "manage.py build_dataset" in over
    refused = client.post(URL, {"name": "big"})
    assert refused.status_code == 400 and "More than <strong>2</strong> traces match" in refused.content.decode()
    assert not EvaluationDataset.objects.exists()


def test_page_queries_do_not_grow_with_traces(client: Client, admin_user, django_assert_max_num_queries) -> None:
    client.force_login(admin_user)
    production = make_experiment("Production")
    services.get_or_create_dataset(name="existing")
    for total in (1, 40):
        while Trace.objects.count() < total:
            make_trace(question=f"Q{Trace.objects.count()}", experiment=production, n_spans=1)
        with django_assert_max_num_queries(7):
            body = client.get(page_url(experiment=production.pk, filter_string="status = 'OK'")).content.decode()
        assert f"<strong>{total}</strong> trace" in body


def test_session_labels_saved_under_the_same_name_merge_into_the_trace_records() -> None:
    """As the README says: production traces first, then the experts' labels from their session copies."""
    from tests.evaluation.conftest import make_labeled_session

    session = make_labeled_session()
    dataset = build(experiment="Tests", name="cardio")
    assert dataset.records.count() == 3 and not any(r.expectations for r in dataset.records.all())
    services.save_session_labels(sessions=[session], dataset_name="cardio")
    assert dataset.records.count() == 3
    record = dataset.records.get(inputs_key=services.inputs_key({"question": "Dose question 0?"}))
    assert record.expectations["expected_response"] == "Take 81 mg"
