"""The labeling part of the JSON API: label schemas (``/api/label-schemas/``) and labeling sessions
(``/api/labeling-sessions/``), in the vocabulary of ``mlflow.genai.label_schemas`` and ``mlflow.genai.labeling``.

Access is the pages': label schema writes are admin-only (a 403), reads are open to every token
(reviewers see the questions on the review screen). A session is read by whoever may open its review
screen (admins, its leads, its reviewers; anyone else gets a 404) and changed by whoever manages it
(admins and its leads; its reviewers get a 403). Creating a session is admin-only, as on the pages.
"""

from __future__ import annotations

from typing import Any, Literal

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db.models import Count, F, Prefetch, Q
from django.http import HttpRequest
from ninja import Field, Router, Schema, Status

from traces.access import visible_traces
from traces.api_support import (
    ERROR_RESPONSES,
    ApiError,
    ErrorCode,
    ErrorOut,
    check_json_value,
    check_text,
    denied,
    invalid,
    not_found,
    paginate,
)
from traces.mlflow_shape import mlflow_experiment_id
from traces.pagination import Ordering, SortKey
from traces.search import FilterError, apply_filter, parse_filter

from . import services
from .access import can_manage, is_admin, reviewable_sessions, visible_items
from .copies import session_pk_from_run_id, session_run_id
from .models import CONFIG_FIELDS, INPUT_FIELDS, LabelingSession, LabelSchema, SessionSchema

schemas_router = Router(tags=["label schemas"])
sessions_router = Router(tags=["labeling sessions"])

NAME_ORDER = Ordering((SortKey("name", False, "str"), SortKey("id", False, "int")))
SESSION_ORDER = Ordering((SortKey("created_at", True, "datetime"), SortKey("id", True, "int")))
ITEM_ORDER = Ordering((SortKey("position", False, "int"), SortKey("id", False, "int")))
MAX_NAMES = 1000
MAX_TRACE_IDS = 10_000
RESPONSES_409 = {409: ErrorOut, **ERROR_RESPONSES}


def _validation_message(error: ValidationError) -> str:
    if hasattr(error, "error_dict"):
        return "; ".join(f"{field}: {' '.join(messages)}" for field, messages in error.message_dict.items())
    return " ".join(error.messages)


def _refused(error: ValidationError) -> ApiError:
    return invalid(_validation_message(error))


# ---------------------------------------------------------------- label schemas


class InputIn(Schema):
    """The answer kind and its settings (``mlflow.genai.label_schemas.Input*``)."""

    type: Literal["categorical", "categorical_list", "text", "text_list", "numeric", "pass_fail"]
    options: list[str] | None = None
    max_length: int | None = None
    max_count: int | None = None
    min_value: float | None = None
    max_value: float | None = None
    integer: bool | None = None
    pass_label: str | None = None
    fail_label: str | None = None


class LabelSchemaIn(Schema):
    name: str = Field(min_length=1, max_length=100)
    type: Literal["feedback", "expectation"] = "feedback"
    title: str = Field(min_length=1, max_length=255)
    input: InputIn
    instruction: str | None = None
    enable_comment: bool = False
    overwrite: bool = False


class LabelSchemaPatch(Schema):
    name: str | None = Field(None, min_length=1, max_length=100)
    type: Literal["feedback", "expectation"] | None = None
    title: str | None = Field(None, min_length=1, max_length=255)
    input: InputIn | None = None
    instruction: str | None = None
    enable_comment: bool | None = None


class LabelSchemaOut(Schema):
    name: str
    type: str
    title: str
    instruction: str
    enable_comment: bool
    input: dict[str, Any]
    version: int
    builtin: bool
    created_at: str
    updated_at: str


class LabelSchemasOut(Schema):
    label_schemas: list[LabelSchemaOut]
    next_page_token: str | None = None


