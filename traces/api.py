"""The traces part of the JSON API (mounted at ``/api/traces/`` by ``reviewapp.api``).

MLflow's trace calls: ``search_traces`` (filter string, order by, experiments, model id, run id),
a trace as ``Trace.to_dict()`` JSON, ``set_trace_tag`` / ``delete_trace_tag``, and assessments
(``log_feedback``, ``log_expectation``, ``override_feedback``, the list per trace). Thin like the
views: parse, check access, call one service, render with ``traces.mlflow_shape``.

Access is the pages': a token reads what ``readable_traces`` gives its owner (admins everything,
leads the explorer's traces and their sessions' copies, reviewers the copies of their items) and
anything else is a 404; it changes only what its owner may open in the explorer (a 403 for a
trace it may read but not change).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Literal

from django.db.models import Q
from django.http import HttpRequest
from ninja import Field, Query, Router, Schema, Status

from labeling.copies import session_pk_from_run_id

from .access import readable_experiments, readable_traces, visible_traces
from .api_support import (
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
from .mlflow_shape import assessment_dict, mlflow_experiment_id, trace_dicts, trace_info_dict
from .models import Assessment, AssessmentKind, AssessmentSource, Experiment, Span, Trace
from .pagination import InvalidCursor, Ordering, SortKey
from .search import FilterError, apply_filter, parse_filter, parse_order_by
from .search.translate import SOURCE_RUN_KEY
from .services import (
    AssessmentConflict,
    NewAssessment,
    delete_trace_tag,
    log_assessment,
    override_assessment,
    set_trace_tags,
)

router = Router(tags=["traces"])

MAX_EXPERIMENTS = 100
MAX_BATCH_GET = 100  # traces per batch-get request: a few MB of spans at most
MAX_ORDER_BY = 10
MAX_ID = 255
TAG_KEY_MAX = 250  # MLflow's limits for trace tags
TAG_VALUE_MAX = 8000
ASSESSMENT_ORDER = Ordering((SortKey("create_time", False, "datetime"), SortKey("id", False, "int")))


# ---------------------------------------------------------------- schemas (MLflow's JSON names)


class AssessmentSourceOut(Schema):
    source_type: str
    source_id: str


class FeedbackOut(Schema):
    value: Any = None
    error: dict[str, Any] | None = None


class ExpectationOut(Schema):
    value: Any = None


class AssessmentOut(Schema):
    """MLflow's ``Assessment.to_dictionary()``: exactly one of ``feedback`` and ``expectation``."""

    assessment_id: str
    assessment_name: str
    trace_id: str
    source: AssessmentSourceOut
    create_time: str
    last_update_time: str
    valid: bool
    span_id: str | None = None
    feedback: FeedbackOut | None = None
    expectation: ExpectationOut | None = None
    rationale: str | None = None
    metadata: dict[str, str] | None = None
    overrides: str | None = None


class TraceInfoOut(Schema):
    """MLflow's ``TraceInfo.to_dict()``."""

    trace_id: str
    trace_location: dict[str, Any]
    request_time: str
    state: str
    trace_metadata: dict[str, str]
    tags: dict[str, str]
    request_preview: str
    response_preview: str
    assessments: list[AssessmentOut]
    execution_duration_ms: int | None = None
    client_request_id: str | None = None


class TraceDataOut(Schema):
    spans: list[dict[str, Any]] = Field(description="MLflow's Span.to_dict() of each span, the root first.")


class TraceOut(Schema):
    """MLflow's ``Trace.to_dict()`` (``mlflow.entities.Trace.from_dict`` reads it)."""

    info: TraceInfoOut
    data: TraceDataOut


class SearchTracesOut(Schema):
    traces: list[TraceInfoOut]
    next_page_token: str | None = None


class SearchTracesQuery(Schema):
    experiment_ids: list[str] = Field(
        default_factory=list,
        description="Experiments to search, each by its MLflow id, our id or its name (repeat the parameter). "
        "Without any: every trace outside labeling sessions that the token may read.",
    )
    filter_string: str | None = Field(None, description="MLflow's search_traces filter string.")
    order_by: list[str] = Field(default_factory=list, description='e.g. "timestamp_ms DESC" (repeatable).')
    model_id: str | None = Field(None, max_length=MAX_ID, description="Only traces of this app version.")
    run_id: str | None = Field(None, max_length=MAX_ID, description="Only traces of this MLflow run.")
    max_results: int | None = Field(None, description="Page size: 1 to 500, 100 by default.")
    page_token: str | None = Field(None, description="next_page_token of the previous page.")


