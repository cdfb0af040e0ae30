"""Archiving traces to a Delta table: round trip, idempotency, the age cut, batches, crashes, readers, the schedule."""

from __future__ import annotations

import json
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable
from django.db import connection

from evaluation.monitoring import archive
from evaluation.monitoring.archive import (
    ArchiveError,
    archive_due_experiments,
    archive_traces,
    parse_duration,
    save_archive_policy,
)
from evaluation.monitoring.models import ArchivePolicy
from tests.factories import make_assessment, make_experiment, make_trace
from traces.ingest import import_delta_table
from traces.mlflow_shape import trace_dicts
from traces.models import Assessment, Experiment, Span, Trace

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

pytestmark = pytest.mark.django_db


def traces_on(experiment: Experiment, *days_ago: float, **fields: Any) -> list[Trace]:
    return [make_trace(experiment=experiment, request_time=NOW - timedelta(days=d), **fields) for d in days_ago]


def rich_traces(experiment: Experiment) -> list[Trace]:
    """Three traces: tags and metadata, a Feedback with an error, an Expectation, a span-level Feedback."""
    first, second, third = traces_on(experiment, 40, 35, 31)
    first.tags = {"env": "prod", "user": "ana"}
    first.trace_metadata = {"mlflow.modelId": "m-1", "mlflow.trace.session": "s-7"}
    first.save()
    make_assessment(first, "correct", True, rationale="Matches the docs.", metadata={"judge": "v2"})
    make_assessment(
        first,
        "groundedness",
        None,
        error={"error_code": "TIMEOUT", "error_message": "judge took too long"},
        source_type="LLM_JUDGE",
    )
    make_assessment(second, "expected_response", "Inputs and outputs.", kind="expectation", source_type="HUMAN")
    make_assessment(third, "relevance", 0.75, span_id=f"{2:016x}", source_type="CODE", source_id="rel")
    return [first, second, third]


def snapshot(experiment: Experiment) -> dict[str, dict[str, Any]]:
    """Every trace of the experiment as MLflow's dict (spans, assessments, info), by trace id."""
    pks = list(Trace.objects.filter(experiment=experiment).values_list("pk", flat=True))
    return {d["info"]["trace_id"]: d for d in trace_dicts(pks).values()}


def run(experiment: Experiment, path: Path, older_than: timedelta | None = None, **kwargs: Any) -> Any:
    return archive_traces(
        experiment=experiment,
        path=str(path),
        older_than=older_than,
        delete_after=kwargs.pop("delete_after", False),
        now=NOW,
        **kwargs,
    )


def table_ids(path: Path) -> list[str]:
    return sorted(DeltaTable(str(path)).to_pandas(columns=["trace_id"])["trace_id"])


def test_round_trip_with_delete_after(tmp_path: Path) -> None:
    experiment = make_experiment("Support bot")
    rich_traces(experiment)
    before = snapshot(experiment)
    path = tmp_path / "archive"
    result = run(experiment, path, delete_after=True)
    assert (result.archived, result.skipped, result.deleted) == (3, 0, 3)
    assert not Trace.objects.exists() and not Span.objects.exists() and not Assessment.objects.exists()

    frame = DeltaTable(str(path)).to_pandas()
    assert len(frame) == 3
    row = frame.set_index("trace_id").loc[min(before, key=lambda t: before[t]["info"]["request_time"])]
    assert row["experiment"] == "Support bot" and row["state"] == "OK" and row["execution_duration_ms"] == 62
    assert row["date"] == "2026-10-22" and row["request_time"] == pd_time(NOW - timedelta(days=40))
    assert dict(row["tags"]) == {"env": "prod", "user": "ana"}
    assert dict(row["trace_metadata"])["mlflow.modelId"] == "m-1"
    assessments = {a["name"]: a for a in row["assessments"]}
    assert assessments["correct"]["value"] == "true" and assessments["correct"]["rationale"] == "Matches the docs."
    assert "TIMEOUT" in assessments["groundedness"]["error"]
    assert sorted(p.name for p in path.iterdir()) == [
        "_delta_log",
        "date=2026-10-22",
        "date=2026-10-27",
        "date=2026-10-31",
    ]

    from mlflow.entities import Trace as MlflowTrace

    mlflow_trace = MlflowTrace.from_json(row["trace_json"])  # MLflow's own reader takes the column as it is
    assert len(mlflow_trace.data.spans) == 3 and len(mlflow_trace.info.assessments) == 2
    assert mlflow_trace.info.tags["env"] == "prod"

    stored = import_delta_table(path)
    assert (stored.created, stored.updated) == (3, 0)
    assert snapshot(Experiment.objects.get(name="Support bot")) == before


