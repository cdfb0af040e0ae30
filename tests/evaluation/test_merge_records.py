"""Records merge on identical inputs: newer expectation per key wins, the old value goes to history."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from evaluation import services
from evaluation.models import DatasetRecord

pytestmark = pytest.mark.django_db


def record(question: str, **expectations) -> dict:
    return {
        "inputs": {"question": question},
        "outputs": f"answer to {question}",
        "expectations": expectations,
        "tags": {"batch": "1"},
        "source": {"source_type": "TRACE", "source_data": {"trace_id": f"tr-{question}"}},
    }


def test_new_inputs_add_records_and_same_inputs_merge() -> None:
    dataset = services.get_or_create_dataset(name="d")
    result = services.merge_records(dataset=dataset, records=[record("a", expected_response="A"), record("b", x=1)])
    assert (result.created, result.updated) == (2, 0)
    result = services.merge_records(
        dataset=dataset, records=[record("a", expected_response="A2", expected_facts=["f"]), record("c")]
    )
    assert (result.created, result.updated) == (1, 1)
    a = DatasetRecord.objects.get(dataset=dataset, inputs={"question": "a"})
    assert a.expectations == {"expected_response": "A2", "expected_facts": ["f"]}
    assert [h["value"] for h in a.history] == ["A"] and a.history[0]["expectation"] == "expected_response"
    assert dataset.records.count() == 3


def test_key_order_in_inputs_does_not_matter_and_duplicates_in_one_batch_merge() -> None:
    dataset = services.get_or_create_dataset(name="d")
    first = {"inputs": {"q": 1, "lang": "en"}, "expectations": {"e": 1}}
    second = {"inputs": {"lang": "en", "q": 1}, "expectations": {"e": 2}}
    result = services.merge_records(dataset=dataset, records=[first, second])
    assert result.created == 1 and dataset.records.get().expectations == {"e": 2}


def test_unchanged_value_adds_no_history_and_tags_merge() -> None:
    dataset = services.get_or_create_dataset(name="d")
    services.merge_records(dataset=dataset, records=[record("a", e="same")])
    services.merge_records(dataset=dataset, records=[{**record("a", e="same"), "tags": {"batch": "2", "x": "y"}}])
    merged = dataset.records.get()
    assert merged.history == [] and merged.tags == {"batch": "2", "x": "y"}


def test_bad_records_raise_and_write_nothing() -> None:
    dataset = services.get_or_create_dataset(name="d")
    with pytest.raises(ValidationError, match="inputs"):
        services.merge_records(dataset=dataset, records=[record("a"), {"inputs": "not a dict"}])
    with pytest.raises(ValidationError, match="Unknown source type"):
        services.merge_records(dataset=dataset, records=[{**record("b"), "source": {"source_type": "MAGIC"}}])
    assert dataset.records.count() == 0
    with pytest.raises(ValidationError):
        services.get_or_create_dataset(name="  ")


def test_an_update_keeps_every_field_and_an_unchanged_record_is_not_rewritten() -> None:
    """Both databases' write paths (PostgreSQL writes changed records with one UPDATE … FROM VALUES)."""
    dataset = services.get_or_create_dataset(name="fields")
    first = {"inputs": {"q": "1"}, "outputs": None, "expectations": {"e": "old"}, "tags": {"t": "1"}}
    other = {"inputs": {"q": "2"}, "outputs": {"a": [1, 2]}, "expectations": {"e": "x"}}
    services.merge_records(dataset=dataset, records=[first, other])
    untouched = dataset.records.get(inputs={"q": "2"}).updated_at
    second = {
        "inputs": {"q": "1"},
        "outputs": {"answer": "new", "n": 1.5},
        "expectations": {"e": "new", "facts": ["a", "b"]},
        "tags": {"u": "2"},
        "source": {"source_type": "HUMAN", "source_data": {"trace_id": "tr-1"}},
    }
    result = services.merge_records(dataset=dataset, records=[second, other])
    assert (result.created, result.updated) == (0, 2)
    record = dataset.records.get(inputs={"q": "1"})
    assert record.outputs == {"answer": "new", "n": 1.5}
    assert record.expectations == {"e": "new", "facts": ["a", "b"]} and record.tags == {"t": "1", "u": "2"}
    assert record.source_type == "HUMAN" and record.source_data == {"trace_id": "tr-1"}
    assert [(h["expectation"], h["value"]) for h in record.history] == [("e", "old")]
    assert dataset.records.get(inputs={"q": "2"}).updated_at == untouched
