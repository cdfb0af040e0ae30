"""Dataset writes: merge records keyed by inputs (MLflow's ``merge_records`` semantics)."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import connections, transaction
from django.db.models import QuerySet
from django.utils import timezone

from labeling.models import LabelingSession
from traces.models import Trace

from .exporters import ExportStats, session_records
from .models import DatasetRecord, EvaluationDataset, SourceType, inputs_key
from .trace_records import trace_records

MERGE_CHUNK = 1000
NAME_MAX_LENGTH = EvaluationDataset._meta.get_field("name").max_length


@dataclass
class MergeResult:
    created: int = 0
    updated: int = 0


def clean_dataset_name(name: str) -> str:
    """A dataset name is one line of up to 200 characters; anything else is a ``ValidationError``."""
    name = name.strip()
    if not name:
        raise ValidationError({"name": "Give the dataset a name."})
    if len(name) > NAME_MAX_LENGTH:
        raise ValidationError({"name": f"Keep the name to {NAME_MAX_LENGTH} characters (it has {len(name)})."})
    if any(unicodedata.category(ch) == "Cc" for ch in name):
        raise ValidationError({"name": "Use one line of text: no line breaks, tabs or other control characters."})
    return name


def delete_dataset(*, dataset: EvaluationDataset) -> None:
    """MLflow's ``delete_dataset``: the dataset and its records. Runs over it stay (their traces and
    scores), no longer linked to it."""
    dataset.delete()


def delete_records(*, dataset: EvaluationDataset, record_ids: Iterable[int]) -> int:
    """MLflow's ``delete_records``: how many of these records the dataset had (and no longer has)."""
    with transaction.atomic():
        _, per_model = dataset.records.filter(pk__in=list(record_ids)).delete()
        deleted = per_model.get(DatasetRecord._meta.label, 0)
        if deleted:
            EvaluationDataset.objects.filter(pk=dataset.pk).update(updated_at=timezone.now())
    return deleted


def record_source_traces(dataset: EvaluationDataset, record_ids: Iterable[int] | None = None) -> list[tuple[int, int]]:
    """(trace pk, record pk) for the dataset's records whose source trace is stored here, in record
    order (two records may share a trace). ``record_ids`` narrows the records. Two queries."""
    records = dataset.records.order_by("id")
    if record_ids is not None:
        records = records.filter(pk__in=list(record_ids))
    rows = list(records.values_list("pk", "source_data"))
    trace_ids = {data.get("trace_id") for _, data in rows if isinstance(data, dict) and data.get("trace_id")}
    pks = dict(Trace.objects.filter(trace_id__in=trace_ids).values_list("trace_id", "pk"))
    found = ((pks.get(data.get("trace_id")) if isinstance(data, dict) else None, pk) for pk, data in rows)
    return [(trace_pk, record_pk) for trace_pk, record_pk in found if trace_pk is not None]


def get_or_create_dataset(
    *, name: str, created_by: AbstractBaseUser | None = None, description: str = ""
) -> EvaluationDataset:
    name = clean_dataset_name(name)
    dataset, _ = EvaluationDataset.objects.get_or_create(
        name=name, defaults={"created_by": created_by, "description": description}
    )
    return dataset