def pd_time(moment: datetime) -> Any:
    import pandas as pd

    return pd.Timestamp(moment)


def test_archiving_twice_writes_each_trace_once(tmp_path: Path) -> None:
    experiment = make_experiment()
    traces_on(experiment, 3, 2, 1)
    path = tmp_path / "t"
    first = run(experiment, path)
    second = run(experiment, path)
    assert (first.archived, first.skipped) == (3, 0)
    assert (second.archived, second.skipped, second.commits) == (0, 3, 0)
    assert second.table_version == first.table_version == 0  # nothing committed the second time
    newer = make_trace(experiment=experiment, request_time=NOW)
    third = run(experiment, path)
    assert (third.archived, third.skipped) == (1, 3)
    assert len(table_ids(path)) == 4 and newer.trace_id in table_ids(path)


def test_older_than_cuts_by_request_time(tmp_path: Path) -> None:
    experiment = make_experiment()
    old, _recent = traces_on(experiment, 31, 29)
    path = tmp_path / "t"
    result = run(experiment, path, older_than=timedelta(days=30), delete_after=True)
    assert (result.archived, result.deleted) == (1, 1)
    assert table_ids(path) == [old.trace_id]
    assert Trace.objects.count() == 1
    assert run(experiment, path, older_than=timedelta(0)).archived == 1  # 0d: everything before now


def test_other_experiments_are_left_alone(tmp_path: Path) -> None:
    mine, theirs = make_experiment("Mine"), make_experiment("Theirs")
    traces_on(mine, 5)
    (other,) = traces_on(theirs, 5)
    run(mine, tmp_path / "t", delete_after=True)
    assert list(Trace.objects.values_list("trace_id", flat=True)) == [other.trace_id]


def test_each_batch_is_one_commit_in_trace_order(tmp_path: Path) -> None:
    experiment = make_experiment()
    traces = traces_on(experiment, 1, 5, 2, 4, 3)  # pk order differs from time order
    path = tmp_path / "t"
    result = run(experiment, path, batch_size=2)
    assert (result.archived, result.commits, result.table_version) == (5, 3, 2)
    table = DeltaTable(str(path))
    for version, expected in enumerate([traces[0:2], traces[2:4], traces[4:5]]):
        added = DeltaTable(str(path), version=version).to_pandas(columns=["trace_id"])["trace_id"]
        assert len(added) == sum(len(b) for b in [traces[0:2], traces[2:4], traces[4:5]][: version + 1])
        assert {t.trace_id for t in expected} <= set(added)
    assert [h["operation"] for h in table.history()] == ["WRITE"] * 3