class TagIn(Schema):
    key: str = Field(min_length=1, max_length=TAG_KEY_MAX)
    value: str = Field(max_length=TAG_VALUE_MAX)


class TagsOut(Schema):
    tags: dict[str, str]


class SourceIn(Schema):
    source_type: Literal["HUMAN", "LLM_JUDGE", "CODE"]
    source_id: str = Field("", max_length=MAX_ID, description="For HUMAN, the user name (yours by default).")


class FeedbackErrorIn(Schema):
    error_code: str = Field(min_length=1, max_length=MAX_ID)
    error_message: str = Field("", max_length=MAX_TEXT)
    stack_trace: str = Field("", max_length=MAX_TEXT)


class LogFeedbackIn(Schema):
    name: str = Field(min_length=1, max_length=MAX_ID)
    value: Any = Field(None, description="bool, number, string, or a list or object of those.")
    error: FeedbackErrorIn | None = None
    rationale: str = Field("", max_length=MAX_TEXT)
    source: SourceIn | None = Field(None, description="HUMAN with your user name when omitted.")
    metadata: dict[str, str] = Field(default_factory=dict)
    span_id: str = Field("", max_length=32)


class LogExpectationIn(Schema):
    name: str = Field(min_length=1, max_length=MAX_ID)
    value: Any = Field(description="Any JSON: expected_response, expected_facts, guidelines…")
    source: SourceIn | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    span_id: str = Field("", max_length=32)


class OverrideIn(Schema):
    value: Any = None
    error: FeedbackErrorIn | None = None
    rationale: str = Field("", max_length=MAX_TEXT)
    source: SourceIn | None = None
    metadata: dict[str, str] = Field(default_factory=dict)


class AssessmentEnvelope(Schema):
    assessment: AssessmentOut


class AssessmentsOut(Schema):
    assessments: list[AssessmentOut]
    next_page_token: str | None = None


# ---------------------------------------------------------------- access


def _short(value: str) -> str:
    return repr(value[:100] + ("…" if len(value) > 100 else ""))


def _could_be_trace_id(text: str) -> bool:
    """Whether the column could hold ``text``: longer ones, or a NUL (which PostgreSQL refuses), name no trace."""
    return len(text) <= Trace._meta.get_field("trace_id").max_length and "\x00" not in text


def readable_trace(request: HttpRequest, trace_id: str) -> Trace:
    """The trace ``trace_id`` if the token's owner may read it; else a 404 (as if it did not exist)."""
    trace = None
    if _could_be_trace_id(trace_id):
        trace = readable_traces(request.user).select_related("experiment").filter(trace_id=trace_id).first()
    if trace is None:
        raise not_found(f"Trace {_short(trace_id)} does not exist.")
    return trace


def writable_trace(request: HttpRequest, trace_id: str) -> Trace:
    """A readable trace its owner may also change (one the explorer shows them); else 404 or 403."""
    trace = readable_trace(request, trace_id)
    if not visible_traces(request.user).filter(pk=trace.pk).exists():
        raise denied("This token's owner may read this trace but not change it (admins and session leads may).")
    return trace


def experiment_pk(reference: str) -> int | None:
    """Our id in an experiment reference: ``12`` or ``reviewapp-12`` (what trace infos show)."""
    number = reference.removeprefix("reviewapp-")
    return int(number) if number.isascii() and number.isdigit() and len(number) < 19 else None


def find_experiments(request: HttpRequest, references: list[str]) -> list[Experiment]:
    """The experiments named (MLflow id, our id, ``reviewapp-<id>`` or name) that the owner may read;
    a 404 naming the first one that is unknown or not theirs."""
    if len(references) > MAX_EXPERIMENTS:
        raise invalid(f"experiment_ids names {len(references)} experiments; at most {MAX_EXPERIMENTS} are accepted.")
    plain = [r for r in references if len(r) <= MAX_ID and "\x00" not in r]
    pks = {pk for pk in map(experiment_pk, plain) if pk is not None}
    match = Q(mlflow_experiment_id__in=plain) | Q(name__in=plain) | Q(pk__in=pks)
    found = list(readable_experiments(request.user).filter(match)) if plain else []
    for reference in references:
        pk = experiment_pk(reference)
        if not any(reference in (e.mlflow_experiment_id, e.name) or pk == e.pk for e in found):
            raise not_found(f"Experiment {_short(reference)} does not exist.")
    return found


