"""``export_traces``: stored traces as the DataFrame ``mlflow.search_traces()`` returns, and every bad input."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from django.core.management import call_command

from evaluation import trace_export
from labeling.models import LabelingSession
from tests.conftest import DATA_DIR
from tests.evaluation.conftest import make_labeled_session
from tests.factories import make_assessment, make_trace
from traces.ingest import read_trace_file, store_traces
from traces.models import Experiment, Trace

SAMPLES = [
    "demo_rag_pipeline.json",
    "demo_agent.json",
    "eval_trace_with_scorer_feedback.json",
    "multi_turn_wrapper_root.json",
    "nested_tool_spans.json",
    "error_trace.json",
    "rag_retriever_dict_input.json",
]


def export(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("export_traces", *args, stdout=out, stderr=err)
        return 0, out.getvalue(), err.getvalue()
    except SystemExit as exc:
        return int(exc.code), out.getvalue(), err.getvalue()


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def samples(db: None) -> Experiment:
    """The real MLflow sample traces, in one experiment."""
    experiment = Experiment.objects.create(name="Samples", mlflow_experiment_id="7")
    for name in SAMPLES:
        store_traces(read_trace_file(DATA_DIR / name), experiment=experiment)
    return experiment


def originals() -> dict[str, dict[str, Any]]:
    found = {}
    for name in SAMPLES:
        document = json.loads((DATA_DIR / name).read_text())
        found[document["info"]["trace_id"]] = document
    return found


def test_jsonl_rows_are_what_mlflow_makes_of_the_trace_column(samples: Experiment, tmp_path: Path) -> None:
    """Each row equals ``Trace.from_json(row["trace"]).to_pandas_dataframe_row()`` of the real MLflow entities."""
    from mlflow.entities import Assessment as MlflowAssessment
    from mlflow.entities import Span as MlflowSpan
    from mlflow.entities import Trace as MlflowTrace

    path = tmp_path / "traces.jsonl"
    code, out, err = export("--experiment", "Samples", "--output", str(path))
    assert code == 0, err
    rows = read_jsonl(path)
    assert len(rows) == len(SAMPLES)
    assert all(list(row) == trace_export.COLUMNS for row in rows)
    for row in rows:
        mlflow_row = MlflowTrace.from_json(row["trace"]).to_pandas_dataframe_row()
        for column in ("trace_id", "client_request_id", "request_time", "execution_duration", "request", "response"):
            assert row[column] == mlflow_row[column], column
        assert row["state"] == mlflow_row["state"].value
        assert row["trace_metadata"] == mlflow_row["trace_metadata"] and row["tags"] == mlflow_row["tags"]
        assert [MlflowSpan.from_dict(s).to_dict() for s in row["spans"]] == mlflow_row["spans"]
        ours = [MlflowAssessment.from_dictionary(a).to_dictionary() for a in row["assessments"]]
        assert ours == mlflow_row["assessments"]
    assert out.startswith(f"{len(SAMPLES)} traces (") and "experiment “Samples”" in out


def test_rows_keep_the_original_mlflow_values(samples: Experiment, tmp_path: Path) -> None:
    from mlflow.entities import Trace as MlflowTrace

    path = tmp_path / "traces.jsonl"
    assert export("--experiment", "Samples", "--output", str(path))[0] == 0
    by_id = {row["trace_id"]: row for row in read_jsonl(path)}
    for trace_id, document in originals().items():
        row, expected = by_id[trace_id], MlflowTrace.from_dict(document).to_pandas_dataframe_row()
        assert row["request_time"] == expected["request_time"]
        assert row["execution_duration"] == expected["execution_duration"]
        assert row["request"] == expected["request"] and row["response"] == expected["response"]
        assert row["state"] == expected["state"].value
        assert len(row["spans"]) == len(expected["spans"])
        assert {a["assessment_id"] for a in row["assessments"]} == {a["assessment_id"] for a in expected["assessments"]}
        trace = json.loads(row["trace"])
        assert trace["info"]["trace_location"]["mlflow_experiment"]["experiment_id"] == "7"
    rag = by_id["tr-532ca2dfdd3704f7c6bcc4a523998bfd"]
    retrievers = MlflowTrace.from_json(rag["trace"]).search_spans(span_type="RETRIEVER")
    assert retrievers and retrievers[0].outputs


def test_pandas_reads_the_jsonl_with_mlflow_columns(samples: Experiment, tmp_path: Path) -> None:
    path = tmp_path / "traces.jsonl"
    assert export("--experiment", "Samples", "--output", str(path))[0] == 0
    frame = pd.read_json(path, lines=True, dtype=False)
    assert list(frame.columns) == trace_export.COLUMNS
    assert frame["request_time"].dtype == "int64"
    assert isinstance(frame.loc[0, "spans"], list) and isinstance(frame.loc[0, "trace"], str)


def test_parquet_reads_back_with_the_trace_column_exact(samples: Experiment, tmp_path: Path) -> None:
    from mlflow.entities import Trace as MlflowTrace

    path = tmp_path / "traces.parquet"
    code, _, err = export("--experiment", "Samples", "--format", "parquet", "--output", str(path))
    assert code == 0, err
    assert "note: the “trace” column holds each trace exactly" in err
    frame = pd.read_parquet(path)
    assert list(frame.columns) == trace_export.COLUMNS
    jsonl = tmp_path / "traces.jsonl"
    export("--experiment", "Samples", "--output", str(jsonl))
    assert list(frame["trace"]) == [row["trace"] for row in read_jsonl(jsonl)]
    assert [MlflowTrace.from_json(t).info.trace_id for t in frame["trace"]] == list(frame["trace_id"])
    assert frame["request_time"].dtype == "int64"
    assert set(frame["state"]) == {"OK", "ERROR"}


def test_filter_narrows_an_experiment(samples: Experiment, tmp_path: Path) -> None:
    path = tmp_path / "errors.jsonl"
    code, out, err = export("--experiment", "Samples", "--filter", "trace.status = 'ERROR'", "--output", str(path))
    assert code == 0, err
    rows = read_jsonl(path)
    assert [row["state"] for row in rows] == ["ERROR"]
    assert "matching \"trace.status = 'ERROR'\"" in out


def test_filter_alone_searches_every_experiment_but_not_session_copies(db: None, tmp_path: Path) -> None:
    make_labeled_session()  # three traces, each also copied into the session
    make_trace(experiment=Experiment.objects.create(name="Other"), question="Other question?")
    path = tmp_path / "out.jsonl"
    code, _, err = export("--filter", "trace.status = 'OK'", "--output", str(path))
    assert code == 0, err
    assert len(read_jsonl(path)) == 4


def test_session_exports_its_copies_with_the_reviewers_labels(db: None, tmp_path: Path) -> None:
    session = make_labeled_session()
    path = tmp_path / "session.jsonl"
    code, out, err = export("--session", "Cardio", "--output", str(path))
    assert code == 0, err
    rows = read_jsonl(path)
    copies = set(session.items.values_list("trace__trace_id", flat=True))
    assert {row["trace_id"] for row in rows} == copies
    names = {a["assessment_name"] for row in rows for a in row["assessments"]}
    assert {"expected_response", "correct"} <= names
    assert "labeling session “Cardio”" in out


def test_ordered_newest_first_like_search_traces(db: None, tmp_path: Path) -> None:
    from datetime import UTC, datetime

    experiment = Experiment.objects.create(name="Ordered")
    for day in (3, 1, 2):
        make_trace(experiment=experiment, request_time=datetime(2026, 11, day, tzinfo=UTC), trace_id=f"tr-{day:032x}")
    path = tmp_path / "out.jsonl"
    assert export("--experiment", "Ordered", "--output", str(path))[0] == 0
    assert [row["trace_id"] for row in read_jsonl(path)] == [f"tr-{d:032x}" for d in (3, 2, 1)]


def test_overridden_assessments_come_out_marked_invalid(db: None, tmp_path: Path) -> None:
    experiment = Experiment.objects.create(name="Labels")
    trace = make_trace(experiment=experiment)
    old = make_assessment(trace, "correct", False, valid=False, source_type="HUMAN", source_id="ann")
    make_assessment(trace, "correct", True, overrides=old.assessment_id, source_type="HUMAN", source_id="ann")
    path = tmp_path / "out.jsonl"
    assert export("--experiment", "Labels", "--output", str(path))[0] == 0
    (row,) = read_jsonl(path)
    assert [(a["feedback"]["value"], a["valid"]) for a in row["assessments"]] == [(False, False), (True, True)]
    assert row["assessments"][1]["overrides"] == old.assessment_id


def test_stdout_streams_jsonl_and_summary_goes_to_stderr(samples: Experiment, capsys: Any) -> None:
    import sys

    buffer = io.BytesIO()

    class Stdout(io.TextIOWrapper):
        pass

    stdout = Stdout(buffer, encoding="utf-8")
    original = sys.stdout
    sys.stdout = stdout
    try:
        code, out, err = export("--experiment", "Samples", "--output", "-")
    finally:
        sys.stdout = original
    stdout.flush()
    assert code == 0, err
    lines = buffer.getvalue().decode().splitlines()
    assert len(lines) == len(SAMPLES) and all(json.loads(line)["trace"] for line in lines)
    assert out == "" and err.startswith(f"{len(SAMPLES)} traces (")


def test_rows_are_rendered_a_chunk_at_a_time(db: None, monkeypatch: pytest.MonkeyPatch) -> None:
    experiment = Experiment.objects.create(name="Many")
    for _ in range(5):
        make_trace(experiment=experiment, n_spans=2)
    monkeypatch.setattr(trace_export, "CHUNK", 2)
    rendered: list[int] = []
    real = trace_export.trace_dicts

    def counting(pks: list[int]) -> dict[int, dict[str, Any]]:
        rendered.append(len(pks))
        return real(pks)

    monkeypatch.setattr(trace_export, "trace_dicts", counting)
    rows = trace_export.trace_rows(trace_export.select_traces(source="experiment", name="Many"))
    next(rows)
    assert rendered == [2]  # one chunk rendered, the rest not yet
    assert sum(1 for _ in rows) == 4 and rendered == [2, 2, 1]


def test_failure_mid_write_leaves_no_partial_file(samples: Experiment, tmp_path: Path, monkeypatch) -> None:
    def broken(*args: Any, **kwargs: Any):
        yield {column: None for column in trace_export.COLUMNS}
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("evaluation.management.commands.export_traces.trace_rows", broken)
    for fmt in ("jsonl", "parquet"):
        code, _, err = export("--experiment", "Samples", "--format", fmt, "--output", str(tmp_path / f"out.{fmt}"))
        assert code == 1 and "No space left on device" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--experiment", "Nope"], "no experiment named “Nope”"),
        (["--session", "Nope"], "no labeling session named “Nope”"),
        (["--experiment", "Samples", "--filter", "trace.status = "], "bad filter: "),
        (["--experiment", "Samples", "--filter", "tag.nope = 'x'"], "nothing to export: no traces in experiment"),
        (["--experiment", "Samples", "--format", "parquet", "--output", "-"], "Parquet cannot be streamed"),
        (["--filter", "  "], "say which traces"),
        ([], "say which traces"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(
    samples: Experiment, tmp_path: Path, args: list[str], message: str
) -> None:
    if "--output" not in args:
        args = [*args, "--output", str(tmp_path / "out.jsonl")]
    code, _, err = export(*args)
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], err
    assert list(tmp_path.iterdir()) == []
    assert Trace.objects.count() == len(SAMPLES)


def test_output_that_is_a_directory_is_refused_before_any_work(samples: Experiment, tmp_path: Path) -> None:
    code, _, err = export("--experiment", "Samples", "--output", str(tmp_path))
    assert code == 1 and "is a directory" in err and len(err.strip().splitlines()) == 1


def test_session_copies_are_not_an_experiment_selection(db: None, tmp_path: Path) -> None:
    session: LabelingSession = make_labeled_session()
    code, _, err = export("--experiment", session.experiment.name, "--output", str(tmp_path / "out.jsonl"))
    assert code == 1 and f"no experiment named “{session.experiment.name}”" in err


def test_root_span_comes_first_even_when_a_child_started_earlier(db: None, tmp_path: Path) -> None:
    """mlflow.genai.evaluate clones a trace span by span and needs the root before its children."""
    experiment = Experiment.objects.create(name="Skewed")
    trace = make_trace(experiment=experiment, n_spans=3)
    root = trace.spans.get(parent_id="")
    trace.spans.exclude(pk=root.pk).update(start_time_ns=root.start_time_ns - 5_000)
    path = tmp_path / "out.jsonl"
    assert export("--experiment", "Skewed", "--output", str(path))[0] == 0
    (row,) = read_jsonl(path)
    assert row["spans"][0]["parent_span_id"] is None
    assert row["request"] == root.inputs


def test_a_trace_whose_root_was_never_exported_gets_its_outermost_orphan_as_root(db: None, tmp_path: Path) -> None:
    from mlflow.entities import Trace as MlflowTrace

    experiment = Experiment.objects.create(name="Orphans")
    trace = make_trace(experiment=experiment, n_spans=3)
    root = trace.spans.get(parent_id="")
    trace.spans.filter(parent_id=root.span_id).update(parent_id="feedfacefeedface")
    root.delete()
    path = tmp_path / "out.jsonl"
    assert export("--experiment", "Orphans", "--output", str(path))[0] == 0
    (row,) = read_jsonl(path)
    parsed = MlflowTrace.from_json(row["trace"])
    assert [s.parent_id for s in parsed.data.spans].count(None) == 1
    assert parsed.data.spans[0].parent_id is None


def test_spanless_traces_are_exported_with_a_warning(db: None, tmp_path: Path) -> None:
    experiment = Experiment.objects.create(name="Info only")
    make_trace(experiment=experiment).spans.all().delete()
    path = tmp_path / "out.jsonl"
    code, _, err = export("--experiment", "Info only", "--output", str(path))
    assert code == 0 and read_jsonl(path)[0]["spans"] == []
    assert "warning: 1 trace without spans" in err and "cannot score them" in err


def test_our_own_experiments_get_an_id_no_mlflow_experiment_has(db: None, tmp_path: Path) -> None:
    """mlflow.genai.evaluate treats a trace "already in the current experiment" as stored there."""
    experiment = Experiment.objects.create(name="Ours")
    make_trace(experiment=experiment)
    path = tmp_path / "out.jsonl"
    assert export("--experiment", "Ours", "--output", str(path))[0] == 0
    location = json.loads(read_jsonl(path)[0]["trace"])["info"]["trace_location"]
    assert location["type"] == "MLFLOW_EXPERIMENT"
    assert location["mlflow_experiment"] == {"experiment_id": f"reviewapp-{experiment.pk}"}


# ---------------------------------------------------------------- --run


def _scored_run(name: str, traces: list[Trace]) -> Any:
    from evaluation.runs import execute_run, start_evaluation_run

    experiment = traces[0].experiment.name
    run = start_evaluation_run(
        scorer_names=["length"], experiment=experiment, filter_string="", name=name, enqueue=False
    )
    return execute_run(run.pk)


@pytest.fixture
def verdict_scorers(settings: Any) -> None:
    settings.SCORER_MODULES = ["tests.evaluation.scorer_modules.verdicts"]


def test_run_exports_its_traces_with_its_feedback_by_name_or_run_id(
    db: None, tmp_path: Path, verdict_scorers: None
) -> None:
    experiment = Experiment.objects.create(name="Support")
    traces = [make_trace(experiment=experiment, answer=f"answer {i}") for i in range(3)]
    make_trace(experiment=Experiment.objects.create(name="Other"))
    run = _scored_run("nightly", traces)
    for selector in ("nightly", run.run_id):
        path = tmp_path / f"{selector}.jsonl"
        code, out, err = export("--run", selector, "--output", str(path))
        assert code == 0, err
        rows = read_jsonl(path)
        assert {row["trace_id"] for row in rows} == {t.trace_id for t in traces}
        assert all(any(a["assessment_name"] == "length" for a in row["assessments"]) for row in rows)
        assert "evaluation run" in out
    code, _, err = export("--run", "nightly", "--format", "parquet", "--output", str(tmp_path / "run.parquet"))
    assert code == 0, err
    assert set(pd.read_parquet(tmp_path / "run.parquet")["trace_id"]) == {t.trace_id for t in traces}


def test_run_name_of_several_runs_is_an_error_naming_their_run_ids(
    db: None, tmp_path: Path, verdict_scorers: None
) -> None:
    traces = [make_trace(experiment=Experiment.objects.create(name="Support"))]
    first, second = _scored_run("same", traces), _scored_run("same", traces)
    code, _, err = export("--run", "same", "--output", str(tmp_path / "out.jsonl"))
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and lines[0].startswith("error: several evaluation runs")
    assert first.run_id in lines[0] and second.run_id in lines[0]
    assert list(tmp_path.iterdir()) == []
    code, _, err = export("--run", second.run_id, "--output", str(tmp_path / "out.jsonl"))
    assert code == 0, err


def test_unknown_run_is_one_error_line(db: None, tmp_path: Path) -> None:
    code, _, err = export("--run", "nope", "--output", str(tmp_path / "out.jsonl"))
    assert code == 1 and err.strip() == "error: no evaluation run named or with run id “nope”"
    assert list(tmp_path.iterdir()) == []


def test_run_and_session_together_are_refused(db: None, tmp_path: Path) -> None:
    with pytest.raises(Exception, match="not allowed with argument"):
        call_command("export_traces", "--run", "a", "--session", "b", "--output", str(tmp_path / "o.jsonl"))
