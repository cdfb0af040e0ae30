"""A client for the few REST calls of a running MLflow tracking server that an import needs.

The search (``POST /api/3.0/mlflow/traces/search``) returns trace infos with their tags, state and
assessments but no spans; spans come from ``GET /api/3.0/mlflow/traces/batchGet``, or per trace from
``traces/get`` on servers without it, or from the trace's ``traces.json`` artifact when the server
keeps spans as artifacts (as MLflow's own client does in ``TracingClient.get_trace``). The import
itself (what is new or changed, storing) is :mod:`.server_import`.

Every request has a deadline (``timeout`` for each read, ten times that for a whole answer), and
connection errors, 429 and 5xx answers are retried a bounded number of times with exponential
backoff. Anything that stops the import is a :class:`MlflowServerError` whose message is one line
for the user; credentials never appear in it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import orjson
import requests
import urllib3
from django.conf import settings

SEARCH_PATH = "/api/3.0/mlflow/traces/search"
BATCH_GET_PATH = "/api/3.0/mlflow/traces/batchGet"
GET_TRACE_PATH = "/api/3.0/mlflow/traces/get"
EXPERIMENT_PATH = "/api/2.0/mlflow/experiments/get"
ARTIFACTS_PATH = "/api/2.0/mlflow-artifacts/artifacts/"
TRACE_ARTIFACT_PATH = "/ajax-api/2.0/mlflow/get-trace-artifact"
TRACE_DATA_FILE = "traces.json"
SPANS_LOCATION_TAG = "mlflow.trace.spansLocation"
ARTIFACT_LOCATION_TAG = "mlflow.artifactLocation"
SPANS_IN_STORE = {"TRACKING_STORE", "ARCHIVE_REPO"}

PAGE_SIZE = 100  # trace infos per search page
MAX_PAGE_SIZE = 500  # the most MLflow's search returns
BATCH_GET_SIZE = 25  # trace ids per batchGet request: they travel in the query string
RETRY_STATUSES = {429, 500, 502, 503, 504}
BACKOFF_SECONDS = 0.5  # before the 2nd try; doubled before each next one
MAX_RETRY_AFTER_SECONDS = 30.0
ANSWER_DEADLINE_FACTOR = 10  # a whole answer must arrive within this many timeouts


class MlflowServerError(Exception):
    """The import cannot go on; the message is one line naming the problem."""


@dataclass(slots=True)
class MlflowApiError(MlflowServerError):
    """An error answer in MLflow's own shape: ``{"error_code": …, "message": …}``."""

    status: int
    error_code: str
    message: str

    def __str__(self) -> str:
        return f"{self.error_code}: {self.message}"


def server_url(raw: str) -> str:
    """The server's base URL without a trailing slash, or :class:`MlflowServerError` saying what is wrong."""
    parts = urlsplit(raw.strip())
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise MlflowServerError(
            f"--from-mlflow must be an http:// or https:// URL such as http://host:5000, got {raw!r}"
        )
    if parts.username or parts.password:
        raise MlflowServerError(
            "--from-mlflow: put credentials in MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD "
            "or MLFLOW_TRACKING_TOKEN, not in the URL"
        )
    if parts.query or parts.fragment:
        raise MlflowServerError(
            f"--from-mlflow must be the server's base URL, without ?query or #fragment, got {raw!r}"
        )
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        raise MlflowServerError(f"--from-mlflow has a bad port: {raw!r}") from None
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def auth_from_environment() -> requests.auth.AuthBase | None:
    """Credentials the way MLflow's client reads them: a bearer token, or a username and password."""
    token = os.environ.get("MLFLOW_TRACKING_TOKEN")
    if token:
        return _BearerAuth(token)
    username = os.environ.get("MLFLOW_TRACKING_USERNAME")
    password = os.environ.get("MLFLOW_TRACKING_PASSWORD")
    if username or password:
        return requests.auth.HTTPBasicAuth(username or "", password or "")
    return None


class _BearerAuth(requests.auth.AuthBase):
    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def __repr__(self) -> str:  # never show the token
        return "_BearerAuth(***)"