def _source(request: HttpRequest, source: SourceIn | None) -> tuple[str, str]:
    """(source_type, source_id); a HUMAN source is the token's owner (admins may name another person)."""
    username = request.user.get_username()
    if source is None:
        return AssessmentSource.HUMAN, username
    source_id = check_text(source.source_id, what="source.source_id", max_length=MAX_ID)
    if source.source_type == AssessmentSource.HUMAN:
        if not source_id:
            return AssessmentSource.HUMAN, username
        if source_id != username and not request.user.is_staff:
            raise denied(f"A HUMAN assessment is logged as yourself ({username!r}); only admins may name another.")
    return source.source_type, source_id


def _check_span(trace: Trace, span_id: str) -> str:
    if span_id and not Span.objects.filter(trace=trace, span_id=check_text(span_id, what="span_id")).exists():
        raise invalid(f"span_id: trace {trace.trace_id} has no span {_short(span_id)}.")
    return span_id


SCALARS = (bool, int, float, str)


def _feedback_value(value: Any, error: FeedbackErrorIn | None) -> tuple[Any, dict[str, str] | None]:
    """MLflow's feedback value types (a scalar, or a list or object of scalars), or an error."""
    if value is None and error is None:
        raise invalid("A feedback needs a value or an error.")
    members = value if isinstance(value, list) else list(value.values()) if isinstance(value, dict) else [value]
    if value is not None and not all(isinstance(member, SCALARS) for member in members):
        raise invalid("value: a feedback value is a bool, number or string, or a list or object of those.")
    check_json_value(value, what="value")
    if error is None:
        return value, None
    checked = {
        "error_code": check_text(error.error_code, what="error.error_code", max_length=MAX_ID),
        "error_message": check_text(error.error_message, what="error.error_message"),
    }
    if error.stack_trace:
        checked["stack_trace"] = check_text(error.stack_trace, what="error.stack_trace")
    return value, checked


def _assessment_out(assessment: Assessment, trace: Trace) -> dict[str, Any]:
    return assessment_dict(assessment, trace_id=trace.trace_id)


# ---------------------------------------------------------------- endpoints


@router.get("/", response={200: SearchTracesOut, **ERROR_RESPONSES}, exclude_unset=True, summary="Search traces")
def search_traces(request: HttpRequest, params: Query[SearchTracesQuery]) -> dict[str, Any]:
    """MLflow's ``search_traces``: the trace infos (with assessments, without spans) of one page."""
    if len(params.order_by) > MAX_ORDER_BY:
        raise invalid(f"order_by has {len(params.order_by)} items; at most {MAX_ORDER_BY} are accepted.")
    traces = readable_traces(request.user)
    session_pk = session_pk_from_run_id(params.run_id) if params.run_id is not None else None
    if session_pk is not None:  # a labeling session's run: its frozen copies
        traces = traces.filter(review_item__session_id=session_pk)
    if params.experiment_ids:
        traces = traces.filter(experiment__in=find_experiments(request, params.experiment_ids))
    elif session_pk is None:
        traces = traces.explorable()
    if params.model_id is not None:
        traces = traces.filter(model_id=check_text(params.model_id, what="model_id"))
    if params.run_id is not None and session_pk is None:
        traces = traces.with_metadata(SOURCE_RUN_KEY, check_text(params.run_id, what="run_id"))
    try:
        traces = apply_filter(traces, parse_filter(params.filter_string or ""))
        ordering = Ordering.from_order_by(parse_order_by(params.order_by))
    except FilterError as exc:
        raise invalid(str(exc)) from None
    except InvalidCursor as exc:
        raise invalid(f"order_by: {exc}") from None
    page = paginate(
        traces.select_related("experiment"), ordering, page_token=params.page_token, max_results=params.max_results
    )
    assessments: dict[int, list[Assessment]] = defaultdict(list)
    for assessment in Assessment.objects.filter(trace_id__in=[t.pk for t in page.rows]).order_by("create_time", "id"):
        assessments[assessment.trace_id].append(assessment)
    result: dict[str, Any] = {"traces": [trace_info_dict(t, assessments[t.pk]) for t in page.rows]}
    if page.next_page_token:
        result["next_page_token"] = page.next_page_token
    return result


class BatchGetIn(Schema):
    trace_ids: list[str] = Field(description=f"Up to {MAX_BATCH_GET} trace ids.")


class BatchGetOut(Schema):
    traces: list[TraceOut] = Field(description="The traces found and readable, in the order asked; no others.")