def schema_out(schema: LabelSchema) -> dict[str, Any]:
    return {
        "name": schema.name,
        "type": schema.type,
        "title": schema.title,
        "instruction": schema.instruction,
        "enable_comment": schema.enable_comment,
        "input": {"type": schema.input_type, **schema.config()},
        "version": schema.version,
        "builtin": schema.builtin,
        "created_at": schema.created_at.isoformat(),
        "updated_at": schema.updated_at.isoformat(),
    }


def _require_admin(request: HttpRequest, what: str) -> None:
    if not is_admin(request.user):
        raise denied(f"Only admins may {what}.")


def _get_schema(name: str) -> LabelSchema:
    schema = LabelSchema.objects.filter(name=name).first() if len(name) <= 100 and "\x00" not in name else None
    if schema is None:
        raise not_found(f"Label schema {name[:100]!r} does not exist.")
    return schema


def _apply_input(schema: LabelSchema, spec: InputIn) -> None:
    """The input kind and its settings; a setting another kind uses is a 400 naming it."""
    given = spec.model_dump(exclude_unset=True, exclude={"type"})
    allowed = INPUT_FIELDS[spec.type]
    extra = [field for field in given if field not in allowed]
    if extra:
        raise invalid(f"input.{extra[0]}: a {spec.type} input has no {extra[0]} (it takes {', '.join(allowed)}).")
    schema.input_type = spec.type
    for field in CONFIG_FIELDS:
        default = LabelSchema._meta.get_field(field).get_default()
        value = given.get(field, default)
        setattr(schema, field, default if value is None else value)


def _save_schema(request: HttpRequest, schema: LabelSchema) -> LabelSchema:
    """The form's checks (the model's fields) and the service's (the settings), then the save."""
    for field in ("name", "title", "instruction", "pass_label", "fail_label"):
        check_text(str(getattr(schema, field)), what=field)
    for option in schema.options:
        check_text(option, what="input.options")
    try:
        schema.full_clean(exclude=["version", "builtin"], validate_unique=False)
        return services.save_label_schema(schema=schema, changed_by=request.user)
    except ValidationError as exc:
        raise _refused(exc) from None


@schemas_router.post("/", response={201: LabelSchemaOut, **RESPONSES_409}, summary="Create a label schema")
def create_label_schema(request: HttpRequest, payload: LabelSchemaIn) -> Status[dict[str, Any]]:
    """``mlflow.genai.label_schemas.create_label_schema``; ``overwrite`` edits an existing one (a new version)."""
    _require_admin(request, "create label schemas")
    schema = LabelSchema.objects.filter(name=payload.name).first()
    if schema is not None and not payload.overwrite:
        raise ApiError(
            ErrorCode.RESOURCE_ALREADY_EXISTS,
            f"Label schema {payload.name!r} already exists; pass overwrite=true to replace it.",
        )
    schema = schema or LabelSchema()
    schema.name, schema.type, schema.title = payload.name, payload.type, payload.title
    schema.instruction = payload.instruction or ""
    schema.enable_comment = payload.enable_comment
    _apply_input(schema, payload.input)
    return Status(201, schema_out(_save_schema(request, schema)))


@schemas_router.get("/", response={200: LabelSchemasOut, **ERROR_RESPONSES}, exclude_unset=True)
def list_label_schemas(
    request: HttpRequest, max_results: int | None = None, page_token: str | None = None
) -> dict[str, Any]:
    page = paginate(LabelSchema.objects.all(), NAME_ORDER, page_token=page_token, max_results=max_results)
    result: dict[str, Any] = {"label_schemas": [schema_out(s) for s in page.rows]}
    if page.next_page_token:
        result["next_page_token"] = page.next_page_token
    return result


@schemas_router.get("/{name}", response={200: LabelSchemaOut, **ERROR_RESPONSES})
def get_label_schema(request: HttpRequest, name: str) -> dict[str, Any]:
    return schema_out(_get_schema(name))


