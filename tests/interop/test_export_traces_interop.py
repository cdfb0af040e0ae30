"""Our exported traces (export_traces) read by the real MLflow: Trace.from_json, and evaluate re-scoring them."""

from __future__ import annotations

import json
import os
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow.entities import Trace

from tests.interop.trace_scorers import SCORERS, row_key

EXPORT = Path(os.environ["EXPORT_DIR"])
COLUMNS = [
    "trace_id",
    "trace",
    "client_request_id",
    "state",
    "request_time",
    "execution_duration",
    "request",
    "response",
    "trace_metadata",
    "tags",
    "spans",
    "assessments",
]


@pytest.fixture(autouse=True)
def tracking(tmp_path: Path) -> None:
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_experiment("interop traces")


def read(name: str, fmt: str) -> pd.DataFrame:
    if fmt == "jsonl":
        return pd.read_json(EXPORT / f"{name}.jsonl", lines=True, dtype=False)
    frame = pd.read_parquet(EXPORT / f"{name}.parquet")
    for column in ("spans", "assessments"):  # a column whose values clash is written as JSON text (a warning says so)
        if any(isinstance(v, str) for v in frame[column]):
            assert f"“{column}” mixes types" in (EXPORT / f"{name}.parquet.stderr").read_text()
            frame[column] = frame[column].map(json.loads)
    return frame


def jsonl_rows(name: str) -> list[dict]:
    return [json.loads(line) for line in (EXPORT / f"{name}.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("name", ["traces", "session_traces"])
@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_columns_are_search_traces_and_each_row_is_its_trace(name: str, fmt: str) -> None:
    frame = read(name, fmt)
    assert list(frame.columns) == COLUMNS == Trace.pandas_dataframe_columns()
    for _, row in frame.iterrows():
        trace = Trace.from_json(row["trace"])
        mlflow_row = trace.to_pandas_dataframe_row()
        assert row["trace_id"] == trace.info.trace_id
        assert row["state"] == trace.info.state.value
        assert int(row["request_time"]) == mlflow_row["request_time"]
        assert len(row["spans"]) == len(trace.data.spans)
        assert len(row["assessments"]) == len(trace.info.assessments)
    if fmt == "jsonl":  # nested columns exactly as to_pandas_dataframe_row gives them
        for row in jsonl_rows(name):
            mlflow_row = Trace.from_json(row["trace"]).to_pandas_dataframe_row()
            assert row["request"] == mlflow_row["request"] and row["response"] == mlflow_row["response"]
            assert row["trace_metadata"] == mlflow_row["trace_metadata"] and row["tags"] == mlflow_row["tags"]
            assert row["client_request_id"] == mlflow_row["client_request_id"]
            assert row["execution_duration"] == mlflow_row["execution_duration"]


@pytest.mark.parametrize("name", ["traces", "session_traces"])
@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_evaluate_rescores_our_exported_traces_with_our_values(name: str, fmt: str) -> None:
    """The seed-000 loop outside the app: no predict_fn, a new scorer over stored traces."""
    frame = read(name, fmt)
    spanless = frame["spans"].map(len) == 0
    if spanless.any():  # a trace imported from trace info only: no root span for MLflow to clone
        assert "without spans" in (EXPORT / f"{name}.{fmt}.stderr").read_text()
        frame = frame[~spanless].reset_index(drop=True)
    frame["trace"] = frame["trace"].map(Trace.from_json)
    ours = json.loads((EXPORT / "traces.scores.json").read_text())
    result = mlflow.genai.evaluate(data=frame, scorers=SCORERS)
    scored = result.result_df
    assert len(scored) == len(frame)
    keys = [row_key(*values) for values in zip(scored["request"], scored["response"], scored["spans"], strict=True)]
    # every row matched to our traces (a few samples are one trace in two formats: alike, so scored alike)
    exported = {row_key(r["request"], r["response"], r["spans"]) for r in jsonl_rows(name) if r["spans"]}
    assert set(keys) == exported and len(exported) > 0.8 * len(frame)
    for key, (_, row) in zip(keys, scored.iterrows(), strict=True):
        for scorer in SCORERS:
            assert row[f"{scorer.name}/value"] == ours[key][scorer.name], (scorer.name, key[:120])
    assert result.metrics["span_count/mean"] == pytest.approx(frame["spans"].map(len).mean())
    if name == "traces":
        assert result.metrics["retrieved_documents/mean"] > 0  # RETRIEVER spans found in the clones


def test_parquet_notes_that_the_trace_column_is_exact() -> None:
    err = (EXPORT / "traces.parquet.stderr").read_text()
    assert "note: the “trace” column holds each trace exactly" in err