@router.post(
    "/batch-get", response={200: BatchGetOut, **ERROR_RESPONSES}, exclude_unset=True, summary="Get many traces"
)
def batch_get_traces(request: HttpRequest, payload: BatchGetIn) -> dict[str, Any]:
    """Several traces as MLflow's ``Trace.to_dict()``, with every span, in one request (constant queries)."""
    if len(payload.trace_ids) > MAX_BATCH_GET:
        raise invalid(f"trace_ids has {len(payload.trace_ids)} ids; at most {MAX_BATCH_GET} are accepted.")
    wanted = [t for t in dict.fromkeys(payload.trace_ids) if _could_be_trace_id(t)]
    found = dict(readable_traces(request.user).filter(trace_id__in=wanted).values_list("trace_id", "pk"))
    rendered = trace_dicts(list(found.values()))
    return {"traces": [rendered[found[t]] for t in wanted if t in found]}


@router.get("/{trace_id}", response={200: TraceOut, **ERROR_RESPONSES}, exclude_unset=True, summary="Get a trace")
def get_trace(request: HttpRequest, trace_id: str) -> dict[str, Any]:
    """One trace as MLflow's ``Trace.to_dict()``: info (with assessments) and every span."""
    trace = readable_trace(request, trace_id)
    return trace_dicts([trace.pk])[trace.pk]


TAGS_RESPONSES = {200: TagsOut, **ERROR_RESPONSES}


@router.patch("/{trace_id}/tags", response=TAGS_RESPONSES, operation_id="traces_api_set_trace_tag")
@router.post("/{trace_id}/tags", response=TAGS_RESPONSES, operation_id="traces_api_set_trace_tag_by_post")
def set_trace_tag(request: HttpRequest, trace_id: str, payload: TagIn) -> dict[str, Any]:
    """MLflow's ``set_trace_tag``: set one tag (replacing its value); returns all the trace's tags."""
    trace = writable_trace(request, trace_id)
    check_str_map({payload.key: payload.value}, what="tag", max_length=TAG_VALUE_MAX)
    return {"tags": _str_tags(set_trace_tags(trace=trace, tags={payload.key: payload.value}))}


@router.delete("/{trace_id}/tags", response=TAGS_RESPONSES, summary="Delete Trace Tag")
def delete_tag(request: HttpRequest, trace_id: str, key: str) -> dict[str, Any]:
    """MLflow's ``delete_trace_tag`` (``?key=``); returns the tags left."""
    trace = writable_trace(request, trace_id)
    if len(key) > TAG_KEY_MAX or not delete_trace_tag(trace=trace, key=key):
        raise not_found(f"Trace {trace.trace_id} has no tag {_short(key)}.")
    return {"tags": _str_tags(trace.tags)}


def _str_tags(tags: dict[str, Any] | None) -> dict[str, str]:
    return {key: str(value) for key, value in (tags or {}).items()}


@router.get("/{trace_id}/assessments", response={200: AssessmentsOut, **ERROR_RESPONSES}, exclude_unset=True)
def list_assessments(
    request: HttpRequest, trace_id: str, max_results: int | None = None, page_token: str | None = None
) -> dict[str, Any]:
    """Every assessment of the trace, valid or overridden, oldest first."""
    trace = readable_trace(request, trace_id)
    page = paginate(trace.assessments.all(), ASSESSMENT_ORDER, page_token=page_token, max_results=max_results)
    result: dict[str, Any] = {"assessments": [_assessment_out(a, trace) for a in page.rows]}
    if page.next_page_token:
        result["next_page_token"] = page.next_page_token
    return result


@router.post("/{trace_id}/feedback", response={201: AssessmentEnvelope, **ERROR_RESPONSES}, exclude_unset=True)
def log_feedback(request: HttpRequest, trace_id: str, payload: LogFeedbackIn) -> Status[dict[str, Any]]:
    """MLflow's ``log_feedback``: a judgement of the trace (or of one span) from HUMAN, CODE or LLM_JUDGE."""
    trace = writable_trace(request, trace_id)
    value, error = _feedback_value(payload.value, payload.error)
    source_type, source_id = _source(request, payload.source)
    new = NewAssessment(
        name=check_text(payload.name, what="name", max_length=MAX_ID),
        kind=AssessmentKind.FEEDBACK,
        value=value,
        error=error,
        rationale=check_text(payload.rationale, what="rationale"),
        source_type=source_type,
        source_id=source_id,
        span_id=_check_span(trace, payload.span_id),
        metadata=check_str_map(payload.metadata, what="metadata"),
    )
    return Status(201, {"assessment": _assessment_out(log_assessment(trace=trace, new=new), trace)})


