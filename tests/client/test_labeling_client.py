"""The client's label schema and labeling session calls against a live server, as a notebook makes them."""

from __future__ import annotations

from typing import Any

import pytest

import reviewapp_client
from labeling.models import LabelingSession, LabelSchema
from reviewapp_client import ReviewAppError, labeling
from reviewapp_client import label_schemas as schemas

from .conftest import Shop


def test_label_schema_calls(admin_client: Any, shop: Shop) -> None:
    created = schemas.create_label_schema(
        "tone", type="feedback", title="Tone OK?", input=schemas.InputCategorical(options=["good", "bad"])
    )
    assert created.input == schemas.InputCategorical(options=["good", "bad"]) and created.version == 1
    with pytest.raises(ReviewAppError) as caught:
        schemas.create_label_schema("tone", type="feedback", input=schemas.InputText())
    assert caught.value.error_code == "RESOURCE_ALREADY_EXISTS"
    again = schemas.create_label_schema(
        "tone", type="feedback", input=schemas.InputNumeric(min_value=1, max_value=5), overwrite=True
    )
    assert again.version == 2 and again.input == schemas.InputNumeric(min_value=1.0, max_value=5.0)
    assert schemas.get_label_schema("tone").title == "tone"
    changed = schemas.update_label_schema(
        "tone", title="How was the tone?", instruction="1 is rude", enable_comment=True
    )
    assert (changed.title, changed.instruction, changed.enable_comment, changed.version) == (
        "How was the tone?",
        "1 is rude",
        True,
        3,
    )
    assert changed.input == schemas.InputNumeric(min_value=1.0, max_value=5.0)  # what was left out stays
    with pytest.raises(ReviewAppError) as caught:
        schemas.update_label_schema("tone", input={"type": "numeric", "min_value": 5, "max_value": 1})
    assert caught.value.error_code == "INVALID_PARAMETER_VALUE"
    assert schemas.get_label_schema("tone").version == 3
    assert "tone" in [s.name for s in schemas.list_label_schemas()]
    schemas.delete_label_schema("tone")
    assert not LabelSchema.objects.filter(name="tone").exists()


def test_labeling_session_calls(admin_client: Any, shop: Shop, reviewer: Any) -> None:
    schemas.create_label_schema(schemas.EXPECTED_RESPONSE, type="expectation", input=schemas.InputText())
    session = labeling.create_labeling_session(
        "Week 50", assigned_users=["reviewer"], label_schemas=[schemas.EXPECTED_RESPONSE]
    )
    assert session.assigned_users == ["reviewer"] and session.url.endswith(f"/review/{session.id}/")
    frame = reviewapp_client.search_traces(model_id="v2")
    session.add_traces(frame)
    assert session.item_count == 2
    session.add_traces([shop.traces[0].trace_id])
    assert session.item_count == 3 and session.progress == {"done": 0, "total": 3}
    copies = reviewapp_client.search_traces(run_id=session.mlflow_run_id, return_type="list")
    assert len(copies) == 3
    assert labeling.get_labeling_session(session.mlflow_run_id).name == "Week 50"
    assert labeling.get_labeling_session(name="Week 50").id == session.id
    assert session.set_assigned_users([]).assigned_users == []
    assert [s.name for s in labeling.get_labeling_sessions()] == ["Week 50"]
    labeling.delete_labeling_session(session)
    assert not LabelingSession.objects.exists()
    with pytest.raises(ReviewAppError) as caught:
        labeling.get_labeling_session(name="Week 50")
    assert caught.value.error_code == "RESOURCE_DOES_NOT_EXIST"


def test_sync_policies_add_dataset_and_items(admin_client: Any, shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    """Labels go to a dataset (``sync`` with each policy), the dataset's traces come back into a new
    session (``add_dataset``), and ``items`` lists what reviewers have done."""
    from evaluation.models import EvaluationDataset
    from reviewapp_client import datasets
    from tests.evaluation.conftest import make_labeled_session

    schemas.create_label_schema(schemas.EXPECTED_RESPONSE, type="expectation", input=schemas.InputText())
    schemas.create_label_schema(schemas.EXPECTED_FACTS, type="expectation", input=schemas.InputTextList())
    labeled = labeling.get_labeling_session(name=make_labeled_session().name)
    assert [i["submitted_count"] for i in labeled.items()] == [2, 2, 1]
    latest = labeled.sync(to_dataset="cardio-latest")
    assert latest["records_merged"] == 2 and latest["ties_left_out"] == []
    consensus = labeled.sync(to_dataset="cardio-consensus", policy="consensus", include_feedback=True)
    assert consensus["records_merged"] == 3 and len(consensus["ties_left_out"]) == 2
    frame = datasets.get_dataset(name="cardio-consensus").to_df()
    assert list(frame["tags"].map(lambda t: t["feedback.correct"])) == ["true", "false", "true"]
    with pytest.raises(ReviewAppError) as caught:
        labeled.sync(to_dataset="x", policy="majority")
    assert caught.value.error_code == "INVALID_PARAMETER_VALUE" and caught.value.status_code == 400
    assert not EvaluationDataset.objects.filter(name="x").exists()

    second_look = labeling.create_labeling_session("Second look")
    records = datasets.get_dataset(name="cardio-latest").records
    second_look.add_dataset("cardio-latest", record_ids=[records[0]["dataset_record_id"]])
    assert second_look.item_count == 1
    assert second_look.add_dataset("cardio-latest").item_count == 2
    from labeling import api as labeling_api

    monkeypatch.setattr(labeling_api, "MAX_TRACE_IDS", 1)  # a dataset bigger than one request takes
    monkeypatch.setattr(labeling, "ADD_BATCH", 1)
    third_look = labeling.create_labeling_session("Third look")
    assert third_look.add_dataset("cardio-latest").item_count == 2
    with pytest.raises(ReviewAppError) as caught:
        second_look.add_dataset("no-such-dataset")
    assert caught.value.error_code == "RESOURCE_DOES_NOT_EXIST"
