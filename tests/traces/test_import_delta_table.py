"""``import_traces`` on a Delta table of archived traces: found by its ``_delta_log``, read through ``trace_json``."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from deltalake import write_deltalake
from django.core.management import call_command

from tests.conftest import DATA_DIR
from traces.ingest import expand_paths, is_delta_table
from traces.models import Assessment, Experiment, Span, Trace

pytestmark = pytest.mark.django_db

SAMPLES = ["demo_rag_pipeline.json", "error_trace.json", "eval_trace_with_scorer_feedback.json"]


def sample(name: str) -> dict[str, Any]:
    return json.loads((DATA_DIR / name).read_text())


def write_table(path: Path, rows: list[dict[str, Any]], **columns: pa.DataType) -> Path:
    """A Delta table of rows with a ``trace_json`` column (as ``archive_traces`` writes, minus the flat columns)."""
    schema = pa.schema([("date", pa.string()), ("trace_json", pa.string()), *columns.items()])
    write_deltalake(str(path), pa.Table.from_pylist(rows, schema=schema), mode="append", partition_by=["date"])
    return path


def archived_rows(experiment: str = "Archived bot") -> list[dict[str, Any]]:
    return [
        {"date": f"2026-10-0{i + 1}", "trace_json": json.dumps(sample(name)), "experiment": experiment}
        for i, name in enumerate(SAMPLES)
    ]


def run_import(*args: str | Path) -> tuple[int, str, str]:
    stdout, stderr = io.StringIO(), io.StringIO()
    code = 0
    try:
        call_command("import_traces", *map(str, args), stdout=stdout, stderr=stderr)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    return code, stdout.getvalue(), stderr.getvalue()


def test_a_delta_table_imports_into_the_experiment_each_row_names(tmp_path: Path) -> None:
    table = write_table(tmp_path / "archive", archived_rows(), experiment=pa.string())
    code, out, err = run_import(table)
    assert code == 0, err
    assert out.startswith("3 imported, 0 updated, 0 failed")
    assert Trace.objects.filter(experiment__name="Archived bot").count() == 3
    assert Span.objects.exists() and Assessment.objects.exists()
    code, out, _ = run_import(table)  # the same rows again update, as any re-import does
    assert out.startswith("0 imported, 3 updated")


def test_experiment_option_overrides_the_rows(tmp_path: Path) -> None:
    table = write_table(tmp_path / "archive", archived_rows(), experiment=pa.string())
    code, _out, _err = run_import(table, "--experiment", "Restored")
    assert code == 0
    assert set(Trace.objects.values_list("experiment__name", flat=True)) == {"Restored"}
    assert not Experiment.objects.filter(name="Archived bot").exists()


def test_without_an_experiment_column_traces_go_by_their_mlflow_experiment(tmp_path: Path) -> None:
    rows = [{k: v for k, v in row.items() if k != "experiment"} for row in archived_rows()]
    table = write_table(tmp_path / "archive", rows)
    assert run_import(table)[0] == 0
    assert Trace.objects.count() == 3


def test_a_directory_holding_a_table_and_trace_files(tmp_path: Path) -> None:
    write_table(tmp_path / "archive", archived_rows()[:1], experiment=pa.string())
    (tmp_path / "more.json").write_text(json.dumps(sample("v2_trace.json")))
    found = expand_paths([tmp_path])
    assert found == [tmp_path / "archive", tmp_path / "more.json"]  # not the log's JSON files
    assert is_delta_table(found[0]) and not is_delta_table(tmp_path)
    code, out, _ = run_import(tmp_path)
    assert code == 0 and out.startswith("2 imported, 0 updated, 0 failed (") and "from 2 of 2 files" in out


def test_a_table_without_trace_json_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other"
    write_deltalake(str(path), pa.table({"x": [1, 2]}), mode="append")
    code, out, err = run_import(path)
    assert code == 1
    assert "no trace_json column: not an archive of traces" in err and err.count("\n") == 1
    assert out.startswith("0 imported, 0 updated, 1 failed")


def test_a_bad_row_rolls_the_whole_table_back(tmp_path: Path) -> None:
    rows = [{**row, "trace_id": ""} for row in archived_rows()]
    rows.append({"date": "2026-10-09", "trace_json": "{not json", "experiment": "Archived bot", "trace_id": "tr-bad"})
    table = write_table(tmp_path / "archive", rows, experiment=pa.string(), trace_id=pa.string())
    code, _out, err = run_import(table)
    assert code == 1 and "trace tr-bad: trace_json is not valid JSON" in err
    assert not Trace.objects.exists()


def test_a_broken_log_is_refused(tmp_path: Path) -> None:
    table = write_table(tmp_path / "archive", archived_rows(), experiment=pa.string())
    for entry in (table / "_delta_log").iterdir():
        if entry.suffix == ".json":
            entry.write_text("garbage")
    code, _out, err = run_import(table)
    assert code == 1 and "not a readable Delta table" in err
    assert not Trace.objects.exists()
