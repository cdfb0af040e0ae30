"""Production monitoring, mirroring ``mlflow.genai.scorers``' registry calls and Databricks'
``backfill_scorers``: register a catalogue scorer on an experiment, ``start`` / ``update`` / ``stop``
its sampling, ``list_scorers`` / ``get_scorer`` / ``delete_scorer``, and score past traffic with
``backfill_scorers`` (over ``/api/experiments/{id}/scorers/`` and ``/api/backfills/``).

Reads are for admins and session leads; changes for admins. Each change returns a new
:class:`Scorer` (as MLflow's are immutable); the server keeps every version.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from typing import Any
from urllib.parse import quote

from ._http import get_client
from ._jobs import ENDED, wait_until_ended
from .errors import ReviewAppError


@dataclass(frozen=True)
class ScorerSamplingConfig:
    """What share of the experiment's completed traces a registered scorer scores, and which."""

    sample_rate: float | None = None
    filter_string: str | None = None


@dataclass(frozen=True)
class BackfillScorerConfig:
    """A registered scorer (or its name) for ``backfill_scorers``, at its own rate or this one."""

    scorer: Scorer | str
    sample_rate: float | None = None


class Scorer:
    """A scorer registered on an experiment, as the server last described it."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def __repr__(self) -> str:
        return f"Scorer(name={self.name!r}, status={self.status!r}, sample_rate={self.sample_rate!r})"

    @property
    def name(self) -> str:
        """The registration's name: the name its verdicts are logged under."""
        return self._data["name"]

    @property
    def scorer_name(self) -> str:
        """The catalogue scorer or judge it runs."""
        return self._data["scorer_name"]

    @property
    def experiment_id(self) -> str:
        return self._data["experiment_id"]

    @property
    def status(self) -> str:
        """``registered``, ``active`` or ``stopped``."""
        return self._data["status"]

    @property
    def sample_rate(self) -> float:
        return float(self._data["sample_rate"])

    @property
    def filter_string(self) -> str:
        return self._data["filter_string"]

    @property
    def sampling_config(self) -> ScorerSamplingConfig:
        return ScorerSamplingConfig(self.sample_rate, self.filter_string or None)

    @property
    def version(self) -> int:
        return int(self._data["version"])

    @property
    def versions(self) -> list[dict[str, Any]]:
        """Every change (register, start, update, stop), oldest first, with who made it."""
        return list(self._data["versions"])

    def _path(self, tail: str = "") -> str:
        return _path(self.experiment_id, self.name) + tail

    def start(self, *, sampling_config: ScorerSamplingConfig) -> Scorer:
        """Begin scoring new traces at ``sampling_config.sample_rate`` (above 0, at most 1)."""
        if sampling_config.sample_rate is None:
            raise ReviewAppError("INVALID_PARAMETER_VALUE", "start needs a sampling_config with a sample_rate.")
        body = {"sample_rate": sampling_config.sample_rate, "filter_string": sampling_config.filter_string}
        return Scorer(get_client().post(self._path("/start"), json=body))

    def update(self, *, sampling_config: ScorerSamplingConfig) -> Scorer:
        """Change the rate and/or the filter (a rate of 0 stops it; what is left out stays as it is)."""
        body = {"sample_rate": sampling_config.sample_rate, "filter_string": sampling_config.filter_string}
        return Scorer(get_client().patch(self._path(), json={k: v for k, v in body.items() if v is not None}))

    def stop(self) -> Scorer:
        """Score no new traces; its verdicts stay."""
        return Scorer(get_client().post(self._path("/stop")))


def _experiment(experiment_id: str | int | None) -> str:
    if experiment_id is None or str(experiment_id).strip() == "":
        raise ReviewAppError("INVALID_PARAMETER_VALUE", "Pass experiment_id: the app's id of the experiment.")
    return str(experiment_id)


def _path(experiment_id: str | int | None, name: str = "") -> str:
    return f"experiments/{quote(_experiment(experiment_id), safe='')}/scorers/{quote(name, safe='')}"


