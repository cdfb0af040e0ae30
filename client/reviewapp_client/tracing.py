"""MLflow's trace calls over the review app's API: ``search_traces``, ``get_trace``, ``log_feedback``,
``log_expectation``, ``override_feedback``, ``set_trace_tag`` and ``delete_trace_tag``, with MLflow's
signatures (keyword arguments, as in ``mlflow``) and MLflow's result shapes.

``search_traces(return_type="pandas")`` gives the columns of ``mlflow.search_traces`` (MLflow 3's
``Trace.pandas_dataframe_columns()``) with the same value types; ``return_type="list"`` gives
lightweight :class:`Trace` objects (``.info``, ``.data.spans``, ``.to_dict()``, and ``.to_mlflow()``
when mlflow is installed). pandas and mlflow are imported only when asked for.
"""

from __future__ import annotations

import base64
import json
import traceback
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote

from ._http import ApiClient, get_client
from .errors import ReviewAppError

if TYPE_CHECKING:
    import pandas

SEARCH_PATH = "traces/"
DEFAULT_FEEDBACK_NAME = "feedback"
SOURCE_TYPES = ("HUMAN", "LLM_JUDGE", "CODE")
PAGE_SIZE = 500  # the server's largest page
FETCH_THREADS = 4  # concurrent batch gets of the traces' spans in search_traces
BATCH_GET_SIZE = 100  # traces per batch get: the server's limit

# mlflow.entities.Trace.pandas_dataframe_columns() of MLflow 3 (checked against it in the tests).
DATAFRAME_COLUMNS = [
    "trace_id",
    "trace",
    "client_request_id",
    "state",
    "request_time",
    "execution_duration",
    "request",
    "response",
    "trace_metadata",
    "tags",
    "spans",
    "assessments",
]
INPUTS_KEY = "mlflow.spanInputs"
OUTPUTS_KEY = "mlflow.spanOutputs"


# ---------------------------------------------------------------- lightweight entities


@dataclass
class TraceInfo:
    """MLflow's ``TraceInfo``: ``request_time`` in epoch milliseconds, ``execution_duration`` in ms,
    ``assessments`` as MLflow's ``Assessment.to_dictionary()`` dicts."""

    trace_id: str
    trace_location: dict[str, Any]
    request_time: int
    state: str
    execution_duration: int | None = None
    client_request_id: str | None = None
    request_preview: str | None = None
    response_preview: str | None = None
    trace_metadata: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    assessments: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TraceInfo:
        return cls(
            trace_id=d["trace_id"],
            trace_location=d.get("trace_location") or {},
            request_time=_epoch_ms(d.get("request_time")),
            state=d.get("state") or "STATE_UNSPECIFIED",
            execution_duration=d.get("execution_duration_ms"),
            client_request_id=d.get("client_request_id"),
            request_preview=d.get("request_preview"),
            response_preview=d.get("response_preview"),
            trace_metadata=dict(d.get("trace_metadata") or {}),
            tags=dict(d.get("tags") or {}),
            assessments=list(d.get("assessments") or []),
        )

    @property
    def experiment_id(self) -> str | None:
        return (self.trace_location.get("mlflow_experiment") or {}).get("experiment_id")


@dataclass
class TraceData:
    """The spans (MLflow's ``Span.to_dict()`` dicts, the root first)."""

    spans: list[dict[str, Any]] = field(default_factory=list)

    @property
    def root_span(self) -> dict[str, Any] | None:
        return next((s for s in self.spans if not s.get("parent_span_id")), None)

    @property
    def request(self) -> str | None:
        """The root span's inputs, JSON-serialized (as MLflow's ``TraceData.request``)."""
        root = self.root_span
        return (root.get("attributes") or {}).get(INPUTS_KEY) if root else None

    @property
    def response(self) -> str | None:
        root = self.root_span
        return (root.get("attributes") or {}).get(OUTPUTS_KEY) if root else None


