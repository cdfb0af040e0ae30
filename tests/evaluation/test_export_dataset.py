"""``export_dataset``: records in MLflow's shape, every format and policy, and every bad input."""

from __future__ import annotations

import csv
import io
import json
import os
import stat
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from django.contrib.auth.models import User
from django.core.management import call_command

from evaluation import exporters, parquet
from evaluation.models import DatasetRecord, EvaluationDataset
from evaluation.parquet import ParquetLayout, write_parquet
from labeling import adjudication, services, submissions
from labeling.models import LabelingSession, LabelSchema
from tests.evaluation.conftest import make_feedback_only_session, make_labeled_session


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


# ---------------------------------------------------------------- Parquet typing (issue 9 item 2)


def test_parquet_of_mixed_trace_shapes_keeps_inputs_and_expectations_as_dicts(
    mixed: LabelingSession, tmp_path: Path
) -> None:
    """Real traces: chat-completion dict outputs in one record, a plain string in another."""
    export("--session", "Mixed shapes", "--include-feedback", "--output", str(tmp_path / "out.jsonl"))
    code, _, err = export(
        "--session", "Mixed shapes", "--include-feedback", "--format", "parquet", "--output", str(tmp_path / "o.pq")
    )
    assert code == 0, err
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "“outputs”" in warnings[0]  # the one column that cannot be typed, named
    expected = {r["source"]["source_data"]["trace_id"]: r for r in read_jsonl(tmp_path / "out.jsonl")}
    df = pd.read_parquet(tmp_path / "o.pq")
    assert len(df) == len(expected) == 4
    for row in df.to_dict("records"):
        record = expected[row["source"]["source_data"]["trace_id"]]
        assert isinstance(row["inputs"], dict) and isinstance(row["expectations"], dict)
        assert isinstance(row["tags"], dict) and row["tags"]["labeling_session"] == "Mixed shapes"
        present = {k: v for k, v in row["expectations"].items() if v is not None}
        assert {k: list(v) if k == "expected_facts" else v for k, v in present.items()} == record["expectations"]
        if isinstance(record["outputs"], str):
            assert row["outputs"] == record["outputs"]  # plain text stays plain text
        elif record["outputs"] is not None:
            assert json.loads(row["outputs"]) == record["outputs"]  # objects as JSON text
    chat = df[df["inputs"].map(lambda i: i["messages"] is not None)].iloc[0]
    assert chat["inputs"]["messages"][0]["role"] == "user"


def test_parquet_notes_the_keys_some_records_lack(mixed: LabelingSession, tmp_path: Path) -> None:
    code, _, err = export("--session", "Mixed shapes", "--format", "parquet", "--output", str(tmp_path / "o.pq"))
    assert code == 0
    notes = [line for line in err.splitlines() if line.startswith("note:")]
    assert any("expectations expected_facts, expected_response" in n and "drop None" in n for n in notes), err


def test_parquet_of_uniform_records_has_no_warning(labeled: LabelingSession, tmp_path: Path) -> None:
    code, _, err = export("--session", "Cardio", "--format", "parquet", "--output", str(tmp_path / "o.pq"))
    assert code == 0 and "warning:" not in err
    schema = pq.read_schema(tmp_path / "o.pq")
    assert all(pa.types.is_struct(schema.field(c).type) for c in ("inputs", "expectations", "tags", "source"))


def _parquet(records: list[dict]) -> tuple[pd.DataFrame, ParquetLayout]:
    out = io.BytesIO()
    layout = write_parquet(lambda: iter(records), out)
    out.seek(0)
    return pd.read_parquet(out), layout


def _record(**fields: object) -> dict:
    return {"inputs": {"q": "x"}, "outputs": "a", "expectations": {"e": "y"}, "tags": {}, "source": {}, **fields}


def test_parquet_falls_back_per_column_only() -> None:
    df, layout = _parquet([_record(expectations={"e": "text"}), _record(expectations={"e": {"nested": 1}})])
    assert layout.text_columns == ["expectations"]
    assert "“expectations”" in layout.warnings()[0]
    assert df.loc[0, "inputs"] == {"q": "x"}  # the other columns stay typed
    assert df.loc[0, "expectations"] == '{"e":"text"}' and json.loads(df.loc[1, "expectations"]) == {"e": {"nested": 1}}


