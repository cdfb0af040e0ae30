"""From a comparison, B's traces of the regressed examples go to a labeling session, for experts to judge."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User

from evaluation.demo import seed_evaluation_demo
from evaluation.models import EvaluationRun
from labeling import services as labeling_services
from labeling.models import LabelingSession, ReviewItem

URL = "/datasets/runs/compare/add-to-session/"


@pytest.fixture
def runs(db: None) -> tuple[EvaluationRun, EvaluationRun]:
    v1, v2 = seed_evaluation_demo().runs
    return v1, v2


@pytest.fixture
def session(db: None) -> LabelingSession:
    return labeling_services.create_labeling_session(name="Regressions to check")


def _post(client: Any, runs: tuple[EvaluationRun, EvaluationRun], **data: Any) -> Any:
    a, b = runs
    return client.post(URL, {"a": a.pk, "b": b.pk, **data})


def test_the_regressed_examples_of_a_scorer_are_added_with_a_message(
    admin_client: Any, runs: tuple[EvaluationRun, EvaluationRun], session: LabelingSession
) -> None:
    a, b = runs
    page = admin_client.get(f"/datasets/runs/compare/?a={a.pk}&b={b.pk}&scorer=mentions_expected_fact")
    assert "Send the 3 regressed examples on <code>mentions_expected_fact</code>" in page.content.decode()
    response = _post(admin_client, runs, scorer="mentions_expected_fact", session=session.pk)
    assert response.status_code == 302 and "scorer=mentions_expected_fact" in response["Location"]
    items = ReviewItem.objects.filter(session=session)
    assert items.count() == 3
    regressed_questions = {item.trace.spans.get(parent_id="").inputs["question"] for item in items}
    assert all(item.trace.model_id == "demo-v2" for item in items)  # B's traces (frozen copies of them)
    follow = admin_client.get(response["Location"])
    assert "Added 3 regressed traces of “Demo v2: concise answers” to “Regressions to check”" in follow.content.decode()
    again = _post(admin_client, runs, scorer="mentions_expected_fact", session=session.pk)
    assert again.status_code == 302 and items.count() == 3  # already there: skipped
    assert len(regressed_questions) == 3


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"session": ""}, "This field is required"),
        ({"session": "999999"}, "Choose a labeling session you manage"),
        ({"scorer": "nope", "session": "SESSION"}, "Both runs have no scorer named “nope”"),
    ],
)
def test_bad_adds_are_a_400_with_the_reason_and_add_nothing(
    admin_client: Any, runs: tuple[EvaluationRun, EvaluationRun], session: LabelingSession, data: dict, message: str
) -> None:
    data = {k: (session.pk if v == "SESSION" else v) for k, v in data.items()}
    response = _post(admin_client, runs, **data)
    assert response.status_code == 400 and message in response.content.decode()
    assert not ReviewItem.objects.exists()


def test_nothing_regressed_is_a_400(
    admin_client: Any, runs: tuple[EvaluationRun, EvaluationRun], session: LabelingSession
) -> None:
    a, b = runs
    response = admin_client.post(
        URL, {"a": b.pk, "b": a.pk, "scorer": "has_retrieved_documents", "session": session.pk}
    )
    assert response.status_code == 400 and "Nothing to add: no example regressed on has_retrieved_documents" in (
        response.content.decode()
    )
    assert not ReviewItem.objects.exists()


def test_unknown_runs_are_a_400(admin_client: Any, session: LabelingSession, db: None) -> None:
    response = admin_client.post(URL, {"a": "1", "b": "2", "session": session.pk})
    assert response.status_code == 400 and "There is no run #1" in response.content.decode()


def test_a_reviewer_cannot_add(
    client: Any, runs: tuple[EvaluationRun, EvaluationRun], session: LabelingSession
) -> None:
    client.force_login(User.objects.create_user("rita"))
    assert _post(client, runs, session=session.pk).status_code == 404
    assert not ReviewItem.objects.exists()
