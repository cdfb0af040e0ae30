"""The evaluation part of the JSON API: datasets (mounted at ``/api/datasets/`` by ``reviewapp.api``).

MLflow's ``mlflow.genai.datasets`` calls: ``create_dataset``, ``get_dataset``, and a dataset's
``merge_records`` / ``to_df`` (records as JSON pages, or the whole dataset as the JSONL the dataset
page downloads). Access is the pages': datasets are for admins, so for anyone else a read is a 404
and a write a 403. Writes go through ``evaluation.services``.
"""

from __future__ import annotations

from datetime import datetime
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


class RecordSourceIn(Schema):
    source_type: str = Field(SourceType.TRACE, description="TRACE, HUMAN, CODE or DOCUMENT.")
    source_data: dict[str, Any] = Field(default_factory=dict)


class RecordIn(Schema):
    inputs: dict[str, Any]
    outputs: Any = None
    expectations: dict[str, Any] | None = None
    source: RecordSourceIn | None = None
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


@datasets_router.delete(
    "/{dataset_id}", response={204: None, **ERROR_RESPONSES}, summary="Delete a dataset with its records"
)
def delete_dataset(request: HttpRequest, dataset_id: str) -> Status[None]:
    """MLflow's ``delete_dataset``. Evaluation runs over it keep their traces and scores."""
    services.delete_dataset(dataset=find_dataset(request, dataset_id))
    return Status(204, None)


class DeleteRecordsIn(Schema):
    dataset_record_ids: list[str] = Field(description="The records' dataset_record_id.")


class DeleteRecordsOut(Schema):
    deleted: int = Field(description="How many of them the dataset had.")


@datasets_router.delete(
    "/{dataset_id}/records", response={200: DeleteRecordsOut, **ERROR_RESPONSES}, summary="Delete some records"
)
def delete_records(request: HttpRequest, dataset_id: str, payload: DeleteRecordsIn) -> dict[str, Any]:
    """MLflow's ``EvaluationDataset.delete_records``: ids the dataset does not have are not counted."""
    dataset = find_dataset(request, dataset_id)
    if len(payload.dataset_record_ids) > MAX_RECORDS_PER_MERGE:
        raise invalid(
            f"dataset_record_ids has {len(payload.dataset_record_ids):,} ids; "
            f"at most {MAX_RECORDS_PER_MERGE:,} per request."
        )
    ids = []
    for record_id in payload.dataset_record_ids:
        if not (record_id.isascii() and record_id.isdigit() and len(record_id) < 19):
            raise invalid(f"dataset_record_ids: {record_id[:100]!r} is not a record id.")
        ids.append(int(record_id))
    return {"deleted": services.delete_records(dataset=dataset, record_ids=ids)}


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


# ================================================================ evaluation runs (/api/evaluation-runs/)

runs_router = Router(tags=["evaluation runs"])
RUN_ORDER = Ordering((SortKey("created_at", True, "datetime"), SortKey("id", True, "int")))


class JobProgressOut(Schema):
    done: int
    total: int
    percent: int


class RunOut(Schema):
    run_id: str
    name: str
    status: str
    source_kind: str
    source_label: str
    dataset_id: str | None = None
    experiment_id: str | None = None
    session_id: str | None = None
    filter_string: str
    scorers: list[str]
    app_version: str
    progress: JobProgressOut
    metrics: dict[str, Any] = Field(description="MLflow-style aggregates: '<scorer>/mean' and friends.")
    error: str
    started_by: str | None = None
    created_time: str
    start_time: str | None = None
    end_time: str | None = None


class RunsOut(Schema):
    runs: list[RunOut]
    next_page_token: str | None = None


class RunIn(Schema):
    """What the run-start page takes: one of dataset, session or experiment (with a filter string)."""

    scorers: list[str] = Field(min_length=1, description="Scorer (or judge) names from the catalogue.")
    dataset: str | None = Field(None, max_length=services.NAME_MAX_LENGTH, description="A dataset's id or name.")
    session: str | None = Field(None, max_length=200, description="A labeling session you manage, by name.")
    experiment: str | None = Field(None, max_length=500, description="An experiment's name (with filter_string).")
    filter_string: str = Field("", max_length=5000)
    name: str = Field("", max_length=200)
    app_version: str | None = Field(None, max_length=255, description="Empty: the traces' model id when shared.")
    confirmed: bool = Field(False, description="Needed for a judge run over more than JUDGE_CONFIRM_OVER traces.")


