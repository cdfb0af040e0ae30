"""Our exported datasets, read by the real MLflow client: evaluate with a code scorer, and merge_records."""

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


def expected_records(name: str = "export") -> list[dict]:
    return [json.loads(line) for line in (EXPORT / f"{name}.jsonl").read_text().splitlines()]


def read(name: str, fmt: str) -> pd.DataFrame:
    if fmt == "jsonl":
        return pd.read_json(EXPORT / f"{name}.jsonl", lines=True)  # as-is
    data = pd.read_parquet(EXPORT / f"{name}.parquet")
    assert all(isinstance(v, dict) for v in data["inputs"]) and all(isinstance(v, dict) for v in data["expectations"])
    # A record lacking an expectation key others have reads back as None, which MLflow refuses:
    # the one documented step (the command prints a note when it applies).
    data["expectations"] = data["expectations"].map(lambda e: {k: v for k, v in e.items() if v is not None})
    return data


def plain(value: object) -> object:
    """pandas gives lists inside dicts back as numpy arrays."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return [plain(v) for v in value] if hasattr(value, "tolist") or isinstance(value, list) else value


@pytest.mark.parametrize("name", ["export", "mixed"])
@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_evaluate_scores_every_record_with_expectations_intact(name: str, fmt: str) -> None:
    seen: dict[str, dict] = {}

    @scorer
    def has_labels(inputs, outputs, expectations) -> bool:
        key = json.dumps(plain(inputs), sort_keys=True, default=str)
        seen[key] = {"outputs": outputs, "expectations": expectations}
        return bool(expectations) or inputs is not None

    result = mlflow.genai.evaluate(data=read(name, fmt), scorers=[has_labels])
    records = expected_records(name)
    assert len(seen) == len(records) == {"export": 2, "mixed": 4}[name]
    assert result.metrics["has_labels/mean"] == 1.0
    got = sorted(json.dumps(plain(s["expectations"]), sort_keys=True) for s in seen.values())
    assert got == sorted(json.dumps(r["expectations"], sort_keys=True) for r in records)
    if fmt == "parquet" and name == "mixed":
        outputs = {json.dumps(s["outputs"]) for s in seen.values()}
        assert json.dumps("It is 21C (69.8F) in Paris.") in outputs  # plain text output stays plain text


def test_mixed_parquet_warns_about_the_one_untyped_column_only() -> None:
    err = (EXPORT / "mixed.parquet.stderr").read_text()
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "“outputs”" in warnings[0]


@pytest.mark.parametrize("name", ["export", "mixed"])
def test_merge_records_round_trip(name: str) -> None:
    from mlflow.genai import datasets

    experiment = mlflow.get_experiment_by_name("interop")
    dataset = datasets.create_dataset(name=name, experiment_id=[experiment.experiment_id])
    dataset.merge_records(expected_records(name))
    frame = dataset.to_df()
    assert len(frame) == len(expected_records(name))
    stored = sorted(json.dumps(plain(row["expectations"]), sort_keys=True) for _, row in frame.iterrows())
    assert stored == sorted(json.dumps(r["expectations"], sort_keys=True) for r in expected_records(name))
