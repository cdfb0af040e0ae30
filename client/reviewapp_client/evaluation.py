"""Evaluation runs over ``/api/evaluation-runs/``: score a dataset, a labeling session or an
experiment's traces with catalogue scorers and judges on the server, then read the MLflow-style
metrics (``<scorer>/mean`` …). Admins and session leads (a lead runs over the sessions they lead).

The server's worker does the scoring, so ``start_evaluation_run`` returns at once; ``run.wait()``
polls until the run has ended. (To score an app you run in your notebook, use ``mlflow.genai.evaluate``
on ``get_dataset(...).to_df()``.)
"""

from __future__ import annotations

from itertools import islice
from typing import Any
from urllib.parse import quote

from ._http import get_client
from ._jobs import ENDED, wait_until_ended


class EvaluationRun:
    """One run as the server last described it."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def __repr__(self) -> str:
        return f"EvaluationRun(run_id={self.run_id!r}, status={self.status!r}, metrics={self.metrics!r})"

    @property
    def run_id(self) -> str:
        return self._data["run_id"]

    @property
    def name(self) -> str:
        return self._data["name"]

    @property
    def status(self) -> str:
        """``queued``, ``running``, ``finished``, ``failed`` or ``cancelled``."""
        return self._data["status"]

    @property
    def done(self) -> bool:
        return self.status in ENDED

    @property
    def scorers(self) -> list[str]:
        return list(self._data["scorers"])

    @property
    def metrics(self) -> dict[str, float]:
        """Aggregates as MLflow names them: ``<scorer>/mean`` and friends."""
        return dict(self._data["metrics"])

    @property
    def progress(self) -> dict[str, int]:
        return dict(self._data["progress"])

    @property
    def app_version(self) -> str:
        return self._data["app_version"]

    @property
    def error(self) -> str:
        return self._data["error"]

    @property
    def info(self) -> dict[str, Any]:
        """Everything the server said: source, times, who started it."""
        return dict(self._data)

    def _path(self, tail: str = "") -> str:
        return f"evaluation-runs/{quote(self.run_id, safe='')}{tail}"

    def refresh(self) -> EvaluationRun:
        self._data = get_client().get(self._path())
        return self

    def wait(self, timeout: float = 3600.0, poll_seconds: float = 2.0) -> EvaluationRun:
        """Poll until the run has ended; a ``ReviewAppError`` (``DEADLINE_EXCEEDED``) after ``timeout``."""
        return wait_until_ended(self, timeout, poll_seconds, f"evaluation run {self.run_id}")

    def cancel(self) -> EvaluationRun:
        """Stop after the current batch (what was scored stays)."""
        self._data = get_client().post(self._path("/cancel"))
        return self


def start_evaluation_run(
    scorers: list[str],
    *,
    dataset: str | None = None,
    session: str | None = None,
    experiment: str | None = None,
    filter_string: str = "",
    name: str = "",
    app_version: str | None = None,
    confirmed: bool = False,
) -> EvaluationRun:
    """Queue a run of ``scorers`` over one of: a ``dataset`` (id or name: the stored traces of its
    records), a labeling ``session`` (by name) or an ``experiment`` (by name) with a ``filter_string``.
    A judge run over many traces needs ``confirmed=True`` (it costs model calls)."""
    body = {
        "scorers": list(scorers),
        "dataset": dataset,
        "session": session,
        "experiment": experiment,
        "filter_string": filter_string,
        "name": name,
        "app_version": app_version,
        "confirmed": confirmed,
    }
    return EvaluationRun(get_client().post("evaluation-runs/", json=body))


def get_evaluation_run(run_id: str) -> EvaluationRun:
    return EvaluationRun(get_client().get(f"evaluation-runs/{quote(run_id, safe='')}"))


def search_evaluation_runs(
    *,
    dataset: str | None = None,
    experiment: str | None = None,
    status: str | None = None,
    max_results: int | None = None,
) -> list[EvaluationRun]:
    """Runs, newest first: of a ``dataset`` or an ``experiment`` (id or name), in a ``status``."""
    params = {"dataset": dataset, "experiment": experiment, "status": status, "max_results": 200}
    return [EvaluationRun(d) for d in islice(get_client().paginate("evaluation-runs/", "runs", params), max_results)]