def _time(value: Any) -> str | None:
    return value.isoformat() if value else None


def run_out(run: Any) -> dict[str, Any]:
    return {
        "run_id": run.run_id,
        "name": run.name,
        "status": run.status,
        "source_kind": run.source_kind,
        "source_label": run.source_label,
        "dataset_id": str(run.dataset_id) if run.dataset_id else None,
        "experiment_id": str(run.experiment_id) if run.experiment_id else None,
        "session_id": str(run.session_id) if run.session_id else None,
        "filter_string": run.filter_string,
        "scorers": run.scorer_names,
        "app_version": run.app_version,
        "progress": {"done": run.progress_done, "total": run.progress_total, "percent": run.percent_done},
        "metrics": run.metrics or {},
        "error": run.error,
        "started_by": run.started_by.get_username() if run.started_by else None,
        "created_time": run.created_at.isoformat(),
        "start_time": _time(run.started_at),
        "end_time": _time(run.finished_at),
    }


def _runs(request: HttpRequest) -> Any:
    from .access import can_see_runs, visible_runs

    if not can_see_runs(request.user):
        if request.method in ("GET", "HEAD"):
            raise not_found("No such evaluation run.")
        raise denied("Only admins and session leads may start or cancel evaluation runs.")
    return visible_runs(request.user).select_related("started_by")


def find_run(request: HttpRequest, run_id: str) -> Any:
    run = None
    if len(run_id) <= 64 and "\x00" not in run_id:
        run = _runs(request).filter(run_id=run_id).first()
    if run is None:
        raise not_found(f"Evaluation run {run_id[:100]!r} does not exist.")
    return run


@runs_router.get("/", response={200: RunsOut, **ERROR_RESPONSES})
def list_runs(
    request: HttpRequest,
    dataset: str | None = None,
    experiment: str | None = None,
    status: str | None = None,
    max_results: int | None = None,
    page_token: str | None = None,
) -> dict[str, Any]:
    """The runs the token's owner may see (admins and session leads), newest first; filter by
    ``dataset`` (id or name), ``experiment`` (id or name) or ``status``."""
    from .models import RunStatus

    runs = _runs(request)
    if dataset is not None:
        runs = (
            runs.filter(dataset_id=int(dataset))
            if dataset.isdigit() and len(dataset) < 19
            else runs.filter(dataset__name=dataset)
        )
    if experiment is not None:
        if experiment.isdigit() and len(experiment) < 19:
            runs = runs.filter(experiment_id=int(experiment))
        else:
            runs = runs.filter(experiment__name=experiment)
    if status is not None:
        if status not in RunStatus.values:
            raise invalid(f"status must be one of {', '.join(RunStatus.values)}.")
        runs = runs.filter(status=status)
    page = paginate(runs, RUN_ORDER, page_token=page_token, max_results=max_results)
    return {"runs": [run_out(r) for r in page.rows], "next_page_token": page.next_page_token}


@runs_router.get("/{run_id}", response={200: RunOut, **ERROR_RESPONSES})
def get_run(request: HttpRequest, run_id: str) -> dict[str, Any]:
    """A run with its status, progress and aggregate metrics."""
    return run_out(find_run(request, run_id))


