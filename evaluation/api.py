"""The evaluation part of the JSON API: datasets (mounted at ``/api/datasets/`` by ``reviewapp.api``).

MLflow's ``mlflow.genai.datasets`` calls: ``create_dataset``, ``get_dataset``, and a dataset's
``merge_records`` / ``to_df`` (records as JSON pages, or the whole dataset as the JSONL the dataset
page downloads). Access is the pages': datasets are for admins, so for anyone else a read is a 404
and a write a 403. Writes go through ``evaluation.services``.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import Count
from django.http import HttpRequest, StreamingHttpResponse
from ninja import Field, Router, Schema, Status

from labeling.access import is_admin
from traces.api_support import (
    ERROR_RESPONSES,
    MAX_TEXT,
    ApiError,
    ErrorCode,
    ErrorOut,
    check_json_value,
    check_str_map,
    check_text,
    denied,
    invalid,
    not_found,
    paginate,
)
from traces.pagination import Ordering, SortKey

from . import services
from .exporters import lines
from .models import EvaluationDataset, SourceType

datasets_router = Router(tags=["datasets"])

MAX_RECORDS_PER_MERGE = 10_000
DATASET_ORDER = Ordering((SortKey("created_at", True, "datetime"), SortKey("id", True, "int")))
RECORD_ORDER = Ordering((SortKey("id", False, "int"),))


# ---------------------------------------------------------------- schemas


class DatasetIn(Schema):
    name: str = Field(min_length=1, max_length=services.NAME_MAX_LENGTH)
    description: str = Field("", max_length=MAX_TEXT)
    tags: dict[str, str] = Field(default_factory=dict)


class DatasetOut(Schema):
    dataset_id: str
    name: str
    description: str
    tags: dict[str, Any]
    created_by: str | None = None
    created_time: str
    last_update_time: str
    record_count: int


class DatasetsOut(Schema):
    datasets: list[DatasetOut]
    next_page_token: str | None = None


class SourceIn(Schema):
    source_type: str = Field(SourceType.TRACE, description="TRACE, HUMAN, CODE or DOCUMENT.")
    source_data: dict[str, Any] = Field(default_factory=dict)


class RecordIn(Schema):
    inputs: dict[str, Any]
    outputs: Any = None
    expectations: dict[str, Any] | None = None
    source: SourceIn | None = None
    tags: dict[str, str] | None = None


class MergeIn(Schema):
    records: list[RecordIn] = Field(description=f"At most {MAX_RECORDS_PER_MERGE:,} records per request.")


class MergeOut(Schema):
    merged: int
    created: int
    updated: int


class RecordOut(Schema):
    dataset_record_id: str
    inputs: Any
    outputs: Any = None
    expectations: dict[str, Any]
    tags: dict[str, Any]
    source: dict[str, Any]
    created_time: str
    last_update_time: str


class RecordsOut(Schema):
    records: list[RecordOut]
    next_page_token: str | None = None


# ---------------------------------------------------------------- access and shapes


def require_admin(request: HttpRequest) -> None:
    """The dataset pages' rule (``admin_required``): reads by others are 404, writes 403."""
    if is_admin(request.user):
        return
    if request.method in ("GET", "HEAD"):
        raise not_found("No such dataset.")
    raise denied("Only admins may change evaluation datasets.")


def _datasets() -> Any:
    return EvaluationDataset.objects.annotate(record_count=Count("records")).select_related("created_by")


def find_dataset(request: HttpRequest, reference: str) -> EvaluationDataset:
    """A dataset by its id, or by its name (names are unique)."""
    require_admin(request)
    dataset = None
    if reference.isascii() and reference.isdigit() and len(reference) < 19:
        dataset = _datasets().filter(pk=int(reference)).first()
    if dataset is None and len(reference) <= services.NAME_MAX_LENGTH and "\x00" not in reference:
        dataset = _datasets().filter(name=reference).first()
    if dataset is None:
        raise not_found(f"Dataset {reference[:100]!r} does not exist.")
    return dataset


def dataset_out(dataset: EvaluationDataset) -> dict[str, Any]:
    return {
        "dataset_id": str(dataset.pk),
        "name": dataset.name,
        "description": dataset.description,
        "tags": dataset.tags or {},
        "created_by": dataset.created_by.get_username() if dataset.created_by else None,
        "created_time": dataset.created_at.isoformat(),
        "last_update_time": dataset.updated_at.isoformat(),
        "record_count": getattr(dataset, "record_count", None) or 0,
    }