def test_a_crash_before_a_commit_leaves_those_traces_in_the_database(tmp_path: Path, monkeypatch) -> None:
    """The second batch's commit dies: the first batch is in the table and gone from the database, the rest stays."""
    experiment = make_experiment()
    traces = traces_on(experiment, 6, 5, 4, 3, 2)
    real_commit, calls = archive._commit, []

    def dies_on_second(*args: Any, **kwargs: Any) -> None:
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # as a kill would stop it, before delta-rs commits
        real_commit(*args, **kwargs)

    monkeypatch.setattr(archive, "_commit", dies_on_second)
    path = tmp_path / "t"
    with pytest.raises(KeyboardInterrupt):
        run(experiment, path, delete_after=True, batch_size=2)
    assert table_ids(path) == sorted(t.trace_id for t in traces[:2])
    assert sorted(Trace.objects.values_list("trace_id", flat=True)) == sorted(t.trace_id for t in traces[2:])
    assert Span.objects.count() == 3 * 3

    monkeypatch.setattr(archive, "_commit", real_commit)
    again = run(experiment, path, delete_after=True, batch_size=2)
    assert (again.archived, again.skipped, again.deleted) == (3, 0, 3)
    assert table_ids(path) == sorted(t.trace_id for t in traces)
    assert not Trace.objects.exists()


def test_a_crash_between_commit_and_delete_duplicates_nothing(tmp_path: Path, monkeypatch) -> None:
    experiment = make_experiment()
    traces = traces_on(experiment, 3, 2, 1)
    real_commit = archive._commit

    def commits_then_dies(*args: Any, **kwargs: Any) -> None:
        real_commit(*args, **kwargs)
        raise KeyboardInterrupt  # the rows are committed; the database delete never ran

    monkeypatch.setattr(archive, "_commit", commits_then_dies)
    path = tmp_path / "t"
    with pytest.raises(KeyboardInterrupt):
        run(experiment, path, delete_after=True, batch_size=2)
    assert Trace.objects.count() == 3 and len(table_ids(path)) == 2

    monkeypatch.setattr(archive, "_commit", real_commit)
    again = run(experiment, path, delete_after=True, batch_size=2)
    assert (again.archived, again.skipped, again.deleted) == (1, 2, 3)
    assert table_ids(path) == sorted(t.trace_id for t in traces)
    assert not Trace.objects.exists()


@pytest.mark.parametrize("table_exists", [False, True])
def test_another_job_committing_the_same_traces_meanwhile_is_noticed(
    tmp_path: Path, monkeypatch, table_exists: bool
) -> None:
    """Job A checks the table, job B archives the same traces, then A commits: Delta refuses A's commit (both
    carry the archive's app transaction), A checks again and skips them. Each trace is in the table once."""
    experiment = make_experiment()
    path = tmp_path / "t"
    if table_exists:
        traces_on(experiment, 9)
        run(experiment, path)
    traces_on(experiment, 3, 2, 1)
    real_check, interfered = archive.archived_trace_ids, []

    def check_then_other_job(*args: Any, **kwargs: Any) -> set[str]:
        found = real_check(*args, **kwargs)
        if not interfered:
            interfered.append(1)
            other = run(experiment, path)  # job B, between A's check and A's commit
            assert other.archived == 3
        return found

    monkeypatch.setattr(archive, "archived_trace_ids", check_then_other_job)
    result = run(experiment, path)
    assert (result.archived, result.skipped) == (0, 3 + table_exists)
    ids = table_ids(path)
    assert len(ids) == len(set(ids)) == 3 + table_exists


def test_a_table_that_keeps_changing_gives_up_with_a_message(tmp_path: Path, monkeypatch) -> None:
    experiment = make_experiment()
    traces_on(experiment, 1)

    def always_changed(*args: Any, **kwargs: Any) -> None:
        raise archive.TableChanged("Concurrent transaction failed.")

    monkeypatch.setattr(archive, "_commit", always_changed)
    with pytest.raises(ArchiveError, match="other archive jobs kept committing"):
        run(experiment, tmp_path / "t", delete_after=True)
    assert Trace.objects.count() == 1