@runs_router.post("/", response={202: RunOut, **ERROR_RESPONSES}, summary="Start an evaluation run")
def start_run(request: HttpRequest, payload: RunIn) -> Status[dict[str, Any]]:
    """Queue a run, as the run-start page does (admins and session leads; a session must be one you manage).
    202: the background worker scores it; poll ``GET /{run_id}`` for progress."""
    from labeling.access import managed_sessions

    from .access import can_start_runs
    from .runs import RunInputError, start_evaluation_run

    if not can_start_runs(request.user):
        _runs(request)  # 401/403 as the pages
        raise denied("Only admins and session leads may start evaluation runs.")
    chosen = [s for s in (payload.dataset, payload.session, payload.experiment) if s]
    if len(chosen) != 1:
        raise invalid("Give exactly one of dataset, session or experiment to run on.")
    if payload.session and not managed_sessions(request.user).filter(name=payload.session).exists():
        raise not_found(f"Labeling session {payload.session[:100]!r} does not exist.")
    dataset = None
    if payload.dataset:
        dataset = find_dataset(request, payload.dataset).name if is_admin(request.user) else payload.dataset
    arguments: dict[str, Any] = {"dataset": dataset, "session": payload.session}
    if payload.experiment:
        arguments.update(experiment=payload.experiment, filter_string=check_text(payload.filter_string, what="filter"))
    try:
        run = start_evaluation_run(
            scorer_names=list(payload.scorers),
            name=check_text(payload.name.strip(), what="name", max_length=200),
            app_version=(payload.app_version or "").strip() or None,
            started_by=request.user,
            enqueue=True,
            confirmed=payload.confirmed,
            **arguments,
        )
    except RunInputError as error:
        raise invalid(str(error)) from None
    return Status(202, run_out(find_run(request, run.run_id)))


@runs_router.post("/{run_id}/cancel", response={200: RunOut, **ERROR_RESPONSES}, summary="Cancel an evaluation run")
def cancel_run(request: HttpRequest, run_id: str) -> dict[str, Any]:
    """Stop a queued or running run after its current batch (400 when it has already ended)."""
    from .access import can_cancel
    from .runs import cancel_evaluation_run

    run = find_run(request, run_id)
    if not can_cancel(request.user, run):
        raise denied("Only admins, the lead who started the run and its session's leads may cancel it.")
    if not cancel_evaluation_run(run=run):
        raise invalid(f"The run has already ended ({run.status}): nothing to cancel.")
    return run_out(find_run(request, run_id))


# ================================================================ registered scorers (/api/experiments/{id}/scorers/)

scorers_router = Router(tags=["registered scorers"])


class ScorerVersionOut(Schema):
    version: int
    action: str
    status: str
    scorer_name: str
    sample_rate: float
    filter_string: str
    changed_by: str | None = None
    create_time: str


class RegisteredScorerOut(Schema):
    name: str
    scorer_name: str
    experiment_id: str
    status: str
    sample_rate: float
    filter_string: str
    version: int
    created_by: str | None = None
    create_time: str
    last_update_time: str
    versions: list[ScorerVersionOut] = Field(description="Every change, oldest first.")


class RegisteredScorersOut(Schema):
    scorers: list[RegisteredScorerOut]


class RegisterIn(Schema):
    name: str = Field(min_length=1, max_length=100, description="Unique in the experiment; the verdicts' name.")
    scorer_name: str = Field(min_length=1, max_length=200, description="The catalogue's scorer or judge.")
    sample_rate: float = Field(0.0, description="0 to 1; above 0 starts sampling at once.")
    filter_string: str = Field("", max_length=5000)


class StartIn(Schema):
    sample_rate: float = Field(description="Above 0, at most 1.")
    filter_string: str | None = Field(None, max_length=5000)


class UpdateIn(Schema):
    sample_rate: float | None = Field(None, description="0 stops an active scorer; above 0 starts a stopped one.")
    filter_string: str | None = Field(None, max_length=5000)


def _monitored(request: HttpRequest, experiment_id: str) -> Any:
    """The (live-traffic) experiment when the owner may watch monitoring (admins, leads); else 404.
    ``experiment_id`` is any reference ``experiment_ids`` takes: our id, ``reviewapp-<id>``, the MLflow
    experiment id or the name (our id wins when two experiments answer)."""
    from traces.api import experiment_pk, find_experiments
    from traces.models import ExperimentKind

    from .monitoring.access import can_see_monitoring

    if not can_see_monitoring(request.user):
        raise not_found(f"Experiment {experiment_id[:100]!r} does not exist.")
    live = [e for e in find_experiments(request, [experiment_id]) if e.kind == ExperimentKind.TRACES]
    live.sort(key=lambda e: e.pk != experiment_pk(experiment_id))
    if not live:
        raise not_found(f"Experiment {experiment_id[:100]!r} does not exist.")
    return live[0]


def _require_monitoring_change(request: HttpRequest) -> None:
    from .monitoring.access import can_change_monitoring

    if not can_change_monitoring(request.user):
        raise denied("Only admins may change what production traffic is scored.")