@router.post("/{trace_id}/expectations", response={201: AssessmentEnvelope, **ERROR_RESPONSES}, exclude_unset=True)
def log_expectation(request: HttpRequest, trace_id: str, payload: LogExpectationIn) -> Status[dict[str, Any]]:
    """MLflow's ``log_expectation``: ground truth for the trace (any JSON value)."""
    trace = writable_trace(request, trace_id)
    source_type, source_id = _source(request, payload.source)
    new = NewAssessment(
        name=check_text(payload.name, what="name", max_length=MAX_ID),
        kind=AssessmentKind.EXPECTATION,
        value=check_json_value(payload.value, what="value"),
        source_type=source_type,
        source_id=source_id,
        span_id=_check_span(trace, payload.span_id),
        metadata=check_str_map(payload.metadata, what="metadata"),
    )
    return Status(201, {"assessment": _assessment_out(log_assessment(trace=trace, new=new), trace)})


@router.post(
    "/{trace_id}/assessments/{assessment_id}/override",
    response={201: AssessmentEnvelope, 409: ErrorOut, **ERROR_RESPONSES},
    exclude_unset=True,
    summary="Override an assessment",
)
def override(request: HttpRequest, trace_id: str, assessment_id: str, payload: OverrideIn) -> Status[dict[str, Any]]:
    """MLflow's ``override_feedback``: a new assessment that ``overrides`` this one, which becomes invalid."""
    trace = writable_trace(request, trace_id)
    old = None
    if len(assessment_id) <= 64 and "\x00" not in assessment_id:
        old = trace.assessments.filter(assessment_id=assessment_id).first()
    if old is None:
        raise not_found(f"Trace {trace.trace_id} has no assessment {_short(assessment_id)}.")
    if old.kind == AssessmentKind.FEEDBACK:
        value, error = _feedback_value(payload.value, payload.error)
    elif payload.error is not None or payload.value is None:
        raise invalid("An expectation is overridden with a new value (and no error).")
    else:
        value, error = check_json_value(payload.value, what="value"), None
    source_type, source_id = _source(request, payload.source)
    new = NewAssessment(
        name=old.name,
        kind=old.kind,
        value=value,
        error=error,
        rationale=check_text(payload.rationale, what="rationale"),
        source_type=source_type,
        source_id=source_id,
        metadata=check_str_map(payload.metadata, what="metadata"),
    )
    try:
        created = override_assessment(old=old, new=new)
    except AssessmentConflict as exc:
        raise ApiError(ErrorCode.RESOURCE_ALREADY_EXISTS, str(exc)) from None
    return Status(201, {"assessment": _assessment_out(created, trace)})


# ================================================================ experiments (/api/experiments/)

experiments_router = Router(tags=["experiments"])
EXPERIMENT_ORDER = Ordering((SortKey("name", False, "str"), SortKey("id", False, "int")))


class ExperimentOut(Schema):
    experiment_id: str = Field(description="The app's id: what the scorers API and experiment_ids take.")
    name: str
    mlflow_experiment_id: str = Field(description="The MLflow experiment it came from (empty when none).")
    trace_experiment_id: str = Field(description="What this experiment's trace infos show as experiment_id.")


class ExperimentsOut(Schema):
    experiments: list[ExperimentOut]
    next_page_token: str | None = None


@experiments_router.get("/", response={200: ExperimentsOut, **ERROR_RESPONSES}, exclude_unset=True)
def search_experiments(
    request: HttpRequest, max_results: int | None = None, page_token: str | None = None
) -> dict[str, Any]:
    """MLflow's ``search_experiments``: the live-traffic experiments whose traces the token's owner may
    read (not the labeling sessions' copies), by name."""
    from .models import ExperimentKind

    experiments = readable_experiments(request.user).filter(kind=ExperimentKind.TRACES)
    page = paginate(experiments, EXPERIMENT_ORDER, page_token=page_token, max_results=max_results)
    rows = [
        {
            "experiment_id": str(e.pk),
            "name": e.name,
            "mlflow_experiment_id": e.mlflow_experiment_id,
            "trace_experiment_id": mlflow_experiment_id(e),
        }
        for e in page.rows
    ]
    result: dict[str, Any] = {"experiments": rows}
    if page.next_page_token:
        result["next_page_token"] = page.next_page_token
    return result
