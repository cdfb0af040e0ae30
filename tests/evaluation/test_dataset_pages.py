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
from labeling import services as labeling_services
from labeling.models import LabelingSession

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
    assert "Saved to “from-ui”: 3 new records, 0 updated (2 tied answers left out)" in response.content.decode()
    dataset = EvaluationDataset.objects.get(name="from-ui")
    assert dataset.records.count() == 3 and dataset.created_by == admin_user


def test_saving_a_session_without_expectations_is_refused(client: Client, admin_user) -> None:
    from labeling import services as labeling_services

    empty = labeling_services.create_labeling_session(name="Empty")
    client.force_login(admin_user)
    response = client.post(reverse("evaluation:save_session", args=[empty.pk]), {"name": "x"}, follow=True)
    assert "no expectation labels" in response.content.decode()
    assert not EvaluationDataset.objects.exists()
