"""The trace explorer's "Download as MLflow traces (JSONL)": the current filter, streamed, for admins and leads."""

from __future__ import annotations

import json
from typing import Any

from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from evaluation.trace_export import COLUMNS
from labeling import services
from labeling.models import LabelingSession, LabelSchema
from tests.factories import make_trace
from traces.models import Experiment

URL = reverse("evaluation:traces_download")


def rows(response: Any) -> list[dict[str, Any]]:
    assert response.streaming
    return [json.loads(line) for line in b"".join(response.streaming_content).decode().splitlines()]


def make_lead() -> tuple[User, LabelingSession]:
    lead = User.objects.create_user("lead", password="pw-123456")
    schema = services.save_label_schema(
        schema=LabelSchema(name="correct", type="feedback", title="Correct?", input_type="pass_fail")
    )
    session = services.create_labeling_session(name="S", schemas=[schema], reviewers=[])
    services.set_session_leads(session=session, leads=[lead])
    return lead, session


def test_admin_downloads_the_filtered_traces_as_mlflow_rows(client: Client, admin_user: User) -> None:
    experiment = Experiment.objects.create(name="Shop")
    wanted = make_trace(experiment=experiment, state="ERROR")
    make_trace(experiment=experiment)
    client.force_login(admin_user)
    response = client.get(URL, {"filter_string": "trace.status = 'ERROR'"})
    assert response.status_code == 200
    assert response["Content-Type"] == "application/x-ndjson"
    assert 'attachment; filename="mlflow-traces.jsonl"' in response["Content-Disposition"]
    (row,) = rows(response)
    assert list(row) == COLUMNS and row["trace_id"] == wanted.trace_id and row["state"] == "ERROR"
    assert json.loads(row["trace"])["info"]["trace_id"] == wanted.trace_id


def test_a_lead_downloads_ordinary_traces_but_no_session_copies(client: Client, db: None) -> None:
    lead, session = make_lead()
    original = make_trace()
    services.add_traces_to_session(session=session, trace_ids=[original.trace_id])
    client.force_login(lead)
    assert [row["trace_id"] for row in rows(client.get(URL))] == [original.trace_id]


def test_reviewers_and_outsiders_get_404_and_anonymous_users_the_login(
    client: Client, reviewer: User, outsider: User
) -> None:
    make_trace()
    for person in (reviewer, outsider):
        client.force_login(person)
        assert client.get(URL).status_code == 404
    client.logout()
    response = client.get(URL)
    assert response.status_code == 302 and "login" in response["Location"]


def test_a_bad_filter_is_a_400_naming_the_problem(client: Client, admin_user: User) -> None:
    make_trace()
    client.force_login(admin_user)
    response = client.get(URL, {"filter_string": "trace.status = "})
    assert response.status_code == 400
    assert response.content.decode().startswith("Nothing exported: ")


def test_the_explorer_links_the_download_with_its_current_filter(client: Client, admin_user: User) -> None:
    make_trace()
    client.force_login(admin_user)
    page = client.get(reverse("traces:list"), {"filter_string": "trace.status = 'OK'"}).content.decode()
    assert "Download as MLflow traces (JSONL)" in page
    assert f'href="{URL}?filter_string=trace.status+%3D+%27OK%27' in page


def test_the_download_runs_a_constant_number_of_queries(
    client: Client, admin_user: User, django_assert_max_num_queries: Any
) -> None:
    for _ in range(30):
        make_trace()
    client.force_login(admin_user)
    with django_assert_max_num_queries(12):
        assert len(rows(client.get(URL))) == 30