def test_a_parquet_file_left_without_a_commit_is_not_in_the_table(tmp_path: Path) -> None:
    """A writer killed after writing its data file but before its commit leaves an orphan file: readers through
    the Delta log ignore it, and the next run archives those traces (once)."""
    experiment = make_experiment()
    (archived,) = traces_on(experiment, 2)
    path = tmp_path / "t"
    run(experiment, path)
    (pending,) = traces_on(experiment, 1)
    orphan_rows = archive.archive_rows([pending], archived_at=NOW)
    orphan_dir = path / "date=2026-11-30"
    orphan_dir.mkdir()
    pq.write_table(orphan_rows.drop_columns(["date"]), orphan_dir / "part-00000-killed-writer.c000.snappy.parquet")
    assert table_ids(path) == [archived.trace_id]

    result = run(experiment, path)
    assert (result.archived, result.skipped) == (1, 1)
    assert table_ids(path) == sorted([archived.trace_id, pending.trace_id])
    files = DeltaTable(str(path)).file_uris()
    assert duckdb.sql("select count(*) from read_parquet($files)", params={"files": files}).fetchall() == [(2,)]
    glob = str(path / "**" / "*.parquet")  # a bare glob also reads the orphan: go through the log's file list
    assert duckdb.sql(f"select count(*) from read_parquet('{glob}')").fetchall() == [(3,)]


def test_duckdb_reads_the_table_offline(tmp_path: Path) -> None:
    experiment = make_experiment("Bot")
    rich_traces(experiment)
    path = tmp_path / "t"
    run(experiment, path)
    files = DeltaTable(str(path)).file_uris()
    # The files the Delta log lists (the partition column comes from the hive-style directories).
    rows = duckdb.sql(
        "select date, tags['env'] as env, len(assessments) as n from read_parquet($files, hive_partitioning=true) "
        "order by request_time",
        params={"files": files},
    ).fetchall()
    assert rows == [(date(2026, 10, 22), "prod", 2), (date(2026, 10, 27), None, 1), (date(2026, 10, 31), None, 1)]
    # A glob over the directory works too for a table only ever appended to by commits that finished.
    glob = str(path / "**" / "*.parquet")
    names = duckdb.sql(
        f"select a.name from read_parquet('{glob}', hive_partitioning=true), unnest(assessments) as t(a) order by 1"
    ).fetchall()
    assert names == [("correct",), ("expected_response",), ("groundedness",), ("relevance",)]
    # Or DuckDB scans the pyarrow dataset of the table's current version.
    dataset = DeltaTable(str(path)).to_pyarrow_dataset()
    counted = duckdb.from_arrow(dataset).aggregate("count(distinct trace_id)").fetchall()
    assert counted == [(3,)]


def test_the_table_schema_is_the_same_whatever_the_batch(tmp_path: Path) -> None:
    """A batch without tags, assessments or durations appends to the same schema (no nulls of type null)."""
    experiment = make_experiment()
    rich_traces(experiment)
    path = tmp_path / "t"
    run(experiment, path)
    make_trace(experiment=experiment, request_time=NOW, execution_duration_ms=None)
    run(experiment, path)
    table = DeltaTable(str(path))
    assert table.version() == 1
    assert pa.schema(table.schema().to_arrow()).field("assessments").type.value_type.field("metadata")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("30d", timedelta(days=30)), ("12h", timedelta(hours=12)), ("0d", timedelta(0)), ("90m", timedelta(minutes=90))],
)
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["30", "-1d", "1.5d", "d", "30 days", "1w", ""])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ArchiveError, match="bad duration"):
        parse_duration(text)


# The per-experiment setting and the schedule.


def policy_for(experiment: Experiment, path: Path, days: int | None = 30, **fields: Any) -> ArchivePolicy:
    return ArchivePolicy.objects.create(experiment=experiment, older_than_days=days, path=str(path), **fields)