def _username(user: Any) -> str | None:
    return user.get_username() if user else None


def scorer_out(registration: Any) -> dict[str, Any]:
    versions = sorted(registration.versions.all(), key=lambda v: v.version)
    return {
        "name": registration.name,
        "scorer_name": registration.scorer_name,
        "experiment_id": str(registration.experiment_id),
        "status": registration.status,
        "sample_rate": registration.sample_rate,
        "filter_string": registration.filter_string,
        "version": registration.version,
        "created_by": _username(registration.created_by),
        "create_time": registration.created_at.isoformat(),
        "last_update_time": registration.updated_at.isoformat(),
        "versions": [
            {
                "version": v.version,
                "action": v.action,
                "status": v.status,
                "scorer_name": v.scorer_name,
                "sample_rate": v.sample_rate,
                "filter_string": v.filter_string,
                "changed_by": _username(v.changed_by),
                "create_time": v.created_at.isoformat(),
            }
            for v in versions
        ],
    }


def _registrations(experiment: Any) -> Any:
    from django.db.models import Prefetch

    from .monitoring.models import RegisteredScorer, RegisteredScorerVersion

    versions = RegisteredScorerVersion.objects.select_related("changed_by")
    return (
        RegisteredScorer.objects.filter(experiment=experiment)
        .live()
        .select_related("created_by")
        .prefetch_related(Prefetch("versions", queryset=versions))
        .order_by("name")
    )


def _registration(experiment: Any, name: str) -> Any:
    found = _registrations(experiment).filter(name=name[:100]).first()
    if found is None:
        raise not_found(f"Experiment {experiment.name!r} has no scorer registered as {name[:100]!r}.")
    return found


def _registration_to_change(request: HttpRequest, experiment_id: str, name: str) -> tuple[Any, Any]:
    """The experiment and its registration ``name`` (404s first, as reads give them), if the token may change it."""
    experiment = _monitored(request, experiment_id)
    registration = _registration(experiment, name)
    _require_monitoring_change(request)
    return experiment, registration


def _registration_call(change: Any, where: Any, name: str | None = None, /, **kwargs: Any) -> dict[str, Any]:
    from .monitoring.registrations import RegistrationError, RegistrationExists

    try:
        registration = change(**kwargs)
    except RegistrationExists as error:
        raise ApiError(ErrorCode.RESOURCE_ALREADY_EXISTS, str(error)) from None
    except RegistrationError as error:
        raise invalid(str(error)) from None
    return scorer_out(_registration(where, name or registration.name))


SCORER_RESPONSES: dict[int, Any] = {200: RegisteredScorerOut, **ERROR_RESPONSES}


@scorers_router.get("/{experiment_id}/scorers/", response={200: RegisteredScorersOut, **ERROR_RESPONSES})
def list_scorers(request: HttpRequest, experiment_id: str) -> dict[str, Any]:
    """The scorers registered on the experiment (not deleted), each with its versions; admins and leads."""
    return {"scorers": [scorer_out(r) for r in _registrations(_monitored(request, experiment_id))]}


@scorers_router.get("/{experiment_id}/scorers/{name}", response=SCORER_RESPONSES)
def get_scorer(request: HttpRequest, experiment_id: str, name: str) -> dict[str, Any]:
    return scorer_out(_registration(_monitored(request, experiment_id), name))


@scorers_router.post(
    "/{experiment_id}/scorers/",
    response={201: RegisteredScorerOut, 409: ErrorOut, **ERROR_RESPONSES},
    summary="Register a scorer on an experiment",
    operation_id="evaluation_api_register_scorer",
)
def register(request: HttpRequest, experiment_id: str, payload: RegisterIn) -> Status[dict[str, Any]]:
    """MLflow's ``scorer.register()`` (then ``.start()`` when sample_rate > 0); admins only."""
    from .monitoring.registrations import register_scorer

    experiment = _monitored(request, experiment_id)
    _require_monitoring_change(request)
    out = _registration_call(
        register_scorer,
        experiment,
        experiment=experiment,
        name=payload.name,
        scorer_name=payload.scorer_name,
        sample_rate=payload.sample_rate,
        filter_string=check_text(payload.filter_string, what="filter_string"),
        by=request.user,
    )
    return Status(201, out)