@schemas_router.patch("/{name}", response={200: LabelSchemaOut, **ERROR_RESPONSES})
def update_label_schema(request: HttpRequest, name: str, payload: LabelSchemaPatch) -> dict[str, Any]:
    """Change only the fields sent (a new version when anything changed)."""
    _require_admin(request, "change label schemas")
    schema = _get_schema(name)
    for field in ("name", "type", "title", "instruction", "enable_comment"):
        value = getattr(payload, field)
        if value is not None:
            setattr(schema, field, value)
    if payload.input is not None:
        _apply_input(schema, payload.input)
    return schema_out(_save_schema(request, schema))


@schemas_router.delete("/{name}", response={204: None, **ERROR_RESPONSES})
def delete_label_schema(request: HttpRequest, name: str) -> Status[None]:
    """Refused (400) while a session asks the question."""
    _require_admin(request, "delete label schemas")
    schema = _get_schema(name)
    try:
        services.delete_label_schema(schema=schema)
    except ValidationError as exc:
        raise _refused(exc) from None
    return Status(204, None)


# ---------------------------------------------------------------- labeling sessions


class SessionIn(Schema):
    name: str = Field(min_length=1, max_length=200)
    assigned_users: list[str] = Field(default_factory=list, description="User names of the reviewers.")
    label_schemas: list[str] = Field(default_factory=list, description="Label schema names, in the order asked.")
    instructions: str = ""
    reviewers_per_item: int = 1
    lease_minutes: int = 10
    blind: bool = False
    assignment_mode: Literal["pool", "assigned"] = "pool"
    leads: list[str] = Field(default_factory=list, description="User names of the session leads.")


class SessionProgressOut(Schema):
    done: int
    total: int


class SessionOut(Schema):
    id: int
    name: str
    status: str
    url: str
    mlflow_run_id: str
    experiment_id: str
    assigned_users: list[str]
    leads: list[str]
    label_schemas: list[str]
    instructions: str
    reviewers_per_item: int
    lease_minutes: int
    blind: bool
    assignment_mode: str
    item_count: int
    progress: SessionProgressOut
    created_at: str
    updated_at: str


class SessionsOut(Schema):
    labeling_sessions: list[SessionOut]
    next_page_token: str | None = None


class AddTracesIn(Schema):
    trace_ids: list[str] | None = None
    filter_string: str | None = None
    experiment_ids: list[str] = Field(default_factory=list)
    model_id: str | None = None
    records: list[dict[str, Any]] | None = Field(
        None, description='[{"trace": <Trace.to_dict()>}]: traces the app lacks are imported first (admins).'
    )


class AddTracesOut(Schema):
    added: int
    already_there: int
    imported: int = 0


class AssignedUsersIn(Schema):
    assigned_users: list[str]


class ItemOut(Schema):
    id: int
    position: int
    source_trace_id: str
    trace_id: str
    submitted_count: int
    needed: int
    done: bool


class ItemsOut(Schema):
    items: list[ItemOut]
    next_page_token: str | None = None


class SyncIn(Schema):
    dataset_name: str | None = None
    dataset_id: int | None = None
    policy: Literal["latest", "consensus", "adjudicated"] = "latest"
    include_feedback: bool = False


class SyncOut(Schema):
    dataset_id: int
    dataset_name: str
    records_merged: int
    ties_left_out: list[str] = Field(
        default_factory=list, description="Answers the consensus policy left out because reviewers split evenly."
    )


def _sessions() -> Any:
    return (
        LabelingSession.objects.select_related("experiment")
        .annotate(
            item_count=Count("items", distinct=True),
            done_items=Count("items", filter=Q(items__submitted_count__gte=F("reviewers_per_item")), distinct=True),
        )
        .prefetch_related(
            Prefetch("reviewers", queryset=User.objects.order_by("username")),
            Prefetch("leads", queryset=User.objects.order_by("username")),
            Prefetch("schema_links", queryset=SessionSchema.objects.select_related("schema").order_by("position")),
        )
    )