@dataclass
class Trace:
    """A trace from the API: ``info`` and ``data``; ``to_dict()`` is MLflow's ``Trace.to_dict()``."""

    info: TraceInfo
    data: TraceData
    raw: dict[str, Any] = field(repr=False, default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Trace:
        return cls(
            info=TraceInfo.from_dict(d["info"]),
            data=TraceData(spans=list((d.get("data") or {}).get("spans") or [])),
            raw=d,
        )

    @property
    def trace_id(self) -> str:
        return self.info.trace_id

    def __repr__(self) -> str:
        return f"Trace(trace_id={self.trace_id!r})"

    def to_dict(self) -> dict[str, Any]:
        return self.raw

    def to_json(self) -> str:
        return json.dumps(self.raw)

    def to_mlflow(self) -> Any:
        """The same trace as ``mlflow.entities.Trace`` (needs mlflow installed)."""
        from mlflow.entities import Trace as MlflowTrace

        return MlflowTrace.from_dict(self.raw)

    def _mlflow_dict(self) -> dict[str, Any]:
        """``to_dict()`` as MLflow writes it back after reading it (the DataFrame's ``trace`` column)."""
        info = dict(self.raw.get("info") or {})
        if info.get("request_time"):
            info["request_time"] = _proto_time(info["request_time"])
        info["assessments"] = [_mlflow_assessment(a) for a in info.get("assessments") or []]
        for key in ("trace_metadata", "tags", "assessments"):  # protobuf leaves out empty fields
            if not info.get(key):
                info.pop(key, None)
        return {"info": info, "data": {"spans": [_mlflow_span(span) for span in self.data.spans]}}

    def to_pandas_dataframe_row(self) -> dict[str, Any]:
        """The row ``mlflow.search_traces`` gives this trace."""
        return {
            "trace_id": self.info.trace_id,
            "trace": json.dumps(self._mlflow_dict()),
            "client_request_id": self.info.client_request_id,
            "state": self.info.state,
            "request_time": self.info.request_time,
            "execution_duration": self.info.execution_duration,
            "request": _loads(self.data.request),
            "response": _loads(self.data.response),
            "trace_metadata": self.info.trace_metadata,
            "tags": self.info.tags,
            "spans": [_mlflow_span(span) for span in self.data.spans],
            "assessments": [_mlflow_assessment(a) for a in self.info.assessments],
        }


def _mlflow_span(span: dict[str, Any]) -> dict[str, Any]:
    """A span dict as MLflow's ``Span.to_dict()`` writes it (with ``links``, empty if none)."""
    return span if "links" in span else {**span, "links": []}


def _mlflow_assessment(assessment: dict[str, Any]) -> dict[str, Any]:
    """An assessment dict as ``mlflow.search_traces`` shows it (``Assessment.to_dictionary()`` after
    ``Trace.from_dict``): protobuf's timestamps, and an expectation whose value is not a scalar as MLflow's
    JSON ``serialized_value`` (without ``valid``, which MLflow's expectations do not read back)."""
    times = {key: _proto_time(assessment[key]) for key in ("create_time", "last_update_time") if assessment.get(key)}
    shown = {**assessment, **times}
    feedback = assessment.get("feedback")
    if isinstance(feedback, dict) and "value" in feedback:
        shown["feedback"] = {**feedback, "value": _proto_numbers(feedback["value"])}
    expectation = assessment.get("expectation")
    if isinstance(expectation, dict) and "value" in expectation:
        shown.pop("valid", None)
        value = expectation["value"]
        if value is not None and not isinstance(value, (int, float, bool, str)):
            serialized = {"serialization_format": "JSON_FORMAT", "value": json.dumps(value)}
            shown["expectation"] = {"serialized_value": serialized}
        else:
            shown["expectation"] = {"value": _proto_numbers(value)}
    return shown


def _proto_numbers(value: Any) -> Any:
    """A value through protobuf's ``Value``: every number is a double."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return float(value)
    if isinstance(value, list):
        return [_proto_numbers(v) for v in value]
    if isinstance(value, dict):
        return {k: _proto_numbers(v) for k, v in value.items()}
    return value


def _proto_time(value: str) -> str:
    """An RFC 3339 UTC timestamp the way protobuf's ``Timestamp.ToJsonString`` writes it: no fraction when
    whole seconds, else 3, 6 or 9 digits."""
    head, _, rest = value.partition(".")
    digits = "".join(c for c in rest if c.isdigit()) if rest else ""
    if not value.endswith("Z") or len(head) != 19 or len(digits) > 9:
        return value  # not the API's shape: left as it is
    nanos = int((digits + "000000000")[:9])
    if nanos == 0:
        return head + "Z"
    if nanos % 1_000_000 == 0:
        return f"{head}.{nanos // 1_000_000:03d}Z"
    if nanos % 1000 == 0:
        return f"{head}.{nanos // 1000:06d}Z"
    return f"{head}.{nanos:09d}Z"


def _epoch_ms(value: Any) -> int:
    """An RFC 3339 timestamp (what ``TraceInfo.to_dict()`` writes) in epoch milliseconds."""
    if value is None or value == "":
        return 0
    if isinstance(value, (int, float)):
        return int(value)
    text = str(value)
    fraction = ""
    if "." in text:  # datetime.fromisoformat takes at most microseconds
        head, _, rest = text.partition(".")
        digits = "".join(c for c in rest if c.isdigit())
        zone = rest[len(digits) :]
        fraction, text = digits, head + zone
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return int(moment.timestamp()) * 1000 + int((fraction + "000")[:3])


def _loads(value: str | None) -> Any:
    if value is None:
        return None
    try:
        return json.loads(value)
    except (TypeError, ValueError):
        return value


def traces_to_df(traces: Iterable[Trace]) -> pandas.DataFrame:
    """MLflow's ``traces_to_df``: one row per trace, ``mlflow.search_traces``' columns."""
    try:
        import pandas as pd
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ReviewAppError(
            "PANDAS_NOT_INSTALLED",
            "return_type='pandas' needs pandas (pip install 'reviewapp-client[pandas]'), or use return_type='list'.",
        ) from exc
    return pd.DataFrame.from_records([t.to_pandas_dataframe_row() for t in traces], columns=list(DATAFRAME_COLUMNS))


# ---------------------------------------------------------------- trace calls


def _path(*parts: str) -> str:
    return SEARCH_PATH + "/".join(quote(part, safe="") for part in parts)


def _info_dicts(
    client: ApiClient,
    experiment_ids: list[str] | str | None,
    filter_string: str | None,
    max_results: int | None,
    order_by: list[str] | str | None,
    run_id: str | None,
    model_id: str | None,
) -> Iterator[dict[str, Any]]:
    if isinstance(experiment_ids, str):
        experiment_ids = [experiment_ids]
    if isinstance(order_by, str):
        order_by = [order_by]
    if max_results is not None and max_results < 1:
        raise ReviewAppError("INVALID_PARAMETER_VALUE", f"max_results must be a positive number, not {max_results}.")
    params = {
        "experiment_ids": list(experiment_ids or []),
        "filter_string": filter_string or None,
        "order_by": list(order_by or []),
        "run_id": run_id,
        "model_id": model_id,
        "max_results": min(max_results, PAGE_SIZE) if max_results else PAGE_SIZE,
    }
    for count, info in enumerate(client.paginate(SEARCH_PATH, "traces", params=params), start=1):
        yield info
        if max_results is not None and count >= max_results:
            return


def iter_trace_infos(
    experiment_ids: list[str] | None = None,
    filter_string: str | None = None,
    max_results: int | None = None,
    order_by: list[str] | None = None,
    run_id: str | None = None,
    model_id: str | None = None,
    client: ApiClient | None = None,
) -> Iterator[TraceInfo]:
    """The matching trace infos (with assessments, without spans), page after page, at most ``max_results``."""
    infos = _info_dicts(client or get_client(), experiment_ids, filter_string, max_results, order_by, run_id, model_id)
    for info in infos:
        yield TraceInfo.from_dict(info)


def search_traces(
    experiment_ids: list[str] | None = None,
    filter_string: str | None = None,
    max_results: int | None = None,
    order_by: list[str] | None = None,
    run_id: str | None = None,
    model_id: str | None = None,
    return_type: Literal["pandas", "list"] = "pandas",
    include_spans: bool = True,
    client: ApiClient | None = None,
) -> pandas.DataFrame | list[Trace]:
    """MLflow's ``search_traces``: every matching trace (or the first ``max_results``), as a DataFrame with
    ``mlflow.search_traces``' columns or as a list of :class:`Trace`.

    ``experiment_ids`` take MLflow experiment ids, the app's ids or experiment names; without any, every
    trace outside labeling sessions that the token may read. ``include_spans=False`` skips fetching each
    trace's spans (a request per 100 traces; without them ``spans`` is empty and ``request``/``response``
    are None)."""
    if return_type not in ("pandas", "list"):
        raise ReviewAppError(
            "INVALID_PARAMETER_VALUE", f"Invalid return type: {return_type!r}. It is either 'pandas' or 'list'."
        )
    client = client or get_client()
    infos = list(_info_dicts(client, experiment_ids, filter_string, max_results, order_by, run_id, model_id))
    if include_spans:
        traces = _traces_with_spans(client, [info["trace_id"] for info in infos])
    else:
        traces = [Trace.from_dict({"info": info, "data": {"spans": []}}) for info in infos]
    return traces_to_df(traces) if return_type == "pandas" else traces


def get_trace(trace_id: str, client: ApiClient | None = None) -> Trace:
    """MLflow's ``get_trace``: one trace with every span; a ReviewAppError RESOURCE_DOES_NOT_EXIST if unknown."""
    client = client or get_client()
    return Trace.from_dict(client.get(_path(trace_id)))