def _message(error: ValidationError) -> str:
    return "; ".join(error.messages)


# ---------------------------------------------------------------- endpoints


@datasets_router.post("/", response={201: DatasetOut, 409: ErrorOut, **ERROR_RESPONSES})
def create_dataset(request: HttpRequest, payload: DatasetIn) -> Status[dict[str, Any]]:
    """MLflow's ``create_dataset``: a new, empty dataset (409 when the name is taken)."""
    require_admin(request)
    try:
        name = services.clean_dataset_name(payload.name)
    except ValidationError as exc:
        raise invalid(_message(exc)) from None
    description = check_text(payload.description, what="description")
    tags = check_str_map(payload.tags, what="tags")
    if EvaluationDataset.objects.filter(name=name).exists():
        raise ApiError(ErrorCode.RESOURCE_ALREADY_EXISTS, f"A dataset named {name!r} already exists.")
    dataset = services.get_or_create_dataset(name=name, created_by=request.user, description=description)
    if tags:
        dataset.tags = tags
        dataset.save(update_fields=["tags"])
    return Status(201, dataset_out(find_dataset(request, str(dataset.pk))))


@datasets_router.get("/", response={200: DatasetsOut, **ERROR_RESPONSES})
def list_datasets(
    request: HttpRequest, max_results: int | None = None, page_token: str | None = None
) -> dict[str, Any]:
    """Every dataset, newest first."""
    require_admin(request)
    page = paginate(_datasets(), DATASET_ORDER, page_token=page_token, max_results=max_results)
    return {"datasets": [dataset_out(d) for d in page.rows], "next_page_token": page.next_page_token}


@datasets_router.get("/{dataset_id}", response={200: DatasetOut, **ERROR_RESPONSES})
def get_dataset(request: HttpRequest, dataset_id: str) -> dict[str, Any]:
    """MLflow's ``get_dataset``: by id, or by name."""
    return dataset_out(find_dataset(request, dataset_id))


@datasets_router.post("/{dataset_id}/records", response={200: MergeOut, **ERROR_RESPONSES})
def merge_records(request: HttpRequest, dataset_id: str, payload: MergeIn) -> dict[str, Any]:
    """MLflow's ``merge_records``: a record whose inputs the dataset has updates it (its expectations
    merged, newer values winning); others are added. A bad record refuses the whole request."""
    dataset = find_dataset(request, dataset_id)
    if len(payload.records) > MAX_RECORDS_PER_MERGE:
        raise invalid(f"records has {len(payload.records):,} entries; at most {MAX_RECORDS_PER_MERGE:,} per request.")
    records = []
    for number, record in enumerate(payload.records):
        raw = record.dict(exclude_none=True)
        records.append(check_json_value(raw, what=f"records[{number}]"))
    try:
        result = services.merge_records(dataset=dataset, records=records)
    except ValidationError as exc:
        raise invalid(_message(exc)) from None
    return {"merged": len(records), "created": result.created, "updated": result.updated}


@datasets_router.get("/{dataset_id}/records", response={200: RecordsOut, **ERROR_RESPONSES})
def list_records(
    request: HttpRequest, dataset_id: str, max_results: int | None = None, page_token: str | None = None
) -> dict[str, Any]:
    """The dataset's records, oldest first, as MLflow's ``DatasetRecord.to_dict()`` reads them."""
    dataset = find_dataset(request, dataset_id)
    page = paginate(dataset.records.all(), RECORD_ORDER, page_token=page_token, max_results=max_results)
    rows = [
        {
            "dataset_record_id": str(r.pk),
            **r.as_mlflow(),
            "created_time": r.created_at.isoformat(),
            "last_update_time": r.updated_at.isoformat(),
        }
        for r in page.rows
    ]
    return {"records": rows, "next_page_token": page.next_page_token}


@datasets_router.get("/{dataset_id}/records.jsonl", response={200: None, **ERROR_RESPONSES})
def download_records(request: HttpRequest, dataset_id: str) -> StreamingHttpResponse:
    """Every record as JSONL, streamed: the file the dataset page's JSONL download gives."""
    dataset = find_dataset(request, dataset_id)
    records = (r.as_mlflow() for r in dataset.records.order_by("id").iterator(chunk_size=2000))
    return StreamingHttpResponse(lines("jsonl", records), content_type="application/x-ndjson")
