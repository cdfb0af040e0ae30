"""Dataset pages: access, records, downloads in three formats, saving a session's labels."""

from __future__ import annotations

import io
import json

import pandas as pd
import pytest
from django.test import Client
from django.urls import reverse

from evaluation import services
from evaluation.models import EvaluationDataset
from labeling import claims, submissions
from labeling import services as labeling_services
from labeling.models import LabelingSession
from tests.evaluation.conftest import make_demo_like_session, make_feedback_only_session
from tests.factories import make_trace

pytestmark = pytest.mark.django_db


@pytest.fixture
def dataset(labeled: LabelingSession) -> EvaluationDataset:
    dataset, _, _ = services.save_session_labels(sessions=[labeled], dataset_name="cardio")
    return dataset


def test_list_and_detail_for_admins(client: Client, admin_user, dataset: EvaluationDataset) -> None:
    client.force_login(admin_user)
    body = client.get(reverse("evaluation:dataset_list")).content.decode()
    assert "cardio" in body and ">2<" in body
    detail = client.get(dataset.get_absolute_url()).content.decode()
    assert "Take 81 mg" in detail and "Dose question 0?" in detail
    trace_id = dataset.records.first().source_data["trace_id"]
    assert reverse("traces:detail", args=[trace_id]) in detail
    partial = client.get(dataset.get_absolute_url(), HTTP_HX_REQUEST="true").content.decode()
    assert partial.strip().startswith('<section id="records"')


def test_downloads(client: Client, admin_user, dataset: EvaluationDataset) -> None:
    client.force_login(admin_user)
    jsonl = b"".join(client.get(reverse("evaluation:dataset_download", args=[dataset.pk, "jsonl"])).streaming_content)
    assert [json.loads(line)["inputs"] for line in jsonl.splitlines()] == [
        {"question": "Dose question 0?"},
        {"question": "Dose question 1?"},
    ]
    csv_bytes = b"".join(client.get(reverse("evaluation:dataset_download", args=[dataset.pk, "csv"])).streaming_content)
    assert csv_bytes.splitlines()[0] == b"inputs,outputs,expectations,tags,source"
    response = client.get(reverse("evaluation:dataset_download", args=[dataset.pk, "parquet"]))
    df = pd.read_parquet(io.BytesIO(b"".join(response.streaming_content)))
    assert len(df) == 2 and df.loc[0, "inputs"] == {"question": "Dose question 0?"}
    assert 'filename="cardio.parquet"' in response["Content-Disposition"]
    assert client.get(f"/datasets/{dataset.pk}/download.xml").status_code == 404


def test_reviewers_get_404_and_cannot_save(client: Client, reviewer, dataset: EvaluationDataset, labeled) -> None:
    client.force_login(reviewer)
    assert client.get(reverse("evaluation:dataset_list")).status_code == 404
    assert client.get(dataset.get_absolute_url()).status_code == 404
    assert client.get(reverse("evaluation:dataset_download", args=[dataset.pk, "jsonl"])).status_code == 404
    response = client.post(reverse("evaluation:save_session", args=[labeled.pk]), {"name": "stolen"})
    assert response.status_code == 403
    assert not EvaluationDataset.objects.filter(name="stolen").exists()


def test_leads_cannot_save_datasets(client: Client, labeled: LabelingSession) -> None:
    from django.contrib.auth.models import User

    lead = User.objects.create_user("lead")
    labeling_services.set_session_leads(session=labeled, leads=[lead])
    client.force_login(lead)
    assert client.post(reverse("evaluation:save_session", args=[labeled.pk]), {"name": "x"}).status_code == 403


def test_save_session_labels_from_the_dashboard(client: Client, admin_user, labeled: LabelingSession) -> None:
    client.force_login(admin_user)
    assert "Save this session" in client.get(labeled.get_absolute_url()).content.decode()
    response = client.post(
        reverse("evaluation:save_session", args=[labeled.pk]),
        {"name": "from-ui", "policy": "consensus", "include_feedback": "on"},
        follow=True,
    )
    assert (
        "Saved to “from-ui”: 3 new records, 0 updated (1 with expectations, 2 with feedback only; "
        "2 tied answers left out)." in response.content.decode()
    )
    dataset = EvaluationDataset.objects.get(name="from-ui")
    assert dataset.records.count() == 3 and dataset.created_by == admin_user


