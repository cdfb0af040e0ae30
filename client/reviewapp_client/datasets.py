"""Evaluation datasets, mirroring ``mlflow.genai.datasets``: ``create_dataset``, ``get_dataset``,
``search_datasets``, ``delete_dataset`` and an ``EvaluationDataset`` with ``merge_records``,
``delete_records`` and ``to_df`` (over ``/api/datasets/``; admins only)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from ._http import get_client

MERGE_BATCH = 1000  # the server takes at most 10,000 records per request


class EvaluationDataset:
    """A stored dataset: records of inputs, outputs, expectations, tags and a source."""

    def __init__(self, info: dict[str, Any]) -> None:
        self._info = info

    def __repr__(self) -> str:
        return f"EvaluationDataset(dataset_id={self.dataset_id!r}, name={self.name!r})"

    @property
    def dataset_id(self) -> str:
        return self._info["dataset_id"]

    @property
    def name(self) -> str:
        return self._info["name"]

    @property
    def tags(self) -> dict[str, Any]:
        return dict(self._info.get("tags") or {})

    @property
    def description(self) -> str:
        return self._info.get("description", "")

    @property
    def created_time(self) -> str:
        return self._info["created_time"]

    @property
    def last_update_time(self) -> str:
        return self._info["last_update_time"]

    @property
    def created_by(self) -> str | None:
        return self._info.get("created_by")

    @property
    def record_count(self) -> int:
        return int(self._info.get("record_count") or 0)

    def _path(self, rest: str = "") -> str:
        return f"/api/datasets/{quote(self.dataset_id, safe='')}{rest}"

    def merge_records(self, records: Any) -> EvaluationDataset:
        """Add records (a list of dicts or a pandas DataFrame with ``inputs`` and optional ``outputs``,
        ``expectations``, ``tags``, ``source`` columns); a record whose inputs the dataset has updates it.
        Returns the dataset, refreshed."""
        rows = _records_of(records)
        client = get_client()
        for start in range(0, len(rows), MERGE_BATCH):
            client.post(self._path("/records"), json={"records": rows[start : start + MERGE_BATCH]})
        self._info = client.get(self._path())
        return self

    def delete_records(self, record_ids: list[str]) -> int:
        """MLflow's ``delete_records``: remove these records (their ``dataset_record_id``); returns how
        many the dataset had."""
        ids = [str(r) for r in record_ids]
        deleted = 0
        for start in range(0, len(ids), MERGE_BATCH):
            body = {"dataset_record_ids": ids[start : start + MERGE_BATCH]}
            deleted += int(get_client().delete(self._path("/records"), json=body)["deleted"])
        self._info = get_client().get(self._path())
        return deleted

    @property
    def records(self) -> list[dict[str, Any]]:
        return list(get_client().paginate(self._path("/records"), "records", {"max_results": 500}))

    def to_df(self) -> Any:
        """Every record as a pandas DataFrame: inputs, outputs, expectations, tags, source (as MLflow's)."""
        import pandas as pd

        text = get_client().get_text(self._path("/records.jsonl"))
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        columns = ["inputs", "outputs", "expectations", "tags", "source"]
        return pd.DataFrame(rows, columns=columns)


def _records_of(records: Any) -> list[dict[str, Any]]:
    if hasattr(records, "to_dict") and hasattr(records, "columns"):  # a DataFrame
        records = records.to_dict(orient="records")
    rows = []
    for record in records:
        row = {key: value for key, value in dict(record).items() if value is not None}
        if "source" in row and not isinstance(row["source"], dict):
            row.pop("source")
        rows.append(row)
    return rows


def create_dataset(
    name: str | None = None,
    experiment_id: str | list[str] | None = None,
    tags: dict[str, Any] | None = None,
    description: str = "",
) -> EvaluationDataset:
    """``mlflow.genai.datasets.create_dataset``: a new, empty dataset (``ReviewAppError`` 409 when the
    name is taken). ``experiment_id`` is accepted for MLflow's signature; the app's datasets are global."""
    if not name:
        raise ValueError("create_dataset needs a name")
    body = {"name": name, "description": description, "tags": {k: str(v) for k, v in (tags or {}).items()}}
    return EvaluationDataset(get_client().post("/api/datasets/", json=body))


def get_dataset(name: str | None = None, dataset_id: str | None = None) -> EvaluationDataset:
    """``mlflow.genai.datasets.get_dataset``: by name or by id."""
    reference = dataset_id or name
    if not reference:
        raise ValueError("get_dataset needs a name or a dataset_id")
    return EvaluationDataset(get_client().get(f"/api/datasets/{quote(str(reference), safe='')}"))


def search_datasets(max_results: int | None = None) -> list[EvaluationDataset]:
    """Every dataset, newest first (at most ``max_results``)."""
    found = []
    for info in get_client().paginate("/api/datasets/", "datasets", {"max_results": 500}):
        found.append(EvaluationDataset(info))
        if max_results is not None and len(found) >= max_results:
            break
    return found


def delete_dataset(name: str | None = None, dataset_id: str | None = None) -> None:
    """``mlflow.genai.datasets.delete_dataset``: the dataset and its records (runs over it keep their scores)."""
    reference = dataset_id or name
    if not reference:
        raise ValueError("delete_dataset needs a name or a dataset_id")
    get_client().delete(f"/api/datasets/{quote(str(reference), safe='')}")