def test_parquet_widens_numbers_and_leaves_out_empty_objects() -> None:
    records = [
        _record(inputs={"n": 1, "meta": {}}, outputs={"score": 1}),
        _record(inputs={"n": 2.5, "meta": {}}, outputs={"score": 0.5}),
    ]
    df, layout = _parquet(records)
    assert layout.text_columns == []
    assert [df.loc[0, "inputs"]["n"], df.loc[1, "inputs"]["n"]] == [1.0, 2.5]
    assert df.loc[1, "outputs"] == {"score": 0.5}
    assert "inputs.meta" in layout.dropped_empty and "left out: inputs.meta" in layout.notes()[0]


def test_parquet_with_no_expectations_at_all_reads_back_none() -> None:
    df, layout = _parquet([_record(expectations={}, tags={"feedback.correct": "true"})])
    assert df.loc[0, "expectations"] is None  # mlflow.genai.evaluate treats a missing value as no expectations
    assert df.loc[0, "tags"] == {"feedback.correct": "true"}
    assert layout.text_columns == [] and layout.dropped_empty == []


def test_parquet_types_are_merged_across_batches(monkeypatch) -> None:
    """Each batch is typed on its own, then cast: keys added later, widened numbers, a batch of {} only."""
    monkeypatch.setattr(parquet, "BATCH", 1)
    records = [
        _record(expectations={}, outputs=None),
        _record(expectations={"e": "y"}, outputs={"n": 1}),
        _record(expectations={"f": ["a", "b"]}, outputs={"n": 2.5, "m": "x"}),
    ]
    df, layout = _parquet(records)
    assert layout.text_columns == []
    assert df["expectations"].tolist()[0] == {"e": None, "f": None}
    assert df.loc[1, "outputs"] == {"n": 1.0, "m": None}
    assert list(df.loc[2, "expectations"]["f"]) == ["a", "b"]
    assert layout.sparse_keys == {"expectations": ["e", "f"]}


def test_parquet_text_column_found_in_a_later_batch(monkeypatch) -> None:
    monkeypatch.setattr(parquet, "BATCH", 1)
    df, layout = _parquet([_record(outputs={"choices": []}), _record(outputs="plain")])
    assert layout.text_columns == ["outputs"]
    assert df["outputs"].tolist() == ['{"choices":[]}', "plain"]
    assert df.loc[1, "inputs"] == {"q": "x"}


def test_parquet_of_no_records_is_a_valid_empty_file() -> None:
    df, _ = _parquet([])
    assert list(df.columns) == exporters.COLUMNS and len(df) == 0


# ---------------------------------------------------------------- output files (issue 9 item 3)


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_new_output_files_follow_the_umask(
    labeled: LabelingSession, tmp_path: Path, fmt: str, umask: int, mode: int
) -> None:
    path = tmp_path / f"out.{fmt}"
    old = os.umask(umask)
    try:
        code, _, err = export("--session", "Cardio", "--format", fmt, "--output", str(path))
    finally:
        os.umask(old)
    assert code == 0, err
    assert stat.S_IMODE(path.stat().st_mode) == mode


