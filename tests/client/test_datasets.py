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