@scorers_router.post(
    "/{experiment_id}/scorers/{name}/start",
    response=SCORER_RESPONSES,
    summary="Start sampling a registered scorer",
    operation_id="evaluation_api_start_scorer",
)
def start(request: HttpRequest, experiment_id: str, name: str, payload: StartIn) -> dict[str, Any]:
    """MLflow's ``scorer.start(sampling_config=…)``; admins only."""
    from .monitoring.registrations import start_scorer

    experiment, registration = _registration_to_change(request, experiment_id, name)
    return _registration_call(
        start_scorer,
        experiment,
        name,
        registration=registration,
        sample_rate=payload.sample_rate,
        filter_string=payload.filter_string,
        by=request.user,
    )


@scorers_router.post(
    "/{experiment_id}/scorers/{name}/stop",
    response=SCORER_RESPONSES,
    summary="Stop sampling a registered scorer",
    operation_id="evaluation_api_stop_scorer",
)
def stop(request: HttpRequest, experiment_id: str, name: str) -> dict[str, Any]:
    """MLflow's ``scorer.stop()``: sample nothing more (its verdicts stay); admins only."""
    from .monitoring.registrations import stop_scorer

    experiment, registration = _registration_to_change(request, experiment_id, name)
    return _registration_call(stop_scorer, experiment, name, registration=registration, by=request.user)


@scorers_router.patch(
    "/{experiment_id}/scorers/{name}",
    response=SCORER_RESPONSES,
    summary="Change a scorer's sample rate or filter",
    operation_id="evaluation_api_update_scorer",
)
def update(request: HttpRequest, experiment_id: str, name: str, payload: UpdateIn) -> dict[str, Any]:
    """MLflow's ``scorer.update(sampling_config=…)``: the rate (0 to 1) and/or the filter; admins only."""
    from .monitoring.registrations import update_scorer

    experiment, registration = _registration_to_change(request, experiment_id, name)
    return _registration_call(
        update_scorer,
        experiment,
        name,
        registration=registration,
        sample_rate=payload.sample_rate,
        filter_string=payload.filter_string,
        by=request.user,
    )


@scorers_router.delete(
    "/{experiment_id}/scorers/{name}",
    response={204: None, **ERROR_RESPONSES},
    summary="Delete a registered scorer",
    operation_id="evaluation_api_delete_scorer",
)
def delete(request: HttpRequest, experiment_id: str, name: str) -> Status[None]:
    """MLflow's ``delete_scorer``: the name is free again; verdicts and history stay. Admins only."""
    from .monitoring.registrations import RegistrationError, delete_scorer

    _, registration = _registration_to_change(request, experiment_id, name)
    try:
        delete_scorer(registration=registration, by=request.user)
    except RegistrationError as error:
        raise invalid(str(error)) from None
    return Status(204, None)


# ================================================================ backfills (/api/backfills/)

backfills_router = Router(tags=["backfills"])
BACKFILL_ORDER = Ordering((SortKey("created_at", True, "datetime"), SortKey("id", True, "int")))


class BackfillScorerIn(Schema):
    name: str = Field(min_length=1, max_length=100, description="A scorer registered on the experiment.")
    sample_rate: float | None = Field(None, description="0 to 1; empty: the registration's own rate.")


class BackfillIn(Schema):
    experiment_id: str = Field(max_length=255, description="The app's id, reviewapp-<id>, the MLflow id or the name.")
    scorers: list[BackfillScorerIn] = Field(min_length=1, max_length=20)
    start_time: datetime | None = Field(None, description="With a time zone; empty: the first trace.")
    end_time: datetime | None = Field(None, description="With a time zone; empty: now.")


class BackfillOut(Schema):
    job_id: str
    experiment_id: str
    status: str
    scorers: list[dict[str, Any]]
    start_time: str | None = None
    end_time: str | None = None
    progress: JobProgressOut
    planned: bool = Field(description="All its work is queued: progress.total is final.")
    rate_per_second: float | None = Field(None, description="Verdicts per second lately (single job reads only).")
    eta_seconds: float | None = Field(None, description="Seconds left at that rate (single job reads only).")
    error: str
    created_by: str | None = None
    create_time: str
    started_time: str | None = None
    finished_time: str | None = None


