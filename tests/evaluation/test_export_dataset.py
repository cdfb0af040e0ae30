"""``export_dataset``: records in MLflow's shape, every format and policy, and every bad input."""

from __future__ import annotations

import csv
import io
import json
import tracemalloc
from pathlib import Path

import pandas as pd
import pytest
from django.contrib.auth.models import User
from django.core.management import call_command

from evaluation import exporters
from evaluation.models import DatasetRecord, EvaluationDataset
from labeling import adjudication, services
from labeling.models import LabelingSession
from tests.evaluation.conftest import make_labeled_session


def export(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("export_dataset", *args, stdout=out, stderr=err)
        return 0, out.getvalue(), err.getvalue()
    except SystemExit as exc:
        return int(exc.code), out.getvalue(), err.getvalue()


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_jsonl_records_have_mlflow_shape_and_root_span_io(labeled: LabelingSession, tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    code, out, err = export("--session", "Cardio", "--output", str(path))
    assert code == 0, err
    records = read_jsonl(path)
    first = records[0]
    assert set(first) == {"inputs", "outputs", "expectations", "tags", "source"}
    assert first["inputs"] == {"question": "Dose question 0?"}  # the root span's inputs
    assert first["outputs"] == "Answer 0"
    item = labeled.items.order_by("position").first()
    assert first["source"] == {"source_type": "TRACE", "source_data": {"trace_id": item.source_trace_id_text}}
    assert first["expectations"]["expected_response"] == "Take 81 mg"
    assert first["tags"]["labeling_session"] == "Cardio"
    assert "feedback.correct" not in first["tags"]
    assert len(records) == 2  # the third item has feedback only
    assert out.startswith("2 records (")
    df = pd.read_json(path, lines=True)
    assert list(df.columns) == ["inputs", "outputs", "expectations", "tags", "source"]
    assert df.loc[0, "inputs"] == {"question": "Dose question 0?"}


def test_latest_policy_takes_the_newest_answer(labeled: LabelingSession, tmp_path: Path) -> None:
    path = tmp_path / "latest.jsonl"
    export("--session", "Cardio", "--output", str(path), "--policy", "latest")
    first, second = read_jsonl(path)
    assert first["expectations"]["expected_facts"] == ["81 mg"]  # ben answered after ann
    assert second["expectations"]["expected_response"] == "Call 911"


def test_consensus_policy_reports_ties_and_leaves_them_out(labeled: LabelingSession, tmp_path: Path) -> None:
    path = tmp_path / "consensus.jsonl"
    code, out, err = export("--session", "Cardio", "--output", str(path), "--policy", "consensus")
    assert code == 0
    records = read_jsonl(path)
    assert records[0]["expectations"]["expected_response"] == "Take 81 mg"  # both agree
    assert "expected_facts" not in records[0]["expectations"]  # ["81 mg","with food"] vs ["81 mg"]: tie
    assert len(records) == 1  # item 2 only had the tied expected_response
    assert "tie left out:" in err and "expected_response" in err
    assert "tied answers left out" in out


def test_adjudicated_policy_uses_the_final_answer_then_consensus(labeled: LabelingSession, tmp_path: Path) -> None:
    lead = User.objects.create_user("lead")
    services.set_session_leads(session=labeled, leads=[lead])
    second = labeled.items.order_by("position")[1]
    adjudication.adjudicate(item=second, lead=lead, raw_answers={"expected_response": "Call 911 now"})
    path = tmp_path / "adj.jsonl"
    export("--session", "Cardio", "--output", str(path), "--policy", "adjudicated")
    records = read_jsonl(path)
    assert records[0]["expectations"] == {"expected_response": "Take 81 mg"}  # consensus fallback
    assert records[1]["expectations"] == {"expected_response": "Call 911 now"}


def test_include_feedback_adds_tags(labeled: LabelingSession, tmp_path: Path) -> None:
    path = tmp_path / "fb.jsonl"
    export("--session", "Cardio", "--output", str(path), "--include-feedback", "--policy", "consensus")
    records = read_jsonl(path)
    assert [r["tags"]["feedback.correct"] for r in records] == ["true", "false", "true"]


def test_csv_and_parquet(labeled: LabelingSession, tmp_path: Path) -> None:
    export("--session", "Cardio", "--output", str(tmp_path / "out.csv"), "--format", "csv")
    rows = list(csv.DictReader((tmp_path / "out.csv").open()))
    assert json.loads(rows[0]["inputs"]) == {"question": "Dose question 0?"}
    assert json.loads(rows[0]["expectations"])["expected_response"] == "Take 81 mg"
    export("--session", "Cardio", "--output", str(tmp_path / "out.parquet"), "--format", "parquet")
    df = pd.read_parquet(tmp_path / "out.parquet")
    assert df.loc[0, "inputs"] == {"question": "Dose question 0?"}  # nested columns come back as dicts
    assert df.loc[0, "expectations"]["expected_response"] == "Take 81 mg"
    assert len(df) == 2


def test_stdout_and_several_sessions(labeled: LabelingSession, capfd) -> None:
    make_labeled_session("Cardio 2")
    code, _, err = export("--session", "Cardio", "--session", "Cardio 2", "--output", "-")
    assert code == 0
    lines = capfd.readouterr().out.strip().splitlines()
    assert len(lines) == 4 and all(json.loads(line)["inputs"] for line in lines)
    assert "4 records" in err  # the summary goes to stderr when the data goes to stdout


def test_save_as_merges_into_a_stored_dataset_then_exports_it(labeled: LabelingSession, tmp_path: Path) -> None:
    code, _, err = export("--session", "Cardio", "--save-as", "cardio-v1")
    assert code == 0 and "2 new, 0 updated" in err
    export("--session", "Cardio", "--save-as", "cardio-v1")
    assert DatasetRecord.objects.filter(dataset__name="cardio-v1").count() == 2  # merged, not duplicated
    path = tmp_path / "ds.jsonl"
    code, _, _ = export("--dataset", "cardio-v1", "--output", str(path))
    assert code == 0 and len(read_jsonl(path)) == 2


BAD = [
    (["--session", "Nope", "--output", "x.jsonl"], "no labeling session named “Nope”"),
    (["--dataset", "Nope", "--output", "x.jsonl"], "no evaluation dataset named “Nope”"),
    (["--session", "Empty", "--output", "x.jsonl"], "no expectation labels"),
    (["--session", "Cardio", "--output", "/nonexistent-dir/x.jsonl"], "cannot write /nonexistent-dir/x.jsonl"),
    (["--session", "Cardio"], "say where to write"),
    (["--session", "Cardio", "--output", "-", "--format", "parquet"], "Parquet cannot be streamed"),
]


@pytest.mark.parametrize(("args", "message"), BAD)
def test_bad_inputs_one_line_exit_1_no_file(
    labeled: LabelingSession, tmp_path: Path, monkeypatch, args: list[str], message: str
) -> None:
    services.create_labeling_session(name="Empty")
    monkeypatch.chdir(tmp_path)
    code, _, err = export(*args)
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], err
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_failure_mid_write_leaves_no_partial_file(labeled: LabelingSession, tmp_path: Path, monkeypatch) -> None:
    def broken(*args, **kwargs):
        yield {"inputs": {}, "outputs": None, "expectations": {}, "tags": {}, "source": {}}
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("evaluation.management.commands.export_dataset.session_records", broken)
    code, _, err = export("--session", "Cardio", "--output", str(tmp_path / "out.jsonl"))
    assert code == 1 and "No space left on device" in err
    assert list(tmp_path.iterdir()) == []


def test_records_stream_without_loading_everything(labeled: LabelingSession, monkeypatch) -> None:
    """Memory for 600 items stays close to one chunk's worth: the generator never materialises all records."""
    monkeypatch.setattr(exporters, "ITEM_CHUNK", 50)
    extra = [make_labeled_session(f"Bulk {i}") for i in range(3)]
    sessions = [labeled, *extra]
    stats = exporters.ExportStats()
    records = exporters.session_records(sessions, policy="latest", include_feedback=False, stats=stats)
    first = next(records)
    assert first["inputs"]
    assert stats.records == 1  # one record built, the rest not yet
    tracemalloc.start()
    consumed = sum(1 for _ in records)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert consumed == 7 and peak < 20_000_000


def test_dataset_merge_via_model_records(labeled: LabelingSession) -> None:
    export("--session", "Cardio", "--save-as", "v1")
    dataset = EvaluationDataset.objects.get(name="v1")
    assert all(r.as_mlflow()["source"]["source_type"] == "TRACE" for r in dataset.records.all())