class MlflowServerClient:
    """The few MLflow REST calls the import needs, each with a deadline and bounded retries."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 30.0,
        attempts: int = 4,
        backoff: float | None = None,
        auth: requests.auth.AuthBase | None = None,
    ) -> None:
        self.base_url = server_url(base_url)
        self.timeout = timeout
        self.attempts = max(1, attempts)
        self.backoff = BACKOFF_SECONDS if backoff is None else backoff
        # requests' environment applies, as for MLflow's own client: HTTPS_PROXY, NO_PROXY, REQUESTS_CA_BUNDLE.
        self.session = requests.Session()
        self.session.auth = auth
        self.session.headers["User-Agent"] = "trace-review-import"
        self._batch_get = True
        self._get_trace = True

    def close(self) -> None:
        self.session.close()

    # ---- the calls

    def get_experiment(self, experiment_id: str) -> dict[str, Any]:
        try:
            answer = self._json("GET", EXPERIMENT_PATH, params={"experiment_id": experiment_id})
        except MlflowApiError as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST" or exc.status == 404:
                raise MlflowServerError(
                    f"MLflow experiment {experiment_id!r} does not exist at {self.base_url}"
                ) from None
            raise MlflowServerError(f"{self.base_url} refused experiment {experiment_id!r}: {exc.message}") from None
        experiment = answer.get("experiment")
        if not isinstance(experiment, dict) or not isinstance(experiment.get("name"), str):
            raise self._not_mlflow("GET", EXPERIMENT_PATH, "a JSON answer without an experiment")
        return experiment

    def search_pages(self, experiment_id: str, filter_string: str, page_size: int = PAGE_SIZE) -> Iterator[list[dict]]:
        """Trace infos of one experiment, a page at a time, oldest first (new traces land on later pages)."""
        body: dict[str, Any] = {
            "locations": [{"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": experiment_id}}],
            "max_results": page_size,
            "order_by": ["timestamp_ms ASC"],
        }
        if filter_string:
            body["filter"] = filter_string
        seen_tokens: set[str] = set()
        while True:
            try:
                answer = self._json("POST", SEARCH_PATH, json=body)
            except MlflowApiError as exc:
                if exc.error_code == "INVALID_PARAMETER_VALUE" and filter_string:
                    raise MlflowServerError(f"the MLflow server refused the filter: {exc.message}") from None
                raise MlflowServerError(f"{self.base_url} refused the trace search: {exc}") from None
            infos = answer.get("traces", [])
            if not isinstance(infos, list) or not all(isinstance(i, dict) for i in infos):
                raise self._not_mlflow("POST", SEARCH_PATH, "'traces' that is not a list of objects")
            yield infos
            token = answer.get("next_page_token")
            if not token or not infos or token in seen_tokens:  # a repeated token would loop forever
                return
            seen_tokens.add(token)
            body["page_token"] = token

    def fetch_traces(self, infos: list[dict[str, Any]]) -> dict[str, dict[str, Any] | str]:
        """Each trace with its spans (``{"trace_info", "spans"}``), or why its spans could not be read."""
        found: dict[str, dict[str, Any] | str] = {}
        in_store = [i for i in infos if (i.get("tags") or {}).get(SPANS_LOCATION_TAG) in SPANS_IN_STORE]
        for start in range(0, len(in_store), BATCH_GET_SIZE):
            if not self._batch_get:
                break
            ids = [str(i.get("trace_id")) for i in in_store[start : start + BATCH_GET_SIZE]]
            found.update(self._batch_get_traces(ids))
        for info in infos:
            trace_id = str(info.get("trace_id"))
            if trace_id not in found:
                found[trace_id] = self._one_trace(info)
        return found

    # ---- span sources, in MLflow's client's order

    def _batch_get_traces(self, trace_ids: list[str]) -> dict[str, dict[str, Any] | str]:
        try:
            # No experiment_ids (older servers may not know the field): the search already scoped to the experiment.
            answer = self._json("GET", BATCH_GET_PATH, params={"trace_ids": trace_ids}, optional=True)
        except MlflowApiError as exc:
            if exc.error_code != "ENDPOINT_NOT_FOUND":
                raise MlflowServerError(f"{self.base_url} refused to send spans: {exc}") from None
            answer = None
        if answer is None:  # an older server: fall back to one trace at a time
            self._batch_get = False
            return {}
        traces = answer.get("traces", [])
        if not isinstance(traces, list):
            raise self._not_mlflow("GET", BATCH_GET_PATH, "'traces' that is not a list")
        found: dict[str, dict[str, Any] | str] = {}
        for trace in traces:
            info = trace.get("trace_info") if isinstance(trace, dict) else None
            if isinstance(info, dict) and info.get("trace_id") in trace_ids:
                found[info["trace_id"]] = trace
        return found

    def _one_trace(self, info: dict[str, Any]) -> dict[str, Any] | str:
        trace_id = str(info.get("trace_id"))
        if (info.get("tags") or {}).get(SPANS_LOCATION_TAG) in SPANS_IN_STORE and self._get_trace:
            try:
                answer = self._json("GET", GET_TRACE_PATH, params={"trace_id": trace_id}, optional=True)
            except MlflowApiError as exc:
                # An old server routes traces/get to traces/{trace_id} and answers "Trace with ID 'get' not found".
                if exc.error_code != "ENDPOINT_NOT_FOUND" and "'get' not found" not in exc.message:
                    return f"the MLflow server did not send its spans ({exc})"
                answer = None
            if answer is None:
                self._get_trace = False
            elif isinstance(answer.get("trace"), dict):
                return answer["trace"]
        return self._trace_from_artifact(info)

    def _trace_from_artifact(self, info: dict[str, Any]) -> dict[str, Any] | str:
        trace_id = str(info.get("trace_id"))
        location = str((info.get("tags") or {}).get(ARTIFACT_LOCATION_TAG) or "")
        if location.startswith("mlflow-artifacts:/"):
            path = ARTIFACTS_PATH + quote(f"{location.removeprefix('mlflow-artifacts:').strip('/')}/{TRACE_DATA_FILE}")
            params: dict[str, Any] = {}
        else:  # the server reads its own artifact store (the route MLflow's trace UI uses)
            path, params = TRACE_ARTIFACT_PATH, {"request_id": trace_id}
        try:
            data = self._json("GET", path, params=params, optional=True)
        except MlflowApiError as exc:
            return f"the MLflow server did not send its spans ({exc})"
        if data is None:
            return "the MLflow server has no spans for it (no traces.json artifact)"
        if not isinstance(data.get("spans"), list):
            return "its traces.json artifact has no list of spans"
        return {"trace_info": info, "spans": data["spans"]}

    # ---- HTTP

    def _json(
        self, method: str, path: str, *, params: dict | None = None, json: Any = None, optional: bool = False
    ) -> Any:
        """The decoded JSON object of one call; with ``optional``, ``None`` for a plain (non-MLflow) 404."""
        response = self._send(method, path, params=params, json=json)
        with response:
            status, content_type = response.status_code, response.headers.get("Content-Type", "")
            if status in {401, 403}:
                raise MlflowServerError(
                    f"the MLflow server at {self.base_url} refused the credentials (HTTP {status}); "
                    "set MLFLOW_TRACKING_TOKEN, or MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"
                )
            body = self._read(response, method, path)
        try:
            answer = orjson.loads(body)
        except orjson.JSONDecodeError:
            if optional and status == 404:
                return None
            kind = content_type.split(";")[0].strip() or "no content type"
            raise self._not_mlflow(method, path, f"HTTP {status} with {kind}, not JSON") from None
        if not isinstance(answer, dict):
            raise self._not_mlflow(method, path, f"HTTP {status} with JSON that is not an object")
        if status >= 400:
            if isinstance(answer.get("error_code"), str):
                message = str(answer.get("message") or "")[:300]
                raise MlflowApiError(status=status, error_code=answer["error_code"], message=_one_line(message))
            if optional and status == 404:
                return None
            raise self._not_mlflow(method, path, f"HTTP {status} without an MLflow error")
        return answer

    def _send(self, method: str, path: str, *, params: dict | None, json: Any) -> requests.Response:
        url = self.base_url + path
        for attempt in range(self.attempts):
            last = attempt == self.attempts - 1
            try:
                response = self.session.request(
                    method, url, params=params, json=json, timeout=self.timeout, stream=True, allow_redirects=False
                )
            except requests.Timeout:
                if last:
                    raise MlflowServerError(
                        f"cannot reach {self.base_url}: no answer within {self.timeout:g} s"
                    ) from None
                self._sleep(attempt, None)
                continue
            except requests.ConnectionError as exc:
                if last:
                    raise MlflowServerError(f"cannot reach {self.base_url}: {_connection_reason(exc)}") from None
                self._sleep(attempt, None)
                continue
            except requests.RequestException as exc:
                raise MlflowServerError(f"cannot reach {self.base_url}: {type(exc).__name__}") from None
            if response.status_code in RETRY_STATUSES and not last:
                retry_after = response.headers.get("Retry-After")
                response.close()
                self._sleep(attempt, retry_after)
                continue
            if response.status_code in RETRY_STATUSES:
                response.close()
                raise MlflowServerError(
                    f"the MLflow server at {self.base_url} kept answering HTTP {response.status_code} "
                    f"to {method} {path} ({self.attempts} tries)"
                )
            if 300 <= response.status_code < 400:
                response.close()
                raise MlflowServerError(
                    f"{self.base_url} redirects {method} {path} (HTTP {response.status_code}); "
                    "give the MLflow server's own URL"
                )
            return response
        raise AssertionError("unreachable")  # the loop returns or raises on its last attempt

    def _sleep(self, attempt: int, retry_after: str | None) -> None:
        delay = self.backoff * (2**attempt)
        if retry_after and retry_after.strip().isdigit():
            delay = max(delay, float(retry_after))
        time.sleep(min(delay, MAX_RETRY_AFTER_SECONDS))

    def _read(self, response: requests.Response, method: str, path: str) -> bytes:
        """The body, refusing one over the import size limit (a misconfigured URL may stream anything)."""
        limit = settings.MAX_IMPORT_FILE_BYTES
        allowed = self.timeout * ANSWER_DEADLINE_FACTOR
        deadline = time.monotonic() + allowed  # the timeout bounds each read; this bounds the whole answer
        chunks, size = [], 0
        try:
            # read1 returns what has arrived (iter_content would wait for a whole chunk), so the deadline holds.
            while chunk := response.raw.read1(1 << 16, decode_content=True):
                size += len(chunk)
                if size > limit:
                    raise MlflowServerError(
                        f"{method} {path} at {self.base_url} answered more than {limit} bytes (MAX_IMPORT_FILE_BYTES)"
                    )
                if time.monotonic() > deadline:
                    raise MlflowServerError(
                        f"{self.base_url} took more than {allowed:g} s to send its answer to {method} {path}"
                    )
                chunks.append(chunk)
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise MlflowServerError(
                f"{self.base_url} broke off its answer to {method} {path} ({_connection_reason(exc)})"
            ) from None
        return b"".join(chunks)

    def _not_mlflow(self, method: str, path: str, what: str) -> MlflowServerError:
        return MlflowServerError(f"{self.base_url} is not an MLflow tracking server: {method} {path} answered {what}")


def _connection_reason(exc: Exception) -> str:
    text = str(exc).lower()
    for needle, reason in (
        ("refused", "connection refused"),
        ("name or service not known", "unknown host"),
        ("nodename nor servname", "unknown host"),
        ("failed to resolve", "unknown host"),
        ("temporary failure in name resolution", "unknown host"),
        ("certificate", "TLS certificate not accepted"),
        ("ssl", "TLS handshake failed"),
        ("timed out", "timed out"),
        ("reset by peer", "connection reset"),
        ("remote end closed", "connection closed by the server"),
    ):
        if needle in text:
            return reason
    return "connection failed"


def _one_line(text: str) -> str:
    return " ".join(text.split())