class BackfillsOut(Schema):
    backfills: list[BackfillOut]
    next_page_token: str | None = None


def backfill_out(job: Any, *, eta: bool = False) -> dict[str, Any]:
    from .monitoring.backfill import rate_and_eta

    rate, seconds = rate_and_eta(job) if eta else (None, None)
    return {
        "job_id": job.job_id,
        "experiment_id": str(job.experiment_id),
        "status": job.status,
        "scorers": job.scorers,
        "start_time": _time(job.start_time),
        "end_time": _time(job.end_time),
        "progress": {"done": job.progress_done, "total": job.progress_total, "percent": job.percent_done},
        "planned": job.planned,
        "rate_per_second": rate,
        "eta_seconds": seconds,
        "error": job.error,
        "created_by": _username(job.created_by),
        "create_time": job.created_at.isoformat(),
        "started_time": _time(job.started_at),
        "finished_time": _time(job.finished_at),
    }


def _jobs(request: HttpRequest) -> Any:
    from traces.models import ExperimentKind

    from .monitoring.access import can_see_monitoring
    from .monitoring.models import BackfillJob

    if not can_see_monitoring(request.user):
        if request.method in ("GET", "HEAD"):
            raise not_found("No such backfill.")
        raise denied("Only admins may start or cancel backfills.")
    return BackfillJob.objects.filter(experiment__kind=ExperimentKind.TRACES).select_related("created_by")


def find_job(request: HttpRequest, job_id: str) -> Any:
    job = _jobs(request).filter(job_id=job_id[:32]).first() if "\x00" not in job_id else None
    if job is None:
        raise not_found(f"Backfill {job_id[:100]!r} does not exist.")
    return job


@backfills_router.get("/", response={200: BackfillsOut, **ERROR_RESPONSES})
def list_backfills(
    request: HttpRequest,
    experiment_id: str | None = None,
    max_results: int | None = None,
    page_token: str | None = None,
) -> dict[str, Any]:
    """Backfill jobs, newest first (admins and leads); ``experiment_id`` narrows to one experiment."""
    jobs = _jobs(request)
    if experiment_id is not None:
        jobs = jobs.filter(experiment=_monitored(request, experiment_id))
    page = paginate(jobs, BACKFILL_ORDER, page_token=page_token, max_results=max_results)
    return {"backfills": [backfill_out(j) for j in page.rows], "next_page_token": page.next_page_token}


@backfills_router.get("/{job_id}", response={200: BackfillOut, **ERROR_RESPONSES})
def get_backfill(request: HttpRequest, job_id: str) -> dict[str, Any]:
    """A job with its progress, rate and ETA."""
    return backfill_out(find_job(request, job_id), eta=True)


@backfills_router.post("/", response={202: BackfillOut, **ERROR_RESPONSES})
def create_backfill(request: HttpRequest, payload: BackfillIn) -> Status[dict[str, Any]]:
    """MLflow's ``backfill_scorers``: score the experiment's past traces in a time range; admins only."""
    from .monitoring.backfill import BackfillError, start_backfill

    _jobs(request)
    experiment = _monitored(request, payload.experiment_id)
    _require_monitoring_change(request)
    try:
        job = start_backfill(
            experiment=experiment,
            scorers=[(s.name, s.sample_rate) for s in payload.scorers],
            start=payload.start_time,
            end=payload.end_time,
            by=request.user,
        )
    except BackfillError as error:
        raise invalid(str(error)) from None
    return Status(202, backfill_out(find_job(request, job.job_id), eta=True))


@backfills_router.post(
    "/{job_id}/cancel",
    response={200: BackfillOut, **ERROR_RESPONSES},
    summary="Cancel a backfill",
    operation_id="evaluation_api_cancel_backfill",
)
def cancel(request: HttpRequest, job_id: str) -> dict[str, Any]:
    """Stop the job: its queued work is dropped, what was scored stays (400 when it had ended). Admins only."""
    from .monitoring.backfill import cancel_backfill

    job = find_job(request, job_id)
    _require_monitoring_change(request)
    if not cancel_backfill(job=job):
        raise invalid(f"The backfill has already ended ({job.status}): nothing to cancel.")
    return backfill_out(find_job(request, job_id), eta=True)