def _traces_with_spans(client: ApiClient, trace_ids: list[str]) -> list[Trace]:
    """The traces with every span, BATCH_GET_SIZE per request; one deleted since the search found it is
    left out (as MLflow's batch get does)."""
    batches = [trace_ids[i : i + BATCH_GET_SIZE] for i in range(0, len(trace_ids), BATCH_GET_SIZE)]
    with ThreadPoolExecutor(max_workers=FETCH_THREADS) as pool:
        answers = pool.map(lambda batch: client.post(SEARCH_PATH + "batch-get", json={"trace_ids": batch}), batches)
        return [Trace.from_dict(trace) for answer in answers for trace in answer["traces"]]


def trace_ids_of(traces: Any) -> list[str]:
    """The trace ids in what ``search_traces`` gives (a DataFrame or a list of :class:`Trace`), or in a
    list of ids, mlflow ``Trace`` objects or trace dicts."""
    if traces is None:
        return []
    if isinstance(traces, str):
        return [traces]
    columns = getattr(traces, "columns", None)
    if columns is not None:  # a pandas DataFrame
        if "trace_id" not in columns:
            raise ReviewAppError("INVALID_PARAMETER_VALUE", "The DataFrame has no 'trace_id' column.")
        return [str(value) for value in traces["trace_id"].tolist()]
    ids = []
    for item in traces:
        if isinstance(item, str):
            ids.append(item)
        elif isinstance(item, dict):
            info = item.get("info") if isinstance(item.get("info"), dict) else item
            if "trace_id" not in info:
                raise ReviewAppError("INVALID_PARAMETER_VALUE", "A trace dict has no 'trace_id'.")
            ids.append(str(info["trace_id"]))
        elif getattr(item, "trace_id", None):
            ids.append(str(item.trace_id))
        elif getattr(getattr(item, "info", None), "trace_id", None):
            ids.append(str(item.info.trace_id))
        else:
            raise ReviewAppError("INVALID_PARAMETER_VALUE", f"Not a trace or a trace id: {item!r}.")
    return ids