def session_out(request: HttpRequest, session: LabelingSession) -> dict[str, Any]:
    return {
        "id": session.pk,
        "name": session.name,
        "status": session.status,
        "url": request.build_absolute_uri(session.get_review_url()),
        "mlflow_run_id": session_run_id(session.pk),
        "experiment_id": mlflow_experiment_id(session.experiment),
        "assigned_users": [u.username for u in session.reviewers.all()],
        "leads": [u.username for u in session.leads.all()],
        "label_schemas": [link.schema.name for link in session.schema_links.all()],
        "instructions": session.instructions,
        "reviewers_per_item": session.reviewers_per_item,
        "lease_minutes": session.lease_minutes,
        "blind": session.blind,
        "assignment_mode": session.assignment_mode,
        "item_count": session.item_count,  # type: ignore[attr-defined]
        "progress": {"done": session.done_items, "total": session.item_count},  # type: ignore[attr-defined]
        "created_at": session.created_at.isoformat(),
        "updated_at": session.updated_at.isoformat(),
    }


def _readable_session(request: HttpRequest, session_id: int) -> LabelingSession:
    """The session if its review screen is open to the token's owner; else a 404."""
    ids = reviewable_sessions(request.user).filter(pk=session_id).values("pk")
    session = _sessions().filter(pk__in=ids).first() if abs(session_id) < 2**63 else None
    if session is None:
        raise not_found(f"Labeling session {session_id} does not exist.")
    return session


def _managed_session(request: HttpRequest, session_id: int) -> LabelingSession:
    session = _readable_session(request, session_id)
    if not can_manage(request.user, session):
        raise denied("Only admins and this session's leads may change it.")
    return session


def _users(usernames: list[str], what: str) -> list[User]:
    if len(usernames) > MAX_NAMES:
        raise invalid(f"{what} has {len(usernames)} names; at most {MAX_NAMES} are accepted.")
    wanted = list(dict.fromkeys(check_text(name, what=what, max_length=150) for name in usernames))
    found = {u.username: u for u in User.objects.filter(username__in=wanted, is_active=True)}
    for name in wanted:
        if name not in found:
            raise invalid(f"{what}: there is no user {name[:100]!r}.")
    return [found[name] for name in wanted]


def _schemas(names: list[str]) -> list[LabelSchema]:
    if len(names) > MAX_NAMES:
        raise invalid(f"label_schemas has {len(names)} names; at most {MAX_NAMES} are accepted.")
    wanted = list(dict.fromkeys(check_text(name, what="label_schemas", max_length=100) for name in names))
    found = {s.name: s for s in LabelSchema.objects.filter(name__in=wanted)}
    for name in wanted:
        if name not in found:
            raise invalid(f"label_schemas: there is no label schema {name[:100]!r}.")
    return [found[name] for name in wanted]


@sessions_router.post("/", response={201: SessionOut, **ERROR_RESPONSES}, summary="Create a labeling session")
def create_labeling_session(request: HttpRequest, payload: SessionIn) -> Status[dict[str, Any]]:
    """``mlflow.genai.labeling.create_labeling_session``."""
    _require_admin(request, "create labeling sessions")
    check_text(payload.name, what="name", max_length=200)
    check_text(payload.instructions, what="instructions")
    reviewers = _users(payload.assigned_users, "assigned_users")
    leads = _users(payload.leads, "leads")
    schemas = _schemas(payload.label_schemas)
    from django.db import transaction

    try:
        with transaction.atomic():
            session = services.create_labeling_session(
                name=payload.name,
                schemas=schemas,
                reviewers=reviewers,
                instructions=payload.instructions,
                created_by=request.user,
            )
            services.update_review_settings(
                session=session,
                reviewers_per_item=payload.reviewers_per_item,
                lease_minutes=payload.lease_minutes,
                blind=payload.blind,
                assignment_mode=payload.assignment_mode,
                status=session.status,
            )
            services.set_session_leads(session=session, leads=leads)
    except ValidationError as exc:
        raise _refused(exc) from None
    return Status(201, session_out(request, _sessions().get(pk=session.pk)))