def test_replaced_output_file_keeps_its_permissions(labeled: LabelingSession, tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    path.write_text("old\n")
    path.chmod(0o600)
    code, _, _ = export("--session", "Cardio", "--output", str(path))
    assert code == 0 and len(read_jsonl(path)) == 2
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_output_through_a_symlink_writes_the_target(labeled: LabelingSession, tmp_path: Path) -> None:
    target = tmp_path / "real.jsonl"
    target.write_text("old\n")
    link = tmp_path / "link.jsonl"
    link.symlink_to(target)
    code, _, err = export("--session", "Cardio", "--output", str(link))
    assert code == 0, err
    assert link.is_symlink() and len(read_jsonl(target)) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.jsonl", "real.jsonl"]


def _not_regular(kind: str, tmp_path: Path) -> tuple[Path, Callable[[], bool]]:
    """An output path that exists and is not a regular file, and a check that it is still there, unchanged."""
    if kind == "directory":
        path = tmp_path / "out"
        path.mkdir()
        return path, path.is_dir
    if kind == "fifo":
        path = tmp_path / "out.fifo"
        os.mkfifo(path)
        return path, lambda: stat.S_ISFIFO(path.lstat().st_mode)
    if kind == "/dev/full":
        return Path("/dev/full"), lambda: stat.S_ISCHR(Path("/dev/full").stat().st_mode)
    target, still = _not_regular(kind.removeprefix("symlink to "), tmp_path)
    link = tmp_path / "link"
    link.symlink_to(target)
    return link, lambda: link.is_symlink() and still()


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
@pytest.mark.parametrize("kind", ["directory", "fifo", "/dev/full", "symlink to directory", "symlink to fifo"])
def test_output_that_is_not_a_regular_file_is_refused(
    labeled: LabelingSession, tmp_path: Path, fmt: str, kind: str
) -> None:
    path, unchanged = _not_regular(kind, tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    code, _, err = export("--session", "Cardio", "--format", fmt, "--output", str(path), "--save-as", "never")
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "not a regular file" in lines[0], err
    assert unchanged() and sorted(p.name for p in tmp_path.iterdir()) == before  # no temp file left either
    assert not EvaluationDataset.objects.filter(name="never").exists()  # refused before any work


def test_dash_still_means_stdout(labeled: LabelingSession, capfd) -> None:
    code, _, _ = export("--session", "Cardio", "--output", "-", "--format", "csv")
    assert code == 0 and capfd.readouterr().out.startswith("inputs,outputs,expectations,tags,source")


# ---------------------------------------------------------------- which items become records (issue 9 item 19)


def test_feedback_only_session_exports_with_include_feedback(tmp_path: Path, db: None) -> None:
    session = make_feedback_only_session()
    code, _, err = export("--session", session.name, "--output", str(tmp_path / "a.jsonl"))
    assert code == 1 and "only feedback answers" in err and "--include-feedback" in err
    code, out, err = export("--session", session.name, "--include-feedback", "--output", str(tmp_path / "b.jsonl"))
    assert code == 0, err
    records = read_jsonl(tmp_path / "b.jsonl")
    assert len(records) == 2 and all(r["expectations"] == {} and "feedback.correct" in r["tags"] for r in records)
    assert "2 records with feedback tags only" in out


@pytest.mark.parametrize(
    ("name", "message"),
    [("x" * 201, "200 characters"), ("a\x00b", "control characters"), ("two\nlines", "control characters")],
)
def test_bad_save_as_names_are_refused(labeled: LabelingSession, name: str, message: str) -> None:
    code, _, err = export("--session", "Cardio", "--save-as", name)
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], err
    assert not EvaluationDataset.objects.exists()


@pytest.mark.django_db
def test_export_takes_inputs_and_outputs_from_the_span_the_trace_page_shows(import_sample, tmp_path: Path) -> None:
    """Issue 9, item 14: a wrapper root that recorded nothing must not export empty inputs and outputs."""
    trace = import_sample("multi_turn_wrapper_root.json")
    agent = trace.spans.get(name="chat_agent")
    assert not trace.spans.get(parent_id="").inputs  # the root recorded nothing
    ann = User.objects.create_user("ann")
    schema = LabelSchema.objects.get(name="expected_response")
    session = services.create_labeling_session(name="Wrapper", schemas=[schema], reviewers=[ann])
    services.add_traces_to_session(session=session, trace_ids=[trace.trace_id])
    submissions.submit_review(
        item=session.items.get(), reviewer=ann, raw_answers={"expected_response": "Build, push, apply."}
    )
    path = tmp_path / "wrapper.jsonl"
    code, _, err = export("--session", "Wrapper", "--output", str(path))
    assert code == 0, err
    (record,) = [json.loads(line) for line in path.read_text().splitlines()]
    assert record["inputs"] == exporters.mlflow_inputs(agent.inputs)
    assert record["outputs"] == agent.outputs
    assert record["expectations"] == {"expected_response": "Build, push, apply."}
