"""``mlflow.genai.labeling`` over the review app's API: ``create_labeling_session``,
``get_labeling_sessions``, ``get_labeling_session``, ``delete_labeling_session`` and
:class:`LabelingSession` (``add_traces``, ``add_dataset``, ``set_assigned_users``, ``sync``, ``url``,
``mlflow_run_id``)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from ._http import get_client
from .errors import ReviewAppError
from .tracing import Trace, trace_ids_of

PATH = "labeling-sessions/"
ADD_BATCH = 10_000  # records per add_dataset request (the server's limit)


class LabelingSession:
    """One labeling session; its properties are what the server said when it was last read."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def __repr__(self) -> str:
        return f"LabelingSession(name={self.name!r}, mlflow_run_id={self.mlflow_run_id!r})"

    @property
    def id(self) -> int:
        return int(self._data["id"])

    @property
    def labeling_session_id(self) -> str:
        return str(self._data["id"])

    @property
    def name(self) -> str:
        return self._data["name"]

    @property
    def status(self) -> str:
        return self._data["status"]

    @property
    def assigned_users(self) -> list[str]:
        return list(self._data["assigned_users"])

    @property
    def label_schemas(self) -> list[str]:
        return list(self._data["label_schemas"])

    @property
    def mlflow_run_id(self) -> str:
        """The run whose traces are the session's labelled copies: ``search_traces(run_id=...)``."""
        return self._data["mlflow_run_id"]

    @property
    def experiment_id(self) -> str:
        return self._data["experiment_id"]

    @property
    def url(self) -> str:
        return self._data["url"]

    @property
    def item_count(self) -> int:
        return int(self._data["item_count"])

    @property
    def progress(self) -> dict[str, int]:
        return dict(self._data["progress"])

    def _path(self, tail: str = "") -> str:
        return f"{PATH}{self.id}{tail}"

    def refresh(self) -> LabelingSession:
        self._data = get_client().get(self._path())
        return self

    def add_traces(self, traces: Any) -> LabelingSession:
        """Add traces: a ``search_traces`` DataFrame, a list of traces (the client's or mlflow's) or of
        trace ids. mlflow ``Trace`` objects or trace dicts the server lacks are imported (admins)."""
        items = traces if isinstance(traces, list) else None
        if items and any(_is_foreign_trace(item) for item in items):
            records = [{"trace": item if isinstance(item, dict) else item.to_dict()} for item in items]
            get_client().post(self._path("/traces"), json={"records": records})
        else:
            ids = trace_ids_of(traces)
            if ids:
                get_client().post(self._path("/traces"), json={"trace_ids": ids})
        return self.refresh()

    def add_dataset(self, dataset_name: str, record_ids: list[str] | None = None) -> LabelingSession:
        """Add the source traces of a dataset's records (all, or ``record_ids``: their
        ``dataset_record_id``). Records whose trace is not stored in the app are left out (admins)."""
        client = get_client()
        if record_ids is None:
            dataset = client.get(f"datasets/{quote(dataset_name, safe='')}")
            if int(dataset["record_count"]) <= ADD_BATCH:
                client.post(self._path("/datasets"), json={"dataset_name": dataset_name})
                return self.refresh()
            pages = client.paginate(f"datasets/{dataset['dataset_id']}/records", "records", {"max_results": 500})
            record_ids = [r["dataset_record_id"] for r in pages]
        ids = [str(r) for r in record_ids]
        for start in range(0, len(ids), ADD_BATCH):  # the server takes at most 10,000 per request
            body = {"dataset_name": dataset_name, "record_ids": ids[start : start + ADD_BATCH]}
            client.post(self._path("/datasets"), json=body)
        return self.refresh()

    def set_assigned_users(self, assigned_users: list[str]) -> LabelingSession:
        self._data = get_client().put(self._path("/assigned-users"), json={"assigned_users": list(assigned_users)})
        return self

    def sync(self, to_dataset: str, *, policy: str = "latest", include_feedback: bool = False) -> dict[str, Any]:
        """Merge the session's labels into the evaluation dataset named ``to_dataset`` (created if new).
        ``policy``: ``latest`` answer, ``consensus`` (ties left out, listed in ``ties_left_out``) or
        ``adjudicated`` (a lead's final answer, else consensus). ``include_feedback`` adds feedback as tags."""
        body = {"dataset_name": to_dataset, "policy": policy, "include_feedback": include_feedback}
        return get_client().post(self._path("/sync"), json=body)

    def items(self) -> list[dict[str, Any]]:
        return list(get_client().paginate(self._path("/items"), "items", {"max_results": 500}))


def _is_foreign_trace(item: Any) -> bool:
    """A trace given as JSON or as an mlflow entity (not an id, nor one of this client's traces)."""
    if isinstance(item, (str, Trace)):
        return False
    if isinstance(item, dict):
        return isinstance(item.get("info"), dict)
    return callable(getattr(item, "to_dict", None))


def create_labeling_session(
    name: str,
    *,
    assigned_users: list[str] | None = None,
    label_schemas: list[str] | None = None,
    **settings: Any,
) -> LabelingSession:
    """Create a session (admins). ``settings``: ``instructions``, ``reviewers_per_item``, ``lease_minutes``,
    ``blind``, ``assignment_mode``, ``leads``."""
    body = {"name": name, "assigned_users": assigned_users or [], "label_schemas": label_schemas or [], **settings}
    return LabelingSession(get_client().post(PATH, json=body))


def get_labeling_sessions() -> list[LabelingSession]:
    return [LabelingSession(d) for d in get_client().paginate(PATH, "labeling_sessions", {"max_results": 500})]


def get_labeling_session(run_id: str | None = None, *, name: str | None = None) -> LabelingSession:
    """The session with this ``mlflow_run_id`` (or this ``name``, or this numeric id)."""
    if (run_id is None) == (name is None):
        raise ReviewAppError("INVALID_PARAMETER_VALUE", "Pass exactly one of run_id or name.")
    if run_id is not None and str(run_id).isdigit() and len(str(run_id)) < 19:
        return LabelingSession(get_client().get(f"{PATH}{run_id}"))
    query = {"mlflow_run_id": str(run_id)} if run_id is not None else {"name": str(name)}
    found = get_client().get(PATH, params=query)["labeling_sessions"]
    if not found:
        what = f"run id {run_id!r}" if run_id is not None else f"name {name!r}"
        raise ReviewAppError("RESOURCE_DOES_NOT_EXIST", f"No labeling session with {what}.", 404)
    return LabelingSession(found[0])


def delete_labeling_session(labeling_session: LabelingSession) -> None:
    get_client().delete(f"{PATH}{labeling_session.id}")