def set_trace_tag(trace_id: str, key: str, value: str, client: ApiClient | None = None) -> dict[str, str]:
    """MLflow's ``set_trace_tag``; returns every tag of the trace."""
    client = client or get_client()
    return client.patch(_path(trace_id, "tags"), json={"key": key, "value": str(value)})["tags"]


def delete_trace_tag(trace_id: str, key: str, client: ApiClient | None = None) -> dict[str, str]:
    """MLflow's ``delete_trace_tag``; returns the tags left (RESOURCE_DOES_NOT_EXIST if there was no such tag)."""
    client = client or get_client()
    return client.delete(_path(trace_id, "tags"), params={"key": key})["tags"]


# ---------------------------------------------------------------- assessments


def _source(source: Any) -> dict[str, str] | None:
    """An ``mlflow.entities.AssessmentSource`` (or anything with source_type/source_id), a dict of those,
    a source type ("HUMAN", "LLM_JUDGE", "CODE") or a user name (a HUMAN source)."""
    if source is None:
        return None
    if isinstance(source, str):
        if source.upper() in SOURCE_TYPES:
            return {"source_type": source.upper(), "source_id": ""}
        return {"source_type": "HUMAN", "source_id": source}
    if isinstance(source, dict):
        source_type, source_id = source.get("source_type"), source.get("source_id")
    else:
        source_type, source_id = getattr(source, "source_type", None), getattr(source, "source_id", None)
    if source_type is None:
        raise ReviewAppError("INVALID_PARAMETER_VALUE", f"source: {source!r} has no source_type.")
    source_type = str(getattr(source_type, "value", source_type)).upper()
    return {"source_type": source_type, "source_id": "" if source_id is None else str(source_id)}


