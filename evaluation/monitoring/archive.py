"""Archive an experiment's traces to a Delta table (delta-rs), as MLflow's monitoring archives them.

The table is partitioned by ``date`` (the request day in UTC, ``YYYY-MM-DD``) and holds one row per
trace: ``trace_json`` (MLflow's ``Trace.to_json()``, which ``import_traces`` reads back) beside flat
columns for analysis (``ARCHIVE_SCHEMA``: previews, ``tags`` and ``trace_metadata`` as maps,
``assessments`` as a list of structs). It is only ever appended to.

Traces go in trace-pk order, ``BATCH_TRACES`` at a time, each batch one Delta commit (atomic: a killed
job leaves the table at its last commit, and a parquet file written without a commit is not part of
the table). Before each commit the batch's trace ids are looked up in the table (on the batch's date
partitions), so a trace already archived is skipped, not written twice; with ``delete_after`` a batch's
traces leave the database only after its commit, so a crash in between leaves traces that the next run
finds in the table, skips and deletes. Every commit carries the Delta app transaction ``APP_ID``, so
of two jobs that checked the same snapshot only one commits; the other checks its batch again.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.dataset as ds
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from traces.mlflow_shape import experiment_id_of, trace_dict
from traces.models import Assessment, Experiment, ExperimentKind, Span, Trace

from .models import ArchivePolicy

BATCH_TRACES = 1000
APP_ID = "reviewapp.archive_traces"  # the Delta app transaction every archive commit carries
COMMIT_TRIES = 5
DUE_EVERY = timedelta(hours=1)  # a policy runs again this long after its last run
DURATION = re.compile(r"(\d{1,6})([dhm])")
DURATION_UNITS = {"d": "days", "h": "hours", "m": "minutes"}

_MAP = pa.map_(pa.string(), pa.string())
_TIME = pa.timestamp("us", tz="UTC")
ASSESSMENT_TYPE = pa.struct(
    [
        ("assessment_id", pa.string()),
        ("name", pa.string()),
        ("kind", pa.string()),  # feedback | expectation
        ("value", pa.string()),  # JSON
        ("rationale", pa.string()),
        ("error", pa.string()),  # JSON, or null
        ("source_type", pa.string()),
        ("source_id", pa.string()),
        ("span_id", pa.string()),
        ("valid", pa.bool_()),
        ("overrides", pa.string()),
        ("metadata", _MAP),
        ("create_time", _TIME),
        ("last_update_time", _TIME),
    ]
)
ARCHIVE_SCHEMA = pa.schema(
    [
        ("date", pa.string()),
        ("trace_id", pa.string()),
        ("experiment", pa.string()),
        ("experiment_id", pa.string()),
        ("name", pa.string()),
        ("request_time", _TIME),
        ("state", pa.string()),
        ("execution_duration_ms", pa.int64()),
        ("request_preview", pa.string()),
        ("response_preview", pa.string()),
        ("client_request_id", pa.string()),
        ("tags", _MAP),
        ("trace_metadata", _MAP),
        ("span_count", pa.int64()),
        ("assessments", pa.list_(ASSESSMENT_TYPE)),
        ("trace_json", pa.string()),
        ("archived_at", _TIME),
    ]
)
PARTITION_BY = ["date"]


class ArchiveError(Exception):
    """Bad input (an unknown experiment, a path that cannot hold a table): nothing was written."""


@dataclass(slots=True)
class ArchiveResult:
    archived: int = 0  # rows appended to the table
    skipped: int = 0  # candidates already in the table
    deleted: int = 0  # traces removed from the database (with delete_after)
    commits: int = 0
    candidates: int = 0  # traces selected for this run
    table_version: int | None = None

    def summary(self, path: str) -> str:
        version = "" if self.table_version is None else f" (table version {self.table_version})"
        return (
            f"archived {self.archived} traces, skipped {self.skipped} already in the table, "
            f"deleted {self.deleted}, to {path}{version}"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "archived": self.archived,
            "skipped": self.skipped,
            "deleted": self.deleted,
            "commits": self.commits,
            "table_version": self.table_version,
        }


def parse_duration(text: str) -> timedelta:
    """``30d``, ``12h``, ``90m``, ``0d``: the age a trace must pass to be archived."""
    match = DURATION.fullmatch(text.strip().lower())
    if match is None:
        raise ArchiveError(f"bad duration “{text}”: give a whole number of days, hours or minutes, e.g. 30d, 12h, 0d")
    return timedelta(**{DURATION_UNITS[match.group(2)]: int(match.group(1))})


def is_uri(path: str) -> bool:
    """An object-store URI (s3://, az://, gs://…), which delta-rs opens itself; ``file://`` is local."""
    return "://" in path and not path.startswith("file://")


def check_target(path: str) -> str:
    """The table's location if a Delta table can be kept there, else :class:`ArchiveError`; writes nothing.

    A local path must be an existing Delta table, an empty directory, or a new path whose nearest
    existing parent is a writable directory.
    """
    if not path.strip():
        raise ArchiveError("give the Delta table's path (--to PATH)")
    if is_uri(path):
        return path
    local = Path(path.removeprefix("file://")).expanduser().absolute()
    if local.exists():
        if not local.is_dir():
            raise ArchiveError(f"{path} is a file, not a directory: give a directory for the Delta table")
        if not (local / "_delta_log").is_dir() and any(local.iterdir()):
            raise ArchiveError(f"{path} is a directory that is neither empty nor a Delta table")
        if not os.access(local, os.W_OK | os.X_OK):
            raise ArchiveError(f"{path} is not writable")
        return str(local)
    parent = local.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ArchiveError(f"{path} cannot be created: {parent} is a file")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ArchiveError(f"{path} cannot be created: {parent} is not writable")
    return str(local)


def archivable_experiment(name: str) -> Experiment:
    """The (ordinary) experiment called ``name``, or :class:`ArchiveError`."""
    found = Experiment.objects.filter(name=name, kind=ExperimentKind.TRACES).first()
    if found is None:
        raise ArchiveError(f"no experiment named “{name}”")
    return found


def open_table(location: str) -> DeltaTable | None:
    """The Delta table at ``location``, or None when there is none yet."""
    try:
        return DeltaTable(location)
    except TableNotFoundError:
        return None


def archived_trace_ids(table: DeltaTable | None, trace_ids: Sequence[str], dates: Sequence[str]) -> set[str]:
    """Which of ``trace_ids`` (requested on ``dates``) the table already holds: reads only those partitions."""
    if table is None or not trace_ids:
        return set()
    condition = ds.field("date").isin(sorted(set(dates))) & ds.field("trace_id").isin(list(trace_ids))
    found = table.to_pyarrow_dataset().to_table(columns=["trace_id"], filter=condition)
    return set(found.column("trace_id").to_pylist())


def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def _map(values: dict[str, Any] | None) -> list[tuple[str, str]]:
    return [(str(key), str(value)) for key, value in (values or {}).items()]


def _assessment_row(assessment: Assessment) -> dict[str, Any]:
    return {
        "assessment_id": assessment.assessment_id,
        "name": assessment.name,
        "kind": assessment.kind,
        "value": _json(assessment.value),
        "rationale": assessment.rationale,
        "error": _json(assessment.error) if assessment.error else None,
        "source_type": assessment.source_type,
        "source_id": assessment.source_id,
        "span_id": assessment.span_id,
        "valid": assessment.valid,
        "overrides": assessment.overrides,
        "metadata": _map(assessment.metadata),
        "create_time": assessment.create_time,
        "last_update_time": assessment.last_update_time,
    }


def request_date(moment: datetime) -> str:
    return moment.astimezone(UTC).date().isoformat()


def archive_rows(traces: Sequence[Trace], *, archived_at: datetime) -> pa.Table:
    """The table rows of ``traces`` (their experiment loaded), spans and assessments read in two queries."""
    pks = [trace.pk for trace in traces]
    spans: dict[int, list[Span]] = defaultdict(list)
    for span in Span.objects.filter(trace_id__in=pks):
        spans[span.trace_id].append(span)
    assessments: dict[int, list[Assessment]] = defaultdict(list)
    for assessment in Assessment.objects.filter(trace_id__in=pks).order_by("create_time", "id"):
        assessments[assessment.trace_id].append(assessment)
    rows = [
        {
            "date": request_date(trace.request_time),
            "trace_id": trace.trace_id,
            "experiment": trace.experiment.name,
            "experiment_id": experiment_id_of(trace),
            "name": trace.name,
            "request_time": trace.request_time,
            "state": trace.state,
            "execution_duration_ms": trace.execution_duration_ms,
            "request_preview": trace.request_preview,
            "response_preview": trace.response_preview,
            "client_request_id": trace.client_request_id,
            "tags": _map(trace.tags),
            "trace_metadata": _map(trace.trace_metadata),
            "span_count": trace.span_count,
            "assessments": [_assessment_row(a) for a in assessments[trace.pk]],
            "trace_json": _json(trace_dict(trace, spans[trace.pk], assessments[trace.pk])),
            "archived_at": archived_at,
        }
        for trace in traces
    ]
    return pa.Table.from_pylist(rows, schema=ARCHIVE_SCHEMA)


def _candidates(experiment: Experiment, cutoff: datetime | None) -> Any:
    traces = Trace.objects.filter(experiment=experiment)
    return traces.filter(request_time__lt=cutoff) if cutoff is not None else traces


class TableChanged(Exception):
    """Another archive job committed to the table since this one read it: check the batch again."""


def _commit(location: str, table: DeltaTable | None, rows: pa.Table, *, experiment: Experiment) -> None:
    """One atomic Delta commit appending ``rows`` to the table as ``table`` (None: no table yet) saw it.

    Every archive commit carries a Delta app transaction (``APP_ID``), so two jobs that checked the same
    snapshot cannot both commit: delta-rs refuses the second one (``TableChanged``), which checks again.
    """
    seen = (table.transaction_version(APP_ID) or 0) if table is not None else 0
    properties = CommitProperties(
        custom_metadata={"reviewapp.archive": _json({"experiment": experiment.name, "traces": rows.num_rows})},
        app_transactions=[Transaction(APP_ID, seen + 1)],
    )
    try:
        write_deltalake(
            table if table is not None else location,
            rows,
            mode="append" if table is not None else "error",  # "error": a table made meanwhile is a change
            partition_by=PARTITION_BY,
            commit_properties=properties,
        )
    except CommitFailedError as exc:
        raise TableChanged(str(exc)) from exc
    except DeltaError as exc:
        if table is None and open_table(location) is not None:
            raise TableChanged(str(exc)) from exc
        raise


def _append_new(
    location: str, table: DeltaTable | None, batch: list[tuple[int, str, datetime]], *, experiment: Experiment
) -> tuple[DeltaTable | None, int]:
    """Append the batch's traces that the table does not hold yet; the table after, and how many were written."""
    for _ in range(COMMIT_TRIES):
        known = archived_trace_ids(table, [row[1] for row in batch], [request_date(row[2]) for row in batch])
        new = [pk for pk, trace_id, _ in batch if trace_id not in known]
        # Whole rows only for the traces to write (a re-run after a crash skips most).
        traces = list(Trace.objects.filter(pk__in=new).select_related("experiment").order_by("pk")) if new else []
        if not traces:
            return table, 0
        try:
            _commit(location, table, archive_rows(traces, archived_at=timezone.now()), experiment=experiment)
        except TableChanged:
            table = open_table(location)
            continue
        return open_table(location), len(traces)
    raise ArchiveError("other archive jobs kept committing to this table; run again when they are done")


def archive_traces(
    *,
    experiment: Experiment,
    path: str,
    older_than: timedelta | None,
    delete_after: bool,
    on_progress: Callable[[ArchiveResult], None] | None = None,
    now: datetime | None = None,
    batch_size: int | None = None,
) -> ArchiveResult:
    """Append the experiment's traces requested before ``now - older_than`` (all, when None) to the table.

    ``on_progress`` is called after each batch (its commit, then its deletes, are done).
    """
    location = check_target(path)
    batch_size = batch_size or BATCH_TRACES
    cutoff = (now or timezone.now()) - older_than if older_than is not None else None
    candidates = _candidates(experiment, cutoff)
    result = ArchiveResult(candidates=candidates.count())
    table = open_table(location)
    after_pk = 0
    while True:
        batch = list(
            candidates.filter(pk__gt=after_pk).order_by("pk").values_list("pk", "trace_id", "request_time")[:batch_size]
        )
        if not batch:
            break
        after_pk = batch[-1][0]
        table, written = _append_new(location, table, batch, experiment=experiment)
        result.archived += written
        result.commits += bool(written)
        result.skipped += len(batch) - written
        if delete_after:  # every trace of the batch is in the table now
            with transaction.atomic():
                deleted = Trace.objects.filter(pk__in=[row[0] for row in batch]).delete()[1]
                result.deleted += deleted.get(Trace._meta.label, 0)
        if on_progress is not None:
            on_progress(result)
    result.table_version = table.version() if table is not None else None
    return result


# The per-experiment setting, run by the workers' schedule.


def save_archive_policy(
    *, experiment: Experiment, older_than_days: int | None, path: str, delete_after: bool, user: Any
) -> ArchivePolicy:
    """Set the experiment's "archive traces older than N days" (blank days: never)."""
    with transaction.atomic():
        policy, _ = ArchivePolicy.objects.select_for_update().get_or_create(experiment=experiment)
        policy.older_than_days = older_than_days
        policy.path = path
        policy.delete_after = delete_after
        policy.updated_by = user if getattr(user, "pk", None) else None
        policy.updated_at = timezone.now()
        policy.save()
    return policy


def _due(now: datetime) -> Q:
    return Q(last_run_at__isnull=True) | Q(last_run_at__lte=now - DUE_EVERY)


def _claim_due_policy(now: datetime) -> ArchivePolicy | None:
    """One due policy, marked as run now in the same transaction: another worker skips the locked row
    (``SKIP LOCKED``) and, once this commits, no longer finds it due."""
    with transaction.atomic():
        policy = (
            ArchivePolicy.objects.select_for_update(skip_locked=True)
            .filter(_due(now), older_than_days__isnull=False, experiment__kind=ExperimentKind.TRACES)
            .exclude(path="")
            .order_by("pk")
            .first()
        )
        if policy is None:
            return None
        policy.last_run_at = now
        policy.last_result = {"status": "running", "started_at": now.isoformat()}
        policy.save(update_fields=["last_run_at", "last_result"])
    return policy


def _run_policy(policy: ArchivePolicy, now: datetime) -> dict[str, Any]:
    """Archive one claimed policy's traces; what happened, as stored in its ``last_result``."""
    experiment = Experiment.objects.get(pk=policy.experiment_id)
    try:
        result = archive_traces(
            experiment=experiment,
            path=policy.path,
            older_than=timedelta(days=policy.older_than_days or 0),
            delete_after=policy.delete_after,
            now=now,
        )
        outcome: dict[str, Any] = {"status": "ok", **result.as_dict()}
    except Exception as exc:  # one broken policy (a full disk, a moved path) must not stop the others
        outcome = {"status": "failed", "error": (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]}
    outcome["finished_at"] = timezone.now().isoformat()
    ArchivePolicy.objects.filter(pk=policy.pk).update(last_result=outcome)
    return {"experiment": experiment.name, "policy": policy.pk, **outcome}


def archive_due_experiments(now: datetime | None = None) -> list[dict[str, Any]]:
    """Run every policy that is due (never run, or last run ``DUE_EVERY`` ago); safe from several workers.

    The worker schedule's periodic job (``evaluation.monitoring.schedule``): what it returns is JSON, one
    ``{"experiment", "policy", "status": "ok" | "failed", counts or "error", "finished_at"}`` per policy run.
    """
    now = now or timezone.now()
    runs: list[dict[str, Any]] = []
    while (policy := _claim_due_policy(now)) is not None:
        runs.append(_run_policy(policy, now))
    return runs