def register_scorer(
    scorer_name: str,
    *,
    name: str | None = None,
    experiment_id: str | int | None = None,
    sampling_config: ScorerSamplingConfig | None = None,
) -> Scorer:
    """MLflow's ``scorer.register(name=...)`` (then ``.start(...)`` when ``sampling_config`` has a rate):
    put the catalogue's ``scorer_name`` on the experiment as ``name`` (default: ``scorer_name``)."""
    config = sampling_config or ScorerSamplingConfig()
    body = {
        "name": name or scorer_name,
        "scorer_name": scorer_name,
        "sample_rate": config.sample_rate or 0.0,
        "filter_string": config.filter_string or "",
    }
    return Scorer(get_client().post(_path(experiment_id), json=body))


def list_scorers(*, experiment_id: str | int | None = None) -> list[Scorer]:
    return [Scorer(d) for d in get_client().get(_path(experiment_id))["scorers"]]


def get_scorer(*, name: str, experiment_id: str | int | None = None) -> Scorer:
    return Scorer(get_client().get(_path(experiment_id, name)))


def delete_scorer(*, name: str, experiment_id: str | int | None = None) -> None:
    """Remove the registration (the name is free again; its verdicts and history stay)."""
    get_client().delete(_path(experiment_id, name))


class Backfill:
    """A backfill job: its status and progress as last read (``refresh``, ``wait``)."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def __repr__(self) -> str:
        return f"Backfill(job_id={self.job_id!r}, status={self.status!r}, progress={self.progress!r})"

    @property
    def job_id(self) -> str:
        return self._data["job_id"]

    @property
    def status(self) -> str:
        return self._data["status"]

    @property
    def progress(self) -> dict[str, int]:
        return dict(self._data["progress"])

    @property
    def error(self) -> str:
        return self._data["error"]

    @property
    def eta_seconds(self) -> float | None:
        return self._data.get("eta_seconds")

    @property
    def done(self) -> bool:
        return self.status in ENDED

    def refresh(self) -> Backfill:
        self._data = get_client().get(f"backfills/{quote(self.job_id, safe='')}")
        return self

    def wait(self, timeout: float = 3600.0, poll_seconds: float = 2.0) -> Backfill:
        """Poll until the job has ended; a ``ReviewAppError`` (``DEADLINE_EXCEEDED``) after ``timeout``."""
        return wait_until_ended(self, timeout, poll_seconds, f"backfill {self.job_id}")

    def cancel(self) -> Backfill:
        self._data = get_client().post(f"backfills/{quote(self.job_id, safe='')}/cancel")
        return self


def backfill_scorers(
    *,
    experiment_id: str | int | None = None,
    scorers: list[BackfillScorerConfig | Scorer | str],
    start_time: datetime | None = None,
    end_time: datetime | None = None,
) -> str:
    """Databricks' ``backfill_scorers``: score the experiment's past traces from ``start_time`` (default:
    the first) to ``end_time`` (default: now) with registered scorers; returns the job id. Times
    without a time zone are refused (the server cannot guess yours)."""
    return start_backfill(experiment_id=experiment_id, scorers=scorers, start_time=start_time, end_time=end_time).job_id


def start_backfill(
    *,
    experiment_id: str | int | None = None,
    scorers: list[BackfillScorerConfig | Scorer | str],
    start_time: datetime | None = None,
    end_time: datetime | None = None,
) -> Backfill:
    """``backfill_scorers`` returning the :class:`Backfill` (to ``wait`` on)."""
    chosen = [_backfill_scorer(s) for s in scorers]
    body: dict[str, Any] = {"experiment_id": _experiment(experiment_id), "scorers": chosen}
    for key, value in (("start_time", start_time), ("end_time", end_time)):
        if value is not None:
            body[key] = value.isoformat()
    return Backfill(get_client().post("backfills/", json=body))


def _backfill_scorer(item: BackfillScorerConfig | Scorer | str) -> dict[str, Any]:
    config = item if isinstance(item, BackfillScorerConfig) else BackfillScorerConfig(item)
    name = config.scorer.name if isinstance(config.scorer, Scorer) else str(config.scorer)
    return {"name": name, "sample_rate": config.sample_rate}


def get_backfill(job_id: str) -> Backfill:
    return Backfill(get_client().get(f"backfills/{quote(job_id, safe='')}"))


def search_backfills(*, experiment_id: str | int | None = None, max_results: int | None = None) -> list[Backfill]:
    """Backfill jobs, newest first (of one experiment when given)."""
    params = {"experiment_id": None if experiment_id is None else str(experiment_id), "max_results": 200}
    jobs = get_client().paginate("backfills/", "backfills", params)
    return [Backfill(d) for d in islice(jobs, max_results)]