@sessions_router.get("/", response={200: SessionsOut, **ERROR_RESPONSES}, exclude_unset=True)
def list_labeling_sessions(
    request: HttpRequest,
    max_results: int | None = None,
    page_token: str | None = None,
    name: str | None = None,
    mlflow_run_id: str | None = None,
) -> dict[str, Any]:
    """``mlflow.genai.labeling.get_labeling_sessions``: the sessions the token's owner may open, newest first.
    ``name`` or ``mlflow_run_id`` narrows to the one session with it (``get_labeling_session(run_id)``)."""
    sessions = _sessions().filter(pk__in=reviewable_sessions(request.user).values("pk"))
    if name is not None:
        sessions = sessions.filter(name=check_text(name, what="name", max_length=200))
    if mlflow_run_id is not None:
        pk = session_pk_from_run_id(check_text(mlflow_run_id, what="mlflow_run_id", max_length=64))
        sessions = sessions.filter(pk=pk) if pk is not None else sessions.none()
    page = paginate(sessions, SESSION_ORDER, page_token=page_token, max_results=max_results)
    result: dict[str, Any] = {"labeling_sessions": [session_out(request, s) for s in page.rows]}
    if page.next_page_token:
        result["next_page_token"] = page.next_page_token
    return result


@sessions_router.get("/{int:session_id}", response={200: SessionOut, **ERROR_RESPONSES})
def get_labeling_session(request: HttpRequest, session_id: int) -> dict[str, Any]:
    return session_out(request, _readable_session(request, session_id))


@sessions_router.delete("/{int:session_id}", response={204: None, **ERROR_RESPONSES})
def delete_labeling_session(request: HttpRequest, session_id: int) -> Status[None]:
    """Deletes the session with its frozen copies and their answers (the original traces stay)."""
    session = _managed_session(request, session_id)
    services.delete_labeling_session(session=session)
    return Status(204, None)


@sessions_router.post("/{int:session_id}/traces", response={200: AddTracesOut, **ERROR_RESPONSES})
def add_traces(request: HttpRequest, session_id: int, payload: AddTracesIn) -> dict[str, Any]:
    """``LabelingSession.add_traces``: by trace ids, or every trace a search matches. All or nothing:
    an unknown id adds none."""
    session = _managed_session(request, session_id)
    modes = [payload.trace_ids, payload.filter_string, payload.records]
    if sum(mode is not None for mode in modes) != 1:
        raise invalid("Send exactly one of trace_ids, filter_string or records.")
    if payload.records is not None:
        return _add_records(request, session, payload.records)
    if payload.trace_ids is not None:
        if len(payload.trace_ids) > MAX_TRACE_IDS:
            raise invalid(f"trace_ids has {len(payload.trace_ids)} ids; at most {MAX_TRACE_IDS} are accepted.")
        ids = [check_text(t, what="trace_ids", max_length=64) for t in payload.trace_ids]
        readable = set(visible_traces(request.user).filter(trace_id__in=ids).values_list("trace_id", flat=True))
        selection = services.resolve_trace_selection(trace_ids=ids)
        unknown = selection.unknown or [t for t in ids if t not in readable]
        if unknown:
            raise not_found(f"trace_ids: trace {unknown[0][:100]!r} does not exist ({len(unknown)} unknown).")
        result = services.add_traces_to_session(session=session, trace_ids=ids)
    else:
        from traces.api import find_experiments

        traces = visible_traces(request.user).explorable()
        if payload.experiment_ids:
            traces = traces.filter(experiment__in=find_experiments(request, payload.experiment_ids))
        if payload.model_id is not None:
            traces = traces.filter(model_id=check_text(payload.model_id, what="model_id", max_length=255))
        try:
            traces = apply_filter(traces, parse_filter(payload.filter_string or ""))
        except FilterError as exc:
            raise invalid(f"filter_string: {exc}") from None
        result = services.add_traces_to_session(session=session, traces=traces)
    return {"added": result.added, "already_there": result.already_there}


def _check_one_dataset_reference(dataset_name: str | None, dataset_id: int | None) -> None:
    if (dataset_name is None) == (dataset_id is None):
        raise invalid("Send exactly one of dataset_name or dataset_id.")