def test_saving_a_session_without_expectations_is_refused(client: Client, admin_user) -> None:
    from labeling import services as labeling_services

    empty = labeling_services.create_labeling_session(name="Empty")
    client.force_login(admin_user)
    response = client.post(reverse("evaluation:save_session", args=[empty.pk]), {"name": "x"}, follow=True)
    assert "no expectation labels" in response.content.decode()
    assert not EvaluationDataset.objects.exists()


# ---------------------------------------------------------------- which items become records (issue 9 item 19)


def _save(client: Client, session: LabelingSession, **fields: str):
    return client.post(reverse("evaluation:save_session", args=[session.pk]), {"name": "ds", **fields})


def test_dashboard_form_states_the_rule_and_the_counts(client: Client, admin_user, db: None) -> None:
    session = make_demo_like_session()
    client.force_login(admin_user)
    body = client.get(session.get_absolute_url()).content.decode()
    assert "One record per item with at least one expectation answer" in body
    assert "items that have only feedback answers are included too" in body
    assert "Saving now gives <strong>3</strong> records, or <strong>7</strong> with feedback added as tags" in body


def test_demo_like_session_saves_only_items_with_expectations(client: Client, admin_user, db: None) -> None:
    session = make_demo_like_session()
    client.force_login(admin_user)
    response = _save(client, session)
    assert response.status_code == 302
    dataset = EvaluationDataset.objects.get(name="ds")
    assert dataset.records.count() == 3
    assert all(r.expectations for r in dataset.records.all())  # no empty record


def test_demo_like_session_with_feedback_tags_saves_every_answered_item(client: Client, admin_user, db: None) -> None:
    session = make_demo_like_session()
    client.force_login(admin_user)
    response = _save(client, session, include_feedback="on")
    body = client.get(response.url).content.decode()
    assert "7 new records, 0 updated (3 with expectations, 4 with feedback only)" in body
    records = list(EvaluationDataset.objects.get(name="ds").records.all())
    assert len(records) == 7  # the 2 unanswered items add nothing
    assert sum(1 for r in records if not r.expectations) == 4
    assert all(r.expectations or "feedback.correct" in r.tags for r in records)


def test_feedback_only_session_needs_feedback_as_tags(client: Client, admin_user, db: None) -> None:
    session = make_feedback_only_session()
    client.force_login(admin_user)
    refused = _save(client, session)
    assert refused.status_code == 400
    assert "only feedback answers" in refused.content.decode() and "add feedback as tags" in refused.content.decode()
    assert not EvaluationDataset.objects.exists()
    saved = _save(client, session, include_feedback="on")
    assert saved.status_code == 302
    assert EvaluationDataset.objects.get(name="ds").records.count() == 2


def test_nothing_qualifying_saves_nothing(client: Client, admin_user, labeled: LabelingSession) -> None:
    """Under the majority policy a tie is left out; when that leaves nothing, no (empty) dataset is created."""
    from labeling import services as labeling_services

    tied = labeling_services.create_labeling_session(
        name="Tied", schemas=list(labeled.schemas.filter(name="expected_response")), reviewers=labeled.reviewers.all()
    )
    tied.reviewers_per_item = 2
    tied.save()
    labeling_services.add_traces_to_session(session=tied, trace_ids=[make_trace().trace_id])
    item = tied.items.get()
    for user, answer in zip(labeled.reviewers.order_by("username"), ["Yes", "No"], strict=True):
        claims.claim_next_item(session=tied, reviewer=user)
        submissions.submit_review(item=item, reviewer=user, raw_answers={"expected_response": answer})
    client.force_login(admin_user)
    response = _save(client, tied, policy="consensus")
    assert response.status_code == 400
    assert "No item qualifies for the dataset (1 tied answers left out)" in response.content.decode()
    assert not EvaluationDataset.objects.filter(name="ds").exists()


# ---------------------------------------------------------------- dataset names (issue 9 item 11)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("x" * 201, "at most 200 characters"),
        ("bad\x00name", "Null characters are not allowed"),
        ("two\r\nlines", "no line breaks"),
    ],
)
def test_bad_dataset_names_are_form_errors(
    client: Client, admin_user, labeled: LabelingSession, name: str, message: str
) -> None:
    client.force_login(admin_user)
    response = client.post(reverse("evaluation:save_session", args=[labeled.pk]), {"name": name})
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not EvaluationDataset.objects.exists()