def test_due_policies_run_and_record_their_result(tmp_path: Path) -> None:
    due, recent, off = make_experiment("Due"), make_experiment("Recent"), make_experiment("Off")
    for experiment in (due, recent, off):
        traces_on(experiment, 40, 10)
    policy_for(due, tmp_path / "due", delete_after=True)
    policy_for(recent, tmp_path / "recent", last_run_at=NOW - timedelta(minutes=30))
    policy_for(off, tmp_path / "off", days=None)
    runs = archive_due_experiments(now=NOW)
    assert [(r["experiment"], r["status"], r["archived"], r["deleted"]) for r in runs] == [("Due", "ok", 1, 1)]
    assert json.loads(json.dumps(runs)) == runs  # the periodic job's task result is stored as JSON
    policy = ArchivePolicy.objects.get(experiment=due)
    assert policy.last_run_at == NOW
    assert policy.last_result["status"] == "ok" and policy.last_result["archived"] == 1
    assert not (tmp_path / "recent").exists() and not (tmp_path / "off").exists()
    assert archive_due_experiments(now=NOW + timedelta(minutes=29)) == []
    assert [r["experiment"] for r in archive_due_experiments(now=NOW + timedelta(hours=2))] == ["Due", "Recent"]


def test_a_failing_policy_is_recorded_and_the_others_still_run(tmp_path: Path) -> None:
    broken, fine = make_experiment("Broken"), make_experiment("Fine")
    traces_on(broken, 40)
    traces_on(fine, 40)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a table")
    policy_for(broken, blocker)
    policy_for(fine, tmp_path / "fine")
    runs = archive_due_experiments(now=NOW)
    assert [(r["experiment"], r["status"]) for r in runs] == [("Broken", "failed"), ("Fine", "ok")]
    assert ArchivePolicy.objects.get(experiment=broken).last_result["status"] == "failed"
    assert "is a file" in ArchivePolicy.objects.get(experiment=broken).last_result["error"]
    assert Trace.objects.filter(experiment=broken).count() == 1


def test_save_archive_policy_creates_then_updates(admin_user, tmp_path: Path) -> None:
    experiment = make_experiment()
    save_archive_policy(
        experiment=experiment, older_than_days=30, path=str(tmp_path), delete_after=False, user=admin_user
    )
    save_archive_policy(
        experiment=experiment, older_than_days=7, path=str(tmp_path), delete_after=True, user=admin_user
    )
    policy = ArchivePolicy.objects.get()
    assert (policy.older_than_days, policy.delete_after, policy.updated_by) == (7, True, admin_user)


@pytest.mark.django_db(transaction=True)
def test_two_workers_at_once_archive_each_trace_once(tmp_path: Path) -> None:
    """Two threads (each its own database connection) run the schedule together: each policy runs once."""
    experiments = [make_experiment(f"E{i}") for i in range(4)]
    for index, experiment in enumerate(experiments):
        traces_on(experiment, 40, 41, 42)
        policy_for(experiment, tmp_path / f"t{index}")
    results: list[list[Any]] = []
    start = threading.Barrier(2)

    def worker() -> None:
        try:
            start.wait()
            results.append(archive_due_experiments(now=NOW))
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    names = sorted(r["experiment"] for runs in results for r in runs)
    assert names == ["E0", "E1", "E2", "E3"]
    for index in range(4):
        assert len(table_ids(tmp_path / f"t{index}")) == 3


def test_the_workers_schedule_runs_the_settings_as_a_task(tmp_path: Path) -> None:
    """The periodic job of evaluation.monitoring.schedule, enqueued as the workers enqueue it."""
    from evaluation.monitoring.schedule import JOBS
    from evaluation.tasks import run_periodic_job

    (job,) = [job for job in JOBS if job.function.endswith(".archive_due_experiments")]
    experiment = make_experiment("Due")
    traces_on(experiment, 400)  # old enough against the real clock
    policy_for(experiment, tmp_path / "t")
    outcome = run_periodic_job.enqueue(name=job.name, function=job.function)
    assert outcome.return_value["result"][0]["experiment"] == "Due"
    assert outcome.return_value["result"][0]["archived"] == 1
    assert len(table_ids(tmp_path / "t")) == 1