def _dataset_by_id(dataset_id: int) -> Any:
    """The evaluation dataset with this id (the JSON body's ``dataset_id``), else a 404."""
    from evaluation.models import EvaluationDataset

    dataset = EvaluationDataset.objects.filter(pk=dataset_id).first() if dataset_id < 2**63 else None
    if dataset is None:
        raise not_found(f"Dataset {dataset_id} does not exist.")
    return dataset


class AddDatasetIn(Schema):
    dataset_name: str | None = Field(None, description="The dataset's name (or give dataset_id).")
    dataset_id: int | None = None
    record_ids: list[str] | None = Field(
        None, description="Only these records (their dataset_record_id); empty: every record."
    )


class AddDatasetOut(Schema):
    added: int
    already_there: int
    records_without_trace: int = Field(description="Records whose source trace is not stored here (not added).")


@sessions_router.post(
    "/{int:session_id}/datasets",
    response={200: AddDatasetOut, **ERROR_RESPONSES},
    summary="Add a dataset's records to a session",
)
def add_dataset(request: HttpRequest, session_id: int, payload: AddDatasetIn) -> dict[str, Any]:
    """``LabelingSession.add_dataset``: add the source traces of a dataset's records (all, or ``record_ids``).
    A record whose trace is not stored here cannot be reviewed and is counted, not added; an unknown
    record id adds nothing. Managers of the session who may read datasets (admins)."""
    from evaluation.api import find_dataset
    from evaluation.services import record_source_traces
    from traces.models import Trace

    session = _managed_session(request, session_id)
    _require_admin(request, "add a dataset's records to a session (datasets are theirs)")
    _check_one_dataset_reference(payload.dataset_name, payload.dataset_id)
    if payload.dataset_id is not None:
        dataset = _dataset_by_id(payload.dataset_id)
    else:
        dataset = find_dataset(request, check_text(payload.dataset_name or "", what="dataset_name", max_length=200))
    record_pks = None
    if payload.record_ids is not None:
        if len(payload.record_ids) > MAX_TRACE_IDS:
            raise invalid(f"record_ids has {len(payload.record_ids)} ids; at most {MAX_TRACE_IDS} are accepted.")
        wanted = list(dict.fromkeys(check_text(r, what="record_ids", max_length=20) for r in payload.record_ids))
        parsed = {r: int(r) for r in wanted if r.isascii() and r.isdigit() and len(r) < 19}
        record_pks = list(parsed.values())
        known = set(dataset.records.filter(pk__in=record_pks).values_list("pk", flat=True))
        unknown = [r for r in wanted if parsed.get(r) not in known]
        if unknown:
            raise not_found(f"record_ids: dataset {dataset.name!r} has no record {unknown[0][:100]!r}.")
        asked = len(wanted)
    else:
        asked = dataset.records.count()
        if asked > MAX_TRACE_IDS:
            raise invalid(
                f"Dataset {dataset.name!r} has {asked:,} records; add at most {MAX_TRACE_IDS:,} at a time "
                "(send record_ids in batches)."
            )
    targets = record_source_traces(dataset, record_pks)
    if not targets:
        raise invalid(f"Dataset {dataset.name!r} has no records whose source trace is stored here.")
    traces = Trace.objects.filter(pk__in=[trace_pk for trace_pk, _ in targets])
    result = services.add_traces_to_session(session=session, traces=traces)
    return {"added": result.added, "already_there": result.already_there, "records_without_trace": asked - len(targets)}


