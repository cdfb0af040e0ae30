"""The client's datasets against a live server: MLflow's create_dataset / get_dataset / merge_records / to_df."""

from __future__ import annotations

import pandas as pd
import pytest

from reviewapp_client import ApiClient, ReviewAppError
from reviewapp_client.datasets import create_dataset, get_dataset


def test_create_merge_and_read_back(admin_client: ApiClient, transactional_db: None) -> None:
    dataset = create_dataset(name="golden", tags={"team": "qa"})
    assert dataset.name == "golden" and dataset.tags == {"team": "qa"} and dataset.record_count == 0
    dataset.merge_records([{"inputs": {"q": "What is MLflow?"}, "expectations": {"expected_response": "A platform"}}])
    frame = pd.DataFrame(
        [{"inputs": {"q": "What is MLflow?"}, "expectations": {"expected_response": "An ML platform"}}]
    )
    assert dataset.merge_records(frame).record_count == 1
    again = get_dataset(name="golden")
    assert again.dataset_id == dataset.dataset_id
    df = again.to_df()
    assert list(df["inputs"]) == [{"q": "What is MLflow?"}]
    assert list(df["expectations"]) == [{"expected_response": "An ML platform"}]
    with pytest.raises(ReviewAppError):
        create_dataset(name="golden")


def test_search_datasets_and_records(admin_client: ApiClient, transactional_db: None) -> None:
    from reviewapp_client.datasets import search_datasets

    first = create_dataset(name="first")
    create_dataset(name="second")
    first.merge_records([{"inputs": {"q": f"question {i}"}, "expectations": {"n": i}} for i in range(3)])
    assert [d.name for d in search_datasets()] == ["second", "first"]  # newest first
    assert [d.name for d in search_datasets(max_results=1)] == ["second"]
    records = get_dataset(name="first").records
    assert sorted(r["inputs"]["q"] for r in records) == ["question 0", "question 1", "question 2"]
    assert {r["inputs"]["q"]: r["expectations"]["n"] for r in records} == {f"question {i}": i for i in range(3)}


def test_delete_records_and_delete_dataset(admin_client: ApiClient, transactional_db: None) -> None:
    from reviewapp_client.datasets import delete_dataset

    dataset = create_dataset(name="scratch")
    dataset.merge_records([{"inputs": {"q": f"question {i}"}} for i in range(3)])
    ids = [r["dataset_record_id"] for r in dataset.records]
    assert dataset.delete_records([ids[0], ids[2], "999999"]) == 2
    assert dataset.record_count == 1 and [r["dataset_record_id"] for r in dataset.records] == [ids[1]]
    with pytest.raises(ReviewAppError) as caught:
        dataset.delete_records(["not-an-id"])
    assert caught.value.error_code == "INVALID_PARAMETER_VALUE"
    delete_dataset(name="scratch")
    with pytest.raises(ReviewAppError) as caught:
        get_dataset(name="scratch")
    assert caught.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    with pytest.raises(ValueError):
        delete_dataset()
