"""Read traces back from a Delta table of archived traces (``python manage.py archive_traces``).

Each row's ``trace_json`` column is MLflow's ``Trace.to_json()`` and goes through the MLflow JSON
parser; the ``experiment`` column names the experiment it came from, where the traces go back unless
the caller gives one. The table is read at its latest version (what its log has committed).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
from django.db import DatabaseError, transaction

from traces.models import Experiment

from .mlflow_json import parse_document
from .records import TraceFormatError, TraceRecord
from .store import StoreResult, resolve_experiment, store_traces

BATCH_ROWS = 500
JSON_COLUMN = "trace_json"
EXPERIMENT_COLUMN = "experiment"
ID_COLUMN = "trace_id"  # names a bad row in errors


def is_delta_table(path: Path) -> bool:
    return path.is_dir() and (path / "_delta_log").is_dir()


def iter_delta_batches(path: Path, batch_size: int = BATCH_ROWS) -> Iterator[list[tuple[str, TraceRecord]]]:
    """(experiment name, trace) pairs of the table, ``batch_size`` rows at a time, or :class:`TraceFormatError`."""
    from deltalake import DeltaTable  # delta-rs loads only when a table is read

    try:
        table = DeltaTable(str(path))
        dataset = table.to_pyarrow_dataset()
    except Exception as exc:  # delta-rs raises several kinds for a broken log
        raise TraceFormatError(f"not a readable Delta table ({_first_line(exc)})") from None
    names = set(dataset.schema.names)
    if JSON_COLUMN not in names:
        raise TraceFormatError(f"the Delta table has no {JSON_COLUMN} column: not an archive of traces")
    columns = [JSON_COLUMN, *(name for name in (EXPERIMENT_COLUMN, ID_COLUMN) if name in names)]
    row = 0
    for batch in dataset.to_batches(columns=columns, batch_size=batch_size):
        documents = batch.column(JSON_COLUMN).to_pylist()
        experiments = batch.column(EXPERIMENT_COLUMN).to_pylist() if EXPERIMENT_COLUMN in names else []
        trace_ids = batch.column(ID_COLUMN).to_pylist() if ID_COLUMN in names else []
        found: list[tuple[str, TraceRecord]] = []
        for index, text in enumerate(documents):
            row += 1
            where = f"trace {trace_ids[index]}" if trace_ids and trace_ids[index] else f"row {row}"
            try:
                records = parse_document(orjson.loads(text or ""))
            except orjson.JSONDecodeError as exc:
                raise TraceFormatError(f"{where}: {JSON_COLUMN} is not valid JSON ({exc})") from None
            except TraceFormatError as exc:
                raise TraceFormatError(f"{where}: {exc}") from None
            name = (experiments[index] if experiments else "") or ""
            found.extend((name, record) for record in records)
        if found:
            yield found


def import_delta_table(
    path: Path,
    *,
    experiment: Experiment | None = None,
    batch_size: int = BATCH_ROWS,
    on_batch: Callable[[StoreResult], None] | None = None,
) -> StoreResult:
    """Store every trace of the table, or nothing (:class:`TraceFormatError` says why), like one trace file.

    Traces go into ``experiment`` if given, else into the experiment named in their row (created if
    needed), else where their MLflow experiment id puts them.
    """
    try:
        with transaction.atomic():
            result = StoreResult()
            experiments: dict[str, Experiment] = {}
            for batch in iter_delta_batches(path, batch_size):
                by_experiment: dict[str, list[TraceRecord]] = {}
                for name, record in batch:
                    by_experiment.setdefault("" if experiment else name, []).append(record)
                for name, records in by_experiment.items():
                    target = experiment
                    if target is None and name:
                        target = experiments.get(name) or experiments.setdefault(name, resolve_experiment(name))
                    result.add(store_traces(records, experiment=target))
                if on_batch is not None:
                    on_batch(result)
    except DatabaseError as exc:
        raise TraceFormatError(f"the database refused this table ({_first_line(exc)})") from None
    return result


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