def test_download_names_are_slugs_and_match_the_hint(client: Client, admin_user, dataset: EvaluationDataset) -> None:
    EvaluationDataset.objects.filter(pk=dataset.pk).update(name="Demo: are the\r\npolicy answers right?")
    client.force_login(admin_user)
    page = client.get(dataset.get_absolute_url()).content.decode()
    assert 'pandas.read_json("demo-are-the-policy-answers-right.jsonl", lines=True)' in page
    for fmt in ("jsonl", "csv", "parquet"):
        response = client.get(reverse("evaluation:dataset_download", args=[dataset.pk, fmt]))
        assert response.status_code == 200
        assert response["Content-Disposition"] == f'attachment; filename="demo-are-the-policy-answers-right.{fmt}"'
        assert b"".join(response.streaming_content)


def test_a_name_without_letters_gets_a_numbered_file_name(
    client: Client, admin_user, dataset: EvaluationDataset
) -> None:
    EvaluationDataset.objects.filter(pk=dataset.pk).update(name="???")
    client.force_login(admin_user)
    response = client.get(reverse("evaluation:dataset_download", args=[dataset.pk, "jsonl"]))
    assert response["Content-Disposition"] == f'attachment; filename="dataset-{dataset.pk}.jsonl"'


# ---------------------------------------------------------------- the dataset page shows conversations


def test_dataset_page_shows_chat_bubbles_and_answer_text(
    client: Client, admin_user, mixed: LabelingSession, django_assert_max_num_queries
) -> None:
    dataset, _, _ = services.save_session_labels(sessions=[mixed], dataset_name="mixed", include_feedback=True)
    client.force_login(admin_user)
    with django_assert_max_num_queries(8):
        body = client.get(dataset.get_absolute_url()).content.decode()
    assert '<div class="bubble user">' in body and "Hi, what is an assessment?" in body
    assert '<div class="bubble assistant">' in body
    assert "MLflow Tracing records inputs, outputs and metadata of each step" in body  # the chat completion's text
    assert "It is 21C (69.8F) in Paris." in body  # a plain string output, as the answer
    assert "chatcmpl-123" not in body and "&quot;choices&quot;" not in body  # not raw JSON
    assert "<li>compound interest</li>" in body  # expected facts as a list
    assert "No expectations." in body  # the feedback-only record says so


def test_dataset_page_queries_do_not_grow_with_records(
    client: Client, admin_user, db: None, django_assert_max_num_queries
) -> None:
    small, _, _ = services.save_session_labels(
        sessions=[make_feedback_only_session("s")], dataset_name="small", include_feedback=True
    )
    big, _, _ = services.save_session_labels(
        sessions=[make_demo_like_session("b")], dataset_name="big", include_feedback=True
    )
    client.force_login(admin_user)
    for dataset in (small, big):
        with django_assert_max_num_queries(8):
            assert client.get(dataset.get_absolute_url()).status_code == 200


def test_delete_asks_then_deletes_the_dataset_and_its_records(
    client: Client, admin_user, reviewer, dataset: EvaluationDataset
) -> None:
    from evaluation.models import DatasetRecord

    url = reverse("evaluation:dataset_delete", args=[dataset.pk])
    client.force_login(reviewer)
    assert client.get(url).status_code == 404
    assert client.post(url).status_code == 403  # writes they may not make
    assert dataset.records.count() == 2
    client.force_login(admin_user)
    assert url in client.get(dataset.get_absolute_url()).content.decode()
    confirm = client.get(url).content.decode()
    assert "Delete “cardio”?" in confirm and "Its 2 records go with it" in confirm
    assert EvaluationDataset.objects.filter(pk=dataset.pk).exists()  # asking changes nothing
    response = client.post(url, follow=True)
    assert response.redirect_chain[-1][0] == reverse("evaluation:dataset_list")
    assert "Deleted the dataset “cardio” and its 2 records." in response.content.decode()
    assert not EvaluationDataset.objects.exists() and not DatasetRecord.objects.exists()
    assert client.post(url).status_code == 404
