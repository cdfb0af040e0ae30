"""HTTP plumbing: where the server is, who we are, and one JSON request with the API's error shape."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import requests

from .errors import ReviewAppError

URL_ENV = "REVIEWAPP_URL"
TOKEN_ENV = "REVIEWAPP_TOKEN"
DEFAULT_TIMEOUT = 60.0


class ApiClient:
    """A session against one server with one API token. Paths are relative to ``/api/``
    (``"traces/"`` and ``"/api/traces/"`` name the same endpoint)."""

    def __init__(self, url: str, token: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"
        self.session.headers["Accept"] = "application/json"

    def __repr__(self) -> str:
        return f"ApiClient({self.url!r})"

    def api_url(self, path: str) -> str:
        path = path.lstrip("/")
        if not path.startswith("api/"):
            path = "api/" + path
        return f"{self.url}/{path}"

    def request(
        self, method: str, path: str, json: Any = None, params: dict[str, Any] | None = None
    ) -> requests.Response:
        url = self.api_url(path)
        try:
            response = self.session.request(method, url, json=json, params=_clean_params(params), timeout=self.timeout)
        except requests.RequestException as exc:
            raise ReviewAppError("ENDPOINT_NOT_REACHABLE", f"Could not reach {url}: {exc}") from exc
        if not response.ok:
            raise _error_of(response)
        return response

    def _json(self, method: str, path: str, json: Any = None, params: dict[str, Any] | None = None) -> Any:
        response = self.request(method, path, json=json, params=params)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise ReviewAppError(
                "INVALID_RESPONSE",
                f"{method} {response.url} answered {response.status_code} with a body that is not JSON.",
                response.status_code,
            ) from exc

    def get(self, path: str, json: Any = None, params: dict[str, Any] | None = None) -> Any:
        return self._json("GET", path, json=json, params=params)

    def post(self, path: str, json: Any = None, params: dict[str, Any] | None = None) -> Any:
        return self._json("POST", path, json=json, params=params)

    def patch(self, path: str, json: Any = None, params: dict[str, Any] | None = None) -> Any:
        return self._json("PATCH", path, json=json, params=params)

    def put(self, path: str, json: Any = None, params: dict[str, Any] | None = None) -> Any:
        return self._json("PUT", path, json=json, params=params)

    def delete(self, path: str, json: Any = None, params: dict[str, Any] | None = None) -> Any:
        return self._json("DELETE", path, json=json, params=params)

    def get_text(self, path: str, params: dict[str, Any] | None = None) -> str:
        return self.request("GET", path, params=params).text

    def paginate(self, path: str, key: str, params: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """Every item under ``key`` across pages: follows ``next_page_token`` by sending it back as
        ``page_token`` until the server gives none."""
        params = dict(params or {})
        seen: set[str] = set()
        while True:
            page = self.get(path, params=params) or {}
            yield from page.get(key) or []
            token = page.get("next_page_token")
            if not token or token in seen:
                return
            seen.add(token)
            params["page_token"] = token


def _clean_params(params: dict[str, Any] | None) -> dict[str, Any] | None:
    """Drops None values; lists become repeated parameters (requests' own rule); booleans are lower case."""
    if not params:
        return None
    cleaned: dict[str, Any] = {}
    for name, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, (list, tuple, set)):
            value = [str(v) for v in value]
        cleaned[name] = value
    return cleaned


def _error_of(response: requests.Response) -> ReviewAppError:
    code, message = None, None
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        code, message = body.get("error_code"), body.get("message")
    if not code:
        code = {401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "ENDPOINT_NOT_FOUND"}.get(
            response.status_code, "INTERNAL_ERROR" if response.status_code >= 500 else "BAD_REQUEST"
        )
    if not message:
        text = (response.text or "").strip()[:300]
        message = f"{response.request.method} {response.url} answered {response.status_code}" + (
            f": {text}" if text else "."
        )
    return ReviewAppError(str(code), str(message), response.status_code)


_client: ApiClient | None = None


def configure(url: str | None = None, token: str | None = None, timeout: float = DEFAULT_TIMEOUT) -> ApiClient:
    """Points the module-level functions at a server. Arguments left out come from the environment
    (``REVIEWAPP_URL``, ``REVIEWAPP_TOKEN``)."""
    global _client
    url = url or os.environ.get(URL_ENV)
    token = token or os.environ.get(TOKEN_ENV)
    missing = [name for name, value in ((URL_ENV, url), (TOKEN_ENV, token)) if not value]
    if missing:
        raise ReviewAppError(
            "NOT_CONFIGURED",
            "The review app client is not configured: call reviewapp_client.configure(url=..., token=...) "
            f"or set {' and '.join(missing)} (make a token under Account → API tokens).",
        )
    _client = ApiClient(url, token, timeout=timeout)  # type: ignore[arg-type]
    return _client


def get_client() -> ApiClient:
    """The configured client, configuring from the environment on first use."""
    if _client is None:
        return configure()
    return _client


def reset() -> None:
    """Forgets the configured client (the next call reads the environment again)."""
    global _client
    _client = None
