"""Our exported dataset, read by the real MLflow client: evaluate with a code scorer, and merge_records."""

from __future__ import annotations

import json
import os
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow.genai.scorers import scorer

EXPORT = Path(os.environ["EXPORT_DIR"])


@pytest.fixture(autouse=True)
def tracking(tmp_path: Path) -> None:
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_experiment("interop")


def expected_records() -> list[dict]:
    return [json.loads(line) for line in (EXPORT / "export.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_evaluate_scores_every_record_with_expectations_intact(fmt: str) -> None:
    if fmt == "jsonl":
        data = pd.read_json(EXPORT / "export.jsonl", lines=True)  # as-is
    else:
        # Parquet columns are structs: a record lacking an expectation others have reads back as None,
        # which MLflow refuses, so drop those keys (the one documented step).
        data = pd.read_parquet(EXPORT / "export.parquet")
        data["expectations"] = data["expectations"].map(lambda e: {k: v for k, v in e.items() if v is not None})
    seen: list[dict] = []

    @scorer
    def mentions_expected(inputs, outputs, expectations) -> bool:
        seen.append({"inputs": inputs, "expectations": expectations})
        return bool(expectations.get("expected_response"))

    result = mlflow.genai.evaluate(data=data, scorers=[mentions_expected])
    assert len(seen) == len(expected_records()) == 2
    by_question = {s["inputs"]["question"]: s["expectations"] for s in seen}
    for record in expected_records():
        got = by_question[record["inputs"]["question"]]
        for key, value in record["expectations"].items():
            assert list(got[key]) == value if isinstance(value, list) else got[key] == value
    assert result.metrics["mentions_expected/mean"] == 1.0


def test_merge_records_round_trip() -> None:
    from mlflow.genai import datasets

    experiment = mlflow.get_experiment_by_name("interop")
    dataset = datasets.create_dataset(name="cardio", experiment_id=[experiment.experiment_id])
    dataset.merge_records(expected_records())
    frame = dataset.to_df()
    assert len(frame) == 2
    stored = {row["inputs"]["question"]: row["expectations"] for _, row in frame.iterrows()}
    for record in expected_records():
        assert stored[record["inputs"]["question"]] == record["expectations"]