def _error(error: Any) -> dict[str, str] | None:
    """An exception, an ``mlflow.entities.AssessmentError`` (or a dict of its fields), or an error code."""
    if error is None:
        return None
    if isinstance(error, BaseException):
        stack = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        return {"error_code": type(error).__name__, "error_message": str(error), "stack_trace": stack[-1000:]}
    if isinstance(error, str):
        return {"error_code": error}
    get = error.get if isinstance(error, dict) else lambda name: getattr(error, name, None)
    if not get("error_code"):
        raise ReviewAppError("INVALID_PARAMETER_VALUE", f"error: {error!r} has no error_code.")
    return {
        name: str(get(name))
        for name in ("error_code", "error_message", "stack_trace")
        if get(name) is not None and get(name) != ""
    }


def span_id_hex(span_id: str | None) -> str | None:
    """A span id as MLflow's ``Span.span_id`` (16 hex digits): the base64 OpenTelemetry bytes of a
    ``Span.to_dict()`` (what ``get_trace`` gives) are converted, anything else is sent as it is."""
    if not span_id or len(span_id) != 12 or not span_id.endswith("="):
        return span_id
    try:
        raw = base64.b64decode(span_id, validate=True)
    except ValueError:
        return span_id
    return raw.hex() if len(raw) == 8 else span_id


def _metadata(metadata: dict[str, Any] | None) -> dict[str, str]:
    return {str(key): value if isinstance(value, str) else json.dumps(value) for key, value in (metadata or {}).items()}


def _body(**fields: Any) -> dict[str, Any]:
    return {key: value for key, value in fields.items() if value is not None}


def log_feedback(
    trace_id: str,
    name: str = DEFAULT_FEEDBACK_NAME,
    value: Any = None,
    source: Any = None,
    error: Any = None,
    rationale: str | None = None,
    metadata: dict[str, Any] | None = None,
    span_id: str | None = None,
    client: ApiClient | None = None,
) -> dict[str, Any]:
    """MLflow's ``log_feedback``: a judgement (bool, number, string, or a list or dict of those) or an error.
    Without a source it is a HUMAN feedback of the token's owner. Returns the assessment as MLflow's
    ``Assessment.to_dictionary()``."""
    client = client or get_client()
    body = _body(
        name=name,
        value=value,
        source=_source(source),
        error=_error(error),
        rationale=rationale,
        metadata=_metadata(metadata),
        span_id=span_id_hex(span_id),
    )
    return client.post(_path(trace_id, "feedback"), json=body)["assessment"]


def log_expectation(
    trace_id: str,
    name: str,
    value: Any,
    source: Any = None,
    metadata: dict[str, Any] | None = None,
    span_id: str | None = None,
    client: ApiClient | None = None,
) -> dict[str, Any]:
    """MLflow's ``log_expectation``: ground truth (any JSON value) for the trace or one span."""
    client = client or get_client()
    body = _body(name=name, source=_source(source), metadata=_metadata(metadata), span_id=span_id_hex(span_id))
    body["value"] = value
    return client.post(_path(trace_id, "expectations"), json=body)["assessment"]


def override_feedback(
    trace_id: str,
    assessment_id: str,
    value: Any,
    rationale: str | None = None,
    source: Any = None,
    metadata: dict[str, Any] | None = None,
    client: ApiClient | None = None,
) -> dict[str, Any]:
    """MLflow's ``override_feedback``: a new assessment that ``overrides`` this one (which becomes invalid)."""
    client = client or get_client()
    body = _body(value=value, rationale=rationale, source=_source(source), metadata=_metadata(metadata))
    return client.post(_path(trace_id, "assessments", assessment_id, "override"), json=body)["assessment"]


def search_assessments(trace_id: str, client: ApiClient | None = None) -> list[dict[str, Any]]:
    """Every assessment of the trace, valid or overridden, oldest first."""
    client = client or get_client()
    return list(client.paginate(_path(trace_id, "assessments"), "assessments", params={"max_results": PAGE_SIZE}))


@dataclass(frozen=True)
class Experiment:
    """A live-traffic experiment: ``experiment_id`` is the app's id (what ``scorers`` and
    ``search_traces(experiment_ids=...)`` take); ``trace_experiment_id`` is what its trace infos show."""

    experiment_id: str
    name: str
    mlflow_experiment_id: str
    trace_experiment_id: str


def search_experiments(max_results: int | None = None, client: ApiClient | None = None) -> list[Experiment]:
    """``mlflow.search_experiments``: the experiments whose traces you may read, by name."""
    rows = (client or get_client()).paginate("experiments/", "experiments", {"max_results": 500})
    return [Experiment(**row) for row in islice(rows, max_results)]