def _source(record: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    source = record.get("source") or {}
    source_type = str(source.get("source_type") or SourceType.TRACE)
    if source_type not in SourceType.values:
        raise ValidationError(f"Unknown source type {source_type!r}; use one of {', '.join(SourceType.values)}.")
    return source_type, dict(source.get("source_data") or {})


def _merge_into(existing: DatasetRecord, record: dict[str, Any], now: str) -> None:
    """Newer value per expectation key wins; the old value is kept in the record's history."""
    for key, value in (record.get("expectations") or {}).items():
        if key in existing.expectations and existing.expectations[key] != value:
            existing.history.append({"expectation": key, "value": existing.expectations[key], "replaced_at": now})
        existing.expectations[key] = value
    existing.tags = {**existing.tags, **(record.get("tags") or {})}
    if record.get("outputs") is not None:
        existing.outputs = record["outputs"]
    existing.source_type, existing.source_data = _source(record)


def merge_records(*, dataset: EvaluationDataset, records: Iterable[dict[str, Any]]) -> MergeResult:
    """Add records; a record whose inputs already exist updates that record instead of duplicating it."""
    result = MergeResult()
    with transaction.atomic():
        chunk: list[dict[str, Any]] = []
        for record in records:
            if not isinstance(record, dict) or not isinstance(record.get("inputs"), dict):
                raise ValidationError("Every record needs an 'inputs' object.")
            chunk.append(record)
            if len(chunk) >= MERGE_CHUNK:
                _merge_chunk(dataset, chunk, result)
                chunk = []
        if chunk:
            _merge_chunk(dataset, chunk, result)
        EvaluationDataset.objects.filter(pk=dataset.pk).update(updated_at=timezone.now())
    return result


UPDATED_FIELDS = ["expectations", "tags", "outputs", "source_type", "source_data", "history"]
WRITE_BATCH = 500


def _stored_fields(record: DatasetRecord) -> tuple[Any, ...]:
    """What a merge may change, copied to compare (the JSON fields are mutated in place)."""
    return tuple(
        orjson.dumps(getattr(record, f), option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS) for f in UPDATED_FIELDS
    )


def _json_param(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def _write_changed(records: list[DatasetRecord]) -> None:
    """Save the merged fields of these records. PostgreSQL: one ``UPDATE … FROM (VALUES …)`` per 500
    (Django's ``bulk_update`` spends seconds per thousand rows building its CASE expressions)."""
    if not records:
        return
    connection = connections[DatasetRecord.objects.db]
    if connection.vendor != "postgresql":
        DatasetRecord.objects.bulk_update(records, [*UPDATED_FIELDS, "updated_at"], batch_size=100)
        return
    quote = connection.ops.quote_name
    columns = [DatasetRecord._meta.get_field(f).column for f in [*UPDATED_FIELDS, "updated_at"]]
    casts = ["jsonb" if f != "source_type" else "text" for f in UPDATED_FIELDS] + ["timestamptz"]
    assignments = ", ".join(f"{quote(c)} = v.{quote(c)}" for c in columns)
    row = "(%s::bigint, " + ", ".join(f"%s::{cast}" for cast in casts) + ")"
    table = quote(DatasetRecord._meta.db_table)
    names = ", ".join(["id", *(quote(c) for c in columns)])
    with connection.cursor() as cursor:
        for start in range(0, len(records), WRITE_BATCH):
            batch = records[start : start + WRITE_BATCH]
            params: list[Any] = []
            for r in batch:
                params.append(r.pk)
                params += [r.source_type if f == "source_type" else _json_param(getattr(r, f)) for f in UPDATED_FIELDS]
                params.append(r.updated_at)
            values = ", ".join([row] * len(batch))
            cursor.execute(
                f"UPDATE {table} AS r SET {assignments} FROM (VALUES {values}) AS v({names}) WHERE r.id = v.id", params
            )


def _merge_chunk(dataset: EvaluationDataset, records: list[dict[str, Any]], result: MergeResult) -> None:
    now = timezone.now()
    keys = [inputs_key(r["inputs"]) for r in records]
    existing = {r.inputs_key: r for r in dataset.records.filter(inputs_key__in=keys)}
    new: dict[str, DatasetRecord] = {}
    touched: dict[str, DatasetRecord] = {}
    changed: dict[str, DatasetRecord] = {}
    for key, record in zip(keys, records, strict=True):
        if key in existing:
            before = _stored_fields(existing[key])
            _merge_into(existing[key], record, now.isoformat())
            touched[key] = existing[key]
            if key in changed or _stored_fields(existing[key]) != before:
                changed[key] = existing[key]
        elif key in new:
            _merge_into(new[key], record, now.isoformat())
        else:
            source_type, source_data = _source(record)
            new[key] = DatasetRecord(
                dataset=dataset,
                inputs_key=key,
                inputs=record["inputs"],
                outputs=record.get("outputs"),
                expectations=dict(record.get("expectations") or {}),
                tags=dict(record.get("tags") or {}),
                source_type=source_type,
                source_data=source_data,
                history=[],
            )
    DatasetRecord.objects.bulk_create(list(new.values()), batch_size=500)
    for record in changed.values():
        record.updated_at = now
    # Only records whose values changed are written: a re-run over the same traces writes nothing.
    _write_changed(list(changed.values()))
    result.created += len(new)
    result.updated += len(touched)


def save_session_labels(
    *,
    sessions: list[LabelingSession],
    dataset_name: str,
    policy: str = "latest",
    include_feedback: bool = False,
    created_by: AbstractBaseUser | None = None,
) -> tuple[EvaluationDataset, MergeResult, ExportStats]:
    """Merge the sessions' labels into a stored dataset, under ``exporters.INCLUSION_RULE``.

    Nothing is saved (not even an empty dataset) when no item qualifies.
    """
    stats = ExportStats()
    with transaction.atomic():
        dataset = get_or_create_dataset(name=dataset_name, created_by=created_by)
        records = session_records(sessions, policy=policy, include_feedback=include_feedback, stats=stats)
        result = merge_records(dataset=dataset, records=records)
        if not stats.records:
            tied = f" ({len(stats.ties)} tied answers left out)" if stats.ties else ""
            raise ValidationError(f"No item qualifies for the dataset{tied}, so nothing was saved.")
    return dataset, result, stats


def count_up_to(traces: QuerySet[Trace], limit: int) -> int:
    """How many traces match, counting no further than ``limit + 1`` (one query, cheap at any size)."""
    return traces.order_by()[: limit + 1].count()


def build_dataset_from_traces(
    *,
    traces: QuerySet[Trace],
    dataset_name: str,
    created_by: AbstractBaseUser | None = None,
    limit: int | None = None,
    on_trace: Callable[[], None] | None = None,
) -> tuple[EvaluationDataset, MergeResult, int]:
    """Merge the traces into the named dataset (created if new) as MLflow's ``merge_records(traces)`` does.

    Records are keyed by their inputs: a trace whose inputs a record already has updates that record
    (its expectations added, newer values winning). Returns the dataset, the merge counts and the number
    of traces read. Nothing is written (not even an empty dataset) when no trace matches, or when more
    than ``limit`` do.
    """
    name = clean_dataset_name(dataset_name)
    if limit is not None and count_up_to(traces, limit) > limit:
        raise ValidationError(
            f"More than {limit:,} traces match: narrow the filter, or run "
            "`python manage.py build_dataset`, which takes any number."
        )
    read = 0

    def counted() -> None:
        nonlocal read
        read += 1
        if on_trace:
            on_trace()

    with transaction.atomic():
        if not traces.exists():
            raise ValidationError("No trace matches these filters, so nothing was saved.")
        dataset = get_or_create_dataset(name=name, created_by=created_by)
        result = merge_records(dataset=dataset, records=trace_records(traces, on_trace=counted))
    return dataset, result, read