def _add_records(request: HttpRequest, session: LabelingSession, records: list[dict[str, Any]]) -> dict[str, Any]:
    """Trace JSON (``Trace.to_dict()``): the traces the app lacks are imported, then all are added.
    A trace the app already holds is used as stored (never overwritten). All or nothing."""
    from django.db import DatabaseError, transaction

    from traces.ingest.mlflow_json import parse_trace
    from traces.ingest.records import TraceFormatError
    from traces.ingest.store import store_traces
    from traces.models import Trace

    _require_admin(request, "import traces")
    if len(records) > MAX_TRACE_IDS:
        raise invalid(f"records has {len(records)} entries; at most {MAX_TRACE_IDS} are accepted.")
    check_json_value(records, what="records", max_bytes=50_000_000)
    parsed = []
    for index, record in enumerate(records):
        if not isinstance(record.get("trace"), dict):
            raise invalid(f"records[{index}]: expected an object with a 'trace' (MLflow's Trace.to_dict()).")
        try:
            parsed.append(parse_trace(record["trace"]))
        except TraceFormatError as exc:
            raise invalid(f"records[{index}]: {exc}") from None
    ids = list(dict.fromkeys(r.trace_id for r in parsed))
    held = set(Trace.objects.filter(trace_id__in=ids).values_list("trace_id", flat=True))
    new = [r for r in parsed if r.trace_id not in held]
    try:
        with transaction.atomic():
            stored = store_traces(new)
            result = services.add_traces_to_session(session=session, trace_ids=ids)
            if result.unknown:
                raise invalid(f"records: trace {result.unknown[0][:100]!r} cannot be added to a session.")
    except DatabaseError:
        raise invalid("records: the database refused these traces.") from None
    return {"added": result.added, "already_there": result.already_there, "imported": stored.created}


@sessions_router.put("/{int:session_id}/assigned-users", response={200: SessionOut, **ERROR_RESPONSES})
def set_assigned_users(request: HttpRequest, session_id: int, payload: AssignedUsersIn) -> dict[str, Any]:
    """``LabelingSession.set_assigned_users``: the session's reviewers become exactly these."""
    session = _managed_session(request, session_id)
    services.set_assigned_reviewers(session=session, reviewers=_users(payload.assigned_users, "assigned_users"))
    return session_out(request, _sessions().get(pk=session.pk))


@sessions_router.get("/{int:session_id}/items", response={200: ItemsOut, **ERROR_RESPONSES}, exclude_unset=True)
def list_items(
    request: HttpRequest, session_id: int, max_results: int | None = None, page_token: str | None = None
) -> dict[str, Any]:
    """The session's items (for a reviewer, the ones given to them), in review order."""
    session = _readable_session(request, session_id)
    items = visible_items(session, request.user).select_related("trace")
    page = paginate(items, ITEM_ORDER, page_token=page_token, max_results=max_results)
    rows = [
        {
            "id": item.pk,
            "position": item.position,
            "source_trace_id": item.source_trace_id_text,
            "trace_id": item.trace.trace_id,
            "submitted_count": item.submitted_count,
            "needed": session.reviewers_per_item,
            "done": item.submitted_count >= session.reviewers_per_item,
        }
        for item in page.rows
    ]
    result: dict[str, Any] = {"items": rows}
    if page.next_page_token:
        result["next_page_token"] = page.next_page_token
    return result


@sessions_router.post(
    "/{int:session_id}/sync", response={200: SyncOut, **ERROR_RESPONSES}, summary="Sync a session's labels to a dataset"
)
def sync(request: HttpRequest, session_id: int, payload: SyncIn) -> dict[str, Any]:
    """``LabelingSession.sync``: merge the session's labels into an evaluation dataset (admins, as on the page)."""
    from evaluation.exporters import ExportError
    from evaluation.services import save_session_labels

    session = _readable_session(request, session_id)
    _require_admin(request, "save a session's labels to a dataset")
    _check_one_dataset_reference(payload.dataset_name, payload.dataset_id)
    name = payload.dataset_name
    if payload.dataset_id is not None:
        name = _dataset_by_id(payload.dataset_id).name
    try:
        dataset, merged, stats = save_session_labels(
            sessions=[session],
            dataset_name=check_text(name or "", what="dataset_name", max_length=200),
            policy=payload.policy,
            include_feedback=payload.include_feedback,
            created_by=request.user,
        )
    except ValidationError as exc:
        raise _refused(exc) from None
    except ExportError as exc:
        raise invalid(str(exc)) from None
    return {
        "dataset_id": dataset.pk,
        "dataset_name": dataset.name,
        "records_merged": merged.created + merged.updated,
        "ties_left_out": stats.ties[:1000],
    }
